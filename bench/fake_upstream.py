"""A fast fake OpenAI upstream for the overhead benchmark: raw asyncio on uvloop.

It must never be the bottleneck, so it is a bare ``asyncio.Protocol`` speaking
just enough HTTP/1.1 (keep-alive, Content-Length bodies, pipelined requests
answered in order) and every answer is built once at start:

* ``POST /v1/chat/completions`` answers a fixed ``chat.completion`` with usage;
  with ``"stream": true`` an SSE stream in OpenAI's exact chunk format: a role
  chunk, 20 content chunks, a finish chunk, a usage chunk with empty
  ``choices`` when ``stream_options.include_usage`` is true (every other chunk
  then carries ``"usage": null``), and ``data: [DONE]``. Each event is its own
  HTTP chunk and its own socket write, with a pass through the event loop (or
  ``--chunk-gap-ms``) between events, as a real model's stream arrives.
* ``GET /healthz`` and ``GET /v1/models`` answer, for readiness checks.

Run it alone: ``python bench/fake_upstream.py --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, cast

import orjson

MODEL = "bench-model"
COMPLETION_ID = "chatcmpl-BenchAbCdEfGhIjKlMnOpQrStUvWxYz"
CREATED = 1_764_000_000
FINGERPRINT = "fp_bench0001"
PROMPT_TOKENS = 57
TOKENS = [
    "The", " gateway", " forwards", " this", " answer", " from", " the", " fake",
    " upstream", " without", " touching", " its", " bytes", ",", " and", " counts",
    " the", " usage", " once", ".",
]  # 20 content chunks
TEXT = "".join(TOKENS)
USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": len(TOKENS),
    "total_tokens": PROMPT_TOKENS + len(TOKENS),
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def completion_body() -> bytes:
    return orjson.dumps({
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": TEXT, "refusal": None,
                        "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": USAGE,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    })


def stream_events(include_usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer, each ``data: ...\\n\\n``."""

    def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            out["usage"] = usage
        return out

    def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

    chunks = [chunk(delta({"role": "assistant", "content": "", "refusal": None}))]
    chunks += [chunk(delta({"content": t})) for t in TOKENS]
    chunks.append(chunk(delta({}, "stop")))
    if include_usage:
        chunks.append(chunk([], USAGE))
    events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    events.append(b"data: [DONE]\n\n")
    return events


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: keep-alive\r\n\r\n" + body
    )


def _error(status: str, message: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": None}})
    return _response(status, b"application/json", body)


JSON = b"application/json"
COMPLETION = _response("200 OK", JSON, completion_body())
HEALTH = _response("200 OK", JSON, b'{"status":"ok"}')
MODELS = _response("200 OK", JSON, orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": CREATED,
                                 "owned_by": "bench"}]}))
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
STREAM_END = b"0\r\n\r\n"
# the framed events of a stream, with and without the usage chunk
STREAMS = {flag: [_http_chunk(e) for e in stream_events(flag)] for flag in (False, True)}
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class FakeOpenAI(asyncio.Protocol):
    """One connection: parse requests from the buffer, answer them in order."""

    def __init__(self, gap: float, fail: str | None, stats: dict[str, int]):
        self._fail_status = fail
        self._stats = stats
        self._buf = bytearray()
        self._gap = gap
        self._transport: asyncio.Transport | None = None
        self._streaming = False  # a stream is being written; later requests wait
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._streaming:
            self._drain()

    def _drain(self) -> None:
        """Answer every complete request in the buffer (stop at a stream: it answers later)."""
        transport = self._transport
        buf = self._buf
        while transport is not None and not self._streaming:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > MAX_HEAD:
                    self._fail("431 Request Header Fields Too Large", "headers too large")
                return
            head = bytes(buf[:head_end]).lower()
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                self._fail("400 Bad Request", "bad request line")
                return
            method, target, version = parts
            length = 0
            keep_alive = version == b"http/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip()
                if name == b"content-length":
                    if not value.strip().isdigit():
                        self._fail("400 Bad Request", "bad Content-Length")
                        return
                    length = int(value)
                elif name == b"transfer-encoding":
                    self._fail("411 Length Required", "send a Content-Length")
                    return
                elif name == b"connection":
                    keep_alive = b"close" not in value and (
                        keep_alive or b"keep-alive" in value)
            if length > MAX_BODY:
                self._fail("413 Payload Too Large", "body too large")
                return
            end = head_end + 4 + length
            if len(buf) < end:
                return
            body = bytes(buf[head_end + 4:end])
            del buf[:end]
            self._close_after = not keep_alive
            self._answer(method, target.split(b"?", 1)[0], body)
            if self._close_after and not self._streaming and self._transport is not None:
                self._transport.close()
                return

    def _answer(self, method: bytes, path: bytes, body: bytes) -> None:
        assert self._transport is not None
        if method == b"post" and path == b"/v1/chat/completions":
            self._stats["chat_requests"] += 1
            if self._fail_status:
                self._transport.write(_error(self._fail_status, "failing on purpose"))
                return
            try:
                req = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._transport.write(_error("400 Bad Request", "body is not JSON"))
                return
            if not isinstance(req, dict):
                self._transport.write(_error("400 Bad Request", "body is not an object"))
            elif req.get("stream"):
                usage = bool((req.get("stream_options") or {}).get("include_usage"))
                self._streaming = True
                asyncio.get_running_loop().create_task(self._stream(STREAMS[usage]))
            else:
                self._transport.write(COMPLETION)
        elif method == b"get" and path in (b"/healthz", b"/", b"/v1"):
            self._transport.write(HEALTH)
        elif method == b"get" and path == b"/stats":
            self._transport.write(_response("200 OK", JSON, orjson.dumps(self._stats)))
        elif method == b"get" and path == b"/v1/models":
            self._transport.write(MODELS)
        else:
            self._transport.write(_error("404 Not Found", "unknown path"))

    async def _stream(self, frames: list[bytes]) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(STREAM_HEAD + frames[0])
        for frame in frames[1:]:
            await asyncio.sleep(self._gap)
            if transport.is_closing():
                return
            transport.write(frame)
        transport.write(STREAM_END)
        self._streaming = False
        if self._close_after:
            transport.close()
        elif self._buf:
            self._drain()

    def _fail(self, status: str, message: str) -> None:
        if self._transport is not None:
            self._transport.write(_error(status, message))
            self._transport.close()


async def serve(host: str, port: int, gap: float, fail: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    stats = {"chat_requests": 0}
    server = await loop.create_server(lambda: FakeOpenAI(gap, fail, stats), host, port,
                                      backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream listening on http://{host}:{port}/v1", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunk-gap-ms", type=float, default=0.0,
                    help="pause between stream events (0: one pass through the event loop)")
    ap.add_argument("--fail-status", default=None,
                    help="answer every chat request with this status, e.g. '503 Service "
                         "Unavailable' (GET /stats counts the requests)")
    args = ap.parse_args()
    main_coro = serve(args.host, args.port, args.chunk_gap_ms / 1000, args.fail_status)
    try:
        import uvloop
    except ImportError:  # a plain asyncio loop still works, just slower
        asyncio.run(main_coro)
    else:
        uvloop.run(main_coro)


if __name__ == "__main__":
    main()
