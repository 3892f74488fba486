"""``GET /admin/debug/runtime``: admin only, and its counts are the process's own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from modelyard.app import create_app
from modelyard.settings import Settings

ADMIN = {"Authorization": "Bearer admin-secret"}
HAS_PROC = os.path.isdir("/proc/self/fd")


@pytest_asyncio.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("MODELYARD_ADMIN_KEY", "admin-secret")
    settings = Settings.model_validate(
        {"server": {"data_dir": str(tmp_path)}, "embedded_models": False, "deployments": []}
    )
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def test_runtime_needs_the_admin_key(client: TestClient) -> None:
    assert (await client.get("/admin/debug/runtime")).status == 401
    bad = await client.get("/admin/debug/runtime", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401


async def test_runtime_counts_tasks_fds_and_memory(client: TestClient) -> None:
    resp = await client.get("/admin/debug/runtime", headers=ADMIN)
    assert resp.status == 200
    data = await resp.json()
    assert set(data) == {"tasks", "fds", "rss_bytes", "threads"}
    assert data["tasks"] >= 1  # at least the handler's own
    assert data["threads"] >= 1
    if HAS_PROC:
        assert 0 < data["fds"] <= len(os.listdir("/proc/self/fd")) + 5
        assert data["rss_bytes"] > 10_000_000
