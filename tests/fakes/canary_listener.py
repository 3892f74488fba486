"""A canary: a raw TCP listener on loopback that records every connection made to it.

The SSRF tests point request fields and headers at it in every spelling of
"this machine" and then assert it was never called. It is a bare asyncio
server, not an HTTP one, so that any client at all (HTTP, TLS, a raw socket)
is recorded on its first byte or none; it runs on a thread with its own loop
so that even a blocking fetch from the code under test would reach it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

from tests.fakes.harness import free_port


@dataclass
class Connection:
    peer: str
    first_bytes: bytes


@dataclass
class CanaryListener:
    """Listens on 127.0.0.1 and, where the host has IPv6, on ::1, on one port."""

    port: int = field(default_factory=free_port)
    connections: list[Connection] = field(default_factory=list)
    ipv6: bool = False

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._lock = threading.Lock()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        try:
            first = await asyncio.wait_for(reader.read(4096), timeout=1)
        except (TimeoutError, ConnectionError):
            first = b""
        with self._lock:
            self.connections.append(Connection(peer, first))
        writer.close()  # answers nothing: a canary only listens

    async def _start(self) -> None:
        self._servers.append(await asyncio.start_server(self._on_connect, "127.0.0.1", self.port))
        if socket.has_ipv6:
            try:
                server = await asyncio.start_server(self._on_connect, "::1", self.port)
            except OSError:  # no IPv6 loopback in this sandbox: [::1] then cannot connect at all
                return
            self._servers.append(server)
            self.ipv6 = True

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    def start(self) -> CanaryListener:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def hits(self) -> list[Connection]:
        with self._lock:
            return list(self.connections)

    def hosts(self) -> list[str]:
        """Every spelling of this machine's loopback, with the canary's port (URL netlocs)."""
        p = self.port
        return [
            f"127.0.0.1:{p}",
            f"localhost:{p}",
            f"0.0.0.0:{p}",
            f"[::1]:{p}",
            f"[::ffff:127.0.0.1]:{p}",
            f"[0:0:0:0:0:ffff:7f00:1]:{p}",
            f"2130706433:{p}",  # 127.0.0.1 as one decimal number
            f"0177.0.0.1:{p}",  # octal
            f"0x7f.0.0.1:{p}",  # hexadecimal
            f"127.1:{p}",  # short form
            f"user:pw@127.0.0.1:{p}",
        ]

    def urls(self) -> list[str]:
        """The hosts as http and https URLs, some with paths that look like a vendor's API."""
        out = []
        for host in self.hosts():
            out += [f"http://{host}", f"https://{host}/v1", f"http://{host}/v1/chat/completions"]
        return out

    def __enter__(self) -> CanaryListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
