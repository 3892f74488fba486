"""Fixtures of the security tests: the real app in-process, its fake vendors, and a canary.

The gateway is ``create_app`` itself, served by aiohttp's ``TestServer`` in the
test's loop; its deployments point at the loopback fakes of ``tests.fakes``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from modelyard.app import create_app
from modelyard.settings import Settings
from tests.conftest import UPSTREAM_KEY
from tests.fakes.anthropic_upstream import create_fake_anthropic
from tests.fakes.canary_listener import CanaryListener
from tests.fakes.harness import LoopbackServer, Recorder

ADMIN_KEY = "adm-" + "s" * 28
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ENV = {"UP_KEY": UPSTREAM_KEY, "ANTHROPIC_API_KEY": "sk-ant-test", "MODELYARD_ADMIN_KEY": ADMIN_KEY}


def gateway_settings(data_dir: Path, openai_url: str, anthropic_url: str, **extra: Any) -> Settings:
    """Two remote deployments, each on one fake vendor, and a route over the first."""
    prices = {"input": 1, "output": 2}
    return Settings.model_validate(
        {
            "server": {"data_dir": str(data_dir)},
            "embedded_models": False,
            "deployments": [
                {
                    "name": "gpt",
                    "provider": "openai-compatible",
                    "model": "gpt-4o-mini",
                    "base_url": openai_url + "/v1",
                    "api_key_env": "UP_KEY",
                    "prices": prices,
                },
                {
                    "name": "claude",
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "base_url": anthropic_url,
                    "prices": prices,
                },
            ],
            "routes": [{"name": "chat", "deployments": ["gpt"]}],
            **extra,
        }
    )


@pytest.fixture
def canary() -> Iterator[CanaryListener]:
    with CanaryListener() as listener:
        yield listener


@pytest.fixture(scope="module")
def fake_anthropic_module() -> Iterator[tuple[LoopbackServer, Recorder]]:
    recorder = Recorder()
    with LoopbackServer(create_fake_anthropic(recorder)) as server:
        yield server, recorder


@pytest.fixture
def anthropic_upstream(
    fake_anthropic_module: tuple[LoopbackServer, Recorder],
) -> tuple[LoopbackServer, Recorder]:
    server, recorder = fake_anthropic_module
    recorder.requests.clear()
    recorder.script.clear()
    return server, recorder


@pytest.fixture
def gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest_asyncio.fixture
async def gateway(
    tmp_path: Path,
    gateway_env: None,
    openai_upstream: tuple[LoopbackServer, Recorder],
    anthropic_upstream: tuple[LoopbackServer, Recorder],
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = gateway_settings(tmp_path, openai_upstream[0].url, anthropic_upstream[0].url)
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client
