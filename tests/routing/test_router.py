"""The router in-process, with providers that answer from a script (routing logic only)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from modelyard.errors import (
    InvalidRequestError,
    PermissionDeniedError,
    UpstreamUnavailableError,
)
from modelyard.providers.base import Provider
from modelyard.routing.filters import Demand
from modelyard.routing.router import Router
from modelyard.settings import Settings


class Scripted(Provider):
    """Answers with its name, or raises what ``fail`` says, and counts the calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.fail: Exception | None = None
        self.delay = 0.0


def _router(deps: list[dict[str, Any]], routes: list[dict[str, Any]], **health: Any) -> Router:
    settings = Settings.model_validate(
        {
            "embedded_models": False,
            "deployments": [{"provider": "vllm", "model": "m", **d} for d in deps],
            "routes": routes,
            "health": {"backoff_base_ms": 1, "backoff_max_ms": 5, **health},
        }
    )

    async def no_sleep(_: float) -> None:
        return None

    providers = [Scripted(d) for d in settings.deployments]
    return Router(settings, providers, rng=random.Random(7), sleep=no_sleep)


async def _call(p: Provider) -> str:
    assert isinstance(p, Scripted)
    p.calls += 1
    if p.delay:
        await asyncio.sleep(p.delay)
    if p.fail is not None:
        raise p.fail
    return p.name


def _p(router: Router, name: str) -> Scripted:
    p = router.providers[name]
    assert isinstance(p, Scripted)
    return p


async def test_fallback_retries_then_moves_on_with_exact_attempts() -> None:
    r = _router(
        [{"name": "a"}, {"name": "b"}], [{"name": "x", "deployments": ["a", "b"], "retries": 2}]
    )
    _p(r, "a").fail = UpstreamUnavailableError("down")
    plan = r.plan("x", Demand(), request_id="r1")
    _, answer = await r.run(plan, _call)
    assert answer == "b" and (_p(r, "a").calls, _p(r, "b").calls) == (3, 1)
    assert [a.outcome for a in plan.decision.attempts] == ["UpstreamUnavailableError"] * 3 + ["ok"]


async def test_request_errors_are_final() -> None:
    r = _router([{"name": "a"}, {"name": "b"}], [{"name": "x", "deployments": ["a", "b"]}])
    _p(r, "a").fail = InvalidRequestError("bad field")
    with pytest.raises(InvalidRequestError):
        await r.run(r.plan("x", Demand(), request_id="r"), _call)
    assert (_p(r, "a").calls, _p(r, "b").calls) == (1, 0)


async def test_breaker_opens_then_lets_one_probe_through() -> None:
    r = _router(
        [{"name": "a"}, {"name": "b"}],
        [{"name": "x", "deployments": ["a", "b"], "retries": 0}],
        failure_threshold=2,
        open_seconds=0.2,
    )
    _p(r, "a").fail = UpstreamUnavailableError("down")
    for _ in range(5):
        await r.run(r.plan("x", Demand(), request_id="r"), _call)
    assert _p(r, "a").calls == 2  # opened after two failures, skipped since
    plan = r.plan("x", Demand(), request_id="r")
    assert plan.decision.removed["a"].startswith("health: circuit breaker open")
    await asyncio.sleep(0.25)
    _p(r, "a").fail = None
    await r.run(r.plan("x", Demand(), request_id="r"), _call)
    assert _p(r, "a").calls == 3 and r.health["a"].state == "closed"


async def test_policies_compose_and_tiers_come_first() -> None:
    deps = [
        {"name": "dear", "prices": {"input": 10, "output": 10}},
        {"name": "cheap", "prices": {"input": 1, "output": 1}},
        {"name": "spare", "prices": {"input": 0.1, "output": 0.1}},
    ]
    r = _router(
        deps,
        [
            {
                "name": "x",
                "policy": "cost",
                "deployments": ["dear", "cheap", {"name": "spare", "tier": 1}],
            }
        ],
    )
    assert r.plan(
        "x", Demand(prompt_tokens=100, output_tokens=50), request_id="r"
    ).decision.order == [
        "cheap",
        "dear",
        "spare",
    ]


async def test_cost_weighs_input_and_output_prices_by_the_request() -> None:
    deps = [
        {"name": "cheap-in", "prices": {"input": 0.1, "output": 20}},
        {"name": "cheap-out", "prices": {"input": 5, "output": 1}},
    ]
    r = _router(deps, [{"name": "x", "policy": "cost", "deployments": ["cheap-in", "cheap-out"]}])
    long_prompt = Demand(prompt_tokens=10_000, output_tokens=10)
    long_answer = Demand(prompt_tokens=10, output_tokens=4_000)
    assert r.plan("x", long_prompt, request_id="r").decision.order[0] == "cheap-in"
    assert r.plan("x", long_answer, request_id="r").decision.order[0] == "cheap-out"


async def test_weighted_split_follows_weights() -> None:
    r = _router(
        [{"name": "a"}, {"name": "b"}],
        [
            {
                "name": "x",
                "policy": "weighted",
                "deployments": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}],
            }
        ],
    )
    firsts = [r.plan("x", Demand(), request_id="r").decision.order[0] for _ in range(2000)]
    assert 0.70 < firsts.count("a") / 2000 < 0.80


async def test_committed_spend_is_used_first_until_spent() -> None:
    deps = [
        {"name": "cheap", "prices": {"input": 1, "output": 1}},
        {
            "name": "committed",
            "prices": {"input": 5, "output": 5},
            "contract": {"committed_monthly_spend": 0.001},
        },
    ]
    r = _router(deps, [{"name": "x", "policy": "cost", "deployments": ["cheap", "committed"]}])
    assert r.plan("x", Demand(), request_id="r").decision.order[0] == "committed"
    r.spent("committed", 100, 100)  # 0.001 USD
    assert r.plan("x", Demand(), request_id="r").decision.order[0] == "cheap"


async def test_contract_terms_name_each_excluded_candidate() -> None:
    deps = [
        {"name": "stateful-only", "contract": {"kinds": ["stateful"]}},
        {"name": "eu", "contract": {"region": "eu", "classifications": ["public"]}},
    ]
    r = _router(deps, [{"name": "x", "deployments": ["stateful-only", "eu"]}])
    with pytest.raises(PermissionDeniedError) as info:
        r.plan("x", Demand(classification="secret"), request_id="r")
    assert "stateful-only: kinds: serves only stateful" in info.value.message
    assert "eu: classifications: 'secret'" in info.value.message
    with pytest.raises(PermissionDeniedError, match="region"):
        r.plan("x", Demand(regions=frozenset({"us"})), request_id="r")
    assert r.plan("x", Demand(regions=frozenset({"eu"})), request_id="r").decision.order == ["eu"]


async def test_exclusive_deployment_takes_its_kind_while_healthy() -> None:
    deps = [{"name": "a"}, {"name": "only", "contract": {"exclusive": ["stateless"]}}]
    r = _router(deps, [{"name": "x", "deployments": ["a", "only"]}], failure_threshold=1)
    plan = r.plan("x", Demand(), request_id="r")
    assert plan.decision.order == ["only"] and "exclusive" in plan.decision.removed["a"]
    r.health["only"].failed(0.0 + asyncio.get_running_loop().time())
    assert r.plan("x", Demand(), request_id="r").decision.order == ["a"]


async def test_fit_skips_small_windows_and_missing_capabilities() -> None:
    deps = [
        {"name": "small", "context_window": 100},
        {"name": "plain", "capabilities": []},
        {"name": "big", "context_window": 10_000},
    ]
    r = _router(deps, [{"name": "x", "deployments": ["small", "plain", "big"]}])
    plan = r.plan("x", Demand(tokens=500, capabilities=frozenset({"tools"})), request_id="r")
    assert plan.decision.order == ["big"]
    assert set(plan.decision.removed) == {"small", "plain"}
    with pytest.raises(InvalidRequestError, match="context window"):
        r.plan("x", Demand(tokens=50_000, capabilities=frozenset({"tools"})), request_id="r")


async def test_hedge_starts_the_next_candidate_and_cancels_the_slow_one() -> None:
    r = _router(
        [{"name": "slow"}, {"name": "fast"}],
        [{"name": "x", "deployments": ["slow", "fast"], "hedge": {"after_ms": 20}}],
    )
    _p(r, "slow").delay = 1.0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    _, answer = await r.run(r.plan("x", Demand(), request_id="r"), _call)
    assert answer == "fast" and loop.time() - t0 < 0.5
    assert r.health["slow"].probing is False
