"""The response cache end to end: a gateway process in front of the fake OpenAI upstream.

Every test sends content no earlier run sent (a fresh uuid), so an entry left
in Redis by another run can never answer it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.e2e.governance.support import ENV, admin, make_key
from tests.fakes.faulty_upstream import FaultyUpstream
from tests.fakes.harness import LoopbackServer, Recorder, openai_error

Upstream = tuple[LoopbackServer, Recorder]
COST = 25  # micro-dollars of one fake answer (11 prompt, 7 completion tokens at 1 and 2)

CONFIG = """
embedded_models: false
deployments:
  - name: dep
    provider: openai-compatible
    model: fake-model
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
  - name: flaky
    provider: openai-compatible
    model: flaky-model
    base_url: "{faulty}"
    api_key_env: K
    prices: {{input: 1, output: 2}}
routes:
  - {{name: plain, deployments: [dep]}}
  - {{name: other, deployments: [dep]}}
  - {{name: never, deployments: [dep], cache: {{enabled: false}}}}
  - {{name: always, deployments: [dep], cache: {{always: true}}}}
  - {{name: flaky-route, deployments: [flaky], retries: 0}}
"""


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream("flaky").start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(
    start_module_gateway: Callable[..., Gateway],
    fake_openai: Upstream,
    faulty: FaultyUpstream,
) -> Gateway:
    gateway = start_module_gateway(CONFIG.format(url=fake_openai[0].url, faulty=faulty.url), ENV)
    KEYS["default"] = make_key(gateway, "cache-t")  # the gateway leaves open mode for good
    return gateway


KEYS: dict[str, str] = {}


def _post(
    gw: Gateway, path: str, body: dict[str, Any], key: str | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    key = key or KEYS["default"]
    request = urllib.request.Request(
        gw.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "plain",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        **extra,
    }


def _calls(recorder: Recorder) -> int:
    count = len(recorder.requests)
    recorder.requests.clear()
    return count


def _fresh() -> str:
    return f"question {uuid.uuid4().hex}: what is 2 plus 3?"


def test_a_repeated_deterministic_request_is_answered_from_the_cache(
    gw: Gateway, openai_upstream: Upstream
) -> None:
    _, recorder = openai_upstream
    body = _chat(_fresh())
    status, first_headers, first = _post(gw, "/v1/chat/completions", body)
    assert status == 200 and "x-modelyard-cache" not in first_headers
    # the same request, its keys reordered and its JSON spaced differently
    again = json.loads(json.dumps(dict(reversed(list(body.items()))), indent=2))
    status, headers, second = _post(gw, "/v1/chat/completions", again)
    assert status == 200 and headers["x-modelyard-cache"] == "exact"
    assert second == first and headers["x-modelyard-deployment"] == "dep"
    assert headers["x-request-id"] != first_headers["x-request-id"]
    assert _calls(recorder) == 1
    status, found = admin(gw, "GET", f"/v1/routing/decisions/{headers['x-request-id']}")
    assert status == 200 and found["cache"]["result"] == "exact"


def test_two_teams_never_share_an_entry(gw: Gateway, openai_upstream: Upstream) -> None:
    _, recorder = openai_upstream
    alice, bob = make_key(gw, "cache-a"), make_key(gw, "cache-b")
    body = _chat(_fresh())
    assert _post(gw, "/v1/chat/completions", body, alice)[1].get("x-modelyard-cache") is None
    assert _post(gw, "/v1/chat/completions", body, bob)[1].get("x-modelyard-cache") is None
    assert _calls(recorder) == 2
    assert _post(gw, "/v1/chat/completions", body, alice)[1]["x-modelyard-cache"] == "exact"
    assert _post(gw, "/v1/chat/completions", body, bob)[1]["x-modelyard-cache"] == "exact"
    assert _calls(recorder) == 0


CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("text", {"messages": [{"role": "user", "content": "another question"}]}),
    ("whitespace in the text", {"suffix": "  "}),
    ("system", {"system": "Answer in French."}),
    ("temperature", {"temperature": 0.0001}),
    ("seed", {"seed": 7}),
    ("max_tokens", {"max_tokens": 5}),
    ("max_completion_tokens", {"max_completion_tokens": 5}),
    ("stop", {"stop": ["\n"]}),
    ("top_p", {"top_p": 0.5}),
    ("presence_penalty", {"presence_penalty": 0.5}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("tools", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
    ("route", {"model": "other"}),
    ("stream", {"stream": True}),
]


@pytest.mark.parametrize(("what", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_changing_an_output_changing_field_misses(
    gw: Gateway, openai_upstream: Upstream, what: str, change: dict[str, Any]
) -> None:
    _, recorder = openai_upstream
    text = _fresh()
    body = _chat(text)
    _post(gw, "/v1/chat/completions", body)
    changed = {**body, **change}
    if what == "whitespace in the text":
        changed = _chat(text + change["suffix"])
    elif what == "system":
        changed = {
            **body,
            "messages": [{"role": "system", "content": change["system"]}, *body["messages"]],
        }
    status, headers, _ = _post(gw, "/v1/chat/completions", changed)
    assert status == 200 and "x-modelyard-cache" not in headers
    assert _calls(recorder) == 2


def test_what_is_cached_by_default_and_what_the_client_and_route_say(
    gw: Gateway, openai_upstream: Upstream
) -> None:
    _, recorder = openai_upstream
    sampled = {"model": "plain", "messages": [{"role": "user", "content": _fresh()}]}
    for _ in range(2):  # no temperature 0 and no seed: not deterministic, not cached
        assert "x-modelyard-cache" not in _post(gw, "/v1/chat/completions", sampled)[1]
    assert _calls(recorder) == 2
    for _ in range(2):  # ... unless the route caches always
        _post(gw, "/v1/chat/completions", {**sampled, "model": "always"})
    assert _calls(recorder) == 1
    for _ in range(2):  # a route can opt out
        _post(gw, "/v1/chat/completions", _chat(sampled["messages"][0]["content"], model="never"))
    assert _calls(recorder) == 2

    body = _chat(_fresh())
    _post(gw, "/v1/chat/completions", body, **{"Cache-Control": "no-store"})
    assert "x-modelyard-cache" not in _post(gw, "/v1/chat/completions", body)[1]  # not stored
    assert _calls(recorder) == 2
    hit = _post(gw, "/v1/chat/completions", body)[1]
    assert hit["x-modelyard-cache"] == "exact"
    bypass = _post(gw, "/v1/chat/completions", body, **{"Cache-Control": "no-cache"})[1]
    assert "x-modelyard-cache" not in bypass and _calls(recorder) == 1
    time.sleep(1.1)
    assert (
        "x-modelyard-cache"
        not in _post(gw, "/v1/chat/completions", body, **{"Cache-Control": "max-age=1"})[1]
    )  # the entry is older than the client accepts
    assert _calls(recorder) == 1


STREAMS = [
    ("/v1/chat/completions", lambda t: _chat(t, stream=True), b"data: [DONE]"),
    (
        "/v1/messages",
        lambda t: {
            "model": "plain",
            "max_tokens": 50,
            "temperature": 0,
            "stream": True,
            "messages": [{"role": "user", "content": t}],
        },
        b"event: message_stop",
    ),
    (
        "/v1/responses",
        lambda t: {"model": "plain", "input": t, "temperature": 0, "stream": True},
        b"response.completed",
    ),
]


@pytest.mark.parametrize(("path", "make", "end"), STREAMS, ids=["chat", "messages", "responses"])
def test_a_cached_stream_replays_byte_for_byte_in_the_clients_format(
    gw: Gateway,
    openai_upstream: Upstream,
    path: str,
    make: Callable[[str], dict[str, Any]],
    end: bytes,
) -> None:
    _, recorder = openai_upstream
    body = make(_fresh())
    status, headers, first = _post(gw, path, body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert end in first
    status, headers, second = _post(gw, path, body)
    assert status == 200 and headers["x-modelyard-cache"] == "exact"
    assert headers["content-type"].startswith("text/event-stream")
    assert second == first
    assert _calls(recorder) == 1
    whole = {**body, "stream": False}  # the same request unstreamed is another entry
    status, headers, _ = _post(gw, path, whole)
    assert status == 200 and "x-modelyard-cache" not in headers and _calls(recorder) == 1


def test_errors_and_broken_streams_are_never_cached(gw: Gateway, faulty: FaultyUpstream) -> None:
    faulty.reset_counts()
    body = _chat(_fresh(), model="flaky-route")
    faulty.fail_next(1, "500")
    assert _post(gw, "/v1/chat/completions", body)[0] >= 500
    assert _post(gw, "/v1/chat/completions", body)[0] == 200  # the error was not kept
    assert _post(gw, "/v1/chat/completions", body)[1]["x-modelyard-cache"] == "exact"
    assert faulty.attempts == 2

    stream = _chat(_fresh(), model="flaky-route", stream=True)
    faulty.fail_next(1, "reset_after:2")
    status, _, broken = _post(gw, "/v1/chat/completions", stream)
    assert status == 200 and b"data: [DONE]" not in broken  # ended by an error event
    status, headers, whole = _post(gw, "/v1/chat/completions", stream)
    assert "x-modelyard-cache" not in headers and whole.endswith(b"data: [DONE]\n\n")
    assert _post(gw, "/v1/chat/completions", stream)[2] == whole
    assert faulty.attempts == 4


def test_a_hit_costs_nothing_and_the_ledger_books_what_it_saved(
    gw: Gateway, openai_upstream: Upstream
) -> None:
    body = _chat(_fresh(), model="other")
    before = _spend(gw)
    for _ in range(4):
        _post(gw, "/v1/chat/completions", body)
    after = _spend(gw)
    assert after["requests"] - before["requests"] == 4
    assert after["cost_micros"] - before["cost_micros"] == COST
    assert after["cache_hits"] - before["cache_hits"] == 3
    assert after["saved_micros"] - before["saved_micros"] == 3 * COST
    assert 0 < after["cache_hit_rate"] <= 1


def _spend(gw: Gateway) -> dict[str, Any]:
    time.sleep(1.2)  # the ledger is written in batches
    status, spend = admin(gw, "GET", "/admin/spend?group_by=route")
    assert status == 200, spend
    row: dict[str, Any] = next(
        (r for r in spend["rows"] if r["route"] == "other"),
        {"requests": 0, "cost_micros": 0, "cache_hits": 0, "saved_micros": 0, "cache_hit_rate": 0},
    )
    return row


def test_an_upstream_error_reply_is_relayed_not_cached(
    gw: Gateway, openai_upstream: Upstream
) -> None:
    _, recorder = openai_upstream
    body = _chat(_fresh())
    recorder.script.append(openai_error(400, "bad request from the vendor"))
    assert _post(gw, "/v1/chat/completions", body)[0] == 400
    status, headers, _ = _post(gw, "/v1/chat/completions", body)
    assert status == 200 and "x-modelyard-cache" not in headers
    assert _calls(recorder) == 2
