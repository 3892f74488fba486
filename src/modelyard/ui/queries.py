"""The ledger queries behind the dashboard's charts and request list (SQLAlchemy Core).

Spend per time bucket and group; latency percentiles (the ledger) and error rates
(the routing decisions' attempts) per deployment; the recent requests matching a
search; one request's ledger row.
Every value from a client arrives here already validated (``api.ui_api``) and
reaches the database as a bound parameter.

Not here: HTTP, sessions, and the whole-window spend summary (``governance.report``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, Integer, cast, func, literal, select

from modelyard.storage.schema import decisions_table, requests_table

BUCKETS = {"minute": 60, "hour": 3600, "day": 86_400}
SERIES_GROUPS = {
    "team": "team",
    "key": "key_id",
    "route": "route",
    "model": "model",
    "deployment": "deployment",
    "vendor": "provider",
}
MAX_BUCKETS = 2000
MAX_SERIES = 8  # the dearest groups get a series each; the rest are summed as "other"
LATENCY_ROWS = 200_000  # the most recent rows a percentile is computed over
DECISION_ROWS = 50_000  # the most recent decisions whose attempts give error rates
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"

REQUEST_COLUMNS = (
    "id",
    "ts",
    "endpoint",
    "model",
    "route",
    "deployment",
    "provider",
    "status",
    "stream",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cost_micros",
    "team",
    "key_id",
    "error_type",
    "cache",
    "saved_micros",
    "client_request_id",
)


def _bucket_start(engine: Engine, size: int) -> ColumnElement[Any]:
    """The start of the bucket of each row's ``ts``, in whole seconds."""
    t = requests_table
    if engine.dialect.name == "postgresql":  # CAST rounds there; floor truncates
        return cast(func.floor(t.c.ts / literal(size)), Integer) * literal(size)
    return cast(t.c.ts / literal(size), Integer) * literal(size)  # SQLite's CAST truncates


def spend_series(
    engine: Engine, group: str, bucket: str, since: float, until: float
) -> dict[str, Any]:
    """Cost per bucket of [since, until) for each value of ``group``, dearest first."""
    t = requests_table
    size = BUCKETS[bucket]
    column = t.c[SERIES_GROUPS[group]]
    start = _bucket_start(engine, size).label("bucket")
    query = (
        select(start, column, func.count(), func.coalesce(func.sum(t.c.cost_micros), 0))
        .where(t.c.ts >= since, t.c.ts < until)
        .group_by(start, column)
    )
    with engine.connect() as conn:
        raw = conn.execute(query).all()
    first = int(since // size) * size
    buckets = list(range(first, int(until) + 1, size))
    if buckets and buckets[-1] >= until:
        buckets.pop()
    index = {b: i for i, b in enumerate(buckets)}
    costs: dict[str, list[int]] = defaultdict(lambda: [0] * len(buckets))
    requests: dict[str, int] = defaultdict(int)
    for bucket_ts, value, count, cost in raw:
        i = index.get(int(bucket_ts))
        if i is None:
            continue
        name = NONE_LABEL if value is None else str(value)
        costs[name][i] += int(cost)
        requests[name] += int(count)
    ranked = sorted(costs, key=lambda n: (-sum(costs[n]), n))
    kept, rest = ranked[:MAX_SERIES], ranked[MAX_SERIES:]
    series = [
        {"name": n, "cost_micros": costs[n], "total_micros": sum(costs[n]), "requests": requests[n]}
        for n in kept
    ]
    if rest:
        other = [sum(costs[n][i] for n in rest) for i in range(len(buckets))]
        series.append(
            {
                "name": OTHER_LABEL,
                "cost_micros": other,
                "total_micros": sum(other),
                "requests": sum(requests[n] for n in rest),
            }
        )
    total = sum(s["total_micros"] for s in series)  # type: ignore[misc]
    return {
        "group_by": group,
        "bucket": bucket,
        "bucket_seconds": size,
        "since": since,
        "until": until,
        "buckets": buckets,
        "series": series,
        "total_micros": total,
        "total_usd": total / 1e6,
        "requests": sum(requests.values()),
    }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0-100) of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats' surprises
    return sorted_values[min(int(rank), len(sorted_values)) - 1]


def deployment_latency(engine: Engine, since: float, until: float) -> list[dict[str, Any]]:
    """Per deployment: latency and TTFT percentiles of its answered requests (the ledger),
    and its error rate over every attempt the router made on it (the routing decisions),
    so that a failure a fallback hid still counts against the deployment that failed."""
    t, d = requests_table, decisions_table
    answered = (
        select(t.c.deployment, t.c.provider, t.c.latency_ms, t.c.ttft_ms)
        .where(t.c.ts >= since, t.c.ts < until, t.c.deployment.is_not(None), t.c.status < 400)
        .order_by(t.c.ts.desc())
        .limit(LATENCY_ROWS)
    )
    decided = (
        select(d.c.body)
        .where(d.c.ts >= since, d.c.ts < until)
        .order_by(d.c.ts.desc())
        .limit(DECISION_ROWS)
    )
    with engine.connect() as conn:
        rows = conn.execute(answered).all()
        bodies = [b for (b,) in conn.execute(decided)]
    cells: dict[str, dict[str, Any]] = {}

    def cell(name: str) -> dict[str, Any]:
        return cells.setdefault(
            name,
            {"vendor": None, "ok": [], "ttft": [], "attempts": 0, "failed": 0, "types": {}},
        )

    for deployment, provider, latency, ttft in rows:
        c = cell(str(deployment))
        c["vendor"] = provider
        c["ok"].append(float(latency))
        if ttft is not None:
            c["ttft"].append(float(ttft))
    for body in bodies:
        try:
            attempts = orjson.loads(body).get("attempts") or []
        except (orjson.JSONDecodeError, AttributeError):
            continue
        for attempt in attempts:
            name = attempt.get("deployment")
            outcome = attempt.get("outcome")
            if not name or outcome in ("cancelled", "pending"):
                continue  # a hedge's loser, or a call cut off: no verdict on the deployment
            c = cell(str(name))
            c["attempts"] += 1
            if outcome != "ok":
                c["failed"] += 1
                c["types"][str(outcome)] = c["types"].get(str(outcome), 0) + 1
    out = []
    for name, c in sorted(cells.items()):
        ok, ttft = sorted(c["ok"]), sorted(c["ttft"])
        out.append(
            {
                "deployment": name,
                "vendor": c["vendor"],
                "answered": len(ok),
                "attempts": c["attempts"],
                "failed_attempts": c["failed"],
                "error_rate": c["failed"] / c["attempts"] if c["attempts"] else 0.0,
                "error_types": c["types"],
                "p50_ms": percentile(ok, 50),
                "p95_ms": percentile(ok, 95),
                "p99_ms": percentile(ok, 99),
                "ttft_p50_ms": percentile(ttft, 50),
                "ttft_p95_ms": percentile(ttft, 95),
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class RequestSearch:
    """What the request list is filtered by; None: any."""

    request_id: str | None = None  # a prefix of the gateway's id, or the client's exact id
    route: str | None = None
    model: str | None = None
    team: str | None = None
    status: str | None = None  # "ok", "error" or a status code
    before: float | None = None  # only requests older than this (paging)
    limit: int = 100


def search_requests(engine: Engine, search: RequestSearch) -> list[dict[str, Any]]:
    """The most recent ledger rows matching ``search``, newest first."""
    t = requests_table
    query = select(*(t.c[c] for c in REQUEST_COLUMNS))
    if search.request_id:
        query = query.where(
            t.c.id.startswith(search.request_id, autoescape=True)
            | (t.c.client_request_id == search.request_id)
        )
    for name in ("route", "model", "team"):
        value = getattr(search, name)
        if value:
            query = query.where(t.c[name] == value)
    if search.status == "ok":
        query = query.where(t.c.status < 400)
    elif search.status == "error":
        query = query.where(t.c.status >= 400)
    elif search.status:
        query = query.where(t.c.status == int(search.status))
    if search.before is not None:
        query = query.where(t.c.ts < search.before)
    query = query.order_by(t.c.ts.desc(), t.c.seq.desc()).limit(search.limit)
    with engine.connect() as conn:
        return [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in conn.execute(query)]


def request_row(engine: Engine, request_id: str) -> dict[str, Any] | None:
    """One request's ledger row, or None (unknown, or not written yet)."""
    t = requests_table
    query = select(*(t.c[c] for c in REQUEST_COLUMNS)).where(t.c.id == request_id).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(zip(REQUEST_COLUMNS, row, strict=True))
