"""The gateway app in-process: every malformed request gets a 4xx that names the problem."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from modelyard.app import create_app
from modelyard.settings import Settings
from tests.fakes.harness import free_port


@pytest_asyncio.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setenv("DEAD_KEY", "k")
    settings = Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path), "max_body_bytes": 2048},
            "embedded_models": False,
            "deployments": [
                {
                    "name": "dead",
                    "provider": "openai-compatible",
                    "model": "m",
                    "base_url": f"http://127.0.0.1:{free_port()}/v1",
                    "api_key_env": "DEAD_KEY",
                    "prices": {"input": 1, "output": 2},
                }
            ],
        }
    )
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def _error(resp: object) -> dict[str, object]:
    body = await resp.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    err: dict[str, object] = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in str(err["message"])
    return err


@pytest.mark.parametrize(
    ("data", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"", None, "empty"),
        (b'{"model": "dead"}', "messages", "Field required"),
        (b'{"model": "dead", "messages": []}', "messages", "at least 1"),
        (b'{"model": "dead", "messages": [{"role": "user"}]}', "messages[0]", "needs content"),
        (
            b'{"model": "dead", "messages": [{"role": "user", "content": "x"}], "n": 0}',
            "n",
            "greater than or equal",
        ),
        (
            b'{"model": "dead", "messages": [{"role": "user", "content": "x"}], "max_tokens": "a"}',
            "max_tokens",
            "valid integer",
        ),
        (
            b'{"model": "dead", "messages": [{"role": "user", "content": "x"}],'
            b' "tool_choice": {"type": "function", "function": {"name": "f"}}}',
            None,
            "not in tools",
        ),
        (
            b'{"model": "dead", "messages": [{"role": "user", "content": "x"}],'
            b' "response_format": {"type": "json_schema"}}',
            "response_format",
            "needs the json_schema",
        ),
    ],
)
async def test_malformed_chat_requests_get_400(
    client: TestClient, data: bytes, param: str | None, words: str
) -> None:
    resp = await client.post("/v1/chat/completions", data=data)
    assert resp.status == 400
    err = await _error(resp)
    assert err["param"] == param
    assert words in str(err["message"])
    assert resp.headers["X-Request-Id"]


async def test_body_over_limit_gets_413_with_content_length(client: TestClient) -> None:
    resp = await client.post("/v1/chat/completions", data=b"x" * 5000)
    assert resp.status == 413
    assert "2048" in str((await _error(resp))["message"])


async def test_chunked_body_over_limit_gets_413(client: TestClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    resp = await client.post("/v1/chat/completions", data=chunks())
    assert resp.status == 413
    await _error(resp)


async def test_unknown_model_404_unknown_path_404_wrong_method_405(client: TestClient) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status == 404
    assert (await _error(resp))["code"] == "model_not_found"
    resp = await client.get("/v1/nothing-here")
    assert resp.status == 404
    await _error(resp)
    resp = await client.get("/v1/chat/completions")
    assert resp.status == 405
    await _error(resp)


async def test_unreachable_upstream_is_503_and_not_ready(client: TestClient) -> None:
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "dead", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status == 503
    assert "dead" in str((await _error(resp))["message"])
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "dead", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status == 503  # nothing was streamed yet, so a real status
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["checks"]["storage"] == "ok"
    assert body["checks"]["providers"]["dead"].startswith("error")


async def test_embeddings_validation(client: TestClient) -> None:
    resp = await client.post("/v1/embeddings", json={"model": "dead", "input": []})
    assert resp.status == 400
    assert (await _error(resp))["param"] == "input"
