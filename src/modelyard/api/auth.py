"""Authentication of every request, in one middleware: a client key, an admin key, or none.

Health probes and ``/metrics`` are open; ``/admin/...`` needs an admin key;
everything else needs a client key unless the gateway is in its open embedded
mode (``governance.auth``). The dashboard's paths (``/ui``) have their own check,
a session cookie or an admin key (``ui.session.dashboard_auth``). The principal is
put on the request for the handlers: ``request[PRINCIPAL]``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from modelyard.api.context import KEY_RING, PRINCIPAL
from modelyard.errors import AuthenticationError, PermissionDeniedError
from modelyard.governance.keys import presented_key
from modelyard.ui.session import dashboard_auth

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def auth_middleware() -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS:
            response: web.StreamResponse = await handler(request)
            return response
        if path == "/ui" or path.startswith("/ui/"):
            return await dashboard_auth(request, handler)
        ring = request.app[KEY_RING]
        await ring.fresh()
        headers = request.headers
        key = presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        if path.startswith("/admin"):
            if key is None:
                raise AuthenticationError(
                    "The admin API needs an admin key: Authorization: Bearer <admin key>",
                    code="missing_api_key",
                )
            principal = ring.authenticate(key, strict=True)
            if not principal.admin:
                raise PermissionDeniedError("This key is not an admin key")
        else:
            principal = ring.authenticate(key)
        request[PRINCIPAL] = principal
        response = await handler(request)
        return response

    return middleware
