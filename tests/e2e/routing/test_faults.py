"""Routing under faults: retries, fallback, cooldown, deadlines, resets, breakers."""

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
    request_id,
    trail,
    wait_for,
)
from tests.fakes.faulty_upstream import FaultyUpstream
from tests.fakes.harness import LoopbackServer, Recorder, openai_error


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
    bad = openai_error(400, "Invalid value for 'messages': bad", param="messages")
    openai_upstream[1].script.append(bad)
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
    missing = openai_error(404, "The model does not exist", code="model_not_found")
    openai_upstream[1].script.append(missing)
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
