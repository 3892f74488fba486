"""The one transport boundary: every upstream HTTP call goes through ``Transport``.

It owns one aiohttp session (created in ``create_app``, closed on shutdown),
never follows redirects (a redirect could carry a vendor key elsewhere), and
turns network failures and non-2xx answers into the error hierarchy through
``modelyard.providers.classify``. Providers give it URLs and bodies; nothing
else in the code base opens a connection to a model vendor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from modelyard.errors import UpstreamBadResponseError
from modelyard.providers.classify import from_exception, from_response

MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str


class Transport:
    """Owns the aiohttp session; ``start()`` makes it inside the running loop."""

    def __init__(self, session: aiohttp.ClientSession | None = None):
        self._session_obj = session

    @classmethod
    def create(cls) -> Transport:
        """A started transport (call inside a running event loop)."""
        return cls(_new_session())

    async def start(self) -> None:
        if self._session_obj is None:
            self._session_obj = _new_session()

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._session_obj is None:
            raise RuntimeError("Transport.start() was not called")
        return self._session_obj

    async def close(self) -> None:
        if self._session_obj is not None:
            await self._session_obj.close()
            self._session_obj = None

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
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                data = await _read_bounded(resp)
                if resp.status >= 300:
                    raise from_response(resp.status, data, resp.headers, deployment)
                return Reply(resp.status, data, resp.content_type)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise from_exception(exc, deployment) from exc

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

        Errors before the first byte (connection, non-2xx) raise; errors in the
        middle raise too, and the caller ends its own stream accordingly.
        """
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout, sock_read=timeout),
            ) as resp:
                if resp.status >= 300:
                    data = await _read_bounded(resp)
                    raise from_response(resp.status, data, resp.headers, deployment)
                async for chunk in resp.content.iter_any():
                    yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise from_exception(exc, deployment) from exc

    async def reachable(self, url: str, *, deployment: str, timeout: float = 3.0) -> None:
        """Raise unless something answers HTTP at ``url`` (any status will do)."""
        try:
            async with self._session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
            ):
                return
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise from_exception(exc, deployment) from exc


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    )


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length > MAX_RESPONSE_BYTES:
        raise UpstreamBadResponseError(
            "the upstream answer is too large", upstream_status=resp.status
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamBadResponseError(
                "the upstream answer is too large", upstream_status=resp.status
            )
        chunks.append(chunk)
    return b"".join(chunks)
