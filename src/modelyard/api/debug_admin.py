"""``GET /admin/debug/runtime``: what the gateway process holds right now, for leak hunting.

Answers ``{"tasks", "fds", "rss_bytes", "threads"}``: the asyncio tasks alive on the
server's event loop, the open file descriptors and the resident memory of the process
(from ``/proc/self``; ``null`` where there is no ``/proc``) and the Python threads. The
soak benchmark (``bench/soak.py``) reads it before and after a load to show that nothing
a stream opened is left behind. Admin keys only (``api.auth`` checks ``/admin``; the
handler checks again). Nothing here is per-request data: no tenant's content can leak.
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
from pathlib import Path

from aiohttp import web

from modelyard.api.body import json_response
from modelyard.api.context import PRINCIPAL
from modelyard.errors import PermissionDeniedError

PAGE = resource.getpagesize()


def _fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the listing's own descriptor
    except OSError:
        return None


def _rss_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


async def runtime(request: web.Request) -> web.Response:
    if not request[PRINCIPAL].admin:
        raise PermissionDeniedError("This key is not an admin key")
    return json_response(
        {
            "tasks": len(asyncio.all_tasks()),
            "fds": _fds(),
            "rss_bytes": _rss_bytes(),
            "threads": threading.active_count(),
        }
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/debug/runtime", runtime)]
