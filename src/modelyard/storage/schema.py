"""The database schema, in one place: what the migrations create and the code reads.

A change here needs a migration in ``storage/migrations/versions`` too; a test
compares the two.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

requests_table = Table(
    "requests",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False),  # the request id clients see
    Column("ts", Float, nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("model", String(200), nullable=False),
    Column("deployment", String(200)),
    Column("provider", String(40)),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cached_input_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("ttft_ms", Float),
    Column("error_type", String(64)),
)


decisions_table = Table(
    "routing_decisions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("ts", Float, nullable=False),
    Column("route", String(200), nullable=False),
    Column("chosen", String(200)),
    Column("body", Text, nullable=False),  # the decision as JSON
)

route_overrides = Table(
    "route_overrides",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("body", Text),  # NULL: deleted
    Column("ts", Float, nullable=False),
)
