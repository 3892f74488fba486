"""The request log: one row per request the gateway answered, in SQLite or PostgreSQL.

Rows are appended in memory on the request path and written in batches by a
background task, so a request never waits on the database. ``close()`` writes
what is left. The governance ledger builds on this table later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)

from modelyard.routing.decision import Decision
from modelyard.storage.migrate import upgrade
from modelyard.storage.schema import decisions_table, requests_table

log = logging.getLogger(__name__)


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

    upgrade(engine)
    return engine


_DECISION_COLUMNS = ("request_id", "ts", "route", "chosen", "body")


def _positional_sql(engine: Engine, table: Table, columns: tuple[str, ...]) -> str | None:
    """The INSERT as the driver's SQL when the dialect takes tuples (SQLite), else None."""
    compiled = insert(table).compile(dialect=engine.dialect, column_keys=list(columns))
    return str(compiled) if compiled.positiontup == list(columns) else None


def _insert(
    conn: Connection,
    sql: str | None,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    # the DB-API's executemany with plain tuples: a tenth of the cost of ORM-style dicts
    if sql is not None:
        conn.exec_driver_sql(sql, list(rows))
    else:
        conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])


class RequestLog:
    def __init__(self, engine: Engine, *, flush_interval: float = 0.5):
        self.engine = engine
        self._pending: list[RequestRecord] = []
        self._decisions: list[Decision] = []
        self._interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._request_sql = _positional_sql(engine, requests_table, RequestRecord._fields)
        self._decision_sql = _positional_sql(engine, decisions_table, _DECISION_COLUMNS)

    def record(self, rec: RequestRecord) -> None:
        self._pending.append(rec)

    def record_decision(self, decision: Decision) -> None:
        self._decisions.append(decision)

    async def find_decision(self, request_id: str) -> dict[str, Any] | None:
        """A stored decision, whether or not it has been written yet."""
        for decision in reversed(self._decisions):
            if decision.request_id == request_id:
                return decision.to_dict()
        return await asyncio.to_thread(self._read_decision, request_id)

    def _read_decision(self, request_id: str) -> dict[str, Any] | None:
        query = (
            select(decisions_table.c.body)
            .where(decisions_table.c.request_id == request_id)
            .order_by(decisions_table.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            body = conn.execute(query).scalar()
        return None if body is None else dict(orjson.loads(body))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending and not self._decisions:
            return
        rows, self._pending = self._pending, []
        decisions, self._decisions = self._decisions, []
        try:
            await asyncio.to_thread(self._write, rows, decisions)
        except Exception:
            # keep the rows for the next attempt rather than lose them
            log.exception("request log write failed; %d rows kept for retry", len(rows))
            self._pending[:0] = rows
            self._decisions[:0] = decisions

    def _write(self, rows: list[RequestRecord], decisions: list[Decision]) -> None:
        with self.engine.begin() as conn:
            if decisions:
                _insert(
                    conn,
                    self._decision_sql,
                    decisions_table,
                    _DECISION_COLUMNS,
                    [
                        (d.request_id, d.ts, d.route, d.chosen, orjson.dumps(d.to_dict()).decode())
                        for d in decisions
                    ],
                )
            if rows:
                _insert(conn, self._request_sql, requests_table, RequestRecord._fields, rows)

    def tokens_since(self, since: float) -> list[tuple[str, int, int]]:
        """(deployment, input tokens, output tokens) served since ``since``."""
        t = requests_table
        query = (
            select(t.c.deployment, func.sum(t.c.input_tokens), func.sum(t.c.output_tokens))
            .where(t.c.ts >= since, t.c.deployment.is_not(None), t.c.status < 400)
            .group_by(t.c.deployment)
        )
        with self.engine.connect() as conn:
            return [(str(d), int(i or 0), int(o or 0)) for d, i, o in conn.execute(query)]

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
