"""Rate limits: requests and tokens per minute, per key and per team, by GCRA.

Each rule keeps one number, its theoretical arrival time (TAT), in integer
microseconds so that both backends compute exactly the same thing:

- A request rule with ``n`` per minute spaces requests ``T = 60 s / n`` apart
  and tolerates a burst of ``n``: a request is admitted while
  ``TAT - now <= (n - 1) * T``, and moves TAT to ``max(TAT, now) + T``. So
  ``n`` requests released together all pass and the next one waits ``T``.
- A token rule is charged when a request ends, with the tokens it used:
  ``TAT = max(TAT, now) + tokens * T``. It admits requests while it is not
  exhausted (``TAT - now < 60 s``: fewer than ``n`` tokens used within the last
  minute); a large charge pushes it into debt and later requests wait it off.

``acquire`` checks every rule and then updates all of them, or none: a team
rule that refuses does not use up the key's rule. The answer when refused is
the wait until every rule would admit the request (the Retry-After of a 429).

:class:`MemoryRateLimiter` serves one process (no await between check and
update); :class:`RedisRateLimiter` is shared by replicas: one Lua script per
call, the clock is Redis's ``TIME`` so that replicas agree, and each key expires
when its TAT passes, after which it is the same as absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # redis is imported only where Redis is configured
    from redis.asyncio import Redis


WINDOW_US = 60_000_000  # one minute in microseconds
SWEEP_EVERY_US = WINDOW_US


@dataclass(frozen=True, slots=True)
class RateRule:
    key: str  # e.g. "key:key_ab12:rpm", "team:acme:tpm"
    per_minute: int

    def __post_init__(self) -> None:
        if self.per_minute < 1:
            raise ValueError(f"rate limit {self.key} must allow at least 1 per minute")


class RateLimiter(Protocol):
    async def acquire(
        self, requests: Sequence[RateRule], tokens: Sequence[RateRule]
    ) -> float | None:
        """Take one request from every request rule if all rules admit it, and return
        None; otherwise take nothing and return the seconds to wait (> 0)."""
        ...

    async def charge(self, tokens: Sequence[RateRule], amount: int) -> None:
        """Add the tokens a request used to the token rules, into debt if need be."""
        ...

    async def close(self) -> None: ...


def _interval(per_minute: int) -> int:
    return WINDOW_US // per_minute or 1


class MemoryRateLimiter:
    """The rate limits of one gateway process. ``clock`` is in seconds (monotonic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tats: dict[str, int] = {}
        self._clock = clock
        self._next_sweep = 0

    async def acquire(
        self, requests: Sequence[RateRule], tokens: Sequence[RateRule]
    ) -> float | None:
        now = int(self._clock() * 1_000_000)
        tats = self._tats
        wait = 0
        for rule in requests:
            ahead = tats.get(rule.key, now) - now
            if ahead > 0:
                over = ahead - (rule.per_minute - 1) * _interval(rule.per_minute)
                if over > wait:
                    wait = over
        for rule in tokens:
            over = tats.get(rule.key, now) - now - WINDOW_US + 1
            if over > wait:
                wait = over
        if wait > 0:
            return wait / 1_000_000
        for rule in requests:
            tat = tats.get(rule.key, now)
            tats[rule.key] = (tat if tat > now else now) + _interval(rule.per_minute)
        if now >= self._next_sweep:
            self._sweep(now)
        return None

    async def charge(self, tokens: Sequence[RateRule], amount: int) -> None:
        if amount <= 0:
            return
        now = int(self._clock() * 1_000_000)
        tats = self._tats
        for rule in tokens:
            tat = tats.get(rule.key, now)
            tats[rule.key] = (tat if tat > now else now) + amount * WINDOW_US // rule.per_minute

    async def close(self) -> None:
        self._tats.clear()

    def _sweep(self, now: int) -> None:
        """Forget rules whose TAT has passed: absent means the same."""
        self._next_sweep = now + SWEEP_EVERY_US
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]


# KEYS: the request rules, then the token rules. ARGV[1]: how many request rules;
# then per request rule its interval and burst tolerance (µs). Returns 0 when
# admitted, else the µs to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nreq = tonumber(ARGV[1])
local tats = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  tats[i] = tat
  local allowed = 59999999
  if i <= nreq then allowed = tonumber(ARGV[2 * i + 1]) end
  if tat - now - allowed > wait then wait = tat - now - allowed end
end
if wait > 0 then return wait end
for i = 1, nreq do
  local tat = tats[i] + tonumber(ARGV[2 * i])
  redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
return 0
"""

# KEYS: the token rules. ARGV: per rule the µs its share of the tokens costs.
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[i])
  redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
return 0
"""


class RedisRateLimiter:
    """The rate limits shared by every replica: one Redis string (the TAT) per rule.

    The client is owned by whoever made it (``create_app``); ``close`` leaves it open.
    """

    def __init__(self, client: Redis, prefix: str = "modelyard:") -> None:
        self._prefix = prefix + "rate:"
        self._acquire = client.register_script(_ACQUIRE)
        self._charge = client.register_script(_CHARGE)

    async def acquire(
        self, requests: Sequence[RateRule], tokens: Sequence[RateRule]
    ) -> float | None:
        if not requests and not tokens:
            return None
        prefix = self._prefix
        keys = [prefix + r.key for r in requests] + [prefix + r.key for r in tokens]
        args = [len(requests)]
        for rule in requests:
            interval = _interval(rule.per_minute)
            args += (interval, (rule.per_minute - 1) * interval)
        wait = int(await self._acquire(keys=keys, args=args))
        return wait / 1_000_000 if wait > 0 else None

    async def charge(self, tokens: Sequence[RateRule], amount: int) -> None:
        if amount <= 0 or not tokens:
            return
        keys = [self._prefix + r.key for r in tokens]
        await self._charge(keys=keys, args=[amount * WINDOW_US // r.per_minute for r in tokens])

    async def close(self) -> None:
        """Nothing to release: the client belongs to the app, which closes it."""
