"""Routing policies, hedging, disconnects, contract terms and fit."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.conftest import Gateway
from tests.e2e.routing.support import (
    HI,
    answered_by,
    attempts,
    chat,
    decision,
    wait_for,
)
from tests.fakes.faulty_upstream import FaultyUpstream


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
    # cost-unpriced has no prices in the config: it costs gpt-4o-mini's list price
    assert found["order"] == ["cost-cheap", "cost-unpriced", "cost-pricey"]
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
