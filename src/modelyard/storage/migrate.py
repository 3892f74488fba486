"""Bring a database to the newest schema with Alembic, at start-up.

A database already at ``HEAD`` is left alone without importing Alembic (it
costs ~9 MB of memory and most of a second). A database made before
migrations existed (tables present, no ``alembic_version``) is stamped with
the first revision, which created exactly those tables, then upgraded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST = "0001"
HEAD = "0006"  # the newest revision; a test checks it against the scripts
MIGRATION_LOCK = 0x6D6F64656C79  # PostgreSQL advisory lock id held while migrating ("modely")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if "alembic_version" not in inspect(conn).get_table_names():
            return None
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if version is None else str(version)


def upgrade(engine: Engine) -> None:
    if current(engine) == HEAD:
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # replicas starting together on a new database: one migrates, the others wait
            # here and then find it at HEAD, instead of failing on tables made meanwhile
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        if "requests" in tables and "alembic_version" not in tables:
            command.stamp(config, FIRST)
        command.upgrade(config, "head")
