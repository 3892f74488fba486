"""The request log, routing decisions and admin route overrides.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(200)),
        sa.Column("provider", sa.String(40)),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        sa.Column("error_type", sa.String(64)),
    )
    op.create_table(
        "routing_decisions",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("chosen", sa.String(200)),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_routing_decisions_request_id", "routing_decisions", ["request_id"])
    op.create_table(
        "route_overrides",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("body", sa.Text()),
        sa.Column("ts", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("route_overrides")
    op.drop_index("ix_routing_decisions_request_id", "routing_decisions")
    op.drop_table("routing_decisions")
    op.drop_table("requests")
