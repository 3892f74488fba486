"""Alembic's environment: migrations run on the connection ``storage.migrate`` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from modelyard.storage.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # `alembic` run by hand with sqlalchemy.url set
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
