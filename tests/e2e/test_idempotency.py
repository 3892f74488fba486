"""Idempotency-Key end to end: a gateway process, the scripted OpenAI fake, the openai SDK.

Each test scripts the upstream's answers with ids of their own, so a replay is
told from a second call by the completion id as well as by the count of
upstream requests. The module runs twice: with the in-memory store (the
embedded default) and with Redis (``MODELYARD_REDIS_URL``), whose slots are
deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import redis
from aiohttp import web
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from modelyard.api.idempotency import HEADER, REPLAYED_HEADER, slot_name
from modelyard.storage.idempotency_redis import PREFIX
from tests.conftest import Gateway
from tests.e2e.governance.support import ENV, create_key
from tests.fakes.harness import Handler, LoopbackServer, Recorded, Recorder, openai_error, sse

REDIS = "redis://127.0.0.1:6379/0"
CHAT = "/v1/chat/completions"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
BYE: list[ChatCompletionMessageParam] = [{"role": "user", "content": "bye"}]
CONFIG = """
embedded_models: false
deployments:
  - name: m
    provider: openai-compatible
    model: m
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
routes:
  - name: once
    deployments: [m]
    retries: 0
"""

Upstream = tuple[LoopbackServer, Recorder]


def answer(delay: float = 0.0) -> tuple[str, Handler]:
    """A scripted chat answer with an id of its own, after ``delay`` seconds."""
    cid = f"chatcmpl-{uuid.uuid4().hex}"

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )

    return cid, handler


def streamed_answer() -> tuple[str, Handler]:
    cid = f"chatcmpl-{uuid.uuid4().hex}"

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, text in enumerate(["hel", "lo", None]):
            delta = {"content": text} if text else {}
            choice = {"index": 0, "delta": delta, "finish_reason": None if text else "stop"}
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": i, "model": "m"}
            await response.write(sse({**chunk, "choices": [choice]}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    return cid, handler


class Keys:
    """Two client keys of the module's gateway, and the slots their requests may leave."""

    def __init__(self, gw: Gateway) -> None:
        self.a, self.a_id = create_key(gw, "idem-a")
        self.b, self.b_id = create_key(gw, "idem-b")
        self.used: list[tuple[str, str]] = []

    def client(self, gw: Gateway, which: str = "a", **options: Any) -> openai.OpenAI:
        key = self.a if which == "a" else self.b
        return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, **options)

    def new(self, which: str = "a") -> dict[str, str]:
        value = f"idem-{uuid.uuid4().hex}"
        self.used.append((self.a_id if which == "a" else self.b_id, value))
        return {HEADER: value}


@pytest.fixture(scope="module", params=["memory", "redis"])
def setup(
    request: pytest.FixtureRequest,
    start_module_gateway: Callable[..., Gateway],
    fake_openai: Upstream,
) -> Iterator[tuple[Gateway, Keys]]:
    env = dict(ENV)
    if request.param == "redis":
        env["MODELYARD_REDIS_URL"] = REDIS
        with redis.Redis.from_url(REDIS) as client:
            client.ping()  # Redis must answer: no skip
    gw = start_module_gateway(CONFIG.format(url=fake_openai[0].url), env)
    keys = Keys(gw)
    yield gw, keys
    if request.param == "redis":
        with redis.Redis.from_url(REDIS) as client:
            for scope, value in keys.used:
                client.delete(PREFIX + slot_name(scope, CHAT, value))


@pytest.fixture
def gw(setup: tuple[Gateway, Keys]) -> Gateway:
    return setup[0]


@pytest.fixture
def keys(setup: tuple[Gateway, Keys]) -> Keys:
    return setup[1]


def test_a_retry_returns_the_first_completion_and_calls_the_model_once(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    cid, handler = answer()
    openai_upstream[1].script.append(handler)
    client = keys.client(gw)
    idem = keys.new()
    first = client.chat.completions.with_raw_response.create(
        model="once", messages=HI, extra_headers=idem
    )
    again = client.chat.completions.with_raw_response.create(
        model="once", messages=HI, extra_headers=idem
    )
    assert first.parse().id == again.parse().id == cid
    assert again.parse().choices[0].message.content == "hello"
    assert REPLAYED_HEADER.lower() not in first.headers
    assert again.headers[REPLAYED_HEADER] == "true"
    assert again.headers["x-modelyard-deployment"] == "m"
    assert len(openai_upstream[1].requests) == 1


def test_the_same_key_with_another_body_is_422(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    openai_upstream[1].script.append(answer()[1])
    client = keys.client(gw)
    idem = keys.new()
    client.chat.completions.create(model="once", messages=HI, extra_headers=idem)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="once", messages=BYE, extra_headers=idem)
    assert info.value.code == "idempotency_key_reused"
    assert len(openai_upstream[1].requests) == 1


def test_a_duplicate_while_the_first_runs_is_409(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    cid, slow = answer(delay=1.0)
    openai_upstream[1].script.append(slow)
    client = keys.client(gw)
    idem = keys.new()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            client.chat.completions.create, model="once", messages=HI, extra_headers=idem
        )
        deadline = time.monotonic() + 10
        while not openai_upstream[1].requests and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(openai.ConflictError) as info:
            client.chat.completions.create(model="once", messages=HI, extra_headers=idem)
        assert info.value.code == "idempotency_conflict"
        assert info.value.response.headers["retry-after"] == "1"
        assert first.result().id == cid
    again = client.chat.completions.create(model="once", messages=HI, extra_headers=idem)
    assert again.id == cid
    assert len(openai_upstream[1].requests) == 1


def test_two_api_keys_with_the_same_idempotency_key_do_not_collide(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    cid_a, handler_a = answer()
    cid_b, handler_b = answer()
    openai_upstream[1].script.extend([handler_a, handler_b])
    idem = keys.new("a")
    keys.used.append((keys.b_id, idem[HEADER]))
    a = keys.client(gw, "a").chat.completions.create(model="once", messages=HI, extra_headers=idem)
    b = keys.client(gw, "b").chat.completions.create(model="once", messages=HI, extra_headers=idem)
    assert (a.id, b.id) == (cid_a, cid_b)
    assert len(openai_upstream[1].requests) == 2


def test_a_failed_first_attempt_is_not_replayed(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    cid, handler = answer()
    openai_upstream[1].script.extend([openai_error(500, "The server had an error"), handler])
    client = keys.client(gw)
    idem = keys.new()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="once", messages=HI, extra_headers=idem)
    again = client.chat.completions.with_raw_response.create(
        model="once", messages=HI, extra_headers=idem
    )
    assert again.parse().id == cid
    assert REPLAYED_HEADER.lower() not in again.headers
    assert len(openai_upstream[1].requests) == 2


def test_a_stream_is_replayed_as_a_stream_of_the_same_events(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    cid, handler = streamed_answer()
    openai_upstream[1].script.append(handler)
    client = keys.client(gw)
    idem = keys.new()

    def run() -> list[dict[str, Any]]:
        stream = client.chat.completions.create(
            model="once", messages=HI, stream=True, extra_headers=idem
        )
        chunks: list[ChatCompletionChunk] = list(stream)
        return [chunk.model_dump() for chunk in chunks]

    first = run()
    assert [c["id"] for c in first] == [cid] * 3
    assert run() == first
    assert len(openai_upstream[1].requests) == 1


def test_requests_without_the_header_are_not_deduplicated(
    gw: Gateway, keys: Keys, openai_upstream: Upstream
) -> None:
    cid_1, first = answer()
    cid_2, second = answer()
    openai_upstream[1].script.extend([first, second])
    client = keys.client(gw)
    ids = [client.chat.completions.create(model="once", messages=HI).id for _ in range(2)]
    assert ids == [cid_1, cid_2]
