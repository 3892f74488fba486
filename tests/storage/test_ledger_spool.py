"""The ledger keeps every row through database outages and process deaths, and never twice."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import func, select

from modelyard.storage.request_log import RequestLog, RequestRecord, create_db_engine, sqlite_url
from modelyard.storage.schema import requests_table
from modelyard.storage.spool import Spool


def _row(i: int, cost: int = 7) -> RequestRecord:
    return RequestRecord(
        f"req_{i:06d}", 1.0 + i, "chat", "m", "d", "openai", 200, False, 1.0, 3, 4,
        cost_micros=cost, team="acme",
    )  # fmt: skip


def _count_and_sum(log: RequestLog) -> tuple[int, int]:
    t = requests_table
    with log.engine.connect() as conn:
        n, total = conn.execute(select(func.count(), func.sum(t.c.cost_micros))).one()
    return int(n), int(total or 0)


def test_spool_segments_of_a_live_process_are_left_alone(tmp_path: Path) -> None:
    a = Spool(tmp_path)
    a.append(b"[1]")
    b = Spool(tmp_path)
    assert b.backlog() == []  # a's open segment is locked
    closed = a.rotate()
    assert closed is not None and b.backlog() == [closed]
    assert Spool.read(closed) == [b"[1]"]
    a.done(closed)
    assert b.backlog() == []
    a.close()
    b.close()
    assert list(tmp_path.iterdir()) == []  # empty open segments are removed at close


def test_a_cut_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "ledger-x.jsonl"
    path.write_bytes(b'["a"]\n["b"')
    assert Spool.read(path) == [b'["a"]']


async def test_rows_survive_a_locked_database_and_are_written_once(tmp_path: Path) -> None:
    log = RequestLog(create_db_engine(sqlite_url(tmp_path)), tmp_path / "spool")
    blocker = sqlite3.connect(tmp_path / "modelyard.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the database is held locked by someone else
    for i in range(1000):
        log.record(_row(i))
    await log.flush()  # fails after the busy timeout: everything stays spooled
    assert log._down
    for i in range(1000, 1010):  # requests go on while it is down
        log.record(_row(i))
    blocker.execute("ROLLBACK")
    blocker.close()
    await log.flush()
    assert not log._down
    assert _count_and_sum(log) == (1010, 1010 * 7)
    await log.flush()
    await log.close()
    assert _count_and_sum(log) == (1010, 1010 * 7)
    assert list((tmp_path / "spool").iterdir()) == []


async def test_a_dead_process_rows_are_replayed_by_the_next_start(tmp_path: Path) -> None:
    engine = create_db_engine(sqlite_url(tmp_path))
    dead = RequestLog(engine, tmp_path / "spool")
    for i in range(300):
        dead.record(_row(i))
    os.close(dead.spool._fd)  # as a SIGKILL would: nothing flushed, the lock released
    dead.spool._fd = -1
    # a row it had already written is in the database too: replay must not double it
    with engine.begin() as conn:
        conn.execute(requests_table.insert().values(**_row(5)._asdict()))
    restarted = RequestLog(create_db_engine(sqlite_url(tmp_path)), tmp_path / "spool")
    await restarted.flush()
    assert _count_and_sum(restarted) == (300, 300 * 7)
    await restarted.close()
    assert list((tmp_path / "spool").iterdir()) == []
