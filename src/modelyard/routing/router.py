"""The router: which deployments may serve a request, in what order, and the attempts.

``plan()`` turns the name a client called into an ordered list of providers,
recording in a ``Decision`` what each filter removed and why. ``run()`` makes
the attempts: this is the one layer that retries (jittered exponential
backoff, honouring Retry-After), falls back to the next candidate, hedges
slow first attempts, and keeps the request-level deadline. Providers and the
transport never retry.

An attempt is a callable the API layer builds: for a stream it returns once
the first bytes are in hand, so that nothing is retried after the client has
seen a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelyard.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    UnprocessableError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from modelyard.providers.base import Provider
from modelyard.routing import filters, policies
from modelyard.routing.config import RouteConfig, RouteMember
from modelyard.routing.decision import Attempt, Decision
from modelyard.routing.health import HealthBoard
from modelyard.routing.learned.serving import LearnedServing
from modelyard.settings import Deployment, Settings, check_route

T = TypeVar("T")

#: errors that say the request itself is wrong: another deployment would refuse it too
_FINAL = (InvalidRequestError, UnprocessableError, RequestTooLargeError)


class Plan:
    __slots__ = ("decision", "providers", "route")

    def __init__(self, route: RouteConfig, providers: list[Provider], decision: Decision):
        self.route = route
        self.providers = providers
        self.decision = decision


class _RouteIndex:
    """What ``plan`` needs of a route, computed once per route (rebuilt when it changes)."""

    def __init__(self, route: RouteConfig, router: Router):
        self.route = route
        self.deps = [router.deployments[m.name] for m in route.deployments]
        self.names = [d.name for d in self.deps]
        self.contracts = any(d.contract is not None for d in self.deps)
        self.committed = any(d.contract and d.contract.committed_monthly_spend for d in self.deps)
        windows = [d.context_window for d in self.deps if d.context_window is not None]
        self.min_context = min(windows) if windows else None
        self.common_caps = frozenset.intersection(*(filters.capabilities(d) for d in self.deps))
        self._providers = router.providers
        self._serving: dict[str, list[Deployment]] = {}

    def fits_all(self, demand: filters.Demand) -> bool:
        return demand.capabilities <= self.common_caps and (
            self.min_context is None or demand.tokens <= self.min_context
        )

    def serving(self, endpoint: str, model: str) -> list[Deployment]:
        """The deployments that serve this endpoint (chat or embeddings)."""
        kept = self._serving.get(endpoint)
        if kept is None:
            if endpoint == "embeddings":
                kept = [
                    d
                    for d in self.deps
                    if d.kind == "embeddings" or self._providers[d.name].serves_embeddings
                ]
            else:
                kept = [d for d in self.deps if d.kind == endpoint]
            self._serving[endpoint] = kept
        if not kept:
            raise InvalidRequestError(f"model {model!r} does not serve {endpoint}", param="model")
        return kept


class Router:
    def __init__(
        self,
        settings: Settings,
        providers: list[Provider],
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.settings = settings
        self.providers = {p.name: p for p in providers}
        self.deployments = {p.name: p.deployment for p in providers}
        self.health = HealthBoard(settings.health, list(self.providers))
        self.routes = {r.name: r for r in settings.all_routes()}
        #: routes served by a learned router's cascade (``api.learned``)
        self.learned = {
            r.name: LearnedServing.load(r, self.deployments)
            for r in self.routes.values()
            if r.learned is not None
        }
        self._direct = {
            name: RouteConfig(name=name, deployments=[RouteMember(name=name)])
            for name in self.providers
        }
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not secrets  # nosec B311
        self._sleep = sleep
        self.committed_spend: dict[str, float] = {}  # USD this month, by deployment
        self._month = time.strftime("%Y-%m")
        self._indexes: dict[str, _RouteIndex] = {}
        #: called with the decision of a request refused before any attempt
        self.on_refusal: Callable[[Decision], None] | None = None
        #: observability: each decision once made, each attempt once over (and its start)
        self.on_plan: Callable[[Decision], None] | None = None
        self.on_attempt: Callable[[Attempt, float], None] | None = None

    # ------------------------------------------------------------- routes

    def set_route(self, route: RouteConfig) -> None:
        check_route(route, set(self.deployments))
        self.routes[route.name] = route
        self.learned.pop(route.name, None)
        if route.learned is not None:
            self.learned[route.name] = LearnedServing.load(route, self.deployments)
        self._indexes.pop(route.name, None)

    def delete_route(self, name: str) -> None:
        self.learned.pop(name, None)
        if self.routes.pop(name, None) is None:
            raise NotFoundError(f"no route named {name!r}")
        self._indexes.pop(name, None)

    def names(self) -> list[tuple[str, Provider]]:
        """Every callable name with the provider of its first deployment."""
        out = list(self.providers.items())
        out += [(r.name, self.providers[r.deployments[0].name]) for r in self.routes.values()]
        return out

    # --------------------------------------------------------------- plan

    def plan(
        self, model: str, demand: filters.Demand, *, request_id: str, endpoint: str = "chat"
    ) -> Plan:
        index = self._indexes.get(model)
        if index is None:
            index = self._index(model)
        decision = Decision(request_id, index.route.name, demand.kind, index.route.policy)
        decision.candidates = index.names
        try:
            return self._plan(index, decision, demand, endpoint, model)
        except GatewayError as err:
            decision.error = err.message
            if self.on_refusal is not None:
                self.on_refusal(decision)  # refused decisions are kept too
            raise
        finally:
            if self.on_plan is not None:
                self.on_plan(decision)

    def _plan(
        self,
        index: _RouteIndex,
        decision: Decision,
        demand: filters.Demand,
        endpoint: str,
        model: str,
    ) -> Plan:
        route = index.route
        deps = index.serving(endpoint, model)
        removed: dict[str, str] = {}
        now = time.monotonic()
        if index.contracts or demand.regions is not None:
            deps, removed = filters.contract_terms(
                deps, demand, lambda n: self.health[n].blocked(now) is None
            )
            if not deps:
                decision.removed = removed
                raise PermissionDeniedError(
                    f"No deployment of {route.name!r} may serve this request: {_why(removed)}"
                )
        if not index.fits_all(demand):
            deps, unfit = filters.fit(deps, demand)
            removed.update(unfit)
            if not deps:
                decision.removed = removed
                raise InvalidRequestError(
                    f"No deployment of {route.name!r} can serve this request: {_why(unfit)}"
                )
        healthy: set[str] = set()
        for dep in deps:
            reason = self.health[dep.name].blocked(now)
            if reason:
                removed[dep.name] = f"health: {reason}"
            else:
                healthy.add(dep.name)
        decision.removed = removed
        if not healthy:
            self._unavailable(route, deps, removed, now)
        members = [m for m in route.deployments if m.name in healthy]
        if route.policy != ["fallback"] or index.committed:
            members = policies.order(
                members,
                route.policy,
                self.deployments,
                self.health,
                input_tokens=demand.prompt_tokens,
                output_tokens=demand.output_tokens,
                committed_left=self._committed_left,
                rng=self._rng,
            )
        decision.order = [m.name for m in members]
        return Plan(route, [self.providers[m.name] for m in members], decision)

    def _index(self, model: str) -> _RouteIndex:
        route = self.routes.get(model) or self._direct.get(model)
        if route is None:
            raise NotFoundError(
                f"The model {model!r} does not exist; "
                "GET /v1/models lists what this gateway serves",
                param="model",
                code="model_not_found",
            )
        index = self._indexes[model] = _RouteIndex(route, self)
        return index

    def _unavailable(
        self, route: RouteConfig, deps: list[Deployment], removed: dict[str, str], now: float
    ) -> None:
        waits = [self.health[d.name].cooldown_until - now for d in deps]
        why = _why({d.name: removed[d.name] for d in deps})
        if all(w > 0 for w in waits):  # all rate limited: the client should wait too
            raise RateLimitedError(
                f"Every deployment of {route.name!r} is rate limited: {why}",
                retry_after=max(1.0, min(waits)),
            )
        raise UpstreamUnavailableError(
            f"Every deployment of {route.name!r} is unavailable: {why}",
            retry_after=self.settings.health.open_seconds,
        )

    def spent(self, name: str, input_tokens: int, output_tokens: int) -> None:
        """Count a served request against its deployment's committed monthly spend."""
        dep = self.deployments.get(name)
        if dep is None or dep.contract is None or not dep.contract.committed_monthly_spend:
            return
        month = time.strftime("%Y-%m")
        if month != self._month:  # a new month: commitments start over
            self._month = month
            self.committed_spend.clear()
        cost = policies.request_cost(dep, input_tokens, output_tokens)
        if cost != float("inf"):
            self.committed_spend[name] = self.committed_spend.get(name, 0.0) + cost

    def _committed_left(self, name: str) -> bool:
        contract = self.deployments[name].contract
        if contract is None or not contract.committed_monthly_spend:
            return False
        return self.committed_spend.get(name, 0.0) < contract.committed_monthly_spend

    # ---------------------------------------------------------------- run

    async def run(
        self,
        plan: Plan,
        attempt: Callable[[Provider], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> tuple[Provider, T]:
        """Try the plan's providers until one answers; raise the last error otherwise."""
        timeout = plan.route.timeout
        if timeout is None:
            return await self._run(plan, attempt, discard)
        try:
            async with asyncio.timeout(timeout):
                return await self._run(plan, attempt, discard)
        except TimeoutError:
            plan.decision.error = f"deadline of {timeout}s passed"
            raise UpstreamTimeoutError(
                f"route {plan.route.name!r}: no answer within its deadline of {timeout}s"
            ) from None

    async def _run(
        self,
        plan: Plan,
        attempt: Callable[[Provider], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None,
    ) -> tuple[Provider, T]:
        queue = list(plan.providers)
        last: GatewayError | None = None
        while queue:
            provider = queue.pop(0)
            for try_no in range(plan.route.retries + 1):
                if try_no and self.health[provider.name].blocked(time.monotonic()):
                    break  # the breaker opened meanwhile: move on
                hedge = self._hedge_after(plan.route, provider) if queue else None
                try:
                    if hedge is not None:
                        return await self._hedged(plan, provider, queue, attempt, discard, hedge)
                    return provider, await self._attempt(plan, provider, attempt, try_no)
                except GatewayError as err:
                    last = err
                    if isinstance(err, _FINAL):
                        raise
                    if isinstance(err, RateLimitedError) and queue:
                        break  # cooling down: another deployment can take it now
                    if not _retry_same(err) or try_no == plan.route.retries:
                        break
                    wait = self._backoff(try_no, err.retry_after)
                    if wait > self.settings.health.backoff_max_ms / 1000:
                        break  # asked to wait longer than we would: let the client decide
                    await self._sleep(wait)
        assert last is not None
        plan.decision.error = last.message
        raise last

    async def _attempt(
        self,
        plan: Plan,
        provider: Provider,
        attempt: Callable[[Provider], Awaitable[T]],
        try_no: int,
        hedged: bool = False,
    ) -> T:
        health = self.health[provider.name]
        now = time.monotonic()
        health.begin(now)
        record = Attempt(provider.name, try_no, hedged)
        plan.decision.attempts.append(record)
        t0 = time.perf_counter()
        try:
            result = await attempt(provider)
            record.succeed(t0)
        except GatewayError as err:
            record.fail(err, t0)
            if isinstance(err, RateLimitedError):
                health.rate_limited(now, err.retry_after)
            elif isinstance(err, _FINAL):
                health.abandoned()
            else:
                health.failed(now)
            raise
        except BaseException:
            record.outcome = "cancelled"
            health.abandoned()
            raise
        finally:
            if self.on_attempt is not None:
                self.on_attempt(record, t0)
        health.succeeded(record.latency_ms)
        plan.decision.chosen = provider.name
        return result

    async def _hedged(
        self,
        plan: Plan,
        first: Provider,
        queue: list[Provider],
        attempt: Callable[[Provider], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None,
        after: float,
    ) -> tuple[Provider, T]:
        tasks: dict[asyncio.Task[T], Provider] = {
            asyncio.ensure_future(self._attempt(plan, first, attempt, 0)): first
        }
        done, _ = await asyncio.wait(tasks, timeout=after)
        if not done:
            second = queue.pop(0)
            tasks[asyncio.ensure_future(self._attempt(plan, second, attempt, 0, True))] = second
        pending = set(tasks)
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                winners = [t for t in done if t.exception() is None]
                if winners:
                    for extra in winners[1:]:
                        if discard is not None:
                            await discard(extra.result())
                    plan.decision.chosen = tasks[winners[0]].name  # the winner's name
                    return tasks[winners[0]], winners[0].result()
                error = next(iter(done)).exception()
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task
        assert error is not None
        raise error

    def _hedge_after(self, route: RouteConfig, provider: Provider) -> float | None:
        if route.hedge is None:
            return None
        if route.hedge.after_ms is not None:
            return route.hedge.after_ms / 1000
        assert route.hedge.percentile is not None
        value = self.health[provider.name].percentile(route.hedge.percentile)
        return None if value is None else value / 1000

    def _backoff(self, try_no: int, retry_after: float | None) -> float:
        h = self.settings.health
        wait: float = min(h.backoff_max_ms, h.backoff_base_ms * 2.0**try_no) / 1000
        wait *= 0.5 + self._rng.random() / 2  # jitter, never past the cap
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


def _retry_same(err: GatewayError) -> bool:
    """Worth another try on the same deployment (a 401/403/404 is not: it moves on)."""
    return err.status in (408, 429) or err.status >= 500


def _why(removed: dict[str, str]) -> str:
    return "; ".join(f"{name}: {reason}" for name, reason in removed.items())
