"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``).

Readiness checks the storage and that every provider can be reached.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from modelyard.api.context import REQUEST_LOG, ROUTER
from modelyard.errors import ModelyardError


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, Any] = {}
    ok = True
    try:
        await asyncio.to_thread(request.app[REQUEST_LOG].ping)
        checks["storage"] = "ok"
    except Exception as exc:  # any driver error means not ready
        ok = False
        checks["storage"] = f"error: {type(exc).__name__}"

    async def probe(provider: Any) -> tuple[str, str]:
        try:
            await asyncio.wait_for(provider.ready(), timeout=5)
            return provider.name, "ok"
        except (TimeoutError, ModelyardError, OSError) as exc:
            message = exc.message if hasattr(exc, "message") else type(exc).__name__
            return provider.name, f"error: {message}"

    results = await asyncio.gather(*(probe(p) for p in request.app[ROUTER].providers.values()))
    checks["providers"] = dict(results)
    ok = ok and all(v == "ok" for v in checks["providers"].values())
    body = {"status": "ready" if ok else "not_ready", "checks": checks}
    return web.Response(
        status=200 if ok else 503, body=orjson.dumps(body), content_type="application/json"
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
