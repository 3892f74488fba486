"""Budget counters on both backends: periods, reserve and settle, seeding, TTLs, concurrency.

The Redis tests use the server this machine runs (127.0.0.1:6379), each under
its own key prefix, deleted afterwards; they fail, rather than skip, when that
server is missing.
"""

from __future__ import annotations

import asyncio
import calendar
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from modelyard.governance.budgets import (
    SWEEP_EVERY,
    TTL_MARGIN,
    BudgetScope,
    MemoryCounters,
    RedisCounters,
    SpendCounters,
    counter_name,
    counter_ttl,
    crossed,
    period_end,
    period_start,
)
from modelyard.governance.counters import create_counters
from modelyard.governance.ratelimit import MemoryRateLimiter, RedisRateLimiter
from modelyard.storage.redis import connect_redis
from tests.governance.conftest import REDIS_URL, drop_prefix

T = TypeVar("T")


def utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)[:6]))


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[SpendCounters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client = connect_redis(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisCounters(client, prefix)
    await drop_prefix(client, prefix)
    await client.aclose()


KEY = BudgetScope("key:key_ab12:2026-11-25", 100, True, 3600)
TEAM = BudgetScope("team:acme:2026-11", 1000, True, 3600)
SOFT = BudgetScope("team:acme:all", 0, False, None)


# ------------------------------------------------------------ periods


def test_day_periods_start_at_utc_midnight() -> None:
    now = utc(2026, 11, 25, 13, 5) + 0.25
    assert period_start("day", now) == utc(2026, 11, 25)
    assert period_end("day", now) == utc(2026, 11, 26)
    assert counter_name("key", "key_ab12", "day", now) == "key:key_ab12:2026-11-25"
    midnight = utc(2026, 11, 26)
    assert counter_name("key", "k", "day", midnight - 1e-3) == "key:k:2026-11-25"
    assert counter_name("key", "k", "day", midnight) == "key:k:2026-11-26"
    assert period_start("day", midnight) == midnight
    assert counter_ttl("day", midnight - 3600) == 3600 + TTL_MARGIN


def test_month_periods_roll_over_months_and_years() -> None:
    assert counter_name("team", "acme", "month", utc(2026, 11, 30, 23, 59) + 59.9) == (
        "team:acme:2026-11"
    )
    assert counter_name("team", "acme", "month", utc(2026, 12, 1)) == "team:acme:2026-12"
    new_year = utc(2027, 1, 1)
    assert counter_name("team", "acme", "month", new_year - 0.5) == "team:acme:2026-12"
    assert counter_name("team", "acme", "month", new_year) == "team:acme:2027-01"
    assert period_start("month", new_year - 0.5) == utc(2026, 12, 1)
    assert period_end("month", new_year - 0.5) == new_year
    leap = utc(2028, 2, 10)
    assert period_end("month", leap) == period_start("month", leap) + 29 * 86_400
    assert counter_ttl("month", new_year - 10) == 10 + TTL_MARGIN


def test_budgets_without_period_never_roll_over() -> None:
    assert period_start("none", 1e9) == 0.0
    assert period_end("none", 1e9) is None
    assert counter_ttl("none", 1e9) is None
    assert counter_name("team", "acme", "none", 1e9) == "team:acme:all"
    scope = BudgetScope.of("team", "acme", "none", 5, False, 1e9)
    assert scope == BudgetScope("team:acme:all", 5, False, None)


async def test_create_counters_chooses_the_backend() -> None:
    spend, limiter = create_counters(None)
    assert isinstance(spend, MemoryCounters)
    assert isinstance(limiter, MemoryRateLimiter)
    client = connect_redis(REDIS_URL)
    spend, limiter = create_counters(client, "x:")
    assert isinstance(spend, RedisCounters)
    assert isinstance(limiter, RedisRateLimiter)
    await client.aclose()


# ------------------------------------------------------------ both backends


async def test_reserve_then_settle_releases_the_rest(counters: SpendCounters) -> None:
    assert await counters.state(KEY.counter) is None
    assert await counters.reserve([KEY, TEAM], 60) is None
    assert await counters.state(KEY.counter) == (0, 60)
    assert await counters.settle([KEY.counter, TEAM.counter], 60, 30) == [30, 30]
    assert await counters.state(KEY.counter) == (30, 0)
    assert await counters.state(TEAM.counter) == (30, 0)
    assert await counters.reserve([KEY, TEAM], 70) is None  # 30 + 70 = 100: at the limit
    assert await counters.reserve([KEY, TEAM], 1) == KEY


async def test_a_refusal_changes_nothing(counters: SpendCounters) -> None:
    small_team = BudgetScope("team:small:2026-11", 50, True, 3600)
    assert await counters.reserve([KEY, small_team, SOFT], 40) is None
    before = [await counters.state(s.counter) for s in (KEY, small_team, SOFT)]
    assert await counters.reserve([KEY, small_team, SOFT], 20) == small_team
    assert [await counters.state(s.counter) for s in (KEY, small_team, SOFT)] == before
    fresh = BudgetScope("key:fresh:2026-11-25", 10, True, 3600)
    assert await counters.reserve([fresh, small_team], 11) == fresh  # the first that refuses
    assert await counters.state(fresh.counter) is None


async def test_a_soft_budget_never_refuses(counters: SpendCounters) -> None:
    assert await counters.reserve([SOFT], 1_000) is None
    assert await counters.reserve([SOFT], 1_000) is None
    assert await counters.state(SOFT.counter) == (0, 2_000)
    [spent] = await counters.settle([SOFT.counter], 1_000, 700)
    assert spent == 700
    assert crossed(SOFT, 700, 700)


async def test_only_the_settle_that_goes_over_the_limit_has_crossed(
    counters: SpendCounters,
) -> None:
    soft = BudgetScope("team:soft:2026-11", 100, False, 3600)
    for _ in range(4):
        assert await counters.reserve([soft], 40) is None
    results = await asyncio.gather(*(counters.settle([soft.counter], 40, 40) for _ in range(4)))
    assert sorted(s for [s] in results if s is not None) == [40, 80, 120, 160]
    assert sum(crossed(soft, s, 40) for [s] in results if s is not None) == 1


async def test_overspend_is_recorded_and_then_refuses(counters: SpendCounters) -> None:
    assert await counters.reserve([KEY], 100) is None
    assert await counters.settle([KEY.counter], 100, 130) == [130]
    assert await counters.state(KEY.counter) == (130, 0)
    assert crossed(KEY, 130, 130)
    assert await counters.reserve([KEY], 0) == KEY  # already over: nothing more
    assert await counters.reserve([SOFT], 5) is None


async def test_reserved_never_goes_below_zero(counters: SpendCounters) -> None:
    assert await counters.reserve([KEY], 10) is None
    assert await counters.settle([KEY.counter], 25, 0) == [0]
    assert await counters.state(KEY.counter) == (0, 0)


async def test_seed_sets_only_a_counter_that_does_not_exist(counters: SpendCounters) -> None:
    assert await counters.seed(KEY.counter, 90, 3600)
    assert await counters.state(KEY.counter) == (90, 0)
    assert not await counters.seed(KEY.counter, 7, 3600)  # a second replica, or a restart
    assert await counters.state(KEY.counter) == (90, 0)
    assert await counters.reserve([KEY], 11) == KEY
    assert await counters.reserve([KEY], 10) is None
    assert await counters.reserve([TEAM], 1) is None
    assert not await counters.seed(TEAM.counter, 500, 3600)  # made by a reservation
    assert await counters.state(TEAM.counter) == (0, 1)


async def test_settle_leaves_a_counter_that_is_gone_alone(counters: SpendCounters) -> None:
    assert await counters.settle(["key:gone:2026-11-25"], 10, 10) == [None]
    assert await counters.state("key:gone:2026-11-25") is None
    assert await counters.seed("key:gone:2026-11-25", 10, None)  # the ledger brings it back


@pytest.mark.parametrize("k", [0, 1, 37, 200])
async def test_concurrent_reservations_admit_exactly_what_fits(
    counters: SpendCounters, k: int
) -> None:
    scope = BudgetScope("team:busy:2026-11", 7 * k + 6, True, 3600)
    results = await asyncio.gather(*(counters.reserve([scope, SOFT], 7) for _ in range(200)))
    assert results.count(None) == k
    assert all(r in (None, scope) for r in results)
    state = await counters.state(scope.counter)
    assert (state or (0, 0)) == (0, 7 * k)


# ------------------------------------------------------------ Redis only


async def test_two_replicas_sharing_redis_admit_exactly_what_fits(
    redis_env: tuple[Redis, str],
) -> None:
    client, prefix = redis_env
    other = connect_redis(REDIS_URL)
    try:
        replicas = [RedisCounters(client, prefix), RedisCounters(other, prefix)]
        scope = BudgetScope("team:busy:2026-11", 7 * 37 + 6, True, 3600)
        results = await asyncio.gather(*(replicas[i % 2].reserve([scope], 7) for i in range(200)))
    finally:
        await other.aclose()
    assert results.count(None) == 37
    assert await replicas[0].state(scope.counter) == (0, 7 * 37)


async def test_redis_counters_live_as_long_as_their_period_needs(
    redis_env: tuple[Redis, str],
) -> None:
    client, prefix = redis_env
    counters = RedisCounters(client, prefix)
    assert await counters.reserve([KEY, SOFT], 5) is None
    assert 3590 <= await client.ttl(prefix + "budget:" + KEY.counter) <= 3600
    assert await client.ttl(prefix + "budget:" + SOFT.counter) == -1  # no period: forever
    await counters.settle([KEY.counter], 5, 5)
    assert 3590 <= await client.ttl(prefix + "budget:" + KEY.counter) <= 3600
    assert await counters.seed("key:seeded:2026-11-25", 3, 120)
    assert 110 <= await client.ttl(prefix + "budget:key:seeded:2026-11-25") <= 120
    assert await counters.seed("key:seeded:all", 3, None)
    assert await client.ttl(prefix + "budget:key:seeded:all") == -1


async def test_redis_scripts_come_back_after_a_script_flush(
    redis_env: tuple[Redis, str],
) -> None:
    client, prefix = redis_env
    counters = RedisCounters(client, prefix)
    assert await counters.reserve([KEY], 5) is None
    await client.script_flush()  # what a restarted Redis has forgotten
    assert await counters.reserve([KEY], 5) is None
    assert await counters.state(KEY.counter) == (0, 10)


async def test_memory_counters_past_their_ttl_are_swept() -> None:
    now = [1e9]
    counters = MemoryCounters(clock=lambda: now[0])
    assert await counters.reserve([KEY, SOFT], 5) is None
    now[0] += 3600 + SWEEP_EVERY  # KEY's TTL is 3600
    assert await counters.reserve([TEAM], 5) is None  # a new counter: time to sweep
    assert await counters.state(KEY.counter) is None
    assert await counters.state(SOFT.counter) == (0, 5)


# ------------------------------------------------------------ the state machine


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of the in-memory counters, which never suspend."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("in-memory counters suspended")


class CounterMachine(RuleBasedStateMachine):
    """Reserve, settle and refund at random; the counters must match a model of them."""

    backend: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[tuple[BudgetScope, ...], int]] = []  # admitted, not settled
        self.ledger: list[tuple[tuple[str, ...], int]] = []  # settled actual costs
        self.scopes: tuple[BudgetScope, ...] = ()
        if self.backend == "memory":
            self.counters: SpendCounters = MemoryCounters()
            return
        self.loop = asyncio.new_event_loop()
        self.client = connect_redis(REDIS_URL)
        self.prefix = f"test:{uuid.uuid4().hex}:"
        self.counters = RedisCounters(self.client, self.prefix)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.backend == "memory":
            return _drive(coro)
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if self.backend == "redis":
            self.run(drop_prefix(self.client, self.prefix))
            self.run(self.client.aclose())
            self.loop.close()

    @initialize(key=st.integers(0, 400), team=st.integers(0, 800), soft=st.integers(0, 300))
    def budgets(self, key: int, team: int, soft: int) -> None:
        k = BudgetScope("key:k:2026-11-25", key, True, 3600)
        t = BudgetScope("team:t:2026-11", team, True, 3600)
        s = BudgetScope("team:s:all", soft, False, None)
        self.scopes = (k, t, s)
        self.combos = [(k,), (k, t), (t, s), (k, t, s), (s,)]

    def used(self, scope: BudgetScope) -> int:
        return sum(a for scopes, a in self.open if scope in scopes) + self.spent(scope)

    def spent(self, scope: BudgetScope) -> int:
        return sum(a for counters, a in self.ledger if scope.counter in counters)

    @precondition(lambda self: self.scopes)
    @rule(combo=st.integers(0, 4), amount=st.integers(0, 250))
    def reserve(self, combo: int, amount: int) -> None:
        scopes = self.combos[combo]
        expected = next(
            (s for s in scopes if s.hard and self.used(s) + amount > s.limit_micros), None
        )
        assert self.run(self.counters.reserve(scopes, amount)) == expected
        if expected is None:
            self.open.append((scopes, amount))

    def _settle(self, pick: int, percent: int) -> None:
        scopes, amount = self.open.pop(pick % len(self.open))
        actual = amount * percent // 100
        names = tuple(s.counter for s in scopes)
        self.ledger.append((names, actual))
        after = self.run(self.counters.settle(names, amount, actual))
        assert after == [self.spent(s) for s in scopes]

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(0, 1000), percent=st.integers(0, 100))
    def settle(self, pick: int, percent: int) -> None:
        self._settle(pick, percent)

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(0, 1000))
    def refund(self, pick: int) -> None:
        self._settle(pick, 0)

    @precondition(lambda self: self.open)
    @rule(percent=st.integers(0, 100))
    def settle_everything(self, percent: int) -> None:
        while self.open:
            self._settle(0, percent)
        for scope in self.scopes:
            state = self.run(self.counters.state(scope.counter))
            assert state is None or state[1] == 0

    @invariant()
    def counters_match_the_model(self) -> None:
        for scope in self.scopes:
            state = self.run(self.counters.state(scope.counter))
            spent, reserved = state if state is not None else (0, 0)
            assert spent == self.spent(scope)  # the ledger's sum
            assert reserved == sum(a for scopes, a in self.open if scope in scopes)
            if scope.hard:
                assert spent + reserved <= scope.limit_micros


class RedisCounterMachine(CounterMachine):
    backend = "redis"


def test_memory_counters_match_their_model() -> None:
    run_state_machine_as_test(
        CounterMachine, settings=settings(max_examples=200, stateful_step_count=40, deadline=None)
    )


def test_redis_counters_match_their_model() -> None:
    run_state_machine_as_test(
        RedisCounterMachine,
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None),
    )


async def test_large_amounts_stay_exact(counters: SpendCounters) -> None:
    big = 2**52 + 12_345  # past the 14 digits Lua prints, within a double's 2**53
    huge = BudgetScope("team:rich:all", big, True, None)
    assert await counters.reserve([huge], big - 1) is None
    assert await counters.reserve([huge], 2) == huge
    assert await counters.settle([huge.counter], big - 1, big + 1) == [big + 1]
    assert await counters.state(huge.counter) == (big + 1, 0)
