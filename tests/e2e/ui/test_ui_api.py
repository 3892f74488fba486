"""The dashboard's server side in-process: login, sessions, and the JSON endpoints' checks.

The browser scenario is ``test_dashboard.py``; these pin what a browser cannot show:
the cookie's attributes, refusals without a session, and a 400 naming each bad parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from modelyard.api.context import GOVERNANCE_STORE, REQUEST_LOG
from modelyard.app import create_app
from modelyard.settings import Settings
from modelyard.ui.session import COOKIE, Sessions
from tests.conftest import UPSTREAM_KEY
from tests.fakes.harness import LoopbackServer, Recorder

ADMIN_KEY = "admin-secret-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
API_PATHS = [
    "/ui/api/me",
    "/ui/api/spend_series",
    "/ui/api/latency",
    "/ui/api/requests",
    "/ui/api/requests/req_x",
    "/ui/api/decisions/req_x",
    "/ui/api/evals",
    "/ui/api/evals/report?run=x",
    "/ui/api/dependency",
    "/ui/api/health",
    "/ui/api/routes",
    "/ui/api/models",
]


def _settings(tmp_path: Path, url: str) -> Settings:
    dep = {"provider": "openai-compatible", "model": "m", "base_url": url, "api_key_env": "UP_KEY"}
    return Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path)},
            "embedded_models": False,
            "deployments": [{"name": "a", **dep, "prices": {"input": 1, "output": 2}}],
            "routes": [{"name": "chat", "deployments": ["a"]}],
        }
    )


@pytest_asyncio.fixture
async def client(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    openai_upstream: tuple[LoopbackServer, Recorder],
) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("UP_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("MODELYARD_ADMIN_KEY", ADMIN_KEY)
    settings = _settings(tmp_path, openai_upstream[0].url + "/v1")
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def _login(client: TestClient, key: str = ADMIN_KEY) -> str:
    resp = await client.post("/ui/login", data={"key": key}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    return resp.headers["Location"]


async def test_api_refuses_without_a_session(client: TestClient) -> None:
    for path in API_PATHS:
        resp = await client.get(path)
        assert resp.status == 401, path
        assert (await resp.json())["error"]["code"] == "missing_session"
    chat = await client.post("/ui/api/chat/completions", json=CHAT)
    assert chat.status == 401


async def test_pages_redirect_to_login_and_assets_are_open(client: TestClient) -> None:
    resp = await client.get("/ui", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/login"
    login = await client.get("/ui/login")
    assert login.status == 200 and "Admin key" in await login.text()
    assert "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]
    for asset in ("charts.js", "core.js", "app.css", "index.html"):
        assert (await client.get(f"/ui/static/{asset}")).status == 200, asset
    for escape in ("/ui/static/../session.py", "/ui/static/%2e%2e/session.py"):
        resp = await client.get(escape, allow_redirects=False)
        assert "dashboard_auth" not in await resp.text(), escape


async def test_login_sets_a_strict_httponly_session_cookie(client: TestClient) -> None:
    resp = await client.post("/ui/login", data={"key": ADMIN_KEY}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui"
    cookie = resp.cookies[COOKIE]
    assert len(cookie.value) >= 40 and ADMIN_KEY not in cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert int(cookie["max-age"]) > 0
    me = await client.get("/ui/api/me")
    assert me.status == 200
    assert (await me.json())["key_id"] == "admin-env"
    page = await client.get("/ui")
    assert page.status == 200 and "Playground" in await page.text()


async def test_login_refuses_bad_and_non_admin_keys(client: TestClient) -> None:
    assert await _login(client, "sk-my-wrong") == "/ui/login?error=invalid"
    assert await _login(client, "  ") == "/ui/login?error=missing"
    assert (await client.put("/admin/teams/t", headers=ADMIN, json={})).status == 200
    made = await client.post("/admin/keys", headers=ADMIN, json={"name": "u", "team": "t"})
    assert made.status == 201
    user_key = (await made.json())["key"]
    assert await _login(client, user_key) == "/ui/login?error=not_admin"
    assert (await client.get("/ui/api/me")).status == 401
    as_user = await client.get("/ui/api/me", headers={"Authorization": f"Bearer {user_key}"})
    assert as_user.status == 403


async def test_logout_ends_the_session(client: TestClient) -> None:
    await _login(client)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/ui"))[COOKIE].value
    out = await client.post("/ui/logout", allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/ui/login"
    # the old token is dead on the server, not only forgotten by this browser
    stale = await client.get("/ui/api/me", cookies={COOKIE: token})
    assert stale.status == 401


async def test_cross_site_posts_with_the_cookie_are_refused(client: TestClient) -> None:
    await _login(client)
    evil = {"Origin": "https://evil.example"}
    resp = await client.post("/ui/api/chat/completions", json=CHAT, headers=evil)
    assert resp.status == 403
    same = await client.post(
        "/ui/api/chat/completions", json=CHAT, headers={"Origin": str(client.make_url(""))}
    )
    assert same.status == 200
    assert (await client.post("/ui/login", data={"key": ADMIN_KEY}, headers=evil)).status == 403


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/ui/api/spend_series?group_by=nope", "group_by"),
        ("/ui/api/spend_series?bucket=week", "bucket"),
        ("/ui/api/spend_series?since=yesterday", "since"),
        ("/ui/api/spend_series?until=nan", "until"),
        ("/ui/api/spend_series?since=10&until=5", "since"),
        ("/ui/api/spend_series?bucket=day&since=0&until=40000000", "since"),
        ("/ui/api/spend_series?bucket=minute&since=0&until=3000000", "bucket"),
        ("/ui/api/spend_series?colour=red", "colour"),
        ("/ui/api/latency?since=-1", "since"),
        ("/ui/api/requests?limit=0", "limit"),
        ("/ui/api/requests?limit=many", "limit"),
        ("/ui/api/requests?status=fine", "status"),
        ("/ui/api/requests?before=x", "before"),
        ("/ui/api/requests?route=" + "r" * 201, "route"),
        ("/ui/api/evals/report", "run"),
        ("/ui/api/evals/report?run=unknown", "run"),
        ("/ui/api/dependency?hours=x", "hours"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    client: TestClient, path: str, param: str
) -> None:
    resp = await client.get(path, headers=ADMIN)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["param"] == param


async def test_spend_series_and_request_search_read_the_ledger(client: TestClient) -> None:
    chat = await client.post("/v1/chat/completions", json=CHAT, headers=ADMIN)
    assert chat.status == 200
    request_id = chat.headers["X-Request-Id"]
    await client.app[REQUEST_LOG].flush()
    series = await (await client.get("/ui/api/spend_series?group_by=route", headers=ADMIN)).json()
    # 11 prompt tokens at $1/M and 7 completion tokens at $2/M
    assert series["total_micros"] == 25
    assert [(s["name"], s["total_micros"]) for s in series["series"]] == [("chat", 25)]
    assert sum(series["series"][0]["cost_micros"]) == 25
    found = await (await client.get(f"/ui/api/requests?q={request_id[:-2]}", headers=ADMIN)).json()
    assert [r["id"] for r in found["requests"]] == [request_id]
    assert found["requests"][0]["cost_micros"] == 25
    none = await (await client.get("/ui/api/requests?status=error", headers=ADMIN)).json()
    assert none["requests"] == []
    row = await (await client.get(f"/ui/api/requests/{request_id}", headers=ADMIN)).json()
    assert row["deployment"] == "a"
    decision = await client.get(f"/ui/api/decisions/{request_id}", headers=ADMIN)
    assert (await decision.json())["chosen"] == "a"
    lat = await (await client.get("/ui/api/latency", headers=ADMIN)).json()
    assert [(d["deployment"], d["answered"], d["attempts"]) for d in lat["deployments"]] == [
        ("a", 1, 1)
    ]
    assert lat["deployments"][0]["error_rate"] == 0
    assert lat["deployments"][0]["p99_ms"] is not None


def test_sessions_expire_and_stay_bounded() -> None:
    sessions = Sessions(ttl=10, limit=2)
    first = sessions.open("d1", now=0)
    assert sessions.get(first, now=5) is not None
    assert sessions.get(first, now=11) is None
    a, b, c = (sessions.open(d, now=20 + i) for i, d in enumerate("abc"))
    assert sessions.get(a, now=25) is None  # the oldest made room
    assert sessions.get(b, now=25) is not None and sessions.get(c, now=25) is not None


async def test_eval_runs_are_found_and_compared(client: TestClient, tmp_path: Path) -> None:
    from tests.e2e.ui.support import write_eval_run

    write_eval_run(tmp_path / "evals" / "math", ["small", "big"], quality={"small": 0.5})
    runs = await (await client.get("/ui/api/evals", headers=ADMIN)).json()
    assert [r["name"] for r in runs["runs"]] == ["math"]
    run_id = runs["runs"][0]["id"]
    report = await (await client.get(f"/ui/api/evals/report?run={run_id}", headers=ADMIN)).json()
    models = {m["model"]: m for m in report["runs"][0]["models"]}
    assert models["small"]["quality"] == 0.5 and models["big"]["quality"] == 1.0
    assert report["runs"][0]["quality_cost_svg"].startswith("<svg")


async def test_revoking_the_admin_key_ends_its_sessions(client: TestClient) -> None:
    store = client.app[GOVERNANCE_STORE]
    key, record = store.create_key(name="ops", team=None, role="admin")
    await _login(client, key)
    me = await client.get("/ui/api/me")
    assert (await me.json())["key_id"] == record.id
    assert (await client.delete(f"/admin/keys/{record.id}", headers=ADMIN)).status == 204
    assert (await client.get("/ui/api/me")).status == 401
