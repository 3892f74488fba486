"""Routing end to end: a gateway process in front of fault-injecting upstreams, the openai SDK.

One gateway serves the whole module. Health (breakers, cooldowns, latency) is
kept per deployment inside that gateway and outlives a test, so every test
has deployments of its own; each deployment has an upstream of its own, so
that an upstream's ``attempts`` counts exactly the tries made on one
deployment. Every test asserts those counts for every upstream of the module.

Health limits are small (``HEALTH``) so that breakers and cooldowns expire
within a test. What a 400 or a 404 from a deployment does is played by the
scriptable OpenAI fake, which the fault modes do not cover.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.faulty_upstream import FaultyUpstream
from tests.fakes.harness import LoopbackServer, Recorder

HEALTH = {
    "failure_threshold": 3,
    "open_seconds": 1,
    "cooldown_seconds": 1,
    "backoff_base_ms": 10,
    "backoff_max_ms": 200,
}
KEY_ENV = "ROUTING_TEST_KEY"
HI = [{"role": "user", "content": "hi"}]

#: settings of deployments beyond provider, model, base_url and key
SETTINGS: dict[str, dict[str, Any]] = {
    "hang-slow": {"timeout": 0.3},
    "drip": {"timeout": 0.3},
    "cost-pricey": {"prices": {"input": 10.0, "output": 30.0}},
    "cost-cheap": {"prices": {"input": 0.1, "output": 0.4}},
    "ct-stateful": {"contract": {"kinds": ["stateful"]}},
    "cls-public": {"contract": {"classifications": ["public"]}},
    "cls-confidential": {"contract": {"classifications": ["public", "confidential"]}},
    "reg-us": {"contract": {"region": "us-east"}},
    "reg-eu": {"contract": {"region": "eu-west"}},
    "ex-owner": {"contract": {"exclusive": ["stateless"]}},
    "fit-notools": {"capabilities": ["json_schema"]},
    "fit-small": {"context_window": 100},
}
#: deployments that tests call by their own name only, not through a route
DIRECT = ("rl-short", "rl-long", "drip", "dc-drip")
#: deployments on the scriptable OpenAI fake, with no FaultyUpstream of their own
SCRIPTED = ("oa-400", "oa-404")


def _route(name: str, deployments: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "deployments": deployments, **extra}


ROUTES = [
    _route("r-fallback", ["fb-primary", "fb-backup"], retries=2),
    _route("r-429", ["rl-primary", "rl-backup"], retries=1),
    _route("r-cool", ["cool-a", "cool-b"], retries=1),
    _route("r-500", ["e500-primary", "e500-backup"], retries=1),
    _route("r-502", ["e502-primary", "e502-backup"], retries=1),
    _route("r-deadline", ["hang-deadline"], timeout=0.5),
    _route("r-hang-failover", ["hang-slow", "hang-backup"], retries=1),
    _route("r-reset-stream", ["rs-primary", "rs-backup"], retries=1),
    _route("r-reset-json", ["rb-json-primary", "rb-json-backup"], retries=1),
    _route("r-reset-stream-early", ["rb-stream-primary", "rb-stream-backup"], retries=1),
    _route("r-warm", ["warm-primary", "warm-backup"], retries=0),
    _route("r-bad-json", ["bad-json-primary", "bad-json-backup"], retries=1),
    _route("r-bad-json-stream", ["bad-json-stream-primary", "bad-json-stream-backup"], retries=1),
    _route("r-bad-sse-stream", ["bad-sse-stream-primary", "bad-sse-stream-backup"], retries=1),
    _route("r-breaker", ["cb-primary", "cb-backup"], retries=0),
    _route("r-breaker-mid", ["mid-primary", "mid-backup"], retries=5),
    _route("r-400", ["oa-400", "e400-backup"], retries=2),
    _route("r-404", ["oa-404", "e404-backup"], retries=2),
    _route(
        "r-weighted",
        [{"name": "w-heavy", "weight": 3}, {"name": "w-light", "weight": 1}],
        policy="weighted",
    ),
    _route("r-latency", ["lat-slow", "lat-fast"], policy="latency"),
    _route("r-cost", ["cost-unpriced", "cost-pricey", "cost-cheap"], policy="cost"),
    _route(
        "r-tiers",
        [
            {"name": "tier-backup", "tier": 1},
            {"name": "tier-main-a", "tier": 0},
            {"name": "tier-main-b", "tier": 0},
        ],
        policy="weighted",
        retries=0,
    ),
    _route("r-hedge", ["hedge-slow", "hedge-fast"], hedge={"after_ms": 100}),
    _route("r-kinds", ["ct-stateful", "ct-any"]),
    _route("r-class", ["cls-public", "cls-confidential"], policy="weighted"),
    _route("r-region", ["reg-us", "reg-none", "reg-eu"]),
    _route("r-exclusive", ["ex-other", "ex-owner"], retries=0),
    _route("r-fit-tools", ["fit-notools", "fit-tools"]),
    _route("r-fit-context", ["fit-small", "fit-large"]),
]
#: every deployment with an upstream of its own, and its settings
DEPLOYMENTS: dict[str, dict[str, Any]] = {
    name: SETTINGS.get(name, {})
    for name in [
        *(m if isinstance(m, str) else m["name"] for r in ROUTES for m in r["deployments"]),
        *DIRECT,
    ]
    if name not in SCRIPTED
}


def gateway_config(upstreams: dict[str, FaultyUpstream], scripted_url: str) -> str:
    def deployment(name: str, url: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai-compatible",
            "model": "gpt-4o-mini",
            "base_url": url,
            "api_key_env": KEY_ENV,
            **extra,
        }

    deps = [deployment(n, upstreams[n].url, extra) for n, extra in DEPLOYMENTS.items()]
    deps += [deployment(n, scripted_url, {}) for n in SCRIPTED]
    config = {"embedded_models": False, "health": HEALTH, "deployments": deps, "routes": ROUTES}
    return yaml.safe_dump(config, sort_keys=False)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FaultyUpstream]]:
    started: dict[str, FaultyUpstream] = {}
    try:
        for name in DEPLOYMENTS:
            started[name] = FaultyUpstream(name).start()
        yield started
    finally:
        for upstream in started.values():
            upstream.stop()


@pytest.fixture(scope="module")
def gateway(
    start_module_gateway: Callable[..., Gateway],
    upstreams: dict[str, FaultyUpstream],
    fake_openai: tuple[LoopbackServer, Recorder],
) -> Gateway:
    config = gateway_config(upstreams, fake_openai[0].url + "/v1")
    return start_module_gateway(config, {KEY_ENV: UPSTREAM_KEY})


@pytest.fixture
def up(upstreams: dict[str, FaultyUpstream]) -> dict[str, FaultyUpstream]:
    """Every upstream answering "ok", with its counters at zero."""
    for upstream in upstreams.values():
        upstream.mode = "ok"
        upstream.retry_after = "1"
        upstream.retry_after_ms = None
        upstream.reset_counts()
    return upstreams


@pytest.fixture
def client(gateway: Gateway, up: dict[str, FaultyUpstream]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="unused", max_retries=0, timeout=10) as c:
        yield c


# ----------------------------------------------------------------- helpers


def attempts(up: dict[str, FaultyUpstream]) -> dict[str, int]:
    """The upstreams that were tried, and how often: compared whole, so others had none."""
    return {name: u.attempts for name, u in up.items() if u.attempts}


def chat(client: openai.OpenAI, model: str, **kwargs: Any) -> Any:
    """A non-streamed chat completion, raw: ``.headers`` and ``.parse()``."""
    kwargs.setdefault("messages", HI)
    return client.chat.completions.with_raw_response.create(model=model, **kwargs)


def answered_by(raw: Any) -> str:
    deployment: str = raw.headers["x-modelyard-deployment"]
    assert raw.parse().choices[0].message.content == f"answer from {deployment}"
    return deployment


def decision(gateway: Gateway, request_id: str) -> dict[str, Any]:
    url = f"{gateway.v1}/routing/decisions/{request_id}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        found: dict[str, Any] = json.load(resp)
    return found


def trail(found: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    """The attempts of a decision as (deployment, retry, status), in the order made."""
    return [(a["deployment"], a["retry"], a["status"]) for a in found["attempts"]]


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def request_id(err: openai.APIStatusError) -> str:
    return err.response.headers["x-request-id"]


# ------------------------------------------------- retries and fallback
