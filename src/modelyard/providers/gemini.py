"""The Google Gemini API (Google AI Studio keys): chat, streamed chat and embeddings.

The wire format lives in ``modelyard.wire.gemini``; this module is the URL,
the key header and the calls through the one transport. The key travels in
the ``x-goog-api-key`` header, never in the URL, where logs and error
messages would keep it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelyard.errors import UpstreamBadResponseError
from modelyard.providers.base import Provider
from modelyard.providers.classify import from_response
from modelyard.providers.transport import Transport
from modelyard.settings import Deployment, credential
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from modelyard.wire import gemini as wire
from modelyard.wire.sse import SSEDecoder

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
EMBED_BATCH = 100  # the most requests Google takes in one batchEmbedContents call


class GeminiProvider(Provider):
    serves_embeddings = True

    def __init__(self, deployment: Deployment, transport: Transport):
        super().__init__(deployment)
        self.transport = transport
        base = (deployment.base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.endswith(("/v1beta", "/v1")):
            base = f"{base}/{API_VERSION}"
        self._base = base
        headers = {"Content-Type": "application/json", **deployment.headers}
        key = credential(deployment)
        if key is not None:
            headers["x-goog-api-key"] = key
        self.headers = headers

    def url(self, method: str, *, sse: bool = False) -> str:
        resource = wire.model_resource(self.deployment.model)
        return f"{self._base}/{resource}:{method}" + ("?alt=sse" if sse else "")

    async def _post(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.transport.post(
            self.url(method),
            orjson.dumps(body),
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )
        return self._json(reply.body)

    async def ready(self) -> None:
        await self.transport.reachable(self._base, deployment=self.name)

    async def chat(self, req: ChatRequest) -> ChatResponse:
        data = await self._post("generateContent", wire.chat_request_to_gemini(req))
        return wire.chat_response_from_gemini(data, model=self.deployment.model)

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = orjson.dumps(wire.chat_request_to_gemini(req))
        chunks = self.transport.stream(
            self.url("streamGenerateContent", sse=True),
            body,
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )
        translator = wire.GeminiStreamTranslator(self.deployment.model)
        decoder = SSEDecoder()
        try:
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    for out in translator.feed(self._json(event.data.encode())):
                        yield out
            for event in decoder.close():
                for out in translator.feed(self._json(event.data.encode())):
                    yield out
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        if translator.events == 0:
            raise UpstreamBadResponseError(
                f"deployment {self.name!r}: the upstream stream ended without an event",
                deployment=self.name,
            )
        for out in translator.finish():
            yield out

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        requests = wire.embed_request_to_gemini(req, self.deployment.model)["requests"]
        batches = [requests[i : i + EMBED_BATCH] for i in range(0, len(requests), EMBED_BATCH)]
        answers = await asyncio.gather(
            *(self._post("batchEmbedContents", {"requests": batch}) for batch in batches)
        )
        resp = EmbeddingResponse(model=self.deployment.model, vectors=[], usage=Usage())
        for data in answers:
            part = wire.embed_response_from_gemini(data, model=self.deployment.model)
            resp.vectors.extend(part.vectors)
            resp.usage.add(part.usage)
        if len(resp.vectors) != len(requests):
            raise UpstreamBadResponseError(
                f"deployment {self.name!r}: asked for {len(requests)} embeddings, "
                f"got {len(resp.vectors)}",
                deployment=self.name,
            )
        return resp

    def _json(self, body: bytes) -> dict[str, Any]:
        """A JSON object from the upstream; an in-band ``error`` object raises it classified."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponseError(
                f"deployment {self.name!r}: the upstream answered with something that is not JSON",
                deployment=self.name,
            ) from None
        if not isinstance(data, dict):
            raise UpstreamBadResponseError(
                f"deployment {self.name!r}: the upstream answered JSON that is not an object",
                deployment=self.name,
            )
        err = data.get("error")
        if isinstance(err, dict) and "candidates" not in data:
            # A stream that fails after its first byte reports the error as an event.
            code = err.get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            raise from_response(status, body, {}, self.name, sent=self.headers)
        return data
