"""A lean HTTP/1.1 client for upstream calls: keep-alive pools on asyncio, parsing by httptools.

Why not aiohttp's client: the overhead benchmark measured it at about 0.3 ms
of CPU per proxied request on this machine, half of the gateway's whole
budget. Model APIs need little of it: POST or GET, a body, Content-Length or
chunked answers, streaming, gzip, TLS. This module does that and nothing else;
the parsing is httptools (llhttp, the parser of Node.js and uvicorn).

Redirects are never followed and the answer's size is bounded after
decompression (``limits.max_upstream_response_bytes``): inflating stops at the
bound, so a decompression bomb costs at most that much memory. Errors are the
builtin ones (``ConnectionError``, ``OSError``, ``TimeoutError``) plus
``ProtocolError``; ``modelyard.providers.classify`` turns them into the
gateway's hierarchy.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 64  # chunks buffered before reading from the socket pauses
# A kept-alive connection idle longer than this is closed rather than reused: servers
# close idle ones after 5 s (some proxies) to 75 s, and a request written as the server
# closes is lost in a way no client can safely repair.
IDLE_REUSE_SECONDS = 4.0


class ProtocolError(Exception):
    """The upstream's bytes are not valid HTTP/1.1, or the answer is too large."""


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[tuple[str, str, int], str, bytes]:
    """(pool key, request target, Host header) of a URL, computed once per URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = port == (443 if tls else 80)
    host = parts.hostname if default else f"{parts.hostname}:{port}"
    if ":" in parts.hostname and not default:
        host = f"[{parts.hostname}]:{port}"
    return (parts.scheme, parts.hostname, port), path, host.encode("idna")


class Response:
    """Status, headers, then the body as it arrives."""

    def __init__(self, conn: _Connection):
        self._conn = conn
        self.status = 0
        self.headers: dict[str, str] = {}

    def iter_chunks(self, idle_timeout: float | None = None) -> AsyncIterator[bytes]:
        return self._conn.body(idle_timeout)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._conn.body()])

    def close(self) -> None:
        """Return the connection to its pool if the answer was read whole, else drop it."""
        self._conn.finish()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: Pool, key: tuple[str, str, int], limit: int):
        self.pool = pool
        self.key = key
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._head: asyncio.Future[Response] | None = None
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: BaseException | None = None
        self._received = 0
        self._paused = False
        self._inflate: zlib._Decompress | None = None
        self._keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, ProtocolError) as exc:
            self._fail(ProtocolError(str(exc) or type(exc).__name__))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._complete:
            self._fail(exc or ConnectionResetError("the upstream closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._response is not None
        self._response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        resp = self._response
        assert resp is not None
        resp.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        encoding = resp.headers.get("content-encoding", "")
        if encoding in ("gzip", "deflate"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)
        if self._head is not None and not self._head.done():
            self._head.set_result(resp)

    def on_body(self, body: bytes) -> None:
        if self._error is not None:
            return
        if self._inflate is not None:
            # never inflate more than the limit allows: a few kilobytes of gzip can
            # expand to gigabytes in one call (a decompression bomb)
            body = self._inflate.decompress(body, self.limit - self._received + 1)
        self._received += len(body)
        if self._received > self.limit:
            self._too_large()
            return
        if body:
            self._chunks.append(body)
            if len(self._chunks) >= _HIGH_WATER and not self._paused and self.transport:
                self._paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self._error is not None:
            return
        self._complete = True
        self._wake()

    # driving
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _too_large(self) -> None:
        self._fail(
            ProtocolError(
                f"the upstream answer is larger than {self.limit} bytes after decompression "
                "(limits.max_upstream_response_bytes)"
            )
        )
        self.close()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def send(self, data: bytes) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        self._response = Response(self)
        self._head = loop.create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self._head

    async def body(self, idle_timeout: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; what arrived between two reads comes as one piece.

        ``idle_timeout`` bounds each wait for more bytes (``TimeoutError``).
        """
        chunks = self._chunks
        loop = asyncio.get_running_loop()
        while True:
            if chunks:
                piece = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                if self._paused and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                yield piece
                continue
            if self._error is not None:
                raise self._error
            if self._complete:
                if self._inflate is not None:
                    tail = self._inflate.flush()
                    self._inflate = None
                    self._received += len(tail)
                    if self._received > self.limit:
                        self._too_large()
                        raise self._error  # type: ignore[misc]
                    if tail:
                        yield tail
                return
            waiter = self._waiter = loop.create_future()
            timer = None
            if idle_timeout is not None:
                timer = loop.call_later(idle_timeout, self._idle, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()

    @staticmethod
    def _idle(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError("the upstream went silent"))

    def finish(self) -> None:
        if self._complete and self._keep_alive and not self.closed and not self._chunks:
            self._reset()
            self.pool.release(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections per (scheme, host, port); unbounded, as upstream concurrency is."""

    def __init__(self, *, max_response_bytes: int):
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._limit = max_response_bytes
        self._tls: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Send a request and return once the answer's status and headers are in."""
        key, target, host = _target(url)
        head = bytearray(f"{method} {target} HTTP/1.1\r\n".encode("latin-1"))
        head += b"Host: " + host + b"\r\n"
        for name, value in headers.items():
            head += f"{name}: {value}\r\n".encode("latin-1")
        head += b"Content-Length: %d\r\nAccept-Encoding: gzip, deflate\r\n\r\n" % len(body)
        data = bytes(head) + body
        conn = await self._acquire(key)
        try:
            return await conn.send(data)
        except BaseException:
            # never resent here: the upstream may have read it, and retrying is the
            # router's job, where every attempt is counted and explained
            conn.close()
            raise

    async def _acquire(self, key: tuple[str, str, int]) -> _Connection:
        idle = self._idle.get(key)
        fresh_after = time.monotonic() - IDLE_REUSE_SECONDS
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                continue
            if conn.idle_since < fresh_after:
                conn.close()  # the server may be closing it right now: do not race it
                continue
            return conn
        loop = asyncio.get_running_loop()
        scheme, host, port = key
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        _, conn = await loop.create_connection(
            lambda: _Connection(self, key, self._limit),
            host,
            port,
            ssl=tls,
            server_hostname=host if tls else None,
        )
        return conn

    def release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(IDLE_REUSE_SECONDS, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle past reuse (never reused, they only hold a descriptor
        and the server's slot), and come back while any connection is idle."""
        self._sweeper = None
        stale = time.monotonic() - IDLE_REUSE_SECONDS
        for key, conns in list(self._idle.items()):
            kept = []
            for conn in conns:
                if conn.idle_since < stale or conn.closed:
                    conn.close()
                else:
                    kept.append(conn)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(IDLE_REUSE_SECONDS, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
