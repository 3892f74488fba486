"""Migrations: what they build is what the code's schema says, on a new or an older database."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from modelyard.storage.migrate import upgrade
from modelyard.storage.request_log import create_db_engine, sqlite_url
from modelyard.storage.schema import metadata, route_overrides


def _version(engine: object) -> str:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())


def test_a_new_database_gets_every_table_at_the_newest_revision(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    names = set(inspect(engine).get_table_names())
    assert {"requests", "routing_decisions", "route_overrides", "alembic_version"} <= names
    assert _version(engine) == "0001"
    upgrade(engine)  # a second start changes nothing
    assert _version(engine) == "0001"


def test_the_migrations_build_exactly_the_code_schema(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_database_from_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    metadata.create_all(engine)  # how the first builds made their tables
    with engine.begin() as conn:
        conn.execute(insert(route_overrides).values(name="kept", body=None, ts=1.0))
    upgrade(engine)
    assert _version(engine) == "0001"
    with engine.connect() as conn:
        assert conn.execute(select(route_overrides.c.name)).scalars().all() == ["kept"]


def test_head_constant_is_the_newest_script() -> None:
    from alembic.script import ScriptDirectory

    from modelyard.storage.migrate import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
