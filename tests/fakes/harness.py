"""Run a loopback upstream (an aiohttp app) in a thread, and record what it was sent.

The fakes play the vendors' side: each answers in its vendor's exact wire
format and keeps every request it received so tests can check paths, headers
and bodies against the vendor's API reference.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


Handler = Callable[[web.Request, Recorded], Awaitable[web.StreamResponse]]


@dataclass
class Recorder:
    """What a fake received, and the scripted answers it gives next (first in, first out)."""

    requests: list[Recorded] = field(default_factory=list)
    script: deque[Handler] = field(default_factory=deque)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def record(self, request: web.Request) -> Recorded:
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
        self.requests.append(rec)
        return rec

    def next_scripted(self) -> Handler | None:
        return self.script.popleft() if self.script else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """An aiohttp app served on 127.0.0.1 from a background thread with its own loop."""

    def __init__(self, app: web.Application, port: int | None = None):
        self.app = app
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sse(data: Any, event: str | None = None) -> bytes:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + body + b"\n\n"


async def send_sse(
    request: web.Request, events: list[bytes], *, chunking: int | None = None
) -> web.StreamResponse:
    """Stream the given SSE events; ``chunking`` splits the bytes into pieces of that size."""
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    payload = b"".join(events)
    if chunking:
        for i in range(0, len(payload), chunking):
            await resp.write(payload[i : i + chunking])
    else:
        for event in events:
            await resp.write(event)
    await resp.write_eof()
    return resp


def error_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Handler:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return web.Response(
            status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    return handler


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> Handler:
    """A scripted answer: an error in OpenAI's shape."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return error_response(status, body)
