"""The governance gate on the request path: may this principal call this model now, at this cost?

``admit`` checks the key's model scope and the rate limits of its key and
team; ``reserve`` takes the most the request can cost from every budget that
applies (key and team) before any upstream call; ``settle`` books the actual
cost once the answer is over, releases the rest of the reservation, and
charges the tokens to the token rate limits. A reservation refused by a hard
budget is a 402 and no upstream is called.

The reservation is an upper bound, so that spent + reserved never exceeds a
hard budget: prompt tokens are bounded by the request body's size in bytes
(a token is at least one byte of text), plus an allowance per image, and
output by the request's own limit, else the deployment's
``max_output_tokens``, else ``default_output_tokens``, which is then set as the
request's limit so that the upstream honours the bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.errors import BudgetExceededError, PermissionDeniedError, RateLimitedError
from modelyard.governance.budgets import (
    BudgetScope,
    MemoryCounters,
    MissingCounter,
    SpendCounters,
    counter_name,
    counter_ttl,
    crossed,
    period_end,
    period_start,
)
from modelyard.governance.keys import Limits, Principal
from modelyard.governance.ratelimit import RateLimiter, RateRule
from modelyard.storage.request_log import RequestLog

log = logging.getLogger(__name__)

IMAGE_TOKENS = 6_000  # the most one image is billed as input, across vendors, with room


@dataclass(slots=True)
class Reservation:
    amount: int
    scopes: Sequence[BudgetScope]
    counters: Sequence[str]


class Governance:
    def __init__(
        self,
        counters: SpendCounters,
        limiter: RateLimiter,
        request_log: RequestLog,
        *,
        default_output_tokens: int = 4096,
    ):
        self.counters = counters
        self.limiter = limiter
        self.request_log = request_log
        self.default_output_tokens = default_output_tokens
        self._inline = isinstance(counters, MemoryCounters)
        self._tasks: set[asyncio.Task[None]] = set()
        self._scopes: dict[tuple[str, str], tuple[float, list[BudgetScope]]] = {}
        self._rules: dict[tuple[str, str], tuple[list[RateRule], list[RateRule]]] = {}
        #: told each budget's spend after a settle (the budget gauges of ``/metrics``)
        self.on_spent: Callable[[BudgetScope, int], None] | None = None

    # ------------------------------------------------------------ admission

    def _rate_rules(self, principal: Principal) -> tuple[list[RateRule], list[RateRule]]:
        key, team = principal.key, principal.team
        cache_key = (key.id if key else "", team.name if team else "")
        found = self._rules.get(cache_key)
        if found is not None:
            return found
        requests: list[RateRule] = []
        tokens: list[RateRule] = []
        for kind, owner, limits in (
            ("key", key.id if key else None, key.limits if key else None),
            ("team", team.name if team else None, team.limits if team else None),
        ):
            if owner is None or limits is None:
                continue
            if limits.rpm is not None:
                requests.append(RateRule(f"{kind}:{owner}:rpm", limits.rpm))
            if limits.tpm is not None:
                tokens.append(RateRule(f"{kind}:{owner}:tpm", limits.tpm))
        self._rules[cache_key] = (requests, tokens)
        return requests, tokens

    def forget(self) -> None:
        """Keys or teams changed: rules and scopes derived from their limits are rebuilt."""
        self._rules.clear()
        self._scopes.clear()

    async def admit(self, principal: Principal, model: str) -> None:
        key = principal.key
        if key is not None and key.models is not None and model not in key.models:
            raise PermissionDeniedError(
                f"This key may not call {model!r}; it may call: {', '.join(sorted(key.models))}",
                param="model",
                code="model_not_allowed",
            )
        requests, tokens = self._rate_rules(principal)
        if not requests and not tokens:
            return
        wait = await self.limiter.acquire(requests, tokens)
        if wait is not None:
            raise RateLimitedError(
                f"Rate limit reached; retry in {wait:.1f} s",
                code="rate_limit_exceeded",
                retry_after=wait,
            )

    # ------------------------------------------------------------ budgets

    def scopes(self, principal: Principal, now: float) -> list[BudgetScope]:
        """The budgets that apply, kept until the first of their periods ends."""
        key, team = principal.key, principal.team
        cache_key = (key.id if key else "", team.name if team else "")
        found = self._scopes.get(cache_key)
        if found is not None and now < found[0]:
            return found[1]
        out: list[BudgetScope] = []
        until = math.inf
        for kind, owner, limits in (
            ("key", key.id if key else None, key.limits if key else None),
            ("team", team.name if team else None, team.limits if team else None),
        ):
            if owner is None or limits is None or limits.budget_micros is None:
                continue
            out.append(self.scope(kind, owner, limits, now))
            until = min(until, period_end(limits.budget_period, now) or math.inf)
        self._scopes[cache_key] = (until, out)
        return out

    @staticmethod
    def scope(kind: str, owner: str, limits: Limits, now: float) -> BudgetScope:
        budget = limits.budget_micros if limits.budget_micros is not None else 0
        start = period_start(limits.budget_period, now)
        # the period's start rides in the name so that seeding knows which ledger rows count
        name = f"{counter_name(kind, owner, limits.budget_period, now)}@{start:.0f}"
        ttl = counter_ttl(limits.budget_period, now)
        return BudgetScope(name, budget, limits.budget_hard, ttl)

    def needs_bound(self, principal: Principal) -> bool:
        """Whether a hard budget applies: then the request's output must be bounded."""
        return any(s.hard for s in self.scopes(principal, time.time()))

    async def reserve(self, principal: Principal, amount: int) -> Reservation | None:
        if principal.key is None:
            return None
        scopes = self.scopes(principal, time.time())
        if not scopes:
            return None
        for _ in range(len(scopes) + 1):
            try:
                refused = await self.counters.reserve(scopes, amount, must_exist=True)
                break
            except MissingCounter as missing:  # new this period, or lost by Redis
                await self._seed(missing.scope)
        else:
            raise RuntimeError("budget counters vanish as soon as they are seeded")
        if refused is not None:
            spent = await self.counters.state(refused.counter)
            used = (spent[0] + spent[1]) if spent else 0
            owner = refused.counter.split(":", 2)
            raise BudgetExceededError(
                f"The {owner[0]} {owner[1]!r} budget of ${refused.limit_micros / 1e6:.6f} "
                f"cannot cover this request: ${used / 1e6:.6f} is spent or reserved and the "
                f"request may cost up to ${amount / 1e6:.6f}"
            )
        return Reservation(amount, scopes, [s.counter for s in scopes])

    async def _seed(self, scope: BudgetScope) -> None:
        kind, owner, _ = scope.counter.split(":", 2)
        since = float(scope.counter.rsplit("@", 1)[1]) if "@" in scope.counter else 0.0
        spent = await asyncio.to_thread(
            self.request_log.spent_since, "key_id" if kind == "key" else "team", owner, since
        )
        await self.counters.seed(scope.counter, spent, scope.ttl)

    # ------------------------------------------------------------ settling

    def settle(
        self, principal: Principal, reservation: Reservation | None, cost: int, tokens: int
    ) -> None:
        """Book the actual cost and tokens; never raises, never waits on the request path."""
        if reservation is not None:
            self._drive(self._settle(reservation, cost))
        if tokens:
            _, token_rules = self._rate_rules(principal)
            if token_rules:
                self._drive(self.limiter.charge(token_rules, tokens))

    async def _settle(self, reservation: Reservation, cost: int) -> None:
        after = await self.counters.settle(reservation.counters, reservation.amount, cost)
        for scope, spent in zip(reservation.scopes, after, strict=True):
            if self.on_spent is not None and spent is not None:
                self.on_spent(scope, spent)
            # exactly one settle crosses a limit, across replicas too: one alert per period
            if not scope.hard and spent is not None and crossed(scope, spent, cost):
                log.warning(
                    "soft budget reached: %s spent $%.6f of $%.6f",
                    scope.counter.split("@", 1)[0],
                    spent / 1e6,
                    scope.limit_micros / 1e6,
                )

    def _drive(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._inline:  # in-memory counters never suspend: finish now, no task
            try:
                coro.send(None)
            except StopIteration:
                return
            coro.close()
            raise RuntimeError("in-memory governance counters suspended")
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("settling a budget failed: %r", task.exception())

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.counters.close()
        await self.limiter.close()
