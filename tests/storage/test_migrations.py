"""Migrations: what they build is what the code's schema says, on a new or an older database."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from modelyard.storage.migrate import HEAD, upgrade
from modelyard.storage.request_log import create_db_engine, sqlite_url
from modelyard.storage.schema import metadata, route_overrides


def _version(engine: object) -> str:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())


def test_a_new_database_gets_every_table_at_the_newest_revision(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    names = set(inspect(engine).get_table_names())
    assert {"requests", "routing_decisions", "route_overrides", "alembic_version"} <= names
    assert _version(engine) == HEAD
    upgrade(engine)  # a second start changes nothing
    assert _version(engine) == HEAD


def test_the_migrations_build_exactly_the_code_schema(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


_FIRST_BUILDS = [  # the tables the builds before migrations made (revision 0001's)
    "CREATE TABLE requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, id VARCHAR(128) NOT NULL,"
    " ts FLOAT NOT NULL, endpoint VARCHAR(32) NOT NULL, model VARCHAR(200) NOT NULL,"
    " deployment VARCHAR(200), provider VARCHAR(40), status INTEGER NOT NULL,"
    " stream BOOLEAN NOT NULL, latency_ms FLOAT NOT NULL, input_tokens INTEGER NOT NULL,"
    " output_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL,"
    " reasoning_tokens INTEGER NOT NULL, ttft_ms FLOAT, error_type VARCHAR(64))",
    "CREATE TABLE routing_decisions (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " request_id VARCHAR(128) NOT NULL, ts FLOAT NOT NULL, route VARCHAR(200) NOT NULL,"
    " chosen VARCHAR(200), body TEXT NOT NULL)",
    "CREATE TABLE route_overrides (name VARCHAR(200) PRIMARY KEY, body TEXT, ts FLOAT NOT NULL)",
]


def test_a_database_from_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        for ddl in _FIRST_BUILDS:
            conn.exec_driver_sql(ddl)
        conn.execute(insert(route_overrides).values(name="kept", body=None, ts=1.0))
        for _ in range(2):  # a client's X-Request-Id was kept then: ids could repeat
            conn.exec_driver_sql(
                "INSERT INTO requests (id, ts, endpoint, model, status, stream, latency_ms,"
                " input_tokens, output_tokens, cached_input_tokens, reasoning_tokens)"
                " VALUES ('same', 1, 'chat', 'm', 200, 0, 1, 1, 1, 0, 0)"
            )
    upgrade(engine)
    assert _version(engine) == HEAD
    with engine.connect() as conn:
        assert conn.execute(select(route_overrides.c.name)).scalars().all() == ["kept"]
        ids = conn.exec_driver_sql("SELECT id FROM requests ORDER BY seq").scalars().all()
        assert ids == ["same", "same#2"]  # unique now, no row lost


def test_head_constant_is_the_newest_script() -> None:
    from alembic.script import ScriptDirectory

    from modelyard.storage.migrate import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
