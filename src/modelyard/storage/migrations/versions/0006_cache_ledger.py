"""The ledger books response-cache hits: which cache answered, and the cost it saved.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("cache", sa.String(16)))
        batch.add_column(
            sa.Column("saved_micros", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("saved_micros")
        batch.drop_column("cache")
