"""The Anthropic Messages wire format, inbound: ``/v1/messages`` and its ``count_tokens``.

Any deployment serves a Messages client: the request becomes an internal
``ChatRequest`` (``wire.anthropic_inbound``), ``api.generation`` routes and
calls it, and the answer is written back as a Message or as Anthropic's
stream events (``wire.anthropic_events``); an Anthropic deployment's answer is
relayed as it came (``api.anthropic_passthrough``). Errors get Anthropic's shape in
``api.errors``. Fields only Anthropic takes (``top_k``, ``thinking``,
``service_tier``) go to Anthropic upstreams and are left out for the rest.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from modelyard.api.anthropic_passthrough import ANTHROPIC_PASSTHROUGH
from modelyard.api.body import json_response, parse, read_json
from modelyard.api.context import REQUEST_ID, ROUTER
from modelyard.api.generation import generate
from modelyard.errors import GatewayError, InvalidRequestError, NotFoundError
from modelyard.providers.base import Provider
from modelyard.routing.filters import Demand
from modelyard.types import ChatRequest
from modelyard.wire import anthropic_inbound as wire
from modelyard.wire.anthropic_events import MessageStreamEncoder


def _chat_request(data: dict[str, Any]) -> ChatRequest:
    """Validate the translated request; a failure names the field as the client wrote it."""
    try:
        return parse(ChatRequest, data)
    except InvalidRequestError as err:
        param = wire.field_name(err.param)
        message = err.message
        if err.param and param and param != err.param:
            message = message.replace(f"{err.param}:", f"{param}:", 1)
        raise InvalidRequestError(message, param=param) from None


async def messages(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    translated = wire.chat_from_messages(body)
    req = _chat_request(translated.chat)
    native = req
    if translated.native:
        native = _chat_request(translated.chat | translated.native)

    def for_provider(p: Provider) -> ChatRequest:
        return native if p.deployment.provider == "anthropic" else req

    model = req.model
    response = await generate(
        request,
        "messages",
        "messages",
        body,
        req,
        lambda p: p.chat(for_provider(p)),
        lambda p: p.chat_stream(for_provider(p)),
        lambda r: wire.message_from_chat(r, model=model),
        encoder=lambda: MessageStreamEncoder(model),
        passthrough=ANTHROPIC_PASSTHROUGH,
    )
    if not response.prepared:  # a stream's headers are already sent
        response.headers["request-id"] = request[REQUEST_ID]
    return response


async def count_tokens(request: web.Request) -> web.Response:
    """``{"input_tokens": N}``: an estimate, made here (``wire.anthropic_inbound.count_tokens``).

    No upstream is called: the count must not cost money or depend on which
    deployment a route would pick. The model must exist, as Anthropic checks.
    """
    body = await read_json(request)
    translated = wire.chat_from_messages(body, counting=True)
    req = _chat_request(translated.chat | {"max_tokens": 1})
    try:
        request.app[ROUTER].plan(req.model, Demand(), request_id=request[REQUEST_ID])
    except NotFoundError:
        raise
    except GatewayError:
        pass  # known, though not callable now: still countable
    return json_response({"input_tokens": wire.count_tokens(translated)})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/messages", messages),
        web.post("/v1/messages/count_tokens", count_tokens),
    ]
