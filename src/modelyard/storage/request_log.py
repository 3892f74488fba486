"""The request log: one row per request the gateway answered, in SQLite or PostgreSQL.

Rows are appended in memory on the request path and written in batches by a
background task, so a request never waits on the database. ``close()`` writes
what is left. The governance ledger builds on this table later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    text,
)

log = logging.getLogger(__name__)

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


class RequestRecord(NamedTuple):
    """One row of ``requests``, in column order (a tuple: cheap to build on the hot path)."""

    id: str
    ts: float
    endpoint: str
    model: str
    deployment: str | None
    provider: str | None
    status: int
    stream: bool
    latency_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    ttft_ms: float | None = None
    error_type: str | None = None


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'modelyard.db').resolve()}"


def create_db_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    metadata.create_all(engine)
    return engine


class RequestLog:
    def __init__(self, engine: Engine, *, flush_interval: float = 0.5):
        self.engine = engine
        self._pending: list[RequestRecord] = []
        self._interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        compiled = insert(requests_table).compile(
            dialect=engine.dialect, column_keys=list(RequestRecord._fields)
        )
        positional = compiled.positiontup == list(RequestRecord._fields)
        # a positional dialect (SQLite) takes the tuples as they are
        self._insert_sql: str | None = str(compiled) if positional else None

    def record(self, rec: RequestRecord) -> None:
        self._pending.append(rec)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            await asyncio.to_thread(self._write, rows)
        except Exception:
            # keep the rows for the next attempt rather than lose them
            log.exception("request log write failed; %d rows kept for retry", len(rows))
            self._pending[:0] = rows

    def _write(self, rows: list[RequestRecord]) -> None:
        # the DB-API's executemany with plain tuples: a tenth of the cost of ORM-style dicts
        with self.engine.begin() as conn:
            if self._insert_sql is not None:
                conn.exec_driver_sql(self._insert_sql, rows)
            else:
                conn.execute(insert(requests_table), [r._asdict() for r in rows])

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        self.engine.dispose()
