"""Every host that speaks the OpenAI wire format: OpenAI, Azure and the rows of ``registry``.

The quirks of a host are fields of its row; this module has no per-host code
beyond Azure's deployment-in-path URLs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelyard.errors import UpstreamBadResponseError
from modelyard.providers.base import Provider
from modelyard.providers.registry import HOSTS
from modelyard.providers.transport import Reply, Transport
from modelyard.settings import Deployment, credential
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from modelyard.wire import openai as wire
from modelyard.wire.sse import SSEDecoder


class OpenAICompatibleProvider(Provider):
    speaks_openai = True
    serves_embeddings = True

    def __init__(self, deployment: Deployment, transport: Transport):
        super().__init__(deployment)
        self.host = HOSTS[deployment.provider]
        self.transport = transport
        base = (deployment.base_url or self.host.base_url or "").rstrip("/")
        self._base = base
        headers = {"Content-Type": "application/json", **deployment.headers}
        key = credential(deployment)
        if key is not None:
            if self.host.auth_header == "Authorization":
                headers["Authorization"] = f"Bearer {key}"
            else:
                headers[self.host.auth_header] = key
        self.headers = headers

    def url(self, path: str) -> str:
        if self.host.azure:
            return (
                f"{self._base}/openai/deployments/{self.deployment.model}/{path}"
                f"?api-version={self.deployment.api_version}"
            )
        return f"{self._base}/{path}"

    def upstream_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return wire.passthrough_body(
            body,
            model=self.deployment.model,
            max_tokens_field=self.host.max_tokens_field,
            stream_usage=self.host.stream_usage,
            drop_model=self.host.azure,
        )

    # ----------------------------------------------------- the byte fast path

    async def forward(self, path: str, body: dict[str, Any]) -> Reply:
        return await self.transport.post(
            self.url(path),
            orjson.dumps(self.upstream_body(body)),
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )

    def forward_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        return self.transport.stream(
            self.url(path),
            orjson.dumps(self.upstream_body(body)),
            self.headers,
            deployment=self.name,
            timeout=self.deployment.timeout,
        )

    async def ready(self) -> None:
        await self.transport.reachable(self._base, deployment=self.name)

    # ------------------------------------------------------ the typed path

    async def chat(self, req: ChatRequest) -> ChatResponse:
        reply = await self.forward("chat/completions", wire.chat_request_to_dict(req))
        return wire.chat_response_from_dict(_json(reply.body, self.name, self.headers))

    async def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = wire.chat_request_to_dict(req)
        async for data in self._events(self.forward_stream("chat/completions", body)):
            yield wire.chat_chunk_from_dict(data)

    async def complete(self, req: CompletionRequest) -> ChatResponse:
        body = req.model_dump(mode="json", exclude_none=True)
        data = _json((await self.forward("completions", body)).body, self.name, self.headers)
        resp = wire.chat_response_from_dict(data)
        resp.choices = [
            Choice(
                index=int(c.get("index", i)),
                content=c.get("text", ""),
                finish_reason=wire._FINISH.get(c.get("finish_reason") or ""),
            )
            for i, c in enumerate(data.get("choices") or [])
        ]
        return resp

    async def complete_stream(self, req: CompletionRequest) -> AsyncIterator[ChatChunk]:
        body = req.model_dump(mode="json", exclude_none=True)
        async for data in self._events(self.forward_stream("completions", body)):
            for c in data.get("choices") or []:
                c["delta"] = {"content": c.get("text", "")}
            yield wire.chat_chunk_from_dict(data)

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        body = req.model_dump(mode="json", exclude_none=True)
        body["encoding_format"] = "float"
        data = _json((await self.forward("embeddings", body)).body, self.name, self.headers)
        items = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        return EmbeddingResponse(
            model=str(data.get("model", self.deployment.model)),
            vectors=[list(map(float, d["embedding"])) for d in items],
            usage=wire.usage_from_dict(data.get("usage")),
        )

    async def _events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
        decoder = SSEDecoder()
        try:
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    if event.data == "[DONE]":
                        return
                    yield _json(event.data.encode(), self.name, self.headers)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]


def _json(body: bytes, deployment: str, sent: dict[str, str]) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponseError(
            f"deployment {deployment!r}: the upstream answered with something that is not JSON",
            deployment=deployment,
        ) from None
    if not isinstance(data, dict):
        raise UpstreamBadResponseError(
            f"deployment {deployment!r}: the upstream answered JSON that is not an object",
            deployment=deployment,
        )
    if "error" in data and "choices" not in data and "data" not in data:
        from modelyard.providers.classify import from_response

        raise from_response(500, body, {}, deployment, sent=sent)
    return data
