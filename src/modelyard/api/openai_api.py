"""The OpenAI wire format, inbound: chat completions, completions, embeddings, models.

Parse and validate here, resolve the model, call the provider, answer in the
OpenAI format. When the provider speaks OpenAI too, the upstream's bytes go
back to the client nearly untouched (``_proxy`` / ``_proxy_stream``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from modelyard.api.body import parse, read_json
from modelyard.api.context import DIRECTORY, REQUEST_ID, REQUEST_LOG
from modelyard.api.errors import stream_error_event
from modelyard.errors import GatewayError
from modelyard.providers.base import Provider, new_id
from modelyard.providers.openai_compat import OpenAICompatibleProvider
from modelyard.storage.request_log import RequestRecord
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CompletionRequest,
    EmbeddingRequest,
    Usage,
)
from modelyard.wire import openai as wire
from modelyard.wire.sse import DONE

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')


class _Call:
    """Timing and accounting of one request, written to the request log at the end."""

    __slots__ = ("endpoint", "model", "provider", "request", "stream", "t0", "ttft", "usage")

    def __init__(
        self, request: web.Request, endpoint: str, model: str, provider: Provider, stream: bool
    ):
        self.request = request
        self.endpoint = endpoint
        self.model = model
        self.provider = provider
        self.stream = stream
        self.t0 = time.perf_counter()
        self.ttft: float | None = None
        self.usage = Usage()

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = (time.perf_counter() - self.t0) * 1000

    def done(self, status: int = 200, error: GatewayError | None = None) -> None:
        dep = self.provider.deployment
        u = self.usage
        self.request.app[REQUEST_LOG].record(
            RequestRecord(
                self.request[REQUEST_ID],
                time.time(),
                self.endpoint,
                self.model,
                dep.name,
                dep.provider,
                error.status if error else status,
                self.stream,
                (time.perf_counter() - self.t0) * 1000,
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens,
                self.ttft,
                type(error).__name__ if error else None,
            )
        )


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


# ---------------------------------------------------------------- chat


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    req = parse(ChatRequest, body)
    return await _generate(
        request,
        "chat",
        "chat/completions",
        body,
        req,
        lambda p: p.chat(req),
        lambda p: p.chat_stream(req),
        wire.chat_response_to_dict,
        wire.chat_chunk_to_dict,
    )


async def _generate(
    request: web.Request,
    endpoint: str,
    path: str,
    body: dict[str, Any],
    req: ChatRequest | CompletionRequest,
    answer: Callable[[Provider], Awaitable[ChatResponse]],
    stream: Callable[[Provider], AsyncIterator[ChatChunk]],
    render: Callable[[ChatResponse], dict[str, Any]],
    render_chunk: Callable[[ChatChunk], dict[str, Any]],
) -> web.StreamResponse:
    """Serve a generation: bytes relayed to an OpenAI-speaking upstream, else translated."""
    provider = request.app[DIRECTORY].resolve(req.model)
    call = _Call(request, endpoint, req.model, provider, req.stream)
    try:
        if isinstance(provider, OpenAICompatibleProvider):
            if req.stream:
                return await _proxy_stream(request, call, provider, path, body, req.include_usage)
            return await _proxy(call, provider, path, body)
        if req.stream:
            return await _typed_stream(
                request, call, stream(provider), render_chunk, req.include_usage
            )
        result = await answer(provider)
    except GatewayError as err:
        call.done(error=err)  # an error before anything was sent; mid-stream ones are logged there
        raise
    call.usage = result.usage
    call.done()
    return _json(render(result))


async def _proxy(
    call: _Call, provider: OpenAICompatibleProvider, path: str, body: dict[str, Any]
) -> web.Response:
    reply = await provider.forward(path, body)
    # the client gets the upstream's answer as it is, even one we cannot account
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        call.usage = wire.usage_from_dict(orjson.loads(reply.body).get("usage"))
    call.done()
    return web.Response(body=reply.body, content_type=reply.content_type or "application/json")


async def _start_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    await response.prepare(request)
    return response


async def _proxy_stream(
    request: web.Request,
    call: _Call,
    provider: OpenAICompatibleProvider,
    path: str,
    body: dict[str, Any],
    client_wants_usage: bool,
) -> web.StreamResponse:
    """Relay an OpenAI-format stream as bytes, whole events at a time.

    Events are cut at blank lines and forwarded unparsed; only an event that
    carries usage is parsed (to account), and dropped when the gateway asked
    for usage on the client's behalf. A client never sees half an event, so
    an upstream failure mid-stream ends with a clean error event.
    """
    upstream = provider.forward_stream(path, body)
    relay = wire.StreamRelay(keep_usage=client_wants_usage)
    response: web.StreamResponse | None = None
    try:
        async for chunk in upstream:
            out = relay.feed(chunk)
            if relay.usage is not None:
                call.usage = relay.usage
            if not out:
                continue
            if response is None:
                # nothing is sent before the upstream's first event, so an error
                # until then still gets a proper status
                call.first_token()
                response = await _start_stream(request)
            await response.write(out)
    except GatewayError as err:
        if response is None:
            raise
        await response.write(stream_error_event(err))
        call.done(error=err)
        return response
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]
    if response is None:
        response = await _start_stream(request)
    await response.write(relay.close())
    if relay.usage is not None:
        call.usage = relay.usage
    call.done()
    return response


async def _typed_stream(
    request: web.Request,
    call: _Call,
    chunks: AsyncIterator[ChatChunk],
    render: Callable[[ChatChunk], dict[str, Any]],
    client_wants_usage: bool,
) -> web.StreamResponse:
    response: web.StreamResponse | None = None
    try:
        async for chunk in chunks:
            if chunk.usage is not None:
                call.usage = chunk.usage
                if not client_wants_usage and not chunk.choices:
                    continue
                if not client_wants_usage:
                    chunk.usage = None
            if response is None:
                call.first_token()
                response = await _start_stream(request)
            await response.write(b"data: " + orjson.dumps(render(chunk)) + b"\n\n")
    except GatewayError as err:
        if response is None:
            raise
        await response.write(stream_error_event(err))
        call.done(error=err)
        return response
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    if response is None:
        response = await _start_stream(request)
    await response.write(DONE)
    call.done()
    return response


# ---------------------------------------------------------- completions


def _completion_dict(resp: ChatResponse) -> dict[str, Any]:
    return {
        "id": resp.id or new_id("cmpl"),
        "object": "text_completion",
        "created": resp.created or int(time.time()),
        "model": resp.model,
        "choices": [
            {
                "index": c.index,
                "text": c.content or "",
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for c in resp.choices
        ],
        "usage": wire.usage_to_dict(resp.usage),
    }


def _completion_chunk_dict(chunk: ChatChunk) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": chunk.id,
        "object": "text_completion",
        "created": chunk.created,
        "model": chunk.model,
        "choices": [
            {
                "index": d.index,
                "text": d.content or "",
                "logprobs": None,
                "finish_reason": d.finish_reason,
            }
            for d in chunk.choices
        ],
    }
    if chunk.usage is not None:
        out["usage"] = wire.usage_to_dict(chunk.usage)
    return out


async def completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    req = parse(CompletionRequest, body)
    return await _generate(
        request,
        "completions",
        "completions",
        body,
        req,
        lambda p: p.complete(req),
        lambda p: p.complete_stream(req),
        _completion_dict,
        _completion_chunk_dict,
    )


# ------------------------------------------------------------ embeddings


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    req = parse(EmbeddingRequest, body)
    provider = request.app[DIRECTORY].resolve(req.model, kind="embeddings")
    call = _Call(request, "embeddings", req.model, provider, False)
    try:
        result = await provider.embed(req)
    except GatewayError as err:
        call.done(error=err)
        raise
    call.usage = result.usage
    call.done()
    out = wire.embedding_response_to_dict(result, req.encoding_format)
    out["model"] = req.model
    return _json(out)


# ---------------------------------------------------------------- models


def _model_card(name: str, provider: Provider) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": provider.deployment.provider}


async def list_models(request: web.Request) -> web.Response:
    names = request.app[DIRECTORY].names()
    return _json({"object": "list", "data": [_model_card(n, p) for n, p in names]})


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    for known, provider in request.app[DIRECTORY].names():
        if known == name:
            return _json(_model_card(known, provider))
    request.app[DIRECTORY].resolve(name)  # raises the 404 with its message
    raise AssertionError("unreachable")


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/completions", completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", list_models),
        web.get("/v1/models/{model:.+}", get_model),
    ]
