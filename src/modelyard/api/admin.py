"""The admin API: routes changed without a restart, deployment health, the vendor dependency report.

Every admin call needs ``Authorization: Bearer <admin key>``: a key made with
the admin role (the first one is generated and shown at first start) or
``MODELYARD_ADMIN_KEY``. ``api.auth`` checks it; ``_authorize`` keeps each
handler safe on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import func, select

from modelyard.api.body import json_response, read_json
from modelyard.api.context import PRINCIPAL, REQUEST_LOG, ROUTE_STORE, ROUTER
from modelyard.api.errors import validation_error
from modelyard.errors import InvalidRequestError, PermissionDeniedError
from modelyard.routing.config import RouteConfig
from modelyard.routing.policies import request_cost
from modelyard.routing.router import Router
from modelyard.storage.schema import requests_table


def _authorize(request: web.Request) -> None:
    if not request[PRINCIPAL].admin:
        raise PermissionDeniedError("This key is not an admin key")


async def list_routes(request: web.Request) -> web.Response:
    _authorize(request)
    routes = request.app[ROUTER].routes.values()
    return json_response({"routes": [r.model_dump(mode="json") for r in routes]})


async def put_route(request: web.Request) -> web.Response:
    _authorize(request)
    name = request.match_info["name"]
    body = await read_json(request)
    if body.setdefault("name", name) != name:
        raise InvalidRequestError("the body's name differs from the path's", param="name")
    try:
        route = RouteConfig.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    try:
        request.app[ROUTER].set_route(route)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="deployments") from None
    await asyncio.to_thread(request.app[ROUTE_STORE].save, name, route)
    return json_response(route.model_dump(mode="json"))


async def delete_route(request: web.Request) -> web.Response:
    _authorize(request)
    name = request.match_info["name"]
    request.app[ROUTER].delete_route(name)
    await asyncio.to_thread(request.app[ROUTE_STORE].save, name, None)
    return web.Response(status=204)


async def health(request: web.Request) -> web.Response:
    _authorize(request)
    return json_response({"deployments": request.app[ROUTER].health.snapshot()})


async def dependency(request: web.Request) -> web.Response:
    """Per route: the share of requests, tokens and spend by vendor, and single-vendor risk."""
    _authorize(request)
    try:
        hours = float(request.query.get("hours", "24"))
    except ValueError:
        raise InvalidRequestError("hours must be a number", param="hours") from None
    if not 0 < hours <= 24 * 366:
        raise InvalidRequestError("hours must be between 0 and 8784", param="hours")
    router = request.app[ROUTER]
    rows = await asyncio.to_thread(_usage_rows, request, time.time() - hours * 3600)
    return json_response({"window_hours": hours, "routes": dependency_report(router, rows)})


def _usage_rows(request: web.Request, since: float) -> list[tuple[str, str, str, int, int, int]]:
    t = requests_table
    query = (
        select(
            t.c.model,
            t.c.deployment,
            t.c.provider,
            func.count(),
            func.sum(t.c.input_tokens),
            func.sum(t.c.output_tokens),
        )
        .where(t.c.ts >= since, t.c.deployment.is_not(None), t.c.status < 400)
        .group_by(t.c.model, t.c.deployment, t.c.provider)
    )
    with request.app[REQUEST_LOG].engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def dependency_report(
    router: Router, rows: list[tuple[str, str, str, int, int, int]]
) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: {"requests": 0, "tokens": 0, "spend_usd": 0.0})
    )
    for called, deployment, vendor, count, tokens_in, tokens_out in rows:
        dep = router.deployments.get(deployment)
        cell = totals[called][vendor]
        cell["requests"] += count
        cell["tokens"] += (tokens_in or 0) + (tokens_out or 0)
        if dep is not None and dep.prices is not None:
            cell["spend_usd"] += request_cost(dep, tokens_in or 0, tokens_out or 0)
    now = time.monotonic()
    out = []
    for name, route in router.routes.items():
        vendors = {m.name: router.deployments[m.name].provider for m in route.deployments}
        healthy = {n for n in vendors if router.health[n].blocked(now) is None}
        by_vendor = totals.get(name, {})
        sums = {k: sum(v[k] for v in by_vendor.values()) or 1 for k in ("requests", "tokens")}
        spend = sum(v["spend_usd"] for v in by_vendor.values()) or 1.0
        out.append(
            {
                "route": name,
                "vendors": {
                    vendor: {
                        **cell,
                        "request_share": cell["requests"] / sums["requests"],
                        "token_share": cell["tokens"] / sums["tokens"],
                        "spend_share": cell["spend_usd"] / spend,
                    }
                    for vendor, cell in by_vendor.items()
                },
                "survives_loss_of": {
                    vendor: any(vendors[n] != vendor for n in healthy)
                    for vendor in sorted(set(vendors.values()))
                },
            }
        )
    return out


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/routes", list_routes),
        web.put("/admin/routes/{name}", put_route),
        web.delete("/admin/routes/{name}", delete_route),
        web.get("/admin/health", health),
        web.get("/admin/dependency", dependency),
    ]
