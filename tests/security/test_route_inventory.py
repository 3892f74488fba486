"""Every route the gateway registers, walked: who may call it, and whether it checks its body.

The app is the real one (``create_app``), in-process, with a client key in
its store, so the open embedded mode is off. Its routes are read from
``app.router.routes()``, not from a list kept by hand, so a route added later
is walked too: without a row in ``route_matrix.MATRIX`` the inventory fails,
and until it has one it is still called without a key and must refuse.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from modelyard.api.context import GOVERNANCE_STORE
from modelyard.app import create_app
from modelyard.governance.keys import NO_LIMITS
from tests.fakes.harness import LoopbackServer, Recorder
from tests.security.conftest import ADMIN_KEY, gateway_settings
from tests.security.route_matrix import (
    BODY_EXEMPT,
    EMPTY_BODY_OK,
    EXPECT,
    FORM_ROUTES,
    MATRIX,
    OPEN,
    ROLES,
    Call,
    Expect,
    Role,
)

Client = TestClient[web.Request, web.Application]
GARBAGE: list[tuple[str, bytes]] = [
    ("empty object", b"{}"),
    ("not JSON", b"\x00{not json"),
    ("a JSON array", b"[1, 2]"),
    ("a JSON string", b'"x"'),
    ("wrong types", b'{"model": 5, "messages": "x", "input": {}, "deployments": 3, "name": []}'),
]


class Keyed:
    """The app's client and one credential per role."""

    def __init__(self, client: Client, keys: dict[Role, str | None]):
        self.client = client
        self.keys = keys

    def headers(self, role: Role, extra: dict[str, str] | None = None) -> dict[str, str]:
        key = self.keys[role]
        auth = {} if key is None else {"Authorization": f"Bearer {key}"}
        return {**auth, **(extra or {})}


@pytest_asyncio.fixture
async def keyed(
    tmp_path: Path,
    gateway_env: None,
    openai_upstream: tuple[LoopbackServer, Recorder],
    anthropic_upstream: tuple[LoopbackServer, Recorder],
) -> AsyncIterator[Keyed]:
    settings = gateway_settings(tmp_path, openai_upstream[0].url, anthropic_upstream[0].url)
    app = create_app(settings)
    store = app[GOVERNANCE_STORE]
    store.put_team("inv", NO_LIMITS)
    store.put_team("other", NO_LIMITS)
    team, _ = store.create_key(name="team", team="inv")
    revoked, record = store.create_key(name="revoked", team="inv")
    store.revoke_key(record.id)
    revoked_admin, record = store.create_key(name="old admin", team=None, role="admin")
    store.revoke_key(record.id)
    keys: dict[Role, str | None] = {
        "none": None,
        "invalid": "sk-my-" + "0" * 40,
        "revoked": revoked,
        "revoked_admin": revoked_admin,
        "team": team,
        "admin": ADMIN_KEY,
    }
    async with TestClient(TestServer(app)) as client:
        yield Keyed(client, keys)


def _registered(app: web.Application) -> set[tuple[str, str]]:
    """(method, canonical path) of every route; HEAD is its GET's twin and is checked with it."""
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}  # type: ignore[union-attr]


def _concrete(canonical: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", canonical) + ("/app.css" if canonical == "/ui/static" else "")


class Answer(NamedTuple):
    status: int
    location: str
    sets_cookie: bool
    text: str

    @property
    def login_refusal(self) -> bool:
        """The auth layer's answer to a browser without a session (a logout sets a cookie)."""
        return self.status in (302, 303) and self.location == "/ui/login" and not self.sets_cookie


async def _call(
    keyed: Keyed, method: str, call: Call, role: Role, data: bytes | None = None
) -> Answer:
    kw: dict[str, Any] = {"headers": keyed.headers(role, call.headers), "allow_redirects": False}
    if data is not None:
        kw["data"], kw["headers"]["Content-Type"] = data, "application/json"
    elif call.form is not None:
        kw["data"] = call.form
    elif call.body is not None:
        kw["json"] = call.body
    resp = await keyed.client.request(method, call.path, **kw)
    location, cookie = resp.headers.get("Location", ""), "Set-Cookie" in resp.headers
    return Answer(resp.status, location, cookie, await resp.text())


def _meets(expect: Expect, answer: Answer) -> bool:
    if expect == "login":
        return answer.login_refusal
    if expect == "allowed":
        status = answer.status
        return status not in (401, 403) and status < 500 and not answer.login_refusal
    return answer.status == expect


def _missing_rows(app: web.Application) -> set[tuple[str, str]]:
    return _registered(app) - set(MATRIX)


async def test_every_route_has_a_matrix_row(keyed: Keyed) -> None:
    missing = _missing_rows(keyed.client.app)
    assert not missing, f"routes without a row in tests/security/route_matrix.py: {missing}"
    stale = set(MATRIX) - _registered(keyed.client.app)
    assert not stale, f"rows for routes the gateway no longer has: {stale}"


async def test_a_new_route_without_a_row_is_caught(
    tmp_path: Path, gateway_env: None, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    async def new_thing(request: web.Request) -> web.Response:
        return web.Response()

    url = openai_upstream[0].url
    app = create_app(gateway_settings(tmp_path, url, url))
    app.router.add_post("/v1/new_thing", new_thing)
    async with TestClient(TestServer(app)):  # started and stopped, so its storage is closed
        assert ("POST", "/v1/new_thing") in _missing_rows(app)


def test_the_open_routes_are_the_allow_list() -> None:
    marked_open = {route for route, call in MATRIX.items() if call.kind == "open"}
    assert marked_open == set(OPEN), "a route is open only if OPEN says why"


async def test_no_route_outside_the_allow_list_answers_without_a_key(keyed: Keyed) -> None:
    """Walks the app's own routes, so a route missing from the matrix is caught here too."""
    answered = []
    for method, canonical in sorted(_registered(keyed.client.app)):
        if (method, canonical) in OPEN:
            continue
        call = MATRIX.get((method, canonical)) or Call("client", _concrete(canonical), {})
        unkeyed: tuple[Role, ...] = ("none", "invalid", "revoked", "revoked_admin")
        for role in unkeyed:
            answer = await _call(keyed, method, call, role)
            if not (answer.status == 401 or (role == "none" and answer.login_refusal)):
                answered.append((method, canonical, role, answer.status))
    assert not answered, f"routes that answered without a valid key: {answered}"


def _ids(routes: list[tuple[str, str]]) -> list[str]:
    return [f"{method} {path}" for method, path in routes]


@pytest.mark.parametrize(("method", "canonical"), sorted(MATRIX), ids=_ids(sorted(MATRIX)))
async def test_role_matrix(keyed: Keyed, method: str, canonical: str) -> None:
    call = MATRIX[(method, canonical)]
    wrong = []
    for role in ROLES:
        answer = await _call(keyed, method, call, role)
        expect = EXPECT[call.kind][role]
        if not _meets(expect, answer):
            wrong.append(f"{role}: expected {expect}, got {answer.status} {answer.text[:200]}")
    assert not wrong, "\n".join(wrong)


def _body_routes() -> list[tuple[str, str]]:
    return sorted(r for r in MATRIX if r[0] in ("POST", "PUT") and r not in BODY_EXEMPT)


@pytest.mark.parametrize(("method", "canonical"), _body_routes(), ids=_ids(_body_routes()))
async def test_every_body_is_validated(keyed: Keyed, method: str, canonical: str) -> None:
    """``{}`` and garbage get a 4xx whose message names the problem, never a 5xx."""
    call = MATRIX[(method, canonical)]
    role: Role = "team" if call.kind == "client" else "admin"
    for label, data in GARBAGE:
        if data == b"{}" and (method, canonical) in EMPTY_BODY_OK:
            continue
        answer = await _call(keyed, method, call, role, data)
        if (method, canonical) in FORM_ROUTES:
            form = FORM_ROUTES[(method, canonical)]
            assert answer.status == 303 and answer.location.startswith(form), label
            continue
        assert 400 <= answer.status < 500, (label, answer.status, answer.text[:300])
        assert len(re_message(answer.text)) > 10, (label, answer.text[:300])


def re_message(text: str) -> str:
    """The error message of an OpenAI- or Anthropic-shaped error body."""
    found = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    return found.group(1) if found else ""


def test_registered_routes_cover_no_catch_all() -> None:
    """A catch-all route would make the inventory meaningless: every path would be a route."""
    assert not any("{tail" in path or path.endswith("/*") for _, path in MATRIX)
