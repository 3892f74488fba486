"""The Anthropic Messages provider: base URL, credentials and calls through the transport.

What the bodies look like is ``modelyard.wire.anthropic``'s business; this
module sends them to ``POST {base}/v1/messages`` and turns what comes back,
including an ``error`` event in the middle of a stream, into internal types
and the error hierarchy.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelyard.errors import UpstreamBadResponseError
from modelyard.providers.base import Provider
from modelyard.providers.classify import from_response
from modelyard.providers.transport import Transport
from modelyard.settings import Deployment, credential
from modelyard.types import ChatChunk, ChatRequest, ChatResponse
from modelyard.wire import anthropic as wire
from modelyard.wire.sse import SSEDecoder

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider(Provider):
    def __init__(self, deployment: Deployment, transport: Transport):
        super().__init__(deployment)
        self.transport = transport
        self.url = f"{(deployment.base_url or DEFAULT_BASE_URL).rstrip('/')}/v1/messages"
        headers = {
            "content-type": "application/json",
            "anthropic-version": wire.API_VERSION,
            **{k.lower(): v for k, v in deployment.headers.items()},
        }
        key = credential(deployment)
        if key is not None:
            headers["x-api-key"] = key
        self.headers = headers

    def _body(self, req: ChatRequest, *, stream: bool) -> bytes:
        body = wire.messages_request(
            req,
            model=self.deployment.model,
            default_max_tokens=self.deployment.max_output_tokens,
            stream=stream,
        )
        return orjson.dumps(body)

    async def ready(self) -> None:
        await self.transport.reachable(self.url, deployment=self.name)

    async def chat(self, req: ChatRequest) -> ChatResponse:
        reply = await self.transport.post(
            self.url,
            self._body(req, stream=False),
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )
        data = self._json(reply.body)
        if data.get("type") == "error":
            raise from_response(
                wire.error_status(data), reply.body, {}, self.name, sent=self.headers
            )
        return wire.chat_response_from_message(
            data, created=int(time.time()), json_mode=wire.emulates_json(req)
        )

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = self._body(req, stream=True)
        translator = wire.AnthropicStreamTranslator(
            created=int(time.time()), json_mode=wire.emulates_json(req)
        )
        decoder = SSEDecoder()
        chunks = self.transport.stream(
            self.url, body, self.headers, deployment=self.name, timeout=self.deployment.timeout
        )
        try:
            async for raw in chunks:
                for event in decoder.feed(raw):
                    data = self._json(event.data.encode())
                    name = event.event or str(data.get("type", ""))
                    try:
                        out = translator.feed(name, data)
                    except wire.StreamError as exc:
                        raise from_response(
                            exc.status, exc.body, {}, self.name, sent=self.headers
                        ) from None
                    for chunk in out:
                        yield chunk
                    if translator.finished:
                        return
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        raise UpstreamBadResponseError(
            f"deployment {self.name!r}: the upstream stream ended before message_stop",
            deployment=self.name,
        )

    # ------------------------------------------------ a Messages client's own body

    def _native(self, body: dict[str, Any], *, stream: bool) -> bytes:
        return orjson.dumps({**body, "model": self.deployment.model, "stream": stream})

    async def forward(self, body: dict[str, Any]) -> bytes:
        """A Messages client's request as it came (our model name swapped in); the raw answer."""
        reply = await self.transport.post(
            self.url,
            self._native(body, stream=False),
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )
        data = self._json(reply.body)
        if data.get("type") == "error":
            raise from_response(
                wire.error_status(data), reply.body, {}, self.name, sent=self.headers
            )
        return reply.body

    def forward_stream(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        return self.transport.stream(
            self.url,
            self._native(body, stream=True),
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )

    def _json(self, body: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamBadResponseError(
                f"deployment {self.name!r}: the upstream answered with something not a JSON object",
                deployment=self.name,
            )
        return data
