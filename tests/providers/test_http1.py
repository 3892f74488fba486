"""The lean upstream client against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from modelyard.errors import (
    UpstreamBadResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from modelyard.providers.http1 import Pool, ProtocolError
from modelyard.providers.transport import Transport
from tests.fakes.harness import free_port


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    peers: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        peers.append(str(request.transport.get_extra_info("peername")) if request.transport else "")
        body = await request.read()
        return web.Response(body=b"echo:" + body, headers={"X-Method": request.method})

    async def gz(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"x" * 5000), headers={"Content-Encoding": "gzip"})

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"part{i};".encode())
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def silent(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"first")
        await asyncio.sleep(5)
        return resp

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:1/steal")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * 10_000)

    async def close_after(request: web.Request) -> web.Response:
        return web.Response(body=b"bye", headers={"Connection": "close"})

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/gz", gz)
    app.router.add_post("/chunked", chunked)
    app.router.add_post("/silent", silent)
    app.router.add_post("/redirect", redirect)
    app.router.add_get("/huge", huge)
    app.router.add_get("/close", close_after)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", peers
    await runner.cleanup()


async def test_post_and_keep_alive_reuse(server: tuple[str, list[str]]) -> None:
    url, peers = server
    pool = Pool(max_response_bytes=1 << 20)
    for i in range(3):
        resp = await pool.request("POST", url + "/echo", {"X-A": "1"}, f"n{i}".encode())
        assert resp.status == 200 and await resp.read() == f"echo:n{i}".encode()
        resp.close()
    assert len(set(peers)) == 1  # one connection served all three
    pool.close()


async def test_idle_connections_are_closed_once_too_old_to_reuse(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (soak benchmark): after a burst, every idle keep-alive connection stayed
    open until the upstream closed it, so descriptors stayed above their baseline."""
    import modelyard.providers.http1 as http1

    monkeypatch.setattr(http1, "IDLE_REUSE_SECONDS", 0.05)
    url, _ = server
    pool = Pool(max_response_bytes=1 << 20)
    answers = await asyncio.gather(*(pool.request("GET", url + "/echo", {}) for _ in range(5)))
    for resp in answers:
        await resp.read()
        resp.close()
    idle = [c for conns in pool._idle.values() for c in conns]
    assert len(idle) == 5 and not any(c.closed for c in idle)
    await asyncio.sleep(0.3)
    assert pool._idle == {} and all(c.closed for c in idle)
    resp = await pool.request("GET", url + "/echo", {})  # a new connection afterwards
    assert resp.status == 200 and await resp.read() == b"echo:"
    resp.close()
    pool.close()


async def test_gzip_is_decompressed(server: tuple[str, list[str]]) -> None:
    pool = Pool(max_response_bytes=1 << 20)
    resp = await pool.request("GET", server[0] + "/gz", {})
    assert await resp.read() == b"x" * 5000
    resp.close()
    pool.close()


async def test_oversized_answer_is_refused(server: tuple[str, list[str]]) -> None:
    pool = Pool(max_response_bytes=1000)
    resp = await pool.request("GET", server[0] + "/huge", {})
    with pytest.raises(ProtocolError, match="larger than 1000"):
        await resp.read()
    resp.close()
    pool.close()


async def test_connection_close_answer_then_new_connection(server: tuple[str, list[str]]) -> None:
    url = server[0]
    pool = Pool(max_response_bytes=1 << 20)
    resp = await pool.request("GET", url + "/close", {})
    assert await resp.read() == b"bye"
    resp.close()
    resp = await pool.request("GET", url + "/echo", {})
    assert await resp.read() == b"echo:"
    resp.close()
    pool.close()


async def test_transport_streams_chunks_and_classifies_failures(
    server: tuple[str, list[str]],
) -> None:
    url = server[0]
    transport = Transport.create()
    got = b"".join(
        [c async for c in transport.stream(url + "/chunked", b"", {}, deployment="d", timeout=5)]
    )
    assert got == b"part0;part1;part2;part3;part4;"
    with pytest.raises(UpstreamTimeoutError):
        async for _ in transport.stream(url + "/silent", b"", {}, deployment="d", timeout=0.3):
            pass
    with pytest.raises(UpstreamBadResponseError):  # a redirect is never followed
        await transport.post(url + "/redirect", b"", {}, deployment="d", timeout=5)
    with pytest.raises(UpstreamUnavailableError):
        await transport.post(
            f"http://127.0.0.1:{free_port()}/x", b"", {}, deployment="d", timeout=5
        )
    await transport.close()


async def test_server_restart_between_requests_is_survived(
    server: tuple[str, list[str]],
) -> None:
    # a kept-alive connection the server has since closed is replaced transparently
    url = server[0]
    pool = Pool(max_response_bytes=1 << 20)
    resp = await pool.request("GET", url + "/echo", {})
    await resp.read()
    resp.close()
    for conns in pool._idle.values():
        for conn in conns:
            assert conn.transport is not None
            conn.transport.close()  # what a server's idle timeout looks like from here
    await asyncio.sleep(0.05)
    resp = await pool.request("GET", url + "/echo", {})
    assert await resp.read() == b"echo:"
    resp.close()
    pool.close()
