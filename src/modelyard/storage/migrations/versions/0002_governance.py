"""Governance: keys, teams, the epoch row, and the ledger's columns on ``requests``.

Request ids become unique (one ledger row per request): rows that shared an id
before, when a client's ``X-Request-Id`` was kept, get their sequence number
appended.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_LEDGER: list[sa.Column[object]] = [
    sa.Column("key_id", sa.String(40)),
    sa.Column("team", sa.String(100)),
    sa.Column("route", sa.String(200)),
    sa.Column("tags", sa.Text()),
    sa.Column("cache_write_tokens", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("audio_input_tokens", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("audio_output_tokens", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("client_request_id", sa.String(128)),
]


def upgrade() -> None:
    op.execute(
        "UPDATE requests SET id = id || '#' || CAST(seq AS VARCHAR(20)) WHERE seq NOT IN "
        "(SELECT MIN(seq) FROM requests GROUP BY id)"
    )
    with op.batch_alter_table("requests") as batch:
        for column in _LEDGER:
            batch.add_column(column)
    op.create_index("ux_requests_id", "requests", ["id"], unique=True)
    op.create_index("ix_requests_ts", "requests", ["ts"])
    with op.batch_alter_table("routing_decisions") as batch:
        batch.add_column(sa.Column("team", sa.String(100)))
    op.create_table(
        "teams",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("limits", sa.Text(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team", sa.String(100)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("models", sa.Text()),
        sa.Column("limits", sa.Text(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float()),
        sa.Column("revoked", sa.Float()),
    )
    epoch = op.create_table(
        "governance_epoch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])


def downgrade() -> None:
    op.drop_table("governance_epoch")
    op.drop_table("api_keys")
    op.drop_table("teams")
    with op.batch_alter_table("routing_decisions") as batch:
        batch.drop_column("team")
    op.drop_index("ix_requests_ts", "requests")
    op.drop_index("ux_requests_id", "requests")
    with op.batch_alter_table("requests") as batch:
        for column in reversed(_LEDGER):
            batch.drop_column(column.name)
