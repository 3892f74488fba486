"""``/metrics`` after real requests through a gateway process: counters, labels, breakers, budgets.

A gateway in front of the fake OpenAI upstream (11 prompt tokens, 2 of them
cached, and 7 completion tokens an answer: 25 micro-dollars at the prices of
``tests.e2e.governance.support``) serves whole and streamed answers, a route
whose first deployment cannot be reached (its breaker opens, the fallback
answers), an unknown model and a refused key. The scrape, parsed with
prometheus-client's parser, must count each of them under the right labels,
and hold no key, key prefix, key id or request id.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.conftest import Gateway
from tests.e2e.governance.support import ADMIN, CONFIG, COST, ENV, admin, chat_body, create_key
from tests.e2e.governance.support import post_chat as chat
from tests.fakes.harness import LoopbackServer, Recorder, free_port
from tests.observability.support import Scrape, scrape

VENDOR = "openai-compatible"
ROUTES = """
  - name: down
    provider: openai-compatible
    model: m
    base_url: "http://127.0.0.1:{port}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
health: {{failure_threshold: 2, backoff_base_ms: 1, backoff_max_ms: 5}}
routes:
  - name: fallback
    deployments: [down, m]
    retries: 1
"""


def _stream(gw: Gateway, key: str) -> bytes:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    request = urllib.request.Request(
        gw.v1 + "/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return bytes(resp.read())


@dataclass
class Served:
    gw: Gateway
    key: str
    key_id: str
    request_id: str
    before: Scrape  # right after start
    after: Scrape


@pytest.fixture
def served(
    openai_upstream: tuple[LoopbackServer, Recorder],
    start_gateway: Callable[..., Gateway],
) -> Served:
    """A gateway after the traffic above: it, the key, its id, a request id, the scrape."""
    server, _ = openai_upstream
    config = CONFIG.format(url=server.url) + ROUTES.format(port=free_port())
    gw = start_gateway(config, ENV)
    before = scrape(gw)
    key, key_id = create_key(gw, "alpha", team_limits={"budget_usd": 1})
    for _ in range(3):
        status, headers, _ = chat(gw, key, chat_body())
        assert status == 200
    rid = headers["X-Request-Id"]
    assert b"[DONE]" in _stream(gw, key)
    for _ in range(2):  # the first deployment fails twice a request: its breaker opens
        status, _, answer = chat(gw, key, chat_body("fallback"))
        assert status == 200, answer
    status, _, _ = chat(gw, key, chat_body("no-such-model"))
    assert status == 404
    status, _, _ = chat(gw, "sk-not-a-key", chat_body())
    assert status == 401
    return Served(gw, key, key_id, rid, before, scrape(gw))


def test_requests_are_counted_by_route_deployment_vendor_team_and_status(
    served: Served,
) -> None:
    m = served.after
    ok = {"deployment": "m", "vendor": VENDOR, "team": "alpha", "status_class": "2xx"}
    assert m.value("modelyard_requests_total", route="m", **ok) == 4
    assert m.value("modelyard_requests_total", route="fallback", **ok) == 2
    assert m.value("modelyard_requests_total", status_class="4xx") == 1  # the unknown model
    assert m.value("modelyard_request_errors_total", route="", error="NotFoundError") == 1
    assert m.value("modelyard_request_errors_total", error="AuthenticationError") == 0  # no team
    # tokens by kind and cost, for the six answered requests
    labels = {"deployment": "m", "team": "alpha"}
    assert m.value("modelyard_tokens_total", kind="input", **labels) == 6 * 11
    assert m.value("modelyard_tokens_total", kind="output", **labels) == 6 * 7
    assert m.value("modelyard_tokens_total", kind="cached_input", **labels) == 6 * 2
    assert m.value("modelyard_cost_usd_total", **labels) == pytest.approx(6 * COST / 1e6)


def test_latency_and_time_to_first_token_are_histograms(
    served: Served,
) -> None:
    m = served.after
    where = {"route": "m", "deployment": "m", "vendor": VENDOR}
    assert m.value("modelyard_request_duration_seconds_count", **where) == 4
    assert m.value("modelyard_request_duration_seconds_bucket", le="+Inf", **where) == 4
    assert 0 < m.value("modelyard_request_duration_seconds_sum", **where) < 10
    assert m.value("modelyard_time_to_first_token_seconds_count", **where) == 1  # the stream
    buckets = [
        (float(labels["le"]), v)
        for n, labels, v in m.samples
        if n == "modelyard_request_duration_seconds_bucket" and labels["route"] == "m"
    ]
    counts = [v for _, v in sorted(buckets)]
    assert counts == sorted(counts), "buckets are cumulative"


def test_attempts_retries_and_the_open_breaker_show(
    served: Served,
) -> None:
    m = served.after
    attempts = "modelyard_upstream_attempts_total"
    # the first request tried "down" and retried it; the second found its breaker open
    assert m.value(attempts, deployment="down", attempt="first") == 1
    assert m.value(attempts, deployment="down", attempt="retry") == 1
    assert m.value(attempts, deployment="down", outcome="ok") == 0
    assert m.value(attempts, deployment="m", vendor=VENDOR, attempt="first", outcome="ok") == 6
    assert served.before.value("modelyard_circuit_breaker_state", deployment="down") == 0
    assert served.before.has("modelyard_circuit_breaker_state", deployment="down")
    assert m.value("modelyard_circuit_breaker_state", deployment="down") == 2
    assert m.value("modelyard_circuit_breaker_failures", deployment="down") == 2
    assert m.value("modelyard_circuit_breaker_state", deployment="m") == 0


def test_the_team_budget_left_is_a_gauge(served: Served) -> None:
    m = served.after
    assert m.value("modelyard_budget_limit_usd", team="alpha") == 1.0
    left = m.value("modelyard_budget_remaining_usd", team="alpha")
    assert left == pytest.approx(1.0 - 6 * COST / 1e6)


def test_metrics_are_open_and_hold_no_secret(
    served: Served,
) -> None:
    gw, key, key_id, rid, m = served.gw, served.key, served.key_id, served.request_id, served.after
    for secret in (key, key[:10], key_id, ADMIN, rid, "sk-not-a-key", "no-such-model"):
        assert secret not in m.text, secret
    labels = {k for _, have, _ in m.samples for k in have}
    assert labels <= {
        "route",
        "deployment",
        "vendor",
        "team",
        "status_class",
        "error",
        "kind",
        "how",
        "attempt",
        "outcome",
        "le",
    }
    prefixes = [k["prefix"] for k in admin(gw, "GET", "/admin/keys")[1]["keys"]]
    assert prefixes and not [p for p in prefixes if p in m.text]


def test_team_and_route_labels_are_capped(
    openai_upstream: tuple[LoopbackServer, Recorder],
    start_gateway: Callable[..., Gateway],
) -> None:
    server, _ = openai_upstream
    config = CONFIG.format(url=server.url) + "observability: {metrics_max_label_values: 3}\n"
    gw = start_gateway(config, ENV)
    for i in range(6):
        key, _ = create_key(gw, f"team-{i}")
        status, _, _ = chat(gw, key, chat_body())
        assert status == 200
    m = scrape(gw)
    teams = m.label_values("modelyard_requests_total", "team")
    assert teams == {"team-0", "team-1", "team-2", "other"}
    assert m.value("modelyard_requests_total", team="other") == 3
    assert m.value("modelyard_requests_total") == 6


def test_cache_hits_and_what_they_saved_are_counted(
    openai_upstream: tuple[LoopbackServer, Recorder],
    start_gateway: Callable[..., Gateway],
) -> None:
    server, recorder = openai_upstream
    gw = start_gateway(CONFIG.format(url=server.url), ENV)
    key, _ = create_key(gw, "savers")
    for _ in range(3):  # deterministic: the first is kept, the next two are answered from it
        status, _, _ = chat(gw, key, chat_body(temperature=0))
        assert status == 200
    assert len(recorder.requests) == 1
    m = scrape(gw)
    assert m.value("modelyard_cache_hits_total", route="m", team="savers", how="exact") == 2
    assert m.value("modelyard_cache_saved_usd_total", route="m") == pytest.approx(2 * COST / 1e6)
    assert m.value("modelyard_requests_total", route="m", status_class="2xx") == 3
