"""Idempotency-Key: the stores (memory and a real Redis) and the middleware in-process.

The middleware runs here in a small app of its own: the gateway's error
middleware, a stand-in for authentication that sets the principal from a
header, and handlers that count their calls, so every rule is pinned without
an upstream. ``tests/e2e/test_idempotency.py`` runs the real gateway.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from modelyard.api.context import ANSWER_STATUS, MAX_BODY_BYTES, PRINCIPAL
from modelyard.api.errors import gateway_middleware
from modelyard.api.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    idempotency_middleware,
    tap_streams,
)
from modelyard.errors import RateLimitedError, UpstreamError
from modelyard.governance.keys import ANONYMOUS, NO_LIMITS, KeyRecord, Principal
from modelyard.storage.idempotency import (
    IdempotencyStore,
    MemoryIdempotencyStore,
    StoredAnswer,
    create_idempotency_store,
)
from modelyard.storage.idempotency_redis import RedisIdempotencyStore
from modelyard.storage.redis import connect_redis
from tests.fakes.harness import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
FP_A = "a" * 64
FP_B = "b" * 64
ANSWER = StoredAnswer(200, (("Content-Type", "application/json"),), b'{"id": "x"}\n', False)


def owner() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------- stores


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore()
        return
    client = connect_redis(REDIS_URL)
    await client.ping()  # Redis must answer: no skip
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisIdempotencyStore(client, prefix=prefix)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_the_first_claim_wins_and_later_ones_see_it_running(store: IdempotencyStore) -> None:
    first = owner()
    assert await store.claim("s", FP_A, first) is None
    held = await store.claim("s", FP_A, owner())
    assert held is not None
    assert (held.fingerprint, held.answer) == (FP_A, None)


async def test_a_finished_answer_comes_back_byte_for_byte(store: IdempotencyStore) -> None:
    first = owner()
    await store.claim("s", FP_A, first)
    body = bytes(range(256)) + b"\n\n" + b"data: [DONE]\n\n"  # any bytes, newlines included
    answer = StoredAnswer(201, (("Content-Type", "text/event-stream"), ("X-A", "b")), body, True)
    await store.finish("s", first, FP_A, answer)
    held = await store.claim("s", FP_B, owner())
    assert held is not None
    assert held.fingerprint == FP_A
    assert held.answer == answer


async def test_a_released_slot_can_be_claimed_again(store: IdempotencyStore) -> None:
    first = owner()
    await store.claim("s", FP_A, first)
    await store.release("s", first)
    assert await store.claim("s", FP_B, owner()) is None


async def test_only_the_owner_finishes_or_releases(store: IdempotencyStore) -> None:
    first = owner()
    await store.claim("s", FP_A, first)
    await store.release("s", owner())
    await store.finish("s", owner(), FP_A, ANSWER)
    held = await store.claim("s", FP_A, owner())
    assert held is not None
    assert held.answer is None  # still the first request's running mark


async def test_slots_are_independent(store: IdempotencyStore) -> None:
    assert await store.claim("s1", FP_A, owner()) is None
    assert await store.claim("s2", FP_A, owner()) is None


async def test_of_concurrent_claims_exactly_one_wins(store: IdempotencyStore) -> None:
    results = await asyncio.gather(*(store.claim("race", FP_A, owner()) for _ in range(20)))
    assert sum(r is None for r in results) == 1


async def test_redis_marks_expire() -> None:
    client = connect_redis(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        store = RedisIdempotencyStore(client, prefix=prefix, ttl=0.05, running_ttl=0.05)
        first = owner()
        await store.claim("s", FP_A, first)
        assert 0 < await client.pttl(prefix + "s") <= 50
        await asyncio.sleep(0.1)
        assert await store.claim("s", FP_A, owner()) is None
    finally:
        await client.delete(prefix + "s")
        await client.aclose()


def test_the_embedded_default_keeps_slots_in_memory() -> None:
    assert isinstance(create_idempotency_store(None), MemoryIdempotencyStore)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_slots_expire() -> None:
    clock = Clock()
    store = MemoryIdempotencyStore(ttl=100, running_ttl=10, clock=clock)
    first = owner()
    await store.claim("s", FP_A, first)
    clock.now = 11  # the running mark of a request that never settled lapses
    assert await store.claim("s", FP_A, owner()) is None
    second = owner()
    await store.claim("t", FP_A, second)
    await store.finish("t", second, FP_A, ANSWER)
    clock.now = 110
    assert await store.claim("t", FP_A, owner()) is not None
    clock.now = 112
    assert await store.claim("t", FP_A, owner()) is None


async def test_memory_is_bounded_in_entries_and_bytes() -> None:
    store = MemoryIdempotencyStore(max_entries=3, max_bytes=100)
    for i in range(5):
        await store.claim(f"s{i}", FP_A, owner())
    assert len(store) == 3
    assert await store.claim("s0", FP_A, owner()) is None  # the oldest went first
    big = StoredAnswer(200, (), b"x" * 60, False)
    for slot in ("b1", "b2"):
        mine = owner()
        await store.claim(slot, FP_A, mine)
        await store.finish(slot, mine, FP_A, big)
    assert await store.claim("b1", FP_A, owner()) is None  # evicted to stay under 100 bytes
    held = await store.claim("b2", FP_A, owner())
    assert held is not None
    assert held.answer == big
    huge = owner()
    await store.claim("h", FP_A, huge)
    await store.finish("h", huge, FP_A, StoredAnswer(200, (), b"x" * 101, False))
    assert await store.claim("h", FP_A, owner()) is None  # too large to keep: released


# ------------------------------------------------------------ middleware


class Handlers:
    """Handlers that count their calls; ``gate`` holds the slow one until the test opens it."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    def app(self, store: IdempotencyStore) -> web.Application:
        @web.middleware
        async def principal(request: web.Request, handler: Any) -> web.StreamResponse:
            key = request.headers.get("X-Key")
            request[PRINCIPAL] = ANONYMOUS if key is None else Principal(record(key), None)
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(
            middlewares=[gateway_middleware("t"), principal, idempotency_middleware(store)]
        )
        app.on_response_prepare.append(tap_streams)
        app[MAX_BODY_BYTES] = 1 << 20
        routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
            "/v1/json": self.json,
            "/v1/slow": self.slow,
            "/v1/stream": self.stream,
            "/v1/broken-stream": self.broken_stream,
            "/v1/upstream-500": self.fail(UpstreamError("boom", status=500)),
            "/v1/429": self.fail(RateLimitedError("slow down", retry_after=1)),
            "/v1/gone": self.fail(ConnectionResetError()),
            "/other": self.json,
        }
        for path, handler in routes.items():
            app.router.add_post(path, handler)
        app.router.add_get("/v1/json", self.json)
        return app

    async def json(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        body = orjson.dumps({"id": uuid.uuid4().hex, "echo": (await request.read()).decode()})
        headers = {"Content-Type": "application/json", "X-Modelyard-Deployment": "dep"}
        return web.Response(body=body, headers={**headers, "X-Other": "not kept"})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return web.json_response({"id": uuid.uuid4().hex})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f"data: {uuid.uuid4().hex} {i}\n\n".encode())
        await response.write_eof(b"data: [DONE]\n\n")  # the last bytes may come with the end
        request[ANSWER_STATUS] = 200
        return response

    async def broken_stream(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"error": {"message": "upstream broke"}}\n\n')
        request[ANSWER_STATUS] = 502  # what generation's ledger says of such a stream
        return response

    def fail(self, exc: BaseException) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.calls += 1
            raise exc

        return handler


def record(key_id: str) -> KeyRecord:
    return KeyRecord(key_id, "sk-my-abcd", "k", None, "user", None, NO_LIMITS, 0.0)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def served(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Handlers]]:
    handlers = Handlers()
    redis = None
    if request.param == "redis":
        redis = connect_redis(REDIS_URL)
        await redis.ping()
        store: IdempotencyStore = RedisIdempotencyStore(redis, prefix=f"test:{uuid.uuid4().hex}:")
    else:
        store = MemoryIdempotencyStore()
    async with TestClient(TestServer(handlers.app(store))) as client:
        yield client, handlers
    if redis is not None:
        await redis.aclose()


Served = tuple[TestClient[web.Request, web.Application], Handlers]


async def post(
    client: TestClient[web.Request, web.Application],
    path: str,
    body: bytes = b'{"a": 1}',
    key: str | None = "k-1",
    api_key: str | None = None,
) -> tuple[int, CIMultiDict[str], bytes]:
    hdrs = {} if api_key is None else {"X-Key": api_key}
    if key is not None:
        hdrs[HEADER] = key
    async with client.post(path, data=body, headers=hdrs) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def test_a_retry_gets_the_first_answer_without_a_second_call(served: Served) -> None:
    client, handlers = served
    status, headers, body = await post(client, "/v1/json")
    assert status == 200
    assert REPLAYED_HEADER not in headers
    status2, headers2, body2 = await post(client, "/v1/json")
    assert (status2, body2) == (200, body)
    assert handlers.calls == 1
    assert headers2[REPLAYED_HEADER] == "true"
    assert headers2["Content-Type"] == "application/json"
    assert headers2["X-Modelyard-Deployment"] == "dep"
    assert "X-Other" not in headers2
    assert headers2["X-Request-Id"] != headers["X-Request-Id"]


async def test_without_the_header_every_request_runs(served: Served) -> None:
    client, handlers = served
    first = await post(client, "/v1/json", key=None)
    second = await post(client, "/v1/json", key=None)
    assert first[2] != second[2]
    assert handlers.calls == 2


async def test_only_posts_under_v1_are_idempotent(served: Served) -> None:
    client, handlers = served
    await post(client, "/other")
    await post(client, "/other")
    for _ in range(2):
        async with client.get("/v1/json", headers={HEADER: "k-1"}) as resp:
            assert resp.status == 200
    assert handlers.calls == 4


async def test_another_body_with_the_same_key_is_422(served: Served) -> None:
    client, handlers = served
    await post(client, "/v1/json", b'{"a": 1}')
    status, _, body = await post(client, "/v1/json", b'{"a": 2}')
    assert status == 422
    error = orjson.loads(body)["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "different request body" in error["message"]
    assert handlers.calls == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_a_malformed_key_is_400_naming_the_header(served: Served, key: str) -> None:
    client, handlers = served
    status, _, body = await post(client, "/v1/json", key=key)
    assert status == 400
    error = orjson.loads(body)["error"]
    assert error["param"] == HEADER
    assert HEADER in error["message"]
    assert handlers.calls == 0


async def test_a_concurrent_duplicate_is_409_then_the_retry_replays(served: Served) -> None:
    client, handlers = served
    first = asyncio.create_task(post(client, "/v1/slow"))
    await handlers.entered.wait()
    status, headers, body = await post(client, "/v1/slow")
    assert status == 409
    assert orjson.loads(body)["error"]["code"] == "idempotency_conflict"
    assert headers["Retry-After"] == "1"
    handlers.gate.set()
    status1, _, body1 = await first
    assert status1 == 200
    assert (await post(client, "/v1/slow"))[2] == body1
    assert handlers.calls == 1


async def test_two_first_requests_at_once_make_one_call(served: Served) -> None:
    client, handlers = served
    handlers.gate.set()
    replies = await asyncio.gather(*(post(client, "/v1/slow") for _ in range(10)))
    statuses = sorted(r[0] for r in replies)
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 409}
    assert handlers.calls == 1


async def test_keys_are_scoped_per_api_key(served: Served) -> None:
    client, handlers = served
    a = await post(client, "/v1/json", api_key="key_a")
    b = await post(client, "/v1/json", b'{"other": true}', api_key="key_b")
    anonymous = await post(client, "/v1/json", b"[]")
    assert (a[0], b[0], anonymous[0]) == (200, 200, 200)
    assert handlers.calls == 3
    assert (await post(client, "/v1/json", api_key="key_a"))[2] == a[2]
    assert handlers.calls == 3


async def test_the_scope_includes_the_path(served: Served) -> None:
    client, handlers = served
    await post(client, "/v1/json")
    status, _, _ = await post(client, "/v1/stream")
    assert status == 200
    assert handlers.calls == 2


@pytest.mark.parametrize("path", ["/v1/upstream-500", "/v1/429", "/v1/gone"])
async def test_a_failure_is_not_stored(served: Served, path: str) -> None:
    client, handlers = served
    first = await post(client, path)
    second = await post(client, path)
    assert first[0] == second[0] >= 429
    assert REPLAYED_HEADER not in second[1]
    assert handlers.calls == 2


async def test_a_stream_is_replayed_as_the_same_bytes(served: Served) -> None:
    client, handlers = served
    status, _, body = await post(client, "/v1/stream")
    assert status == 200
    assert body.endswith(b"data: [DONE]\n\n")
    status2, headers2, body2 = await post(client, "/v1/stream")
    assert (status2, body2) == (200, body)
    assert headers2["Content-Type"] == "text/event-stream"
    assert headers2[REPLAYED_HEADER] == "true"
    assert handlers.calls == 1


async def test_a_stream_that_broke_after_its_first_byte_is_not_stored(served: Served) -> None:
    client, handlers = served
    await post(client, "/v1/broken-stream")
    _, headers, _ = await post(client, "/v1/broken-stream")
    assert REPLAYED_HEADER not in headers
    assert handlers.calls == 2


async def test_an_unreachable_store_is_503_not_a_silent_second_call() -> None:
    handlers = Handlers()
    dead = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    store = RedisIdempotencyStore(dead)
    try:
        async with TestClient(TestServer(handlers.app(store))) as client:
            status, headers, body = await post(client, "/v1/json")
    finally:
        await dead.aclose()
    assert status == 503
    assert orjson.loads(body)["error"]["code"] == "idempotency_store_unavailable"
    assert headers["Retry-After"] == "1"
    assert handlers.calls == 0


@pytest.mark.parametrize(
    ("tail", "whole"),
    [
        (b'data: {"x": 1}\n\ndata: [DONE]\n\n', True),
        (b"event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n", True),
        (b"event: response.completed\ndata: {}\n\n", True),
        # regression: response.completed carries the whole response, longer than the
        # 512-byte tail that used to be read, which then missed its event line
        (b'event: response.completed\ndata: {"text": "' + b"x" * 2000 + b'"}\n\n', True),
        (b'data: {"x": 1}\n\n', False),  # cut before its end
        (b'data: {"error": {"message": "upstream failed"}}\n\n', False),
    ],
)
def test_a_stream_cancelled_after_its_last_event_counts_as_whole(tail: bytes, whole: bool) -> None:
    from aiohttp.test_utils import make_mocked_request

    from modelyard.api.context import ANSWER_STATUS
    from modelyard.api.idempotency import _Capture, _ended

    request = make_mocked_request("POST", "/v1/chat/completions")
    request[ANSWER_STATUS] = 499  # the client closed as it read the end: the handler was cancelled
    capture = _Capture()
    capture.add(b"data: {}\n\n")
    capture.add(tail)
    assert _ended(request, capture) is whole
