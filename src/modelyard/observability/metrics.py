"""``GET /metrics``: the gateway's Prometheus metrics, from one collector per app.

What is exported (all names start with ``modelyard_``):

=====================================  =========  ==========================================
name                                   type       labels
=====================================  =========  ==========================================
requests_total                         counter    route, deployment, vendor, team, status_class
request_errors_total                   counter    route, deployment, vendor, team, error
request_duration_seconds               histogram  route, deployment, vendor
time_to_first_token_seconds            histogram  route, deployment, vendor (streams only)
tokens_total                           counter    route, deployment, vendor, team, kind
cost_usd_total                         counter    route, deployment, vendor, team
cache_hits_total                       counter    route, team, how (exact | semantic)
cache_saved_usd_total                  counter    route, team
upstream_attempts_total                counter    deployment, vendor, attempt, outcome
circuit_breaker_state                  gauge      deployment (0 closed, 1 half-open, 2 open)
circuit_breaker_failures               gauge      deployment (consecutive failures)
budget_limit_usd                       gauge      team
budget_remaining_usd                   gauge      team (as of its last settled request)
=====================================  =========  ==========================================

plus the process's CPU, memory and file descriptors (prometheus-client's
``ProcessCollector``). ``attempt`` is first, retry or hedge; ``outcome`` is
``ok``, ``cancelled`` or the error's class.

Bounded labels. No label holds a key, a key id, a request id, a model name a
client typed, or any text from a request. Deployments, vendors, error classes,
attempt kinds and outcomes come from the configuration and the code, so their
values are few. Teams and routes are made at run time through the admin API,
so their values could grow without end: each keeps the first
``metrics_max_label_values`` distinct values it sees (per process) and counts
every later one as ``other``. A deployment or alias called by its own name is
its own route; a request refused before it was routed (an unknown model) has
the route ``""``, and one without a team the team ``""``. Requests that never
reach a model endpoint (a refused key, an unknown path) are not counted.

Cost on the request path. Nothing here takes a lock or builds a metric object
per request: ``GatewayMetrics.request`` adds the request into a plain record
keyed by its label tuple, on the event loop's thread. The Prometheus families
are built from those records when ``/metrics`` is read (``collect``), which
is also when histograms are summed over the labels they do not carry.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from modelyard.routing.decision import Attempt
    from modelyard.routing.health import HealthBoard
    from modelyard.storage.request_log import RequestRecord

OTHER = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_KINDS = (
    "input",
    "output",
    "cached_input",
    "reasoning",
    "cache_write",
    "audio_input",
    "audio_output",
)
_STATUS_CLASS = ("1xx", "2xx", "3xx", "4xx", "5xx")
_BREAKER = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

# (route, deployment, vendor, team, status_class, error)
SeriesKey = tuple[str, str, str, str, str, str]


class Series:
    """What the requests of one label tuple added up to."""

    __slots__ = (
        "cost_micros",
        "count",
        "hits_exact",
        "hits_semantic",
        "latency",
        "latency_sum",
        "saved_micros",
        "tokens",
        "ttft",
        "ttft_count",
        "ttft_sum",
    )

    def __init__(self) -> None:
        self.count = 0
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative
        self.latency_sum = 0.0
        self.ttft = [0] * (len(LATENCY_BUCKETS) + 1)
        self.ttft_sum = 0.0
        self.ttft_count = 0
        self.tokens = [0] * len(TOKEN_KINDS)
        self.cost_micros = 0
        self.hits_exact = 0
        self.hits_semantic = 0
        self.saved_micros = 0


class Capped:
    """A label's values as seen: the first ``limit`` distinct ones, then ``other``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int):
        self.limit = limit
        self.seen: dict[str, str] = {}

    def __call__(self, value: str | None) -> str:
        if value is None:
            return ""
        found = self.seen.get(value)
        if found is not None:
            return found
        if len(self.seen) >= self.limit:
            return OTHER  # not remembered: the map stays bounded too
        self.seen[value] = value
        return value


class GatewayMetrics(Collector):
    """The gateway's metrics, registered on a registry of its own (``registry``)."""

    def __init__(self, max_label_values: int = 100):
        self.registry = CollectorRegistry(auto_describe=False)
        self.routes = Capped(max_label_values)
        self.teams = Capped(max_label_values)
        self.series: dict[SeriesKey, Series] = {}
        self.attempts: dict[tuple[str, str, str], int] = {}  # (deployment, attempt, outcome)
        self.budgets: dict[str, tuple[int, int]] = {}  # team -> (limit, spent) micro-dollars
        self.vendors: dict[str, str] = {}  # deployment -> vendor, for attempts
        self.health: HealthBoard | None = None
        self.registry.register(self)
        ProcessCollector(registry=self.registry)

    # ------------------------------------------------------------ recording

    def request(self, rec: RequestRecord) -> None:
        """One finished request, as its ledger row has it."""
        key = (
            self.routes(rec.route),
            rec.deployment or "",
            rec.provider or "",
            self.teams(rec.team),
            _STATUS_CLASS[min(4, max(0, rec.status // 100 - 1))],
            rec.error_type or "",
        )
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series()
        s.count += 1
        seconds = rec.latency_ms / 1000
        s.latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        s.latency_sum += seconds
        if rec.ttft_ms is not None:
            seconds = rec.ttft_ms / 1000
            s.ttft[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            s.ttft_sum += seconds
            s.ttft_count += 1
        if rec.input_tokens or rec.output_tokens:
            t = s.tokens
            t[0] += rec.input_tokens
            t[1] += rec.output_tokens
            t[2] += rec.cached_input_tokens
            t[3] += rec.reasoning_tokens
            t[4] += rec.cache_write_tokens
            t[5] += rec.audio_input_tokens
            t[6] += rec.audio_output_tokens
        s.cost_micros += rec.cost_micros
        if rec.cache is not None:
            if rec.cache == "semantic":
                s.hits_semantic += 1
            else:
                s.hits_exact += 1
            s.saved_micros += rec.saved_micros

    def attempt(self, record: Attempt) -> None:
        """One upstream attempt, once it has its outcome."""
        kind = "hedge" if record.hedge else "retry" if record.retry else "first"
        key = (record.deployment, kind, record.outcome)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    def budget(self, counter: str, limit_micros: int, spent_micros: int) -> None:
        """A budget's spend after a settle; only team budgets are shown (never a key's)."""
        kind, _, rest = counter.partition(":")
        if kind != "team":
            return
        team = rest.rsplit(":", 1)[0]
        if team in self.budgets or len(self.budgets) < self.teams.limit:
            self.budgets[team] = (limit_micros, spent_micros)

    # ------------------------------------------------------------ exporting

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._histograms()
        yield from self._upstreams()

    def _requests(self) -> Iterator[Metric]:
        labels = ["route", "deployment", "vendor", "team"]
        requests = CounterMetricFamily(
            "modelyard_requests", "Requests answered", labels=[*labels, "status_class"]
        )
        errors = CounterMetricFamily(
            "modelyard_request_errors",
            "Requests that failed, by error class",
            labels=[*labels, "error"],
        )
        tokens = CounterMetricFamily(
            "modelyard_tokens", "Tokens billed, by kind", labels=[*labels, "kind"]
        )
        cost = CounterMetricFamily("modelyard_cost_usd", "Cost booked in the ledger", labels=labels)
        hits = CounterMetricFamily(
            "modelyard_cache_hits",
            "Answers served from the response cache",
            labels=["route", "team", "how"],
        )
        saved = CounterMetricFamily(
            "modelyard_cache_saved_usd", "What cache hits would have cost", labels=["route", "team"]
        )
        sums: dict[str, dict[tuple[str, ...], float]] = {n: {} for n in "rethcs"}
        r, e, t, c, h, sv = (sums[n] for n in "rethcs")
        for (route, dep, vendor, team, status, error), s in self.series.items():
            base = (route, dep, vendor, team)
            add(r, (*base, status), s.count)
            if error:
                add(e, (*base, error), s.count)
            for kind, n in zip(TOKEN_KINDS, s.tokens, strict=True):
                if n:
                    add(t, (*base, kind), n)
            add(c, base, s.cost_micros / 1e6)
            if s.hits_exact:
                add(h, (route, team, "exact"), s.hits_exact)
            if s.hits_semantic:
                add(h, (route, team, "semantic"), s.hits_semantic)
            if s.hits_exact or s.hits_semantic:
                add(sv, (route, team), s.saved_micros / 1e6)
        for family, values in zip(
            (requests, errors, tokens, cost, hits, saved), (r, e, t, c, h, sv), strict=True
        ):
            for key, value in values.items():
                family.add_metric(list(key), value)
        yield from (requests, errors, tokens, cost, hits, saved)

    def _histograms(self) -> Iterator[Metric]:
        latency: dict[tuple[str, str, str], tuple[list[int], list[float]]] = {}
        ttft: dict[tuple[str, str, str], tuple[list[int], list[float]]] = {}
        for (route, dep, vendor, *_), s in self.series.items():
            key = (route, dep, vendor)
            merge(latency, key, s.latency, s.latency_sum)
            if s.ttft_count:
                merge(ttft, key, s.ttft, s.ttft_sum)
        for name, doc, data in (
            (
                "modelyard_request_duration_seconds",
                "Time from request to the answer's end",
                latency,
            ),
            ("modelyard_time_to_first_token_seconds", "Time to a stream's first token", ttft),
        ):
            family = HistogramMetricFamily(name, doc, labels=["route", "deployment", "vendor"])
            for key, (counts, total) in data.items():
                family.add_metric(list(key), cumulative(counts), total[0])
            yield family

    def _upstreams(self) -> Iterator[Metric]:
        attempts = CounterMetricFamily(
            "modelyard_upstream_attempts",
            "Calls to upstream deployments, retries and hedges",
            labels=["deployment", "vendor", "attempt", "outcome"],
        )
        for (dep, kind, outcome), n in self.attempts.items():
            attempts.add_metric([dep, self.vendors.get(dep, ""), kind, outcome], n)
        yield attempts
        state = GaugeMetricFamily(
            "modelyard_circuit_breaker_state",
            "Circuit breaker of each deployment: 0 closed, 1 half-open, 2 open",
            labels=["deployment"],
        )
        failures = GaugeMetricFamily(
            "modelyard_circuit_breaker_failures", "Consecutive failures", labels=["deployment"]
        )
        for name, health in (self.health or {}).items():
            state.add_metric([name], _BREAKER.get(health.state, 0.0))
            failures.add_metric([name], health.failures)
        yield from (state, failures)
        limit = GaugeMetricFamily("modelyard_budget_limit_usd", "A team's budget", labels=["team"])
        left = GaugeMetricFamily(
            "modelyard_budget_remaining_usd",
            "What is left of a team's budget this period",
            labels=["team"],
        )
        for team, (cap, spent) in self.budgets.items():
            limit.add_metric([team], cap / 1e6)
            left.add_metric([team], (cap - spent) / 1e6)
        yield from (limit, left)


def add(sums: dict[tuple[str, ...], float], key: tuple[str, ...], value: float) -> None:
    sums[key] = sums.get(key, 0.0) + value


def merge(
    into: dict[tuple[str, str, str], tuple[list[int], list[float]]],
    key: tuple[str, str, str],
    counts: list[int],
    total: float,
) -> None:
    found = into.get(key)
    if found is None:
        into[key] = (list(counts), [total])
        return
    for i, n in enumerate(counts):
        found[0][i] += n
    found[1][0] += total


def cumulative(counts: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
        running += n
        out.append((bound, running))
    return out
