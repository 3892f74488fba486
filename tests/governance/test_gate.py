"""The gate over real counters: a budget's counter lost by Redis is rebuilt from the ledger."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelyard.errors import BudgetExceededError
from modelyard.governance.budgets import RedisCounters
from modelyard.governance.gate import Governance
from modelyard.governance.keys import KeyRecord, Limits, Principal, TeamRecord
from modelyard.governance.ratelimit import MemoryRateLimiter
from modelyard.storage.request_log import RequestLog, RequestRecord, create_db_engine, sqlite_url
from tests.governance.conftest import drop_prefix

LIMITS = Limits(budget_micros=1_000, budget_period="month")
PRINCIPAL = Principal(
    KeyRecord("key_a", "sk-my-abcd", "k", "acme", "user", None, Limits(), 0.0),
    TeamRecord("acme", LIMITS, 0.0),
)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[RequestLog]:
    log = RequestLog(create_db_engine(sqlite_url(tmp_path)), tmp_path / "spool")
    yield log
    await log.close()


async def test_a_counter_lost_by_redis_is_rebuilt_from_the_ledger(
    ledger: RequestLog, redis_env: tuple[object, str]
) -> None:
    client, prefix = redis_env
    gate = Governance(RedisCounters(client, prefix), MemoryRateLimiter(), ledger)  # type: ignore[arg-type]
    reservation = await gate.reserve(PRINCIPAL, 600)
    assert reservation is not None
    gate.settle(PRINCIPAL, reservation, 600, 0)
    await gate.close()  # waits for the settle
    ledger.record(
        RequestRecord("req_1", time.time(), "chat", "m", "d", "v", 200, False, 1.0,
                      team="acme", key_id="key_a", cost_micros=600)
    )  # fmt: skip
    await ledger.flush()
    await drop_prefix(client, prefix)  # Redis restarted without persistence
    with pytest.raises(BudgetExceededError, match="'acme' budget"):
        await gate.reserve(PRINCIPAL, 600)  # 600 spent is read back from the ledger
    assert await gate.reserve(PRINCIPAL, 400) is not None
