"""FaultyUpstream behaves as each fault mode promises, seen from a plain HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes.faulty_upstream import FaultyUpstream

BODY: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
STREAM_BODY: dict[str, Any] = {**BODY, "stream": True}


@pytest.fixture
def up() -> Iterator[FaultyUpstream]:
    with FaultyUpstream("alpha") as server:
        yield server


@pytest.fixture
async def client() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def data_lines(raw: bytes) -> list[bytes]:
    return [line[len(b"data: ") :] for line in raw.split(b"\n") if line.startswith(b"data: ")]


def chunks(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(d) for d in data_lines(raw) if d != b"[DONE]"]


def content(events: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])


async def chat(client: aiohttp.ClientSession, up: FaultyUpstream, body: Any = BODY) -> Any:
    async with client.post(up.url + "/chat/completions", json=body) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def test_url_and_context_manager() -> None:
    with FaultyUpstream("beta") as server:
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        assert server.mode == "ok"
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.url + "/models") as resp,
        ):
            assert resp.status == 200
        assert server.attempts == 0  # only chat completions count


def test_unknown_modes_are_refused() -> None:
    server = FaultyUpstream("x")
    for bad in ("nope", "drip", "drip:abc", "reset_after:-1", "404", "hang:3"):
        with pytest.raises(ValueError):
            server.mode = bad
        with pytest.raises(ValueError):
            server.fail_next(1, bad)
    server.mode = "drip:5"
    assert server.mode == "drip:5"


async def test_ok_non_stream(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    status, headers, raw = await chat(client, up)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    body = orjson.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "answer from alpha",
        "refusal": None,
        "annotations": [],
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_ok_stream_with_usage(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    body = {**STREAM_BODY, "stream_options": {"include_usage": True}}
    status, headers, raw = await chat(client, up, body)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert data_lines(raw)[-1] == b"[DONE]"
    events = chunks(raw)
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = [e for e in events[1:-2] if e["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 3
    assert content(events) == "answer from alpha"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["total_tokens"] > 0
    assert all(e["usage"] is None for e in events[:-1])


async def test_ok_stream_without_usage(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    _, _, raw = await chat(client, up, STREAM_BODY)
    events = chunks(raw)
    assert content(events) == "answer from alpha"
    assert all("usage" not in e for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert data_lines(raw)[-1] == b"[DONE]"


async def test_429_with_retry_after(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "429"
    status, headers, raw = await chat(client, up)
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert "Retry-After-Ms" not in headers
    error = orjson.loads(raw)["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert set(error) == {"message", "type", "param", "code"}

    up.retry_after = "7"
    up.retry_after_ms = "250"
    status, headers, _ = await chat(client, up, STREAM_BODY)
    assert status == 429
    assert headers["retry-after"] == "7"
    assert headers["retry-after-ms"] == "250"


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_server_errors(up: FaultyUpstream, client: aiohttp.ClientSession, code: int) -> None:
    up.mode = str(code)
    for body in (BODY, STREAM_BODY):
        status, headers, raw = await chat(client, up, body)
        assert status == code
        assert headers["Content-Type"].startswith("application/json")
        error = orjson.loads(raw)["error"]
        assert error["type"] == "server_error"
        assert error["message"]


async def test_hang_never_answers(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "hang"
    with pytest.raises(asyncio.TimeoutError):
        async with client.post(
            up.url + "/chat/completions", json=BODY, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    assert up.attempts == 1
    # The client's timeout closed the connection: the hanging handler noticed.
    await eventually(lambda: up.disconnects == 1)
    up.mode = "ok"
    status, _, _ = await chat(client, up)
    assert status == 200


async def test_stop_is_quick_with_hanging_requests(client: aiohttp.ClientSession) -> None:
    server = FaultyUpstream("hanger").start()
    server.mode = "hang"
    pending = [asyncio.create_task(chat(client, server)) for _ in range(3)]
    await eventually(lambda: server.attempts == 3)
    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    assert time.monotonic() - started < 1.0
    for task in pending:
        with pytest.raises(aiohttp.ClientError):
            await task
    assert server.disconnects == 0  # the server's own shutdown is no client disconnect
    server.stop()  # a second stop is harmless


async def test_reset_after_stream(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "reset_after:2"
    received = b""
    async with client.post(up.url + "/chat/completions", json=STREAM_BODY) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for piece in resp.content.iter_any():
                received += piece
    assert b"[DONE]" not in received
    events = chunks(received)
    assert len(events) == 2
    assert content(events) == "answer from"
    assert all(e["choices"][0]["finish_reason"] is None for e in events)
    assert up.attempts == 1
    await asyncio.sleep(0.05)
    assert up.disconnects == 0  # the upstream's own reset is no client disconnect


async def test_reset_after_stream_raw_socket(up: FaultyUpstream) -> None:
    """On the wire: N chunks, then the connection ends without the chunked terminator."""
    up.mode = "reset_after:5"
    payload = orjson.dumps(STREAM_BODY)
    reader, writer = await asyncio.open_connection("127.0.0.1", up.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    raw = b""
    try:
        while piece := await asyncio.wait_for(reader.read(65536), 2):
            raw += piece
    except ConnectionResetError:
        pass
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert not body.endswith(b"0\r\n\r\n")
    assert len([line for line in body.split(b"\r\n") if line.startswith(b"data: ")]) == 5
    assert content(chunks(body.replace(b"\r\n", b"\n"))) == "answer from alpha more more"


async def test_reset_after_non_stream(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "reset_after:3"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await chat(client, up)
    assert up.attempts == 1
    assert up.requests == [BODY]


async def test_drip_stream(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "drip:80"
    arrivals: list[float] = []
    raw = b""
    started = time.monotonic()
    async with client.post(up.url + "/chat/completions", json=STREAM_BODY) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic())
            raw += line
    events = chunks(raw)
    assert content(events) == "answer from alpha"
    assert data_lines(raw)[-1] == b"[DONE]"
    # 6 events (role, 3 words, finish, [DONE]), 80 ms before each but the first.
    assert len(arrivals) >= 6
    assert time.monotonic() - started >= 0.08 * (len(arrivals) - 1)
    # They came spread out, not in one burst at the end (loose: the client loop may lag).
    assert arrivals[-1] - arrivals[0] >= 0.04 * (len(arrivals) - 1)


async def test_drip_non_stream(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "drip:200"
    started = time.monotonic()
    status, _, raw = await chat(client, up)
    assert time.monotonic() - started >= 0.19
    assert status == 200
    assert orjson.loads(raw)["choices"][0]["message"]["content"] == "answer from alpha"


async def test_bad_json(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "bad_json"
    status, headers, raw = await chat(client, up)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)

    status, headers, raw = await chat(client, up, STREAM_BODY)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    payloads = [d for d in data_lines(raw) if d != b"[DONE]"]
    assert payloads
    for data in payloads:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(data)


async def test_bad_sse(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.mode = "bad_sse"
    status, headers, raw = await chat(client, up, STREAM_BODY)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert len(raw) > 100
    assert not any(line.lstrip().startswith(b"data") for line in raw.splitlines())
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


@pytest.mark.parametrize("body", [BODY, STREAM_BODY], ids=["non_stream", "stream"])
async def test_delay_holds_the_first_byte(
    up: FaultyUpstream, client: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    up.mode = "delay:250"
    started = time.monotonic()
    async with client.post(up.url + "/chat/completions", json=body) as resp:
        first_byte = time.monotonic() - started
        raw = await resp.read()
    assert first_byte >= 0.24
    assert resp.status == 200
    if body.get("stream"):
        assert content(chunks(raw)) == "answer from alpha"
    else:
        assert orjson.loads(raw)["choices"][0]["message"]["content"] == "answer from alpha"


async def test_fail_next_then_recover(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.fail_next(2, "503")
    statuses = [(await chat(client, up))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]

    up.mode = "500"
    up.fail_next(1, "ok").fail_next(1, "429")
    statuses = [(await chat(client, up))[0] for _ in range(3)]
    assert statuses == [200, 429, 500]


async def test_attempts_and_requests(up: FaultyUpstream, client: aiohttp.ClientSession) -> None:
    up.fail_next(1, "reset_after:0")
    up.fail_next(1, "hang")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await chat(client, up, {**BODY, "n": 1})
    with pytest.raises(asyncio.TimeoutError):
        async with client.post(
            up.url + "/chat/completions",
            json={**BODY, "n": 2},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    async with client.post(up.url + "/chat/completions", data=b"not json") as resp:
        assert resp.status == 200
    await chat(client, up, STREAM_BODY)
    assert up.attempts == 4
    assert up.requests == [{**BODY, "n": 1}, {**BODY, "n": 2}, None, STREAM_BODY]

    up.reset_counts()
    assert (up.attempts, up.requests, up.disconnects, up.last_disconnect_at) == (0, [], 0, None)
    await chat(client, up)
    assert up.attempts == 1


async def test_client_disconnect_mid_stream(
    up: FaultyUpstream, client: aiohttp.ClientSession
) -> None:
    up.mode = "drip:300"
    before = time.monotonic()
    async with client.post(up.url + "/chat/completions", json=STREAM_BODY) as resp:
        first = await resp.content.readline()
        assert first.startswith(b"data: ")
        resp.close()  # drop the connection mid-answer
    await eventually(lambda: up.disconnects == 1)
    assert up.last_disconnect_at is not None
    assert before <= up.last_disconnect_at <= time.monotonic()
    # Finished answers are no disconnects.
    up.mode = "ok"
    await chat(client, up, STREAM_BODY)
    await chat(client, up)
    await asyncio.sleep(0.05)
    assert up.disconnects == 1


async def test_client_disconnect_before_first_byte(
    up: FaultyUpstream, client: aiohttp.ClientSession
) -> None:
    up.mode = "delay:5000"
    task = asyncio.create_task(chat(client, up))
    await eventually(lambda: up.attempts == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: up.disconnects == 1)
