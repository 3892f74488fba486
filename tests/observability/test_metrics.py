"""The metrics collector alone: bounded labels under many teams and routes, and its exposition."""

from __future__ import annotations

from prometheus_client import generate_latest

from modelyard.observability.metrics import GatewayMetrics
from modelyard.routing.decision import Attempt
from modelyard.storage.request_log import RequestRecord
from tests.observability.support import parse


def _record(
    route: str | None, team: str | None, status: int = 200, **extra: object
) -> RequestRecord:
    fields: dict[str, object] = {
        "id": "req_x",
        "ts": 0.0,
        "endpoint": "chat",
        "model": "m",
        "deployment": "m",
        "provider": "openai",
        "status": status,
        "stream": False,
        "latency_ms": 12.0,
        "input_tokens": 10,
        "output_tokens": 5,
        "key_id": "key_secret_id",
        "team": team,
        "route": route,
        "cost_micros": 7,
        **extra,
    }
    return RequestRecord(**fields)  # type: ignore[arg-type]


def test_500_teams_and_routes_make_a_bounded_number_of_series() -> None:
    metrics = GatewayMetrics(max_label_values=20)
    for i in range(500):
        metrics.request(_record(f"route-{i}", f"team-{i}"))
        metrics.request(_record(f"route-{i}", f"team-{i}", status=503, error_type="UpstreamError"))
    m = parse(generate_latest(metrics.registry).decode())
    teams = m.label_values("modelyard_requests_total", "team")
    routes = m.label_values("modelyard_requests_total", "route")
    assert len(teams) == 21 and "other" in teams
    assert len(routes) == 21 and "other" in routes
    assert m.value("modelyard_requests_total") == 1000  # nothing is lost, only grouped
    assert m.value("modelyard_requests_total", team="other", status_class="5xx") == 480
    assert m.value("modelyard_tokens_total", kind="input") == 10_000
    series = [s for s in m.samples if s[0].startswith("modelyard_")]
    assert len(series) < 1500
    assert len(metrics.teams.seen) == 20 and len(metrics.routes.seen) == 20  # memory bounded too
    assert "key_secret_id" not in m.text and "req_x" not in m.text


def test_only_team_budgets_are_shown_and_their_number_is_capped() -> None:
    metrics = GatewayMetrics(max_label_values=2)
    metrics.budget("key:key_abc:2026-11@1", 5_000_000, 1_000_000)
    for team in ("a", "b", "c"):
        metrics.budget(f"team:{team}:2026-11@1", 2_000_000, 500_000)
    metrics.budget("team:a:2026-11@1", 2_000_000, 1_500_000)
    m = parse(generate_latest(metrics.registry).decode())
    assert m.label_values("modelyard_budget_remaining_usd", "team") == {"a", "b"}
    assert m.value("modelyard_budget_remaining_usd", team="a") == 0.5
    assert "key_abc" not in m.text


def test_attempt_kinds_and_histogram_buckets() -> None:
    metrics = GatewayMetrics()
    metrics.vendors = {"d": "anthropic"}
    metrics.attempt(Attempt("d", 0))
    metrics.attempt(Attempt("d", 1, outcome="UpstreamTimeoutError"))
    metrics.attempt(Attempt("d", 0, hedge=True, outcome="ok"))
    metrics.request(_record("r", None, latency_ms=3.0, ttft_ms=2.0))
    metrics.request(_record("r", None, latency_ms=3000.0))
    m = parse(generate_latest(metrics.registry).decode())
    name = "modelyard_upstream_attempts_total"
    assert m.value(name, vendor="anthropic", attempt="retry", outcome="UpstreamTimeoutError") == 1
    assert m.value(name, attempt="hedge", outcome="ok") == 1
    hist = "modelyard_request_duration_seconds_bucket"
    assert m.value(hist, route="r", le="0.005") == 1
    assert m.value(hist, route="r", le="2.5") == 1
    assert m.value(hist, route="r", le="5.0") == 2
    assert m.value("modelyard_time_to_first_token_seconds_count", route="r") == 1
    assert m.value("modelyard_requests_total", team="") == 2  # no team: an empty label
