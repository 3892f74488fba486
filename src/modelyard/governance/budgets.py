"""Budget counters: reserve the most a request can cost, settle what it did cost.

A budget belongs to a key or a team, runs over a period (a UTC day, a UTC
month, or none) and is hard (refuse) or soft (alert only). Each budget and
period has one counter holding two integers in micro-dollars: ``spent`` and
``reserved``. Before a model is called the gateway reserves the request's
worst-case cost on every counter that applies; afterwards it settles: the
reservation is released and the actual cost is added to ``spent``.

The rule both backends keep: for a hard budget ``spent + reserved`` never
exceeds the limit, whatever the concurrency, because the check and the update
are one atomic step over all the request's counters (one process:
:class:`MemoryCounters`, nothing awaits between check and update; several
replicas: :class:`RedisCounters`, one Lua script). Only a settle whose actual
cost exceeds its reservation can push ``spent`` past a limit, and it is
recorded anyway: the money is gone.

The ledger (elsewhere) is the record of what was spent; these counters are its
running image. After a restart (or when Redis lost a counter) ``seed`` sets a
counter from the ledger, and only a counter that does not exist yet, so that
replicas seeding at once cannot double-count. ``settle`` on a counter that no
longer exists changes nothing: the ledger has the cost, a seed will bring it.

What lives elsewhere: prices and cost estimates, the ledger, and the decision
of which budgets apply to a request.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # redis is imported only where Redis is configured
    from redis.asyncio import Redis


Period = Literal["day", "month", "none"]

DAY = 86_400
TTL_MARGIN = DAY  # a counter outlives its period by this, for late settles and the dashboard
SWEEP_EVERY = 300.0  # seconds between sweeps of expired in-memory counters


def period_start(period: Period, now: float) -> float:
    """The UTC start of the period holding ``now``; 0.0 for a budget without period."""
    if period == "day":
        return float(now - now % DAY)
    if period == "month":
        t = time.gmtime(now)
        return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))
    return 0.0


def period_end(period: Period, now: float) -> float | None:
    """The UTC end of the period holding ``now`` (the next one's start); None: never ends."""
    if period == "day":
        return float(now - now % DAY + DAY)
    if period == "month":
        t = time.gmtime(now)
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        return float(calendar.timegm((year, month, 1, 0, 0, 0)))
    return None


def counter_name(scope: str, owner: str, period: Period, now: float) -> str:
    """``team:acme:2026-11``, ``key:key_ab12:2026-11-25`` or ``team:acme:all``."""
    if period == "none":
        return f"{scope}:{owner}:all"
    t = time.gmtime(now)
    if period == "month":
        return f"{scope}:{owner}:{t.tm_year:04d}-{t.tm_mon:02d}"
    return f"{scope}:{owner}:{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def counter_ttl(period: Period, now: float, margin: int = TTL_MARGIN) -> int | None:
    """Seconds a counter made at ``now`` must live: to its period's end plus a margin."""
    end = period_end(period, now)
    return None if end is None else int(end - now) + margin


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """One budget as it applies to one request: its counter, limit and kind."""

    counter: str  # from counter_name
    limit_micros: int  # integer micro-dollars
    hard: bool  # hard: refuse; soft: alert only
    ttl: int | None  # seconds the counter must live in Redis; None: forever

    @classmethod
    def of(
        cls, scope: str, owner: str, period: Period, limit_micros: int, hard: bool, now: float
    ) -> BudgetScope:
        """The scope of ``owner``'s budget for the period holding ``now``."""
        return cls(
            counter_name(scope, owner, period, now), limit_micros, hard, counter_ttl(period, now)
        )


def crossed(scope: BudgetScope, spent_after: int, actual: int) -> bool:
    """Whether the settle that added ``actual`` and left ``spent_after`` went over the limit.

    Exactly one settle crosses a limit, because ``settle`` reports the value
    its own atomic increment produced; use it to raise a soft budget's alert once.
    """
    return spent_after - actual <= scope.limit_micros < spent_after


class MissingCounter(Exception):
    """``reserve(..., must_exist=True)`` met a counter that does not exist (yet, or any more:
    Redis restarted without persistence, or evicted it). Nothing was changed; the caller
    seeds it from the ledger and tries again."""

    def __init__(self, scope: BudgetScope):
        super().__init__(scope.counter)
        self.scope = scope


class SpendCounters(Protocol):
    async def reserve(
        self, scopes: Sequence[BudgetScope], amount: int, *, must_exist: bool = False
    ) -> BudgetScope | None:
        """Atomically over all scopes (distinct counters): if every hard scope has
        spent + reserved + amount <= limit, add ``amount`` to every scope's reserved
        and return None; otherwise change nothing and return the first hard scope
        that refuses. ``must_exist``: a missing counter raises ``MissingCounter``
        (and nothing changes) instead of starting at zero."""
        ...

    async def settle(self, counters: Sequence[str], reserved: int, actual: int) -> list[int | None]:
        """On each counter: reserved -= ``reserved`` (not below 0), spent += ``actual``
        (also past a limit). Returns each counter's spent afterwards, None for a
        counter that no longer exists (left alone)."""
        ...

    async def seed(self, counter: str, spent: int, ttl: int | None) -> bool:
        """Set ``spent`` of a counter that does not exist yet; True if it was set."""
        ...

    async def state(self, counter: str) -> tuple[int, int] | None:
        """(spent, reserved) of a counter, None if it does not exist."""
        ...

    async def close(self) -> None: ...


class _Counter:
    __slots__ = ("expires", "reserved", "spent")

    def __init__(self, spent: int, expires: float) -> None:
        self.spent = spent
        self.reserved = 0
        self.expires = expires


class MemoryCounters:
    """The counters of one gateway process, in a dict.

    Atomic because no method awaits: asyncio cannot switch tasks inside one.
    Counters past their TTL are swept now and then, when a new one is made.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._counters: dict[str, _Counter] = {}
        self._clock = clock
        self._next_sweep = 0.0

    async def reserve(
        self, scopes: Sequence[BudgetScope], amount: int, *, must_exist: bool = False
    ) -> BudgetScope | None:
        counters = self._counters
        for scope in scopes:
            if must_exist and scope.counter not in counters:
                raise MissingCounter(scope)
            if scope.hard:
                c = counters.get(scope.counter)
                used = c.spent + c.reserved if c is not None else 0
                if used + amount > scope.limit_micros:
                    return scope
        for scope in scopes:
            c = counters.get(scope.counter)
            if c is None:
                c = self._create(scope.counter, 0, scope.ttl)
            c.reserved += amount
        return None

    async def settle(self, counters: Sequence[str], reserved: int, actual: int) -> list[int | None]:
        spent: list[int | None] = []
        for name in counters:
            c = self._counters.get(name)
            if c is None:
                spent.append(None)
                continue
            c.reserved = max(c.reserved - reserved, 0)
            c.spent += actual
            spent.append(c.spent)
        return spent

    async def seed(self, counter: str, spent: int, ttl: int | None) -> bool:
        if counter in self._counters:
            return False
        self._create(counter, spent, ttl)
        return True

    async def state(self, counter: str) -> tuple[int, int] | None:
        c = self._counters.get(counter)
        return None if c is None else (c.spent, c.reserved)

    async def close(self) -> None:
        self._counters.clear()

    def _create(self, name: str, spent: int, ttl: int | None) -> _Counter:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            for old in [k for k, v in self._counters.items() if v.expires <= now]:
                del self._counters[old]
        c = self._counters[name] = _Counter(spent, now + ttl if ttl is not None else float("inf"))
        return c


# KEYS: the counters. ARGV[1]: amount; then per counter its limit (-1: soft) and TTL (0: none);
# last, '1' when every counter must exist already (else -i: the i-th is missing).
# Numbers go to Redis as the strings they came in: Lua would print a large one as 1e+14.
# Lua compares doubles: amounts and limits are exact up to 2**53 micro-dollars ($9e9).
# Returns 0 when reserved, else the 1-based index of the first hard counter that refuses.
_RESERVE = """
local amount = tonumber(ARGV[1])
if ARGV[2 * #KEYS + 2] == '1' then
  for i, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 0 then
      return -i
    end
  end
end
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  if limit >= 0 then
    local v = redis.call('HMGET', key, 's', 'r')
    if (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + amount > limit then
      return i
    end
  end
end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'r', ARGV[1])
  if ARGV[2 * i + 1] ~= '0' then
    redis.call('EXPIRE', key, ARGV[2 * i + 1])
  end
end
return 0
"""

# KEYS: the counters. ARGV: minus the reserved amount, the actual cost. Returns each
# counter's spent afterwards, -1 where the counter is missing.
_SETTLE = """
local spent = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    if redis.call('HINCRBY', key, 'r', ARGV[1]) < 0 then
      redis.call('HSET', key, 'r', 0)
    end
    spent[i] = redis.call('HINCRBY', key, 's', ARGV[2])
  else
    spent[i] = -1
  end
end
return spent
"""

# KEYS[1]: the counter. ARGV: spent, TTL (0: none). Returns 1 when set.
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'r', 0)
if ARGV[2] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class RedisCounters:
    """The counters shared by every replica, one Redis hash each (fields ``s`` and ``r``).

    The client is owned by whoever made it (``create_app``); ``close`` leaves it open.
    """

    def __init__(self, client: Redis, prefix: str = "modelyard:") -> None:
        self._client = client
        self._prefix = prefix + "budget:"
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._seed = client.register_script(_SEED)

    async def reserve(
        self, scopes: Sequence[BudgetScope], amount: int, *, must_exist: bool = False
    ) -> BudgetScope | None:
        if not scopes:
            return None
        args: list[int] = [amount]
        for scope in scopes:
            args.append(scope.limit_micros if scope.hard else -1)
            args.append(scope.ttl or 0)
        args.append(1 if must_exist else 0)
        keys = [self._prefix + s.counter for s in scopes]
        refused = int(await self._reserve(keys=keys, args=args))
        if refused < 0:
            raise MissingCounter(scopes[-refused - 1])
        return scopes[refused - 1] if refused else None

    async def settle(self, counters: Sequence[str], reserved: int, actual: int) -> list[int | None]:
        if not counters:
            return []
        keys = [self._prefix + c for c in counters]
        spent = await self._settle(keys=keys, args=[-reserved, actual])
        return [None if s < 0 else int(s) for s in spent]

    async def seed(self, counter: str, spent: int, ttl: int | None) -> bool:
        return bool(await self._seed(keys=[self._prefix + counter], args=[spent, ttl or 0]))

    async def state(self, counter: str) -> tuple[int, int] | None:
        spent, reserved = await self._client.hmget(self._prefix + counter, ["s", "r"])
        if spent is None and reserved is None:
            return None
        return int(spent or 0), int(reserved or 0)

    async def close(self) -> None:
        """Nothing to release: the client belongs to the app, which closes it."""
