"""The dashboard's HTTP side: its pages, login and logout, and the JSON its pages read.

Pages: ``GET /ui`` (one page, its views switched by the URL's fragment),
``GET|POST /ui/login``, ``POST /ui/logout``, and the assets under ``/ui/static/``.

JSON (a session or an admin bearer key, ``ui.session.dashboard_auth``):

- ``GET /ui/api/me``: who is logged in;
- ``GET /ui/api/spend_series?group_by=&bucket=&since=&until=``: cost per time bucket;
- ``GET /ui/api/latency?since=&until=``: percentiles and error rates per deployment;
- ``GET /ui/api/requests?q=&route=&model=&team=&status=&before=&limit=``: recent requests;
- ``GET /ui/api/requests/{id}``: one ledger row; ``GET /ui/api/decisions/{id}``: its
  routing explanation;
- ``GET /ui/api/evals`` and ``GET /ui/api/evals/report?run=ID&run=ID``: evaluation runs;
- the admin API's own handlers for ``/ui/api/dependency``, ``/ui/api/health``,
  ``/ui/api/routes``, the model list ``/ui/api/models``, and the playground's
  ``POST /ui/api/chat/completions``, the very handler of ``/v1/chat/completions``
  (routing, governance and the ledger included) reached with the session.

Every query parameter is checked here; a bad one is a 400 that names it. The
queries themselves are in ``ui.queries``; sessions in ``ui.session``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

from aiohttp import web

from modelyard.api import admin, openai_api
from modelyard.api.body import json_response
from modelyard.api.context import KEY_RING, PRINCIPAL, REQUEST_LOG, SETTINGS
from modelyard.errors import GatewayError, InvalidRequestError, NotFoundError
from modelyard.ui import evals, queries
from modelyard.ui.session import SESSIONS, Sessions, login, logout

STATIC = Path(__file__).resolve().parent.parent / "ui" / "static"
EVAL_ROOTS = web.AppKey("ui_eval_roots", list[Path])
MAX_WINDOW = 366 * 86_400.0
MAX_TEXT = 200
STATUS_PATTERN = re.compile(r"ok|error|[1-5][0-9][0-9]")
# the page's own assets only; charts are drawn in SVG by the page's scripts
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def setup(app: web.Application) -> None:
    """Register the dashboard on the gateway: its session store, eval roots and routes."""
    app[SESSIONS] = Sessions()
    app[EVAL_ROOTS] = evals.eval_roots(app[SETTINGS].server.data_dir)
    app.add_routes(routes())


# ---------------------------------------------------------------- parameters


def _number(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a number", param=name) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidRequestError(f"{name} must be a finite number >= 0", param=name)
    return value


def _window(request: web.Request, default_hours: float) -> tuple[float, float]:
    """``since`` and ``until``, Unix seconds; the last ``default_hours`` when absent."""
    now = time.time()
    until = _number(request, "until", now + 1)
    since = _number(request, "since", until - default_hours * 3600)
    if not since < until:
        raise InvalidRequestError("since must be before until", param="since")
    if until - since > MAX_WINDOW:
        raise InvalidRequestError("the window is at most 366 days", param="since")
    return since, until


def _choice(request: web.Request, name: str, choices: dict[str, object], default: str) -> str:
    value = request.query.get(name, default)
    if value not in choices:
        raise InvalidRequestError(f"{name} must be one of {', '.join(choices)}", param=name)
    return value


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > MAX_TEXT:
        raise InvalidRequestError(f"{name} is at most {MAX_TEXT} characters", param=name)
    return value or None


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise InvalidRequestError("limit must be an integer from 1 to 500", param="limit")
    return int(raw)


def _unknown_params(request: web.Request, known: set[str]) -> None:
    for name in request.query:
        if name not in known:
            raise InvalidRequestError(f"unknown query parameter {name!r}", param=name)


# ---------------------------------------------------------------- pages


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


async def login_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "login.html", headers=PAGE_HEADERS)


# ---------------------------------------------------------------- JSON


async def me(request: web.Request) -> web.Response:
    key = request[PRINCIPAL].key
    assert key is not None  # dashboard_auth lets admins alone through
    return json_response({"key_id": key.id, "name": key.name, "prefix": key.prefix})


def _key_labels(request: web.Request) -> dict[str, str]:
    return {k.id: k.name for k in request.app[KEY_RING].keys.values()}


async def spend_series(request: web.Request) -> web.Response:
    _unknown_params(request, {"group_by", "bucket", "since", "until"})
    group = _choice(request, "group_by", dict.fromkeys(queries.SERIES_GROUPS), "team")
    bucket = _choice(request, "bucket", dict.fromkeys(queries.BUCKETS), "hour")
    default_hours = {"minute": 2, "hour": 24, "day": 30 * 24}[bucket]
    since, until = _window(request, default_hours)
    if (until - since) / queries.BUCKETS[bucket] > queries.MAX_BUCKETS:
        raise InvalidRequestError(
            f"the window holds more than {queries.MAX_BUCKETS} buckets: choose a larger bucket",
            param="bucket",
        )
    engine = request.app[REQUEST_LOG].engine
    data = await asyncio.to_thread(queries.spend_series, engine, group, bucket, since, until)
    if group == "key":
        labels = _key_labels(request)
        for series in data["series"]:
            series["label"] = labels.get(series["name"], series["name"])
    return json_response(data)


async def latency(request: web.Request) -> web.Response:
    _unknown_params(request, {"since", "until"})
    since, until = _window(request, 24)
    engine = request.app[REQUEST_LOG].engine
    rows = await asyncio.to_thread(queries.deployment_latency, engine, since, until)
    return json_response({"since": since, "until": until, "deployments": rows})


async def list_requests(request: web.Request) -> web.Response:
    _unknown_params(request, {"q", "route", "model", "team", "status", "before", "limit"})
    status = _text(request, "status")
    if status is not None and not STATUS_PATTERN.fullmatch(status):
        raise InvalidRequestError("status must be ok, error or an HTTP status", param="status")
    before = request.query.get("before")
    search = queries.RequestSearch(
        request_id=_text(request, "q"),
        route=_text(request, "route"),
        model=_text(request, "model"),
        team=_text(request, "team"),
        status=status,
        before=_number(request, "before", 0) if before else None,
        limit=_limit(request),
    )
    engine = request.app[REQUEST_LOG].engine
    rows = await asyncio.to_thread(queries.search_requests, engine, search)
    labels = _key_labels(request)
    for row in rows:
        row["key_name"] = labels.get(row["key_id"]) if row["key_id"] else None
    return json_response({"requests": rows})


async def one_request(request: web.Request) -> web.Response:
    request_id = request.match_info["request_id"]
    engine = request.app[REQUEST_LOG].engine
    row = await asyncio.to_thread(queries.request_row, engine, request_id)
    if row is None:  # unknown, or still in the ledger's batch (written within a second)
        raise NotFoundError(f"No ledger row for request {request_id!r} (yet)")
    row["key_name"] = _key_labels(request).get(row["key_id"]) if row["key_id"] else None
    return json_response(row)


async def list_evals(request: web.Request) -> web.Response:
    roots = request.app[EVAL_ROOTS]
    runs = await asyncio.to_thread(evals.find_runs, roots)
    return json_response({"roots": [str(r) for r in roots], "runs": [r.public() for r in runs]})


async def eval_report(request: web.Request) -> web.Response:
    _unknown_params(request, {"run"})
    wanted = request.query.getall("run", [])
    if not wanted or len(wanted) > 6:
        raise InvalidRequestError("name 1 to 6 runs: ?run=ID&run=ID", param="run")
    runs = {r.id: r for r in await asyncio.to_thread(evals.find_runs, request.app[EVAL_ROOTS])}
    for run_id in wanted:
        if run_id not in runs:
            raise InvalidRequestError(f"no evaluation run {run_id!r}", param="run")
    try:
        reports = [await asyncio.to_thread(evals.run_report, runs[r]) for r in wanted]
    except ImportError:  # pragma: no cover - numpy comes with the router and local extras
        raise GatewayError(
            "evaluation reports need numpy: pip install 'modelyard[router]'", status=501
        ) from None
    return json_response({"runs": reports})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/ui", page),
        web.get("/ui/", page),
        web.get("/ui/login", login_page),
        web.post("/ui/login", login),
        web.post("/ui/logout", logout),
        web.static("/ui/static", STATIC),  # type: ignore[list-item]
        web.get("/ui/api/me", me),
        web.get("/ui/api/spend_series", spend_series),
        web.get("/ui/api/latency", latency),
        web.get("/ui/api/requests", list_requests),
        web.get("/ui/api/requests/{request_id}", one_request),
        web.get("/ui/api/decisions/{request_id}", openai_api.routing_decision),
        web.get("/ui/api/evals", list_evals),
        web.get("/ui/api/evals/report", eval_report),
        web.get("/ui/api/dependency", admin.dependency),
        web.get("/ui/api/health", admin.health),
        web.get("/ui/api/routes", admin.list_routes),
        web.get("/ui/api/models", openai_api.list_models),
        web.post("/ui/api/chat/completions", openai_api.chat_completions),
    ]
