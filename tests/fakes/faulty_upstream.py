"""A fault-injecting OpenAI-compatible upstream, for routing, retry, hedging and health tests.

``FaultyUpstream(name)`` serves ``POST /v1/chat/completions`` (and a trivial
``GET /v1/models``) on 127.0.0.1 from a background thread.  How it answers is
picked per request from ``.mode`` (or from the ``fail_next`` queue):

``"ok"``
    A correct OpenAI answer with content ``f"answer from {name}"`` and usage;
    streams send a role chunk, one content chunk per word, a finish chunk, a
    usage chunk when ``stream_options.include_usage`` is set, and ``[DONE]``.
``"429"``
    Status 429 with OpenAI's error JSON, ``retry-after: <self.retry_after>``
    and, when ``self.retry_after_ms`` is set, ``retry-after-ms`` too.
``"500"`` / ``"502"`` / ``"503"``
    That status with OpenAI's error JSON.
``"hang"``
    Reads the request and never answers; the handler ends when the client
    goes away or the server stops.
``"reset_after:N"``
    Streams: status 200 and N valid content chunks, then ``transport.abort()``
    (no terminating chunk, no ``[DONE]``).  Non-stream: aborts right after
    reading the request.
``"drip:MS"``
    A correct answer, with MS milliseconds between stream chunks (non-stream:
    MS before the answer).
``"bad_json"``
    Status 200 ``application/json`` whose body is not JSON; for streams a 200
    SSE stream whose ``data:`` lines are not JSON (then ``data: [DONE]``).
``"bad_sse"``
    Status 200 ``text/event-stream`` carrying garbage bytes (no ``data:``
    lines, invalid UTF-8), then the end of the body.
``"delay:MS"``
    Like ``"ok"``, but nothing (not even the status line) before MS milliseconds.

Counters: ``attempts`` (chat requests whose body arrived, including ones that
then hang or are reset), ``requests`` (their JSON bodies, ``None`` when not
JSON), ``disconnects`` and ``last_disconnect_at`` (clients that went away
before their answer was finished; the upstream's own resets and its shutdown
do not count).  They change on the server's thread: poll them, e.g. with
``await asyncio.sleep(0.01)`` in a loop, rather than reading them once.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.harness import LoopbackServer, free_port, sse

_STATUS_MODES = {"429", "500", "502", "503"}
_PLAIN_MODES = {"ok", "hang", "bad_json", "bad_sse"} | _STATUS_MODES
_ARG_MODES = {"reset_after", "drip", "delay"}

_ERRORS: dict[int, dict[str, Any]] = {
    429: {
        "message": "Rate limit reached for requests. Please try again in 1s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    },
    500: {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    },
    502: {
        "message": "Bad gateway.",
        "type": "server_error",
        "param": None,
        "code": None,
    },
    503: {
        "message": "The engine is currently overloaded, please try again later.",
        "type": "server_error",
        "param": None,
        "code": "service_unavailable",
    },
}

# Deterministic garbage for "bad_sse": starts with bytes that are never valid UTF-8.
_GARBAGE = b"\xff\xfe\x80garbage\x00\xc3\x28 :not sse\r\n\xf0\x28\x8c\x28\n\n" + random.Random(
    0
).randbytes(256).replace(b"data", b"dat\xff")


def parse_mode(mode: str) -> tuple[str, int]:
    """Split ``"name"`` or ``"name:N"`` into ``(name, N)``; raise ValueError when unknown."""
    if mode in _PLAIN_MODES:
        return mode, 0
    name, sep, arg = mode.partition(":")
    if sep and name in _ARG_MODES and arg.isdigit():
        return name, int(arg)
    raise ValueError(f"unknown fault mode {mode!r}")


class _CancellingServer(LoopbackServer):
    """A LoopbackServer whose handlers are cancelled when their client goes away,
    and whose stop() cuts in-flight requests instead of waiting for them."""

    def __init__(
        self, app: web.Application, port: int, inflight: dict[asyncio.Task[Any], web.Request]
    ):
        super().__init__(app, port)
        self._inflight = inflight
        self._stopped = False

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _shutdown(self) -> None:
        tasks = list(self._inflight)
        for request in list(self._inflight.values()):
            if request.transport is not None:
                request.transport.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=0.5)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Let aiohttp's per-connection tasks see their cancellation and finish.
        for _ in range(3):
            await asyncio.sleep(0)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        super().stop()


class FaultyUpstream:
    """An OpenAI chat-completions upstream whose behaviour is switched by ``.mode``."""

    def __init__(self, name: str, *, retry_after: str = "1", retry_after_ms: str | None = None):
        self.name = name
        self.retry_after = retry_after
        self.retry_after_ms = retry_after_ms
        self._mode = "ok"
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._stopping = False
        self._inflight: dict[asyncio.Task[Any], web.Request] = {}
        self.attempts = 0
        self.requests: list[Any] = []
        self.disconnects = 0
        self.last_disconnect_at: float | None = None
        self.port = free_port()
        # Made by start(): its event loop would leak from an upstream that never starts.
        self._server: _CancellingServer | None = None

    # -- control ---------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        parse_mode(value)
        self._mode = value

    def fail_next(self, n: int, mode: str) -> FaultyUpstream:
        """Answer the next ``n`` chat requests with ``mode``, then go back to ``.mode``."""
        parse_mode(mode)
        with self._lock:
            self._queue.extend([mode] * n)
        return self

    def reset_counts(self) -> None:
        with self._lock:
            self.attempts = 0
            self.requests.clear()
            self.disconnects = 0
            self.last_disconnect_at = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultyUpstream:
        if self._server is not None:
            raise RuntimeError("a FaultyUpstream starts only once")
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._server = _CancellingServer(app, self.port, self._inflight)
        self._server.start()
        return self

    def stop(self) -> None:
        """Cut in-flight requests (hanging ones too) and shut down; idempotent."""
        self._stopping = True
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> FaultyUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------

    def _take_mode(self) -> str:
        with self._lock:
            return self._queue.popleft() if self._queue else self._mode

    def _record_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1
            self.last_disconnect_at = time.monotonic()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "x"}],
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.attempts += 1
            self.requests.append(body)
        mode = self._take_mode()
        task = asyncio.current_task()
        assert task is not None
        self._inflight[task] = request
        state = {"self_reset": False}
        try:
            return await self._serve(request, body if isinstance(body, dict) else {}, mode, state)
        except asyncio.CancelledError:
            if not self._stopping and not state["self_reset"]:
                self._record_disconnect()
            raise
        except ConnectionError:
            # A write failed: the client is gone.  End like a cancelled handler so
            # aiohttp does not try to send a 500 on the dead connection.
            if not self._stopping and not state["self_reset"]:
                self._record_disconnect()
            raise asyncio.CancelledError from None
        finally:
            self._inflight.pop(task, None)

    async def _serve(
        self, request: web.Request, body: dict[str, Any], mode: str, state: dict[str, bool]
    ) -> web.StreamResponse:
        kind, arg = parse_mode(mode)
        stream = bool(body.get("stream"))
        if kind in _STATUS_MODES:
            return self._error(int(kind))
        if kind == "hang":
            await asyncio.get_running_loop().create_future()
        if kind == "delay":
            await asyncio.sleep(arg / 1000)
        if kind == "drip" and not stream:
            await asyncio.sleep(arg / 1000)
        if kind == "reset_after":
            if stream:
                resp = await self._open_stream(request)
                for i in range(arg):
                    await resp.write(self._content_chunk(body, self._piece(i)))
            state["self_reset"] = True
            assert request.transport is not None
            request.transport.abort()
            # connection_lost() cancels this handler on the next loop iteration.
            await asyncio.get_running_loop().create_future()
        if kind == "bad_json":
            if stream:
                resp = await self._open_stream(request)
                await resp.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
                await resp.write(b"data: {not json at all}\n\n")
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
                return resp
            return web.Response(
                status=200,
                body=b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{',
                content_type="application/json",
            )
        if kind == "bad_sse":
            resp = await self._open_stream(request)
            await resp.write(_GARBAGE)
            await resp.write_eof()
            return resp
        # "ok", "delay" and "drip": a correct answer.
        if not stream:
            return web.json_response(self._completion(body))
        resp = await self._open_stream(request)
        for i, event in enumerate(self._stream_events(body)):
            if kind == "drip" and i:
                await asyncio.sleep(arg / 1000)
            await resp.write(event)
        await resp.write_eof()
        return resp

    # -- OpenAI wire format -----------------------------------------------------

    @property
    def text(self) -> str:
        return f"answer from {self.name}"

    def _error(self, status: int) -> web.Response:
        headers: dict[str, str] = {}
        if status == 429:
            headers["retry-after"] = str(self.retry_after)
            if self.retry_after_ms is not None:
                headers["retry-after-ms"] = str(self.retry_after_ms)
        return web.Response(
            status=status,
            body=orjson.dumps({"error": _ERRORS[status]}),
            content_type="application/json",
            headers=headers,
        )

    @staticmethod
    def _usage() -> dict[str, Any]:
        return {
            "prompt_tokens": 9,
            "completion_tokens": 3,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or "gpt-4o-mini"),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_faulty",
        }

    def _chunk_base(self, body: dict[str, Any]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": str(body.get("model") or "gpt-4o-mini"),
            "system_fingerprint": "fp_faulty",
        }
        if (body.get("stream_options") or {}).get("include_usage"):
            base["usage"] = None
        return base

    def _delta_chunk(
        self, body: dict[str, Any], delta: dict[str, Any], finish: str | None = None
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**self._chunk_base(body), "choices": [choice]})

    def _piece(self, i: int) -> str:
        """The i-th content piece: the words of ``text``, then " more" for ever."""
        words = self.text.split(" ")
        if i >= len(words):
            return " more"
        return words[i] if i == 0 else " " + words[i]

    def _content_chunk(self, body: dict[str, Any], piece: str) -> bytes:
        return self._delta_chunk(body, {"content": piece})

    def _stream_events(self, body: dict[str, Any]) -> list[bytes]:
        """Role chunk, one content chunk per word, finish chunk, [usage chunk], [DONE]."""
        events = [self._delta_chunk(body, {"role": "assistant", "content": "", "refusal": None})]
        for i in range(len(self.text.split(" "))):
            events.append(self._content_chunk(body, self._piece(i)))
        events.append(self._delta_chunk(body, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(sse({**self._chunk_base(body), "choices": [], "usage": self._usage()}))
        events.append(b"data: [DONE]\n\n")
        return events

    @staticmethod
    async def _open_stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        return resp
