"""The ledger through a database outage: each request booked exactly once, even across SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import Gateway, start_gateway_process, stop_gateway
from tests.e2e.governance.support import CONFIG, COST, ENV, chat_body, post_chat
from tests.fakes.harness import LoopbackServer, Recorder

Upstream = tuple[LoopbackServer, Recorder]


def _send(gw: Gateway, n: int) -> None:
    body = chat_body()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post_chat(gw, None, body)[0], range(n)))
    assert statuses == [200] * n


def _ledger(db: Path, deadline: float = 20.0) -> tuple[int, int, int]:
    """(rows, distinct ids, sum of cost) once the rows stop arriving."""
    last = None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with sqlite3.connect(db) as conn:
            found = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT id), COALESCE(SUM(cost_micros), 0) FROM requests"
            ).fetchone()
        if found == last and found[0]:
            return found  # type: ignore[no-any-return]
        last = found
        time.sleep(1.0)
    raise AssertionError(f"the ledger did not settle: {last}")


def _lock(db: Path) -> sqlite3.Connection:
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # held: every write of the gateway times out
    return blocker


def test_a_locked_database_loses_no_row(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    db = gw.data_dir / "modelyard.db"
    blocker = _lock(db)
    _send(gw, 1000)
    time.sleep(1.0)
    assert blocker.execute("SELECT COUNT(*) FROM requests").fetchone() == (0,)
    assert any((gw.data_dir / "spool").iterdir())  # the rows wait on local disk
    blocker.execute("ROLLBACK")
    blocker.close()
    assert _ledger(db) == (1000, 1000, 1000 * COST)


def test_a_gateway_killed_during_the_outage_loses_no_row(
    tmp_path: Path, openai_upstream: Upstream
) -> None:
    config = CONFIG.format(url=openai_upstream[0].url)
    gw = start_gateway_process(tmp_path, config, ENV)
    db = gw.data_dir / "modelyard.db"
    try:
        blocker = _lock(db)
        _send(gw, 500)
        gw.process.send_signal(signal.SIGKILL)
        gw.process.wait(10)
        gw = start_gateway_process(tmp_path, config, ENV)  # same data directory
        _send(gw, 500)
        blocker.execute("ROLLBACK")
        blocker.close()
        assert _ledger(db) == (1000, 1000, 1000 * COST)
    finally:
        stop_gateway(gw)
