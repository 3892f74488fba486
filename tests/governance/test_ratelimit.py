"""Rate limits on both backends: bursts, Retry-After, token debt, atomicity, concurrency.

The in-memory limiter runs on a clock the tests move; the Redis one on Redis's
own clock, with limits whose waits are short. The Redis tests use the server
this machine runs (127.0.0.1:6379), each under its own key prefix, deleted
afterwards; they fail, rather than skip, when that server is missing.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from modelyard.governance.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RateRule,
    RedisRateLimiter,
)
from modelyard.storage.redis import connect_redis
from tests.governance.conftest import REDIS_URL, drop_prefix


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = connect_redis(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisRateLimiter(client, prefix)
    await drop_prefix(client, prefix)
    await client.aclose()


# ------------------------------------------------------------ exact, on a moved clock


async def test_a_burst_of_the_limit_passes_and_the_next_waits_one_interval() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    rpm = [RateRule("key:k:rpm", 10)]
    assert [await limiter.acquire(rpm, []) for _ in range(10)] == [None] * 10
    assert await limiter.acquire(rpm, []) == pytest.approx(6.0)
    clock.now += 5.5
    assert await limiter.acquire(rpm, []) == pytest.approx(0.5)
    clock.now += 0.5
    assert await limiter.acquire(rpm, []) is None
    assert await limiter.acquire(rpm, []) == pytest.approx(6.0)
    clock.now += 60
    assert [await limiter.acquire(rpm, []) for _ in range(11)].count(None) == 10


@pytest.mark.parametrize("per_minute", [1, 7, 13, 600, 7_777, 100_000])
async def test_the_burst_is_exactly_the_limit_for_awkward_rates(per_minute: int) -> None:
    limiter = MemoryRateLimiter(FakeClock())
    rule = [RateRule("key:k:rpm", per_minute)]
    results = [await limiter.acquire(rule, []) for _ in range(per_minute + 1)]
    assert results.count(None) == per_minute
    assert results[-1] == pytest.approx(60 / per_minute, abs=1e-6)


async def test_token_debt_delays_later_requests() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    tpm = [RateRule("key:k:tpm", 1_000)]
    assert await limiter.acquire([], tpm) is None
    await limiter.charge(tpm, 999)
    assert await limiter.acquire([], tpm) is None  # 999 of 1000 used: not exhausted
    await limiter.charge(tpm, 1)
    assert await limiter.acquire([], tpm) == pytest.approx(1e-6)  # exhausted
    await limiter.charge(tpm, 2_000)  # in debt by two minutes' worth
    wait = await limiter.acquire([], tpm)
    assert wait == pytest.approx(120.0)
    clock.now += 119.9
    assert await limiter.acquire([], tpm) == pytest.approx(0.1, abs=1e-5)
    clock.now += 0.1 + 1e-6
    assert await limiter.acquire([], tpm) is None


async def test_a_limiter_forgets_rules_it_no_longer_needs() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    for i in range(100):
        assert await limiter.acquire([RateRule(f"key:{i}:rpm", 10)], []) is None
    clock.now += 120
    assert await limiter.acquire([RateRule("key:last:rpm", 10)], []) is None
    assert len(limiter._tats) == 1


def test_a_rule_must_allow_something() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateRule("key:k:rpm", 0)


# ------------------------------------------------------------ both backends


async def test_burst_refusal_and_readmission_in_real_time(limiter: RateLimiter) -> None:
    rpm = [RateRule("key:k:rpm", 120)]  # one every 0.5 s
    assert [await limiter.acquire(rpm, []) for _ in range(120)] == [None] * 120
    wait = await limiter.acquire(rpm, [])
    assert wait is not None
    assert 0.3 < wait <= 0.5
    await asyncio.sleep(wait + 0.01)
    assert await limiter.acquire(rpm, []) is None
    assert await limiter.acquire(rpm, []) is not None


async def test_token_debt_is_shared_and_delays(limiter: RateLimiter) -> None:
    tpm = [RateRule("team:t:tpm", 600)]  # a token costs 0.1 s
    assert await limiter.acquire([], tpm) is None
    await limiter.charge(tpm, 700)
    wait = await limiter.acquire([], tpm)
    assert wait is not None
    assert 9.8 < wait <= 10.001
    await limiter.charge(tpm, 0)  # nothing to add
    await limiter.charge([], 10)
    assert await limiter.acquire([], [RateRule("team:other:tpm", 600)]) is None


async def test_a_refusal_takes_nothing_from_any_rule(limiter: RateLimiter) -> None:
    key = RateRule("key:k:rpm", 3)
    team = RateRule("team:t:rpm", 2)
    assert await limiter.acquire([key, team], []) is None
    assert await limiter.acquire([key, team], []) is None
    assert await limiter.acquire([key, team], []) is not None  # the team's rule refuses
    assert await limiter.acquire([key, team], []) is not None
    assert await limiter.acquire([key], []) is None  # the key's rule still has its third
    assert await limiter.acquire([key], []) is not None


async def test_an_exhausted_token_rule_refuses_and_takes_no_request(limiter: RateLimiter) -> None:
    rpm = RateRule("key:k:rpm", 2)
    tpm = RateRule("key:k:tpm", 100)
    assert await limiter.acquire([rpm], [tpm]) is None
    await limiter.charge([tpm], 150)
    wait = await limiter.acquire([rpm], [tpm])
    assert wait is not None
    assert 29 < wait <= 30.001
    assert await limiter.acquire([rpm], []) is None  # the refusal took nothing
    assert await limiter.acquire([rpm], []) is not None


async def test_concurrent_requests_admit_exactly_the_limit(limiter: RateLimiter) -> None:
    rules = [RateRule("key:k:rpm", 10), RateRule("team:t:rpm", 1_000)]
    results = await asyncio.gather(*(limiter.acquire(rules, []) for _ in range(50)))
    assert results.count(None) == 10
    assert all(r is None or 0 < r <= 6.0 for r in results)


# ------------------------------------------------------------ Redis only


async def test_two_replicas_sharing_redis_admit_exactly_the_limit(
    redis_env: tuple[Redis, str],
) -> None:
    client, prefix = redis_env
    other = connect_redis(REDIS_URL)
    try:
        replicas = [RedisRateLimiter(client, prefix), RedisRateLimiter(other, prefix)]
        rule = [RateRule("key:k:rpm", 10)]
        results = await asyncio.gather(*(replicas[i % 2].acquire(rule, []) for i in range(50)))
    finally:
        await other.aclose()
    assert results.count(None) == 10


async def test_redis_keys_hold_exact_times_and_expire_when_they_stop_mattering(
    redis_env: tuple[Redis, str],
) -> None:
    client, prefix = redis_env
    limiter = RedisRateLimiter(client, prefix)
    assert await limiter.acquire([RateRule("key:k:rpm", 10)], []) is None
    stored = await client.get(prefix + "rate:key:k:rpm")
    assert isinstance(stored, bytes)
    assert re.fullmatch(rb"\d{16}", stored)  # µs since the epoch, not 1.7e+15
    assert 5_900 <= await client.pttl(prefix + "rate:key:k:rpm") <= 6_001
    await limiter.charge([RateRule("key:k:tpm", 60)], 30)  # half a minute
    assert 29_900 <= await client.pttl(prefix + "rate:key:k:tpm") <= 30_001
