"""Admin API in-process, in front of the loopback OpenAI fake: routes, health, dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from modelyard.api.context import REQUEST_LOG
from modelyard.app import create_app
from modelyard.settings import Settings
from tests.conftest import UPSTREAM_KEY
from tests.fakes.harness import LoopbackServer, Recorder

ADMIN = {"Authorization": "Bearer admin-secret"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def _settings(tmp_path: Path, url: str) -> Settings:
    dep = {"provider": "openai-compatible", "model": "m", "base_url": url, "api_key_env": "UP_KEY"}
    return Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path)},
            "embedded_models": False,
            "deployments": [
                {"name": "a", **dep, "prices": {"input": 1, "output": 2}},
                {"name": "b", **dep, "provider": "vllm", "prices": {"input": 0, "output": 0}},
            ],
            "routes": [{"name": "chat", "deployments": ["a", "b"]}],
        }
    )


@pytest_asyncio.fixture
async def client(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    openai_upstream: tuple[LoopbackServer, Recorder],
) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("UP_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("MODELYARD_ADMIN_KEY", "admin-secret")
    settings = _settings(tmp_path, openai_upstream[0].url + "/v1")
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def test_admin_route_changes_outlive_a_restart(
    client: TestClient, tmp_path: Path, openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    put = await client.put("/admin/routes/kept", headers=ADMIN, json={"deployments": ["b"]})
    assert put.status == 200
    assert (await client.delete("/admin/routes/chat", headers=ADMIN)).status == 204
    restarted = create_app(_settings(tmp_path, openai_upstream[0].url + "/v1"))
    async with TestClient(TestServer(restarted)) as again:
        listed = await (await again.get("/admin/routes", headers=ADMIN)).json()
        assert {r["name"] for r in listed["routes"]} == {"kept"}
        resp = await again.post("/v1/chat/completions", json={"model": "kept", **CHAT})
        assert resp.headers["X-Modelyard-Deployment"] == "b"


async def test_admin_needs_the_admin_key(client: TestClient) -> None:
    assert (await client.get("/admin/routes")).status == 401
    bad = await client.get("/admin/routes", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    assert (await client.get("/admin/routes", headers=ADMIN)).status == 200


async def test_routes_change_without_a_restart(client: TestClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "new", **CHAT})
    assert resp.status == 404
    put = await client.put(
        "/admin/routes/new", headers=ADMIN, json={"deployments": ["b", "a"], "policy": "fallback"}
    )
    assert put.status == 200
    resp = await client.post("/v1/chat/completions", json={"model": "new", **CHAT})
    assert resp.status == 200
    assert resp.headers["X-Modelyard-Deployment"] == "b"
    listed = await (await client.get("/admin/routes", headers=ADMIN)).json()
    assert {r["name"] for r in listed["routes"]} == {"chat", "new"}
    assert (await client.delete("/admin/routes/new", headers=ADMIN)).status == 204
    resp = await client.post("/v1/chat/completions", json={"model": "new", **CHAT})
    assert resp.status == 404


async def test_invalid_route_is_refused_naming_the_problem(client: TestClient) -> None:
    resp = await client.put("/admin/routes/x", headers=ADMIN, json={"deployments": ["ghost"]})
    assert resp.status == 400
    assert "ghost" in (await resp.json())["error"]["message"]
    resp = await client.put("/admin/routes/x", headers=ADMIN, json={"deployments": []})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "deployments"
    resp = await client.put(
        "/admin/routes/x", headers=ADMIN, json={"deployments": ["a"], "policy": "random"}
    )
    assert resp.status == 400


async def test_decision_and_dependency_report(client: TestClient) -> None:
    for _ in range(3):
        resp = await client.post("/v1/chat/completions", json={"model": "chat", **CHAT})
        assert resp.status == 200
    rid = resp.headers["X-Request-Id"]
    decision = await (await client.get(f"/v1/routing/decisions/{rid}")).json()
    assert decision["route"] == "chat" and decision["chosen"] == "a"
    assert decision["candidates"] == ["a", "b"] and decision["order"] == ["a", "b"]
    assert [(a["deployment"], a["outcome"]) for a in decision["attempts"]] == [("a", "ok")]
    assert (await client.get("/v1/routing/decisions/req_unknown")).status == 404

    await client.app[REQUEST_LOG].flush()
    report = await (await client.get("/admin/dependency?hours=1", headers=ADMIN)).json()
    (chat,) = [r for r in report["routes"] if r["route"] == "chat"]
    cell = chat["vendors"]["openai-compatible"]
    assert cell["requests"] == 3 and cell["request_share"] == 1.0
    assert cell["spend_usd"] == pytest.approx(3 * (11 * 1 + 7 * 2) / 1e6)
    # losing one vendor leaves the other: both answer "still served"
    assert chat["survives_loss_of"] == {"openai-compatible": True, "vllm": True}
    bad = await client.get("/admin/dependency?hours=abc", headers=ADMIN)
    assert bad.status == 400
