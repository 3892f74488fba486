"""``GET /openapi.json``: the OpenAPI 3.1 document of the public ``/v1`` API.

Request bodies come from the pydantic models that validate them
(``types.ChatRequest``, ``CompletionRequest``, ``EmbeddingRequest``,
``api.responses_api.ResponsesRequest``), so the document cannot drift from
the validator; the Anthropic Messages body is validated by hand in
``wire.anthropic_inbound`` and has a minimal schema here. Answers are
described by status only. The document is what ``tests/fuzz`` gives
schemathesis. Admin, dashboard and health paths are left out: they are not
the API clients build against.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from modelyard.api.body import json_response
from modelyard.api.responses_api import ResponsesRequest
from modelyard.types import ChatRequest, CompletionRequest, EmbeddingRequest

_ANTHROPIC_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
    },
}
_ANTHROPIC_FIELDS: dict[str, Any] = {
    "model": {"type": "string", "minLength": 1},
    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/AnthropicMessage"}},
    "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
    "tools": {"type": "array", "items": {"type": "object"}},
    "stream": {"type": "boolean"},
}
ANTHROPIC_SCHEMAS: dict[str, Any] = {
    "AnthropicMessage": _ANTHROPIC_MESSAGE,
    "AnthropicMessagesRequest": {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "properties": {**_ANTHROPIC_FIELDS, "max_tokens": {"type": "integer", "minimum": 1}},
    },
    "AnthropicCountTokensRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {k: v for k, v in _ANTHROPIC_FIELDS.items() if k != "stream"},
    },
}

_ERRORS = {
    "400": {"description": "Invalid request, or a limit exceeded (the message names it)"},
    "401": {"description": "No valid API key"},
    "404": {"description": "Unknown model, route or resource"},
    "413": {"description": "Body over server.max_body_bytes"},
    "429": {"description": "Rate limited"},
    "502": {"description": "The upstream answered nonsense"},
}


def _post(schema: str, summary: str) -> dict[str, Any]:
    body = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "The answer, or an SSE stream"}, **_ERRORS},
        }
    }


def _get(summary: str, *params: str, method: str = "get") -> dict[str, Any]:
    return {
        method: {
            "summary": summary,
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ],
            "responses": {"200": {"description": "Found"}, **_ERRORS},
        }
    }


@functools.cache  # a constant: built once, on the first request for it
def document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ChatRequest,
        CompletionRequest,
        EmbeddingRequest,
        ResponsesRequest,
    ]
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    response = _get("Retrieve a stored response", "response_id")
    response.update(_get("Delete a stored response", "response_id", method="delete"))
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelyard", "version": "1"},
        "paths": {
            "/v1/chat/completions": _post("ChatRequest", "Chat completion (OpenAI)"),
            "/v1/completions": _post("CompletionRequest", "Legacy completion (OpenAI)"),
            "/v1/embeddings": _post("EmbeddingRequest", "Embeddings (OpenAI)"),
            "/v1/responses": _post("ResponsesRequest", "Create a response (OpenAI Responses)"),
            "/v1/responses/{response_id}": response,
            "/v1/responses/{response_id}/input_items": _get(
                "A stored response's input items", "response_id"
            ),
            "/v1/messages": _post("AnthropicMessagesRequest", "Create a message (Anthropic)"),
            "/v1/messages/count_tokens": _post(
                "AnthropicCountTokensRequest", "Count a message's tokens (Anthropic)"
            ),
            "/v1/models": _get("List models"),
            "/v1/models/{model}": _get("One model", "model"),
            "/v1/routing/decisions/{request_id}": _get("How a request was routed", "request_id"),
        },
        "components": {"schemas": {**defs["$defs"], **ANTHROPIC_SCHEMAS}},
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


def routes() -> list[web.RouteDef]:
    return [web.get("/openapi.json", openapi)]
