"""OpenAI's Responses API, inbound: create, retrieve, delete, and list a response's input items.

A request becomes an internal chat request over the whole conversation (the
stored context of ``previous_response_id``, then this input; the instructions
of this request only, as OpenAI does), so whichever deployment serves the turn
hears every earlier turn, whoever served those. ``api.generation`` routes and
bills it; ``wire.responses`` writes the answer. A stored turn (``store``, on by
default) is saved before the client hears the response is complete: a whole
answer before it is sent, a stream before its last event.

Ids of unknown format are refused before the database is read: in a path
(retrieve, delete, input_items) with 404, exactly as a missing or another
team's response, so the answer tells nothing about which it was; as
``previous_response_id`` with the 400 OpenAI gives for a previous response it
cannot find, naming the field.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api.body import json_response, parse, read_json
from modelyard.api.context import PRINCIPAL, REQUEST_LOG, STORED_PROMPT_BYTES
from modelyard.api.generation import generate
from modelyard.errors import GatewayError, InvalidRequestError, NotFoundError
from modelyard.providers.base import Provider
from modelyard.storage.response_store import ResponseStore, StoredResponse
from modelyard.types import ChatChunk, ChatRequest, ChatResponse
from modelyard.wire import responses as wire
from modelyard.wire.responses_stream import ResponsesStream

RESPONSE_ID = re.compile(r"resp_[0-9a-f]{16,64}")
MAX_METADATA = 16


class ResponsesRequest(BaseModel):
    """The fields the gateway reads; items and options are checked by ``wire.responses``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any]
    instructions: str | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    parallel_tool_calls: bool | None = None
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=MAX_METADATA)
    stream: bool = False
    user: str | None = None


def _store(request: web.Request) -> ResponseStore:
    return ResponseStore(request.app[REQUEST_LOG].engine)


async def _find(request: web.Request, response_id: str) -> StoredResponse | None:
    if not RESPONSE_ID.fullmatch(response_id):
        return None
    team = request[PRINCIPAL].team_name
    return await asyncio.to_thread(_store(request).get, response_id, team)


class _Turn:
    """One turn being answered: renders it, and stores it before the client hears it is done."""

    def __init__(
        self, request: web.Request, r: ResponsesRequest, echo: dict[str, Any], context: list[Any]
    ):
        self.request = request
        self.store = r.store
        self.model = r.model
        self.echo = echo
        self.context = context
        self.id = wire.new_item_id("resp")
        self.created_at = int(time.time())
        self.body: dict[str, Any] | None = None
        self.encoder: ResponsesStream | None = None

    def render(self, resp: ChatResponse) -> dict[str, Any]:
        self.body = wire.render_response(resp, self.id, self.created_at, self.model, self.echo)
        return self.body

    def new_encoder(self) -> ResponsesStream:
        # a fresh one per attempt; once one has begun, the same one ends the stream
        if self.encoder is None or not self.encoder.started:
            self.encoder = ResponsesStream(self.id, self.model, self.echo, self.created_at)
        return self.encoder

    async def stream(self, chunks: AsyncIterator[ChatChunk]) -> AsyncIterator[ChatChunk]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        if self.encoder is not None:  # every chunk is in: store before the closing events
            await self.save(self.encoder.final())

    async def save(self, body: dict[str, Any]) -> None:
        if not self.store:
            return
        team = self.request[PRINCIPAL].team_name
        try:
            await asyncio.to_thread(_store(self.request).save, team, body, self.context)
        except Exception as exc:
            raise GatewayError(f"the response could not be stored: {type(exc).__name__}") from exc


async def create_response(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    r = parse(ResponsesRequest, body)
    items = wire.normalize_input(r.input)
    history: list[dict[str, Any]] = []
    if r.previous_response_id is not None:
        prev = await _find(request, r.previous_response_id)
        if prev is None:
            raise InvalidRequestError(
                f"Previous response with id {r.previous_response_id[:80]!r} not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = prev.input_items + prev.output_items
        # what the conversation adds to the prompt: budgets reserve for it, routing fits it
        request[STORED_PROMPT_BYTES] = len(orjson.dumps(history))
    context = history + items
    req = parse(ChatRequest, wire.chat_body(body, context, r.instructions))
    turn = _Turn(request, r, wire.echo_of(body, r.previous_response_id), context)

    def stream(p: Provider) -> AsyncIterator[ChatChunk]:
        return turn.stream(p.chat_stream(req))

    reply = await generate(
        request,
        "responses",
        "responses",
        body,
        req,
        lambda p: p.chat(req),
        stream,
        turn.render,
        encoder=turn.new_encoder,
        passthrough=None,
        kind="stateful" if r.store or r.previous_response_id else "stateless",
    )
    if not r.stream and turn.body is not None:
        await turn.save(turn.body)
    return reply


async def get_response(request: web.Request) -> web.Response:
    found = await _find(request, request.match_info["response_id"])
    if found is None:
        raise _missing(request)
    return json_response(found.body)


async def delete_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    team = request[PRINCIPAL].team_name
    done = RESPONSE_ID.fullmatch(response_id) is not None and await asyncio.to_thread(
        _store(request).delete, response_id, team
    )
    if not done:
        raise _missing(request)
    return json_response({"id": response_id, "object": "response", "deleted": True})


class _ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=20, ge=1, le=100)
    after: str | None = None


async def list_input_items(request: web.Request) -> web.Response:
    found = await _find(request, request.match_info["response_id"])
    if found is None:
        raise _missing(request)
    q = parse(_ListQuery, dict(request.query))
    items = found.input_items if q.order == "asc" else found.input_items[::-1]
    start = 0
    if q.after is not None:
        ids = [item["id"] for item in items]
        if q.after not in ids:
            raise InvalidRequestError(f"No input item with id {q.after!r}", param="after")
        start = ids.index(q.after) + 1
    page = items[start : start + q.limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + q.limit < len(items),
        }
    )


def _missing(request: web.Request) -> NotFoundError:
    response_id = request.match_info["response_id"]
    return NotFoundError(f"Response with id {response_id[:80]!r} not found.", param="response_id")


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/responses", create_response),
        web.get("/v1/responses/{response_id}", get_response),
        web.delete("/v1/responses/{response_id}", delete_response),
        web.get("/v1/responses/{response_id}/input_items", list_input_items),
    ]
