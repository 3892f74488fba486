"""The request log, which is the spend ledger: one row per request, in SQLite or PostgreSQL.

Rows are appended on the request path to the crash-safe spool
(``storage.spool``) and to an in-memory batch that a background task writes,
so a request never waits on the database. Every insert is ON CONFLICT (id)
DO NOTHING: request ids are unique, and a batch written again after a failure
or a crash adds nothing twice. While the database is down rows accumulate
only in spool segments, which are replayed when it is back (and at start, for
segments a dead process left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
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
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from modelyard.routing.decision import Decision
from modelyard.storage.migrate import upgrade
from modelyard.storage.schema import decisions_table, requests_table
from modelyard.storage.spool import Spool

log = logging.getLogger(__name__)


class RequestRecord(NamedTuple):
    """One ledger row of ``requests`` (a tuple: cheap to build on the hot path)."""

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
    cache_write_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    key_id: str | None = None
    team: str | None = None
    route: str | None = None
    tags: str | None = None  # JSON object
    cost_micros: int = 0
    client_request_id: str | None = None
    cache: str | None = None  # "exact" or "semantic": answered from the response cache
    saved_micros: int = 0  # what a cache hit would have cost


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'modelyard.db').resolve()}"


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # the driver's own transaction handling off; writers (``begin_write``) take the
        # write lock up front, so two writers wait on each other instead of deadlocking
        engine = create_engine(url, connect_args={"isolation_level": None, "timeout": 5})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            immediate = conn.get_execution_options().get("immediate")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    else:
        engine = create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": 5}, pool_size=4
        )

    upgrade(engine)
    return engine


@contextlib.contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: BEGIN IMMEDIATE on SQLite, a plain one elsewhere."""
    with engine.connect() as conn:
        conn.execution_options(immediate=True)
        with conn.begin():
            yield conn


_DECISION_COLUMNS = ("request_id", "ts", "route", "chosen", "body", "team")
_MAX_DECISIONS = 20_000  # kept in memory while the database is down; the oldest go first
_MAX_BATCH = 5_000


def _insert_stmt(engine: Engine, table: Table, unique: str | None) -> Any:
    """INSERT, and ON CONFLICT DO NOTHING on ``unique`` where given."""
    if engine.dialect.name == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_nothing(index_elements=[unique]) if unique else pg
    lite = sqlite.insert(table)
    return lite.on_conflict_do_nothing(index_elements=[unique]) if unique else lite


def _positional_sql(
    engine: Engine, table: Table, columns: tuple[str, ...], unique: str | None = None
) -> str | None:
    """The INSERT as the driver's SQL when the dialect takes tuples (SQLite), else None."""
    compiled = _insert_stmt(engine, table, unique).compile(
        dialect=engine.dialect, column_keys=list(columns)
    )
    return str(compiled) if compiled.positiontup == list(columns) else None


def _insert(
    conn: Connection,
    sql: str | None,
    stmt: Any,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    # the DB-API's executemany with plain tuples: a tenth of the cost of ORM-style dicts
    if sql is not None:
        conn.exec_driver_sql(sql, list(rows))
    else:
        conn.execute(stmt, [dict(zip(columns, r, strict=True)) for r in rows])


class RequestLog:
    def __init__(self, engine: Engine, spool_dir: Path, *, flush_interval: float = 0.5):
        self.engine = engine
        self.spool = Spool(spool_dir)
        self._pending: list[RequestRecord] = []
        self._decisions: list[Decision] = []
        self._writing: list[Decision] = []  # the batch being written, still found by lookups
        self._interval = flush_interval
        self._task: asyncio.Task[None] | None = None
        self._backlog = True  # segments left by a dead process are replayed first
        self._down = False  # the last write failed: rows go to the spool only
        self._request_stmt = _insert_stmt(engine, requests_table, "id")
        self._request_sql = _positional_sql(engine, requests_table, RequestRecord._fields, "id")
        self._decision_stmt = _insert_stmt(engine, decisions_table, None)
        self._decision_sql = _positional_sql(engine, decisions_table, _DECISION_COLUMNS)
        self._postgres = engine.dialect.name == "postgresql"
        #: a span around each write (``observability.tracing``), when traces are exported
        self.storage_span: Callable[[int, int], AbstractContextManager[None]] | None = None

    def record(self, rec: RequestRecord) -> None:
        self.spool.append(orjson.dumps(tuple(rec)))
        if not self._down:
            self._pending.append(rec)

    def record_decision(self, decision: Decision) -> None:
        self._decisions.append(decision)
        if len(self._decisions) > _MAX_DECISIONS:
            del self._decisions[: len(self._decisions) - _MAX_DECISIONS]

    async def find_decision(self, request_id: str) -> dict[str, Any] | None:
        """A stored decision, whether or not it has been written yet, with its team."""
        # the batch being written is still searched: until its commit the table lacks it
        for decision in (*reversed(self._decisions), *reversed(self._writing)):
            if decision.request_id == request_id:
                return {**decision.to_dict(), "team": decision.team}
        return await asyncio.to_thread(self._read_decision, request_id)

    def _read_decision(self, request_id: str) -> dict[str, Any] | None:
        t = decisions_table
        query = (
            select(t.c.body, t.c.team)
            .where(t.c.request_id == request_id)
            .order_by(t.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else {**orjson.loads(row[0]), "team": row[1]}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        """Write the batch, then any backlog; on failure the spool keeps every row."""
        segment = self.spool.rotate()
        rows, self._pending = self._pending, []
        decisions, self._decisions = self._decisions, []
        self._writing = decisions
        if self._down:
            rows = []  # they are in the segment: replayed with the backlog below
        try:
            if rows or decisions:
                await asyncio.to_thread(self._write, rows, decisions)
            if segment is not None and not self._down:
                self.spool.done(segment)
            if self._backlog or self._down:
                await asyncio.to_thread(self._replay)
        except Exception as exc:
            if not self._down:
                log.warning(
                    "ledger: the database is unavailable (%s); rows are spooled in %s until it "
                    "is back",
                    type(exc).__name__,
                    self.spool.directory,
                )
            self._down = True
            self._decisions[:0] = decisions[-_MAX_DECISIONS:]
            return
        finally:
            self._writing = []
        if self._down:
            log.warning("ledger: the database is back; the spooled rows are written")
        self._down = self._backlog = False

    def _replay(self) -> None:
        for path in self.spool.backlog():
            rows = []
            for line in Spool.read(path):
                try:  # a row spooled before a column was added gets its default
                    rows.append(tuple(RequestRecord(*orjson.loads(line))))
                except orjson.JSONDecodeError:
                    log.warning("ledger: a damaged line in %s is skipped", path.name)
            for i in range(0, len(rows), _MAX_BATCH):
                self._write(rows[i : i + _MAX_BATCH], [])
            self.spool.done(path)

    def _write(self, rows: Sequence[tuple[Any, ...]], decisions: list[Decision]) -> None:
        span = self.storage_span
        with (
            span(len(rows), len(decisions)) if span else contextlib.nullcontext(),
            begin_write(self.engine) as conn,
        ):
            if self._postgres:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            if decisions:
                _insert(
                    conn,
                    self._decision_sql,
                    self._decision_stmt,
                    _DECISION_COLUMNS,
                    [
                        (
                            d.request_id,
                            d.ts,
                            d.route,
                            d.chosen,
                            orjson.dumps(d.to_dict()).decode(),
                            d.team,
                        )
                        for d in decisions
                    ],
                )
            if rows:
                _insert(conn, self._request_sql, self._request_stmt, RequestRecord._fields, rows)

    def spent_since(self, column: str, owner: str, since: float) -> int:
        """Micro-dollars booked to a key (``key_id``) or a team (``team``) since ``since``."""
        t = requests_table
        query = select(func.coalesce(func.sum(t.c.cost_micros), 0)).where(
            t.c[column] == owner, t.c.ts >= since
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def learning_spent_since(self, route: str, since: float) -> int:
        """Micro-dollars a learned route's traffic sampling (``learn:*`` rows) cost since then."""
        t = requests_table
        query = select(func.coalesce(func.sum(t.c.cost_micros), 0)).where(
            t.c.route == route, t.c.endpoint.like("learn:%"), t.c.ts >= since
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

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
        self.spool.close()
        self.engine.dispose()
