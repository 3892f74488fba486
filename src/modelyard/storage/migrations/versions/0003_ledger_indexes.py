"""Ledger indexes for what a budget reads at the start of a period: a key's or a team's spend.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_key_ts", "requests", ["key_id", "ts"])
    op.create_index("ix_requests_team_ts", "requests", ["team", "ts"])


def downgrade() -> None:
    op.drop_index("ix_requests_team_ts", "requests")
    op.drop_index("ix_requests_key_ts", "requests")
