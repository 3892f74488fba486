"""Outcomes learned from live traffic: one sampled prompt a row, every router model scored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text()),
        sa.Column("outcomes", sa.Text(), nullable=False),
    )
    op.create_index("ix_outcomes_route_created", "outcomes", ["route", "created"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_route_created", "outcomes")
    op.drop_table("outcomes")
