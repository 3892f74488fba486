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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.faulty_upstream import FaultyUpstream
from tests.fakes.harness import LoopbackServer, Recorder, error_response

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


def test_503_is_retried_then_the_backup_answers(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["fb-primary"].mode = "503"
    raw = chat(client, "r-fallback")
    assert answered_by(raw) == "fb-backup"
    assert attempts(up) == {"fb-primary": 3, "fb-backup": 1}  # retries: 2 -> three tries
    found = decision(gateway, raw.headers["x-request-id"])
    assert trail(found) == [
        ("fb-primary", 0, 503),
        ("fb-primary", 1, 503),
        ("fb-primary", 2, 503),
        ("fb-backup", 0, 200),
    ]
    assert found["order"] == ["fb-primary", "fb-backup"]
    assert found["chosen"] == "fb-backup" and found["error"] is None


@pytest.mark.parametrize("status", ["500", "502"])
def test_5xx_is_retried_then_falls_back(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream], status: str
) -> None:
    up[f"e{status}-primary"].mode = status
    raw = chat(client, f"r-{status}")
    assert answered_by(raw) == f"e{status}-backup"
    assert attempts(up) == {f"e{status}-primary": 2, f"e{status}-backup": 1}
    assert trail(decision(gateway, raw.headers["x-request-id"])) == [
        (f"e{status}-primary", 0, int(status)),
        (f"e{status}-primary", 1, int(status)),
        (f"e{status}-backup", 0, 200),
    ]


def test_retries_stop_when_the_breaker_opens_mid_request(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    up["mid-primary"].mode = "500"
    assert answered_by(chat(client, "r-breaker-mid")) == "mid-backup"
    # retries: 5 would make six tries; the breaker opens at the third failure
    assert attempts(up) == {"mid-primary": 3, "mid-backup": 1}


def test_400_from_the_upstream_is_final(
    client: openai.OpenAI,
    gateway: Gateway,
    up: dict[str, FaultyUpstream],
    openai_upstream: tuple[LoopbackServer, Recorder],
) -> None:
    body = {
        "error": {
            "message": "Invalid value for 'messages': bad",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    }
    openai_upstream[1].script.append(error_response(400, body))
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, "r-400")
    assert "Invalid value for 'messages'" in info.value.message
    assert len(openai_upstream[1].requests) == 1  # not retried
    assert attempts(up) == {}  # and no fallback
    assert trail(decision(gateway, request_id(info.value))) == [("oa-400", 0, 400)]


def test_404_from_a_deployment_moves_on_without_a_retry(
    client: openai.OpenAI,
    gateway: Gateway,
    up: dict[str, FaultyUpstream],
    openai_upstream: tuple[LoopbackServer, Recorder],
) -> None:
    body = {
        "error": {
            "message": "The model does not exist",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    openai_upstream[1].script.append(error_response(404, body))
    raw = chat(client, "r-404")
    assert answered_by(raw) == "e404-backup"
    assert len(openai_upstream[1].requests) == 1
    assert attempts(up) == {"e404-backup": 1}
    assert trail(decision(gateway, raw.headers["x-request-id"])) == [
        ("oa-404", 0, 404),
        ("e404-backup", 0, 200),
    ]


# -------------------------------------------------------------- 429s


def test_429_moves_on_at_once_and_the_deployment_cools_down(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["rl-primary"].fail_next(1, "429")  # Retry-After: 1
    raw = chat(client, "r-429")
    assert answered_by(raw) == "rl-backup"
    assert attempts(up) == {"rl-primary": 1, "rl-backup": 1}  # no retry of rl-primary
    assert trail(decision(gateway, raw.headers["x-request-id"])) == [
        ("rl-primary", 0, 429),
        ("rl-backup", 0, 200),
    ]
    cooled_at = time.monotonic()

    raw = chat(client, "r-429")  # cooling down: skipped
    assert answered_by(raw) == "rl-backup"
    assert attempts(up) == {"rl-primary": 1, "rl-backup": 2}
    found = decision(gateway, raw.headers["x-request-id"])
    assert "cooling down" in found["removed"]["rl-primary"]
    assert trail(found) == [("rl-backup", 0, 200)]

    time.sleep(max(0.0, cooled_at + 1.1 - time.monotonic()))
    assert answered_by(chat(client, "r-429")) == "rl-primary"  # used again
    assert attempts(up) == {"rl-primary": 2, "rl-backup": 2}


def test_429_alone_is_retried_when_the_wait_is_short(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    up["rl-short"].retry_after_ms = "50"  # within backoff_max_ms (200)
    up["rl-short"].fail_next(1, "429")
    assert answered_by(chat(client, "rl-short")) == "rl-short"
    assert attempts(up) == {"rl-short": 2}


def test_429_alone_reaches_the_client_when_the_wait_is_long(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    up["rl-long"].retry_after = "3"  # past backoff_max_ms: the client decides
    up["rl-long"].fail_next(1, "429")
    with pytest.raises(openai.RateLimitError) as info:
        chat(client, "rl-long")
    assert info.value.response.headers["retry-after"] == "3"
    assert attempts(up) == {"rl-long": 1}


def test_every_deployment_cooling_down_gives_429_with_retry_after(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["cool-a"].fail_next(1, "429")
    up["cool-b"].fail_next(1, "429")
    with pytest.raises(openai.RateLimitError):
        chat(client, "r-cool")
    assert attempts(up) == {"cool-a": 1, "cool-b": 1}
    with pytest.raises(openai.RateLimitError) as info:  # both cool down: nobody is called
        chat(client, "r-cool")
    assert info.value.response.headers["retry-after"] == "1"
    assert attempts(up) == {"cool-a": 1, "cool-b": 1}


# ------------------------------------------------------ timeouts and resets


def test_hanging_upstream_gets_504_within_the_route_deadline(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    up["hang-deadline"].mode = "hang"
    t0 = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        chat(client, "r-deadline")
    elapsed = time.monotonic() - t0
    assert info.value.status_code == 504
    assert 0.45 < elapsed < 1.5  # timeout: 0.5
    assert "deadline" in info.value.message
    assert attempts(up) == {"hang-deadline": 1}
    assert wait_for(lambda: up["hang-deadline"].disconnects == 1, 1.0)  # and it was let go


def test_hanging_deployment_times_out_and_fails_over(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["hang-slow"].mode = "hang"  # the deployment's timeout: 0.3
    t0 = time.monotonic()
    raw = chat(client, "r-hang-failover")
    assert answered_by(raw) == "hang-backup"
    assert 0.55 < time.monotonic() - t0 < 1.5  # two tries of 0.3 s
    assert attempts(up) == {"hang-slow": 2, "hang-backup": 1}
    assert trail(decision(gateway, raw.headers["x-request-id"])) == [
        ("hang-slow", 0, 504),
        ("hang-slow", 1, 504),
        ("hang-backup", 0, 200),
    ]
    assert wait_for(lambda: up["hang-slow"].disconnects == 2, 1.0)


def test_reset_mid_stream_ends_the_stream_with_an_error_and_no_switch(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["rs-primary"].mode = "reset_after:2"
    raw = client.chat.completions.with_raw_response.create(
        model="r-reset-stream", messages=HI, stream=True
    )
    assert raw.headers["x-modelyard-deployment"] == "rs-primary"
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in raw.parse():
            seen.append(chunk.choices[0].delta.content or "")
    assert seen == ["answer", " from"]  # exactly the two chunks sent
    assert "rs-primary" in info.value.message
    assert attempts(up) == {"rs-primary": 1}  # the backup never saw the request
    found = decision(gateway, raw.headers["x-request-id"])
    assert trail(found) == [("rs-primary", 0, 200)]
    assert found["error"].startswith("after the first byte")


@pytest.mark.parametrize("kind", ["json", "stream"])
def test_reset_before_any_byte_fails_over(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream], kind: str
) -> None:
    up[f"rb-{kind}-primary"].mode = "reset_after:0"
    route = "r-reset-json" if kind == "json" else "r-reset-stream-early"
    if kind == "json":
        raw = chat(client, route)
        assert answered_by(raw) == f"rb-{kind}-backup"
    else:
        raw = client.chat.completions.with_raw_response.create(
            model=route, messages=HI, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        assert text == "answer from rb-stream-backup"
    assert attempts(up) == {f"rb-{kind}-primary": 2, f"rb-{kind}-backup": 1}
    assert trail(decision(gateway, raw.headers["x-request-id"])) == [
        (f"rb-{kind}-primary", 0, 503),
        (f"rb-{kind}-primary", 1, 503),
        (f"rb-{kind}-backup", 0, 200),
    ]


def test_reset_on_a_kept_alive_connection_is_not_resent_by_the_transport(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    assert answered_by(chat(client, "r-warm")) == "warm-primary"  # leaves a pooled connection
    up["warm-primary"].fail_next(1, "reset_after:0")
    raw = chat(client, "r-warm")  # retries: 0, so the reset should fail over
    assert attempts(up) == {"warm-primary": 2, "warm-backup": 1}
    assert answered_by(raw) == "warm-backup"


def test_slow_drip_stream_completes(client: openai.OpenAI, up: dict[str, FaultyUpstream]) -> None:
    up["drip"].mode = "drip:150"  # 150 ms between chunks; the deployment's timeout is 0.3 s
    t0 = time.monotonic()
    stream = client.chat.completions.create(
        model="drip", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert time.monotonic() - t0 > 0.6  # longer than the idle timeout, in total
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "answer from drip"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    assert attempts(up) == {"drip": 1}



@pytest.mark.parametrize(
    ("kind", "mode", "stream"),
    [
        pytest.param(
            "json",
            "bad_json",
            False,
        ),
        pytest.param(
            "json-stream",
            "bad_json",
            True,
        ),
        pytest.param(
            "sse-stream",
            "bad_sse",
            True,
        ),
    ],
)
def test_malformed_answer_before_the_first_event_fails_over(
    client: openai.OpenAI,
    up: dict[str, FaultyUpstream],
    kind: str,
    mode: str,
    stream: bool,
) -> None:
    primary, backup = f"bad-{kind}-primary", f"bad-{kind}-backup"
    up[primary].mode = mode
    # headers only: the body is what the SDK cannot read today
    raw = chat(client, f"r-bad-{kind}", stream=stream)
    raw.http_response.close()
    assert attempts(up) == {primary: 2, backup: 1}  # a 502 is retried, then falls back
    assert raw.headers["x-modelyard-deployment"] == backup


def test_decision_of_a_request_refused_by_contract_is_stored(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        chat(client, "ct-stateful")
    assert attempts(up) == {}
    found = decision(gateway, request_id(info.value))
    assert found["removed"] == {"ct-stateful": "kinds: serves only stateful traffic"}
    assert trail(found) == []


# ------------------------------------------------------------ breakers


def test_breaker_opens_then_lets_exactly_one_probe_through(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["cb-primary"].mode = "500"
    for _ in range(3):  # failure_threshold: 3, retries: 0
        assert answered_by(chat(client, "r-breaker")) == "cb-backup"
    assert attempts(up) == {"cb-primary": 3, "cb-backup": 3}
    opened_at = time.monotonic()

    raw = chat(client, "r-breaker")  # open: skipped
    assert answered_by(raw) == "cb-backup"
    assert (
        "circuit breaker open"
        in decision(gateway, raw.headers["x-request-id"])["removed"]["cb-primary"]
    )
    with pytest.raises(openai.InternalServerError) as info:  # alone: nobody to call
        chat(client, "cb-primary")
    assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "1"
    assert attempts(up) == {"cb-primary": 3, "cb-backup": 4}

    time.sleep(max(0.0, opened_at + 1.1 - time.monotonic()))  # open_seconds: 1
    up["cb-primary"].mode = "delay:300"  # healthy again, and slow enough to overlap
    with ThreadPoolExecutor(6) as pool:
        names = list(pool.map(lambda _: answered_by(chat(client, "r-breaker")), range(6)))
    assert sorted(names) == ["cb-backup"] * 5 + ["cb-primary"]  # one half-open probe
    assert attempts(up) == {"cb-primary": 4, "cb-backup": 9}

    up["cb-primary"].mode = "ok"  # the probe closed the breaker
    assert answered_by(chat(client, "r-breaker")) == "cb-primary"
    assert attempts(up) == {"cb-primary": 5, "cb-backup": 9}


# ------------------------------------------------------------ policies


def test_weighted_split_follows_the_weights(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda _: answered_by(chat(client, "r-weighted")), range(200)))
    heavy = names.count("w-heavy")
    assert attempts(up) == {"w-heavy": heavy, "w-light": 200 - heavy}
    assert 0.62 <= heavy / 200 <= 0.88  # 3:1 -> 0.75; the band is about four sigma


def test_latency_policy_prefers_the_faster_deployment(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    up["lat-slow"].mode = "delay:150"
    # unmeasured ones go first, in listed order, so each is measured once
    names = [answered_by(chat(client, "r-latency")) for _ in range(7)]
    assert names == ["lat-slow"] + ["lat-fast"] * 6
    assert attempts(up) == {"lat-slow": 1, "lat-fast": 6}


def test_cost_policy_picks_the_cheaper_priced_deployment(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    for _ in range(5):
        raw = chat(client, "r-cost")
        assert answered_by(raw) == "cost-cheap"
    found = decision(gateway, raw.headers["x-request-id"])
    assert found["order"] == ["cost-cheap", "cost-pricey", "cost-unpriced"]  # unpriced last
    assert attempts(up) == {"cost-cheap": 5}


def test_tier_1_is_used_only_when_tier_0_fails(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    names = [answered_by(chat(client, "r-tiers")) for _ in range(20)]
    assert set(names) <= {"tier-main-a", "tier-main-b"}
    main_a = names.count("tier-main-a")
    assert attempts(up) == {"tier-main-a": main_a, "tier-main-b": 20 - main_a}

    up["tier-main-a"].mode = up["tier-main-b"].mode = "503"
    raw = chat(client, "r-tiers")
    assert answered_by(raw) == "tier-backup"
    assert attempts(up) == {"tier-main-a": main_a + 1, "tier-main-b": 21 - main_a, "tier-backup": 1}
    assert decision(gateway, raw.headers["x-request-id"])["order"][-1] == "tier-backup"


def test_hedge_answers_from_the_second_and_cancels_the_first(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    up["hedge-slow"].mode = "delay:1000"
    t0 = time.monotonic()
    raw = chat(client, "r-hedge")  # hedge after 100 ms
    assert answered_by(raw) == "hedge-fast"
    assert time.monotonic() - t0 < 0.9
    assert attempts(up) == {"hedge-slow": 1, "hedge-fast": 1}
    assert wait_for(lambda: up["hedge-slow"].disconnects == 1, 1.0)
    found = decision(gateway, raw.headers["x-request-id"])
    assert [(a["deployment"], a["hedge"], a["outcome"]) for a in found["attempts"]] == [
        ("hedge-slow", False, "cancelled"),
        ("hedge-fast", True, "ok"),
    ]
    assert found["chosen"] == "hedge-fast"


def test_client_disconnect_mid_stream_cancels_the_upstream(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    up["dc-drip"].mode = "drip:400"  # the whole stream would take 2 s
    stream = client.chat.completions.create(model="dc-drip", messages=HI, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    closed_at = time.monotonic()
    stream.close()
    assert wait_for(lambda: up["dc-drip"].disconnects == 1, 1.0)
    last = up["dc-drip"].last_disconnect_at
    assert last is not None and last - closed_at < 1.0
    assert attempts(up) == {"dc-drip": 1}


# ----------------------------------------------------------- contracts


def test_stateful_only_deployment_never_gets_chat_completions(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    for _ in range(5):
        raw = chat(client, "r-kinds")
        assert answered_by(raw) == "ct-any"
    found = decision(gateway, raw.headers["x-request-id"])
    assert found["removed"] == {"ct-stateful": "kinds: serves only stateful traffic"}
    with pytest.raises(openai.PermissionDeniedError) as info:  # the only candidate
        chat(client, "ct-stateful")
    assert "kinds: serves only stateful traffic" in info.value.message
    assert attempts(up) == {"ct-any": 5}


def test_classification_header_routes_only_where_the_contract_allows(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    headers = {"X-Data-Classification": "confidential"}

    def one(_: int) -> str:
        return answered_by(chat(client, "r-class", extra_headers=headers))

    with ThreadPoolExecutor(20) as pool:
        names = list(pool.map(one, range(20)))
    assert names == ["cls-confidential"] * 20
    assert attempts(up) == {"cls-confidential": 20}  # cls-public: none

    with pytest.raises(openai.PermissionDeniedError) as info:
        chat(client, "r-class", extra_headers={"X-Data-Classification": "secret"})
    assert "classifications: 'secret' data may not go here" in info.value.message
    assert attempts(up) == {"cls-confidential": 20}


def test_region_header_keeps_requests_in_the_allowed_regions(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    headers = {"X-Data-Region": "eu-central, eu-west"}
    for _ in range(5):
        assert answered_by(chat(client, "r-region", extra_headers=headers)) == "reg-eu"
    with pytest.raises(openai.PermissionDeniedError) as info:
        chat(client, "r-region", extra_headers={"X-Data-Region": "ap-south"})
    assert "region: runs in us-east" in info.value.message
    assert "reg-none: region: the deployment declares no region" in info.value.message
    assert attempts(up) == {"reg-eu": 5}
    # without the header a region does not restrict: the listed order holds
    assert answered_by(chat(client, "r-region")) == "reg-us"
    assert attempts(up) == {"reg-eu": 5, "reg-us": 1}


def test_exclusive_deployment_takes_the_traffic_until_its_breaker_opens(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    for _ in range(5):
        raw = chat(client, "r-exclusive")  # ex-other is listed first
        assert answered_by(raw) == "ex-owner"
    assert decision(gateway, raw.headers["x-request-id"])["removed"] == {
        "ex-other": "exclusive: stateless traffic goes to 'ex-owner'"
    }
    assert attempts(up) == {"ex-owner": 5}

    up["ex-owner"].mode = "503"
    for _ in range(3):  # still healthy while it fails: no one else may take it
        with pytest.raises(openai.InternalServerError) as info:
            chat(client, "r-exclusive")
        assert info.value.status_code == 503
    assert attempts(up) == {"ex-owner": 8}
    # three failures open its breaker: now the others serve
    assert answered_by(chat(client, "r-exclusive")) == "ex-other"
    assert attempts(up) == {"ex-owner": 8, "ex-other": 1}


# ----------------------------------------------------------------- fit

TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]


def test_request_with_tools_skips_a_deployment_without_them(
    client: openai.OpenAI, gateway: Gateway, up: dict[str, FaultyUpstream]
) -> None:
    raw = chat(client, "r-fit-tools", tools=TOOLS)
    assert answered_by(raw) == "fit-tools"
    found = decision(gateway, raw.headers["x-request-id"])
    assert found["removed"] == {"fit-notools": "fit: lacks tools"}
    assert answered_by(chat(client, "r-fit-tools")) == "fit-notools"  # no tools: it fits
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, "fit-notools", tools=TOOLS)
    assert "fit: lacks tools" in info.value.message
    assert attempts(up) == {"fit-tools": 1, "fit-notools": 1}


def test_prompt_larger_than_the_context_window_skips_the_deployment(
    client: openai.OpenAI, up: dict[str, FaultyUpstream]
) -> None:
    big = [{"role": "user", "content": "word " * 200}]  # about 250 tokens > 100
    assert answered_by(chat(client, "r-fit-context", messages=big)) == "fit-large"
    assert answered_by(chat(client, "r-fit-context")) == "fit-small"
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, "fit-small", messages=big)
    assert "context window of 100" in info.value.message
    assert attempts(up) == {"fit-large": 1, "fit-small": 1}
