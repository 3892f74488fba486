"""Serving one generation through the router, in the OpenAI wire format.

Every request is routed (``modelyard.routing.router``): the router makes the
attempts, and an attempt here is one call to one provider. A stream's attempt
ends when its first whole event is in hand; after that the bytes go to the
client and nothing is retried: an upstream failure ends the stream with an
error event. When the provider speaks OpenAI too, its bytes are relayed
unparsed (``wire.openai.StreamRelay``); otherwise chunks are translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

from modelyard.api.body import tags_of
from modelyard.api.context import (
    ANSWER_STATUS,
    DEPLOYMENT_HEADER,
    GOVERNANCE,
    LEARNER,
    OBSERVABILITY,
    PRINCIPAL,
    REQUEST_ID,
    REQUEST_LOG,
    ROUTER,
    SSE_HEADERS,
    STORED_PROMPT_BYTES,
)
from modelyard.api.errors import stream_error_event
from modelyard.api.learned import Cascade, learned_request, prompt_text, send_as_stream
from modelyard.api.response_cache import RESPONSE_CACHE, Lookup
from modelyard.errors import (
    GatewayError,
    UpstreamBadResponseError,
    UpstreamError,
)
from modelyard.governance.gate import IMAGE_TOKENS, Reservation
from modelyard.governance.prices import cost_micros, max_cost_micros
from modelyard.observability.logs import log_content
from modelyard.providers.base import Provider
from modelyard.providers.openai_compat import OpenAICompatibleProvider
from modelyard.routing.config import Interaction
from modelyard.routing.filters import Demand
from modelyard.routing.router import Plan
from modelyard.storage.request_log import RequestRecord
from modelyard.types import ChatChunk, ChatRequest, ChatResponse, CompletionRequest, Usage
from modelyard.wire import openai as wire
from modelyard.wire.sse import DONE

Pieces = AsyncGenerator[bytes, None]


class ChunkEncoder(Protocol):
    """Writes one answer's internal chunks in the client's wire format, as bytes on the wire.

    One encoder per answer (it may keep state: block indices, the message id).
    ``close`` ends a stream that finished; ``error`` ends one that broke after it
    began. ``usage`` is what the client asked for (OpenAI: ``include_usage``).
    """

    def feed(self, chunk: ChatChunk) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, err: GatewayError) -> bytes: ...


class OpenAIEncoder:
    """OpenAI's ``data: {...}`` events and ``data: [DONE]``; usage only when asked for."""

    __slots__ = ("keep_usage", "render")

    def __init__(self, render: Callable[[ChatChunk], dict[str, Any]], keep_usage: bool):
        self.render = render
        self.keep_usage = keep_usage

    def feed(self, chunk: ChatChunk) -> bytes:
        if chunk.usage is not None and not self.keep_usage:
            if not chunk.choices:
                return b""
            chunk.usage = None
        return b"data: " + orjson.dumps(self.render(chunk)) + b"\n\n"

    def close(self) -> bytes:
        return DONE

    def error(self, err: GatewayError) -> bytes:
        return stream_error_event(err)


class Call:
    """Governance, timing and accounting of one request; one ledger row at the end."""

    __slots__ = (
        "booked",
        "cache",
        "cost",
        "endpoint",
        "logged",
        "model",
        "principal",
        "provider",
        "request",
        "reservation",
        "route",
        "saved",
        "stream",
        "t0",
        "tags",
        "ttft",
        "usage",
    )

    def __init__(self, request: web.Request, endpoint: str, model: str, stream: bool):
        self.request = request
        self.endpoint = endpoint
        self.model = model
        self.principal = request[PRINCIPAL]
        self.provider: Provider | None = None
        self.stream = stream
        self.t0 = time.perf_counter()
        self.ttft: float | None = None
        self.usage = Usage()
        self.cost: int | None = None  # micro-dollars when several deployments were called
        self.booked = 0  # the micro-dollars the ledger row got
        self.cache: str | None = None  # "exact" | "semantic": answered from the cache
        self.saved = 0
        self.logged = False
        self.reservation: Reservation | None = None
        self.route: str | None = None
        self.tags: str | None = None

    async def admit(self) -> None:
        """Tags, the key's model scope and the rate limits, before anything is routed."""
        try:
            self.tags = tags_of(self.request)
            await self.request.app[GOVERNANCE].admit(self.principal, self.model)
        except GatewayError as err:
            self.done(error=err)
            raise

    async def reserve(self, plan: Plan, prompt_tokens: int, output_tokens: int | None) -> None:
        """Reserve the most the request can cost on any deployment the plan may call."""
        self.route = plan.route.name
        plan.decision.team = self.principal.team_name
        gov = self.request.app[GOVERNANCE]
        if self.principal.key is None or not gov.scopes(self.principal, time.time()):
            return  # no budget applies: nothing to price up front
        amount = 0
        cascade = plan.route.name in self.request.app[ROUTER].learned  # may call them all
        for p in plan.providers:
            dep = p.deployment
            if dep.prices is None:
                continue
            out = output_tokens
            if out is None:
                out = dep.max_output_tokens or gov.default_output_tokens
            most = max_cost_micros(dep.prices, prompt_tokens, out)
            amount = amount + most if cascade else max(amount, most)
        self.reservation = await gov.reserve(self.principal, amount)

    def done(self, error: GatewayError | None = None, *, gone: bool = False) -> None:
        """Settle and log the request; ``gone``: the client left before the answer ended (499)."""
        if self.logged:
            return
        self.logged = True
        dep = self.provider.deployment if self.provider else None
        u = self.usage
        app = self.request.app
        if self.cache is not None:
            cost = 0  # a cache hit: nothing was called, nothing is spent
        elif self.cost is not None:
            cost = self.cost  # a cascade: each call priced at its deployment, and booked
        else:
            cost = cost_micros(dep.prices, u) if dep is not None and dep.prices is not None else 0
            if dep is not None and dep.contract is not None:
                app[ROUTER].spent(dep.name, u.input_tokens, u.output_tokens)
        self.booked = cost
        key = self.principal.key
        status = self.request[ANSWER_STATUS] = 499 if gone else error.status if error else 200
        app[GOVERNANCE].settle(self.principal, self.reservation, cost, u.total_tokens)
        rec = RequestRecord(
            self.request[REQUEST_ID],
            time.time(),
            self.endpoint,
            self.model,
            dep.name if dep else None,
            dep.provider if dep else None,
            status,
            self.stream,
            (time.perf_counter() - self.t0) * 1000,
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.reasoning_tokens,
            self.ttft,
            "ClientDisconnected" if gone else type(error).__name__ if error else None,
            u.cache_write_tokens,
            u.audio_input_tokens,
            u.audio_output_tokens,
            key.id if key is not None else None,
            self.principal.team_name,
            self.route,
            self.tags,
            cost,
            (self.request.headers.get("X-Request-Id") or "")[:128] or None,
            self.cache,
            self.saved,
        )
        app[REQUEST_LOG].record(rec)
        app[OBSERVABILITY].finished(rec, self.request)


_NO_CAPABILITIES: frozenset[str] = frozenset()
TYPICAL_OUTPUT_TOKENS = 256  # what the cost policy assumes when a request sets no limit


def demand(
    request: web.Request, req: ChatRequest | CompletionRequest, kind: Interaction = "stateless"
) -> Demand:
    """What the request needs from a deployment: contract inputs, size and capabilities."""
    caps = _NO_CAPABILITIES
    output = req.max_tokens or 0
    if isinstance(req, ChatRequest):
        output = req.output_limit or 0
        found: list[str] = []
        if req.tools:
            found.append("tools")
        if req.response_format is not None and req.response_format.type != "text":
            found.append("json_schema")
        for m in req.messages:
            if isinstance(m.content, list) and m.has_image:
                found.append("images")
                break
        if found:
            caps = frozenset(found)
    headers = request.headers
    regions = headers.get("X-Data-Region")
    size = (request.content_length or 0) + request.get(STORED_PROMPT_BYTES, 0)
    prompt = size // 4  # ~4 bytes a token
    return Demand(
        kind=kind,
        classification=headers.get("X-Data-Classification"),
        regions=frozenset(r.strip() for r in regions.split(",")) if regions else None,
        tokens=prompt + output,
        prompt_tokens=prompt,
        output_tokens=output or TYPICAL_OUTPUT_TOKENS,
        capabilities=caps,
    )


class Passthrough(Protocol):
    """Relays the upstream's bytes when it speaks the client's wire format, parsing only usage."""

    def serves(self, provider: Provider) -> bool: ...

    async def once(
        self, provider: Provider, path: str, body: dict[str, Any]
    ) -> tuple[Usage, bytes]:
        """A whole answer: its usage and its bytes."""
        ...

    def stream(
        self, call: Call, provider: Provider, path: str, body: dict[str, Any], keep_usage: bool
    ) -> Pieces:
        """Whole events; the first ones checked, so that a garbled start can fail over."""
        ...


class OpenAIPassthrough:
    """OpenAI clients served by an OpenAI-compatible upstream."""

    def serves(self, provider: Provider) -> bool:
        return isinstance(provider, OpenAICompatibleProvider)

    async def once(
        self, provider: Provider, path: str, body: dict[str, Any]
    ) -> tuple[Usage, bytes]:
        assert isinstance(provider, OpenAICompatibleProvider)
        reply = await provider.forward(path, body)
        return _usage_of(reply.body, provider.name), reply.body

    def stream(
        self, call: Call, provider: Provider, path: str, body: dict[str, Any], keep_usage: bool
    ) -> Pieces:
        assert isinstance(provider, OpenAICompatibleProvider)
        return _relay(call, provider.name, provider.forward_stream(path, body), keep_usage)


OPENAI_PASSTHROUGH = OpenAIPassthrough()


async def generate(
    request: web.Request,
    endpoint: str,
    path: str,
    body: dict[str, Any],
    req: ChatRequest | CompletionRequest,
    answer: Callable[[Provider], Awaitable[ChatResponse]],
    stream: Callable[[Provider], AsyncIterator[ChatChunk]],
    render: Callable[[ChatResponse], dict[str, Any]],
    render_chunk: Callable[[ChatChunk], dict[str, Any]] | None = None,
    *,
    encoder: Callable[[], ChunkEncoder] | None = None,
    passthrough: Passthrough | None = OPENAI_PASSTHROUGH,
    kind: Interaction = "stateless",
) -> web.StreamResponse:
    """Route, call and answer one generation.

    ``passthrough`` (default: OpenAI's, for OpenAI clients; None: never): when
    the serving upstream speaks the client's own format at ``path``, its bytes
    are relayed as they are (``Passthrough``). Otherwise
    every answer goes through ``answer``/``stream`` and is written by
    ``render`` (a whole answer) or a fresh ``encoder()`` (a stream; by default
    OpenAI's events from ``render_chunk``).
    """
    router = request.app[ROUTER]
    call = Call(request, endpoint, req.model, req.stream)
    await call.admit()
    if encoder is None:
        assert render_chunk is not None, "a stream needs render_chunk or an encoder"
        chunk_render, keep = render_chunk, req.include_usage
        encoder = lambda: OpenAIEncoder(chunk_render, keep)  # noqa: E731
    make_encoder = encoder
    relay = passthrough
    try:
        plan = router.plan(req.model, demand(request, req, kind), request_id=request[REQUEST_ID])
    except GatewayError as err:
        call.done(error=err)
        raise
    learned = router.learned.get(plan.route.name)
    cache = request.app[RESPONSE_CACHE]
    found = await cache.lookup(request, plan, endpoint, body, call.principal.team_name)
    if found is not None and found.entry is not None:
        return await _replay(request, call, plan, found)

    async def once(p: Provider) -> tuple[Usage, bytes]:
        if relay is not None and relay.serves(p):
            return await relay.once(p, path, body)
        result = await answer(p)
        return result.usage, orjson.dumps(render(result))

    try:
        chat = learned_request(plan.route.name, req) if learned is not None else None
        await call.reserve(
            plan, await prompt_bound(request, req), _output_bound(call, plan, body, req)
        )
        if learned is not None and chat is not None:
            streamed, chat.stream, chat.stream_options = chat.stream, False, None  # calls: whole
            cascade = Cascade(router, plan, learned, answer)
            prompt = prompt_text(chat)
            try:
                call.provider, result = await cascade.run(prompt)
            finally:
                call.usage, call.cost = cascade.usage, cascade.cost
            cascade.offer(request.app[LEARNER], request[REQUEST_ID], chat, prompt)
            if streamed:
                call.ttft = (time.perf_counter() - call.t0) * 1000
                reply, out = await send_as_stream(
                    request, call.provider.name, result, make_encoder()
                )
                call.done()
                _keep(call, found, out, stream=True)
                return reply
            data = orjson.dumps(render(result))
        elif req.stream:

            def pieces(p: Provider) -> Pieces:
                if relay is not None and relay.serves(p):
                    return relay.stream(call, p, path, body, req.include_usage)
                return _translate(call, stream(p), make_encoder())

            sent: list[bytes] | None = [] if found is not None or plan.route.log_content else None
            reply = await _serve_stream(request, call, plan, pieces, make_encoder, sent)
            if sent is not None and request[ANSWER_STATUS] == 200:
                _keep(call, found, b"".join(sent), stream=True)
            if sent is not None and plan.route.log_content:  # the route opted in
                log_content(plan.route.name, body, b"".join(sent))
            return reply

        else:
            call.provider, (call.usage, data) = await router.run(plan, once)
    except GatewayError as err:
        call.done(error=err)
        raise
    except (asyncio.CancelledError, ConnectionError):
        call.done(gone=True)
        raise
    except Exception:
        call.done(error=GatewayError("internal error"))
        raise
    finally:
        request.app[REQUEST_LOG].record_decision(plan.decision)
    call.done()
    _keep(call, found, data, stream=False)
    if plan.route.log_content:  # the route opted in
        log_content(plan.route.name, body, data)
    return web.Response(
        body=data,
        headers={"Content-Type": "application/json", DEPLOYMENT_HEADER: call.provider.name},
    )


async def prompt_bound(request: web.Request, req: ChatRequest | CompletionRequest | None) -> int:
    """The most prompt tokens a request can be billed: its bytes, per-message framing, images."""
    bound = len(await request.read()) + int(request.get(STORED_PROMPT_BYTES, 0))
    if isinstance(req, ChatRequest):
        bound += 8 * len(req.messages)
        for m in req.messages:
            if isinstance(m.content, list) and m.has_image:
                bound += IMAGE_TOKENS * sum(1 for part in m.content if part.type == "image_url")
    return bound


def _output_bound(
    call: Call, plan: Plan, body: dict[str, Any], req: ChatRequest | CompletionRequest
) -> int | None:
    """The request's output limit; under a hard budget one is set when it has none."""
    limit = req.output_limit if isinstance(req, ChatRequest) else req.max_tokens
    if limit is not None or call.principal.key is None:
        return limit
    if all(p.deployment.max_output_tokens for p in plan.providers):
        return None  # each deployment's own maximum bounds it
    gov = call.request.app[GOVERNANCE]
    if not gov.needs_bound(call.principal):
        return None
    limit = gov.default_output_tokens
    body["max_tokens"] = req.max_tokens = limit
    return limit


def _usage_of(body: bytes, deployment: str) -> Usage:
    """The usage of an OpenAI answer relayed as bytes; an answer that is not JSON fails."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise UpstreamBadResponseError(
            f"deployment {deployment!r}: the upstream answered with something that is not "
            "a JSON object",
            deployment=deployment,
        )
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        return wire.usage_from_dict(data.get("usage"))
    return Usage()


def _keep(call: Call, found: Lookup | None, data: bytes, *, stream: bool) -> None:
    """A cacheable request's whole answer goes to the cache."""
    if found is not None and call.provider is not None:
        cache = call.request.app[RESPONSE_CACHE]
        name = call.provider.name
        cache.keep(found, call.endpoint, name, data, call.usage, call.booked, stream=stream)


async def _replay(
    request: web.Request, call: Call, plan: Plan, found: Lookup
) -> web.StreamResponse:
    """A cache hit: the stored answer, nothing routed or called, booked with what it saved."""
    entry = found.entry
    assert entry is not None
    call.route = plan.route.name
    plan.decision.team = call.principal.team_name
    plan.decision.chosen = entry.deployment
    call.provider = request.app[ROUTER].providers.get(entry.deployment)
    call.cache, call.saved = found.how, entry.cost_micros
    try:
        reply = await request.app[RESPONSE_CACHE].replay(request, found)
    except (asyncio.CancelledError, ConnectionError):
        call.done(gone=True)
        raise
    finally:
        request.app[REQUEST_LOG].record_decision(plan.decision)
    call.done()
    return reply


async def _serve_stream(
    request: web.Request,
    call: Call,
    plan: Plan,
    pieces: Callable[[Provider], Pieces],
    encoder: Callable[[], ChunkEncoder],
    sent: list[bytes] | None = None,
) -> web.StreamResponse:
    async def first_piece(p: Provider) -> tuple[bytes, Pieces]:
        it = pieces(p)
        try:
            return await anext(it, b""), it
        except BaseException:
            await it.aclose()
            raise

    async def discard(found: tuple[bytes, Pieces]) -> None:
        await found[1].aclose()

    router = request.app[ROUTER]
    call.provider, (first, rest) = await router.run(plan, first_piece, discard)
    call.ttft = (time.perf_counter() - call.t0) * 1000
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    response.headers[DEPLOYMENT_HEADER] = call.provider.name
    try:
        await response.prepare(request)
        await response.write(first)
        if sent is not None:
            sent.append(first)
        async for piece in rest:
            await response.write(piece)
            if sent is not None:
                sent.append(piece)
    except GatewayError as err:
        if isinstance(err, UpstreamError):
            router.health[call.provider.name].failed(time.monotonic())
        plan.decision.error = f"after the first byte: {err.message}"
        await response.write(encoder().error(err))
        call.done(error=err)
        return response
    except (asyncio.CancelledError, ConnectionError):
        call.done(gone=True)
        raise
    finally:
        await rest.aclose()
    call.done()
    return response


async def _relay(
    call: Call, deployment: str, upstream: AsyncIterator[bytes], keep_usage: bool
) -> Pieces:
    """An OpenAI-format upstream stream as whole events, relayed unparsed.

    The first events are checked (the attempt ends with them, so a garbled start
    can still fail over); later ones are relayed as they come.
    """
    relay = wire.StreamRelay(keep_usage=keep_usage)
    checked = False
    try:
        async for chunk in upstream:
            out = relay.feed(chunk)
            if relay.usage is not None:
                call.usage = relay.usage
            if out:
                if not checked:
                    _check_events(out, deployment)
                    checked = True
                yield out
        tail = relay.close()
        if relay.usage is not None:
            call.usage = relay.usage
        if tail:
            if not checked:
                _check_events(tail, deployment)
            yield tail
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]


def _check_events(events: bytes, deployment: str) -> None:
    if not wire.valid_events(events):
        raise UpstreamBadResponseError(
            f"deployment {deployment!r}: the upstream's stream is not OpenAI server-sent events",
            deployment=deployment,
        )


async def _translate(call: Call, chunks: AsyncIterator[ChatChunk], encoder: ChunkEncoder) -> Pieces:
    """Internal chunks in the client's wire format."""
    try:
        async for chunk in chunks:
            if chunk.usage is not None:
                call.usage = chunk.usage
            out = encoder.feed(chunk)
            if out:
                yield out
        yield encoder.close()
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
