"""Dashboard sessions: log in with an admin key, keep a random token in a cookie, log out.

The cookie (``modelyard_ui``: HttpOnly, SameSite=Strict, Path=/ui, Secure over
HTTPS) holds a random 256-bit token, never the key. The process keeps, per
token digest, the digest of the admin key that opened it and an expiry; each
request looks the key up again in the ``KeyRing``, so revoking or expiring the
key ends its sessions at once. Sessions live in this process's memory: a
restart logs everyone out, and replicas behind a balancer need sticky sessions.

``dashboard_auth`` is what ``api.auth`` runs for every ``/ui`` path: the login
page and the static assets are open; everything else needs a session or an
admin ``Authorization: Bearer`` key. A request that changes something and
comes with the cookie must come from the dashboard's own origin.

Not here: the pages and JSON endpoints (``api.ui_api``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from modelyard.api.context import KEY_RING, PRINCIPAL
from modelyard.errors import AuthenticationError, PermissionDeniedError
from modelyard.governance.keys import Principal, presented_key

COOKIE = "modelyard_ui"
SESSION_TTL = 12 * 3600.0
MAX_SESSIONS = 1000
OPEN_PATHS = frozenset({"/ui/login"})
STATIC_PREFIX = "/ui/static/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class Session:
    key_digest: str  # the admin key's HMAC digest, as the KeyRing indexes it
    expires: float


@dataclass
class Sessions:
    """The open sessions of this process, by the SHA-256 of their token."""

    ttl: float = SESSION_TTL
    limit: int = MAX_SESSIONS
    _by_token: dict[str, Session] = field(default_factory=dict)

    @staticmethod
    def _id(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def open(self, key_digest: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        self._by_token = {k: s for k, s in self._by_token.items() if s.expires > now}
        while len(self._by_token) >= self.limit:  # the oldest goes first
            del self._by_token[min(self._by_token, key=lambda k: self._by_token[k].expires)]
        token = secrets.token_urlsafe(32)
        self._by_token[self._id(token)] = Session(key_digest, now + self.ttl)
        return token

    def get(self, token: str, now: float | None = None) -> Session | None:
        session = self._by_token.get(self._id(token))
        if session is None:
            return None
        if session.expires <= (time.time() if now is None else now):
            self.close(token)
            return None
        return session

    def close(self, token: str) -> None:
        self._by_token.pop(self._id(token), None)


SESSIONS = web.AppKey("ui_sessions", Sessions)


def session_principal(request: web.Request) -> Principal | None:
    """The admin behind the request's session cookie, or None (no, expired or dead session)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    session = request.app[SESSIONS].get(token)
    if session is None:
        return None
    ring = request.app[KEY_RING]
    record = ring.keys.get(session.key_digest)
    now = time.time()
    if (
        record is None
        or record.role != "admin"
        or record.revoked is not None
        or (record.expires is not None and record.expires <= now)
    ):
        request.app[SESSIONS].close(token)
        return None
    team = ring.teams.get(record.team) if record.team is not None else None
    return Principal(record, team)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return True  # not a browser's cross-site request: those always say where from
    return urlsplit(origin).netloc == request.host


async def dashboard_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """Authenticate a ``/ui`` request: session cookie, else an admin bearer key."""
    path = request.path
    if path in OPEN_PATHS or path.startswith(STATIC_PREFIX):
        if request.method not in SAFE_METHODS and not _same_origin(request):
            raise PermissionDeniedError("A cross-site request to the dashboard is refused")
        response: web.StreamResponse = await handler(request)
        return response
    ring = request.app[KEY_RING]
    await ring.fresh()
    principal = session_principal(request)
    if principal is not None:
        if request.method not in SAFE_METHODS and not _same_origin(request):
            raise PermissionDeniedError("A cross-site request to the dashboard is refused")
    else:
        headers = request.headers
        key = presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        if key is not None:
            principal = ring.authenticate(key, strict=True)
            if not principal.admin:
                raise PermissionDeniedError("The dashboard needs an admin key")
        elif path.startswith("/ui/api/"):
            raise AuthenticationError(
                "The dashboard API needs a session (log in at /ui/login) "
                "or Authorization: Bearer <admin key>",
                code="missing_session",
            )
        else:
            return redirect("/ui/login")
    request[PRINCIPAL] = principal
    response = await handler(request)
    return response


async def login(request: web.Request) -> web.Response:
    """``POST /ui/login`` (form field ``key``): open a session for an admin key."""
    form = await request.post()
    key = form.get("key")
    if not isinstance(key, str) or not key.strip():
        return redirect("/ui/login?error=missing")
    ring = request.app[KEY_RING]
    await ring.fresh()
    try:
        principal = ring.authenticate(key.strip(), strict=True)
    except AuthenticationError:
        return redirect("/ui/login?error=invalid")
    if not principal.admin or principal.key is None:
        return redirect("/ui/login?error=not_admin")
    token = request.app[SESSIONS].open(principal.key.digest)
    response = redirect("/ui")
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(request.app[SESSIONS].ttl),
        path="/ui",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /ui/logout``: close the session and clear the cookie."""
    token = request.cookies.get(COOKIE)
    if token:
        request.app[SESSIONS].close(token)
    response = redirect("/ui/login")
    response.del_cookie(COOKIE, path="/ui")
    return response


def redirect(location: str) -> web.Response:
    """A 303 to a fixed dashboard path (never one taken from the request)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
