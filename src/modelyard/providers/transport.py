"""The one transport boundary: every upstream HTTP call goes through ``Transport``.

It owns one connection pool (``modelyard.providers.http1``; started in
``create_app``, closed on shutdown), never follows redirects (a redirect could
carry a vendor key elsewhere), bounds answers after decompression, and turns
network failures and non-2xx answers into the error hierarchy through
``modelyard.providers.classify``. Providers give it URLs and bodies; nothing
else in the code base opens a connection to a model vendor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from modelyard.providers.classify import from_exception, from_response
from modelyard.providers.http1 import Pool, ProtocolError

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_NETWORK_ERRORS = (OSError, ProtocolError, asyncio.TimeoutError)


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str


class Transport:
    """Owns the connection pool; ``start()`` makes it inside the running loop."""

    def __init__(self, pool: Pool | None = None, *, max_response_bytes: int = MAX_RESPONSE_BYTES):
        self._pool_obj = pool
        self._max_response_bytes = max_response_bytes

    @classmethod
    def create(cls) -> Transport:
        """A started transport."""
        return cls(Pool(max_response_bytes=MAX_RESPONSE_BYTES))

    async def start(self) -> None:
        if self._pool_obj is None:
            self._pool_obj = Pool(max_response_bytes=self._max_response_bytes)

    @property
    def _pool(self) -> Pool:
        if self._pool_obj is None:
            raise RuntimeError("Transport.start() was not called")
        return self._pool_obj

    async def close(self) -> None:
        if self._pool_obj is not None:
            self._pool_obj.close()
            self._pool_obj = None

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        deployment: str,
        timeout: float,
    ) -> Reply:
        """POST and read the whole answer; a non-2xx answer raises the classified error."""
        try:
            async with asyncio.timeout(timeout):
                resp = await self._pool.request("POST", url, headers, body)
                try:
                    data = await resp.read()
                finally:
                    resp.close()
        except _NETWORK_ERRORS as exc:
            raise from_exception(exc, deployment) from exc
        if resp.status >= 300:
            raise from_response(resp.status, data, resp.headers, deployment, sent=headers)
        ctype = resp.headers.get("content-type", "application/json").split(";", 1)[0]
        return Reply(resp.status, data, ctype)

    async def stream(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        deployment: str,
        timeout: float,
    ) -> AsyncIterator[bytes]:
        """POST and yield the answer's bytes as they arrive.

        ``timeout`` bounds the wait for the answer's head and for each chunk.
        Errors before the first byte (connection, non-2xx) raise; errors in the
        middle raise too, and the caller ends its own stream accordingly.
        """
        try:
            async with asyncio.timeout(timeout):
                resp = await self._pool.request("POST", url, headers, body)
        except _NETWORK_ERRORS as exc:
            raise from_exception(exc, deployment) from exc
        try:
            if resp.status >= 300:
                async with asyncio.timeout(timeout):
                    data = await resp.read()
                raise from_response(resp.status, data, resp.headers, deployment, sent=headers)
            async for chunk in resp.iter_chunks(idle_timeout=timeout):
                yield chunk
        except _NETWORK_ERRORS as exc:
            raise from_exception(exc, deployment) from exc
        finally:
            resp.close()

    async def reachable(self, url: str, *, deployment: str, timeout: float = 3.0) -> None:
        """Raise unless something answers HTTP at ``url`` (any status will do)."""
        try:
            async with asyncio.timeout(timeout):
                resp = await self._pool.request("GET", url, {})
                try:
                    await resp.read()
                finally:
                    resp.close()
        except _NETWORK_ERRORS as exc:
            raise from_exception(exc, deployment) from exc
