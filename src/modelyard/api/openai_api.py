"""The OpenAI wire format, inbound: chat completions, completions, embeddings, models.

Parse and validate here, then hand the request to ``api.generation``, which
routes it and answers in the OpenAI format. Also the routing decisions.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from modelyard.api.body import json_response, parse, read_json
from modelyard.api.context import DEPLOYMENT_HEADER, PRINCIPAL, REQUEST_ID, REQUEST_LOG, ROUTER
from modelyard.api.generation import Call, generate, prompt_bound
from modelyard.errors import GatewayError, NotFoundError
from modelyard.providers.base import Provider, new_id
from modelyard.routing.filters import Demand
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CompletionRequest,
    EmbeddingRequest,
)
from modelyard.wire import openai as wire

# ---------------------------------------------------------------- chat


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    req = parse(ChatRequest, body)
    return await generate(
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
    return await generate(
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
    router = request.app[ROUTER]
    call = Call(request, "embeddings", req.model, False)
    await call.admit()
    try:
        plan = router.plan(
            req.model, Demand(), request_id=request[REQUEST_ID], endpoint="embeddings"
        )
    except GatewayError as err:
        call.done(error=err)
        raise
    try:
        await call.reserve(plan, await prompt_bound(request, None), 0)
        call.provider, result = await router.run(plan, lambda p: p.embed(req))
    except GatewayError as err:
        call.done(error=err)
        raise
    except BaseException:
        call.done(gone=True)
        raise
    finally:
        request.app[REQUEST_LOG].record_decision(plan.decision)
    call.usage = result.usage
    call.done()
    out = wire.embedding_response_to_dict(result, req.encoding_format)
    out["model"] = req.model
    response = json_response(out)
    response.headers[DEPLOYMENT_HEADER] = call.provider.name
    return response


# ---------------------------------------------------------------- models


def _model_card(name: str, provider: Provider) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": provider.deployment.provider}


async def list_models(request: web.Request) -> web.Response:
    names = request.app[ROUTER].names()
    return json_response({"object": "list", "data": [_model_card(n, p) for n, p in names]})


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    for known, provider in request.app[ROUTER].names():
        if known == name:
            return json_response(_model_card(known, provider))
    raise NotFoundError(f"The model {name!r} does not exist", param="model", code="model_not_found")


async def routing_decision(request: web.Request) -> web.Response:
    """How the gateway routed one request: candidates, removals, attempts, choice."""
    request_id = request.match_info["request_id"]
    found = await request.app[REQUEST_LOG].find_decision(request_id)
    principal = request[PRINCIPAL]
    # another team's decision answers exactly as a missing one does
    if found is None or (found.pop("team") != principal.team_name and not principal.admin):
        raise NotFoundError(f"No routing decision is stored for request {request_id!r}")
    return json_response(found)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/completions", completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", list_models),
        web.get("/v1/models/{model:.+}", get_model),
        web.get("/v1/routing/decisions/{request_id}", routing_decision),
    ]
