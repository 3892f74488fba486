"""A protocol-faithful fake of Anthropic's ``POST /v1/messages``, served on loopback.

It checks what the real API checks that an adapter can get wrong (a key in
``x-api-key`` or as a bearer token, the ``anthropic-version`` header, a required ``max_tokens``,
roles, content block shapes, tool results that answer the previous turn's
tool uses, unknown top-level fields) and answers in Anthropic's exact shapes:
a Message, or the event sequence ``message_start``, ``content_block_start``,
``ping``, ``content_block_delta``..., ``content_block_stop``, ``message_delta``,
``message_stop``. Errors use Anthropic's error body
``{"type": "error", "error": {"type": ..., "message": ...}}``.

What it answers, deterministically:

* by default, the text ``"Hello from fake anthropic: "`` + the last user text;
* with ``thinking`` enabled, a thinking block (with signature) first;
* with tools, when the last user text mentions "weather" (and is not itself a
  tool result), a short text block and a ``tool_use`` of the first tool;
* when ``tool_choice`` forces a tool (``tool``) or any tool (``any``), a
  ``tool_use`` of that tool whose input satisfies a simple object schema;
* when the last user text names several tools, one ``tool_use`` block for each
  (parallel tool use), or only the first with ``disable_parallel_tool_use``;
* ``stop_sequences`` cut the text (``stop_reason: stop_sequence``) and
  ``max_tokens`` (counted in words) truncates it (``stop_reason: max_tokens``).

A handler put in ``recorder.script`` answers the next request instead.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.harness import Recorder, send_sse, sse

VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})  # 2026-10-21: the SDK's
TOP_LEVEL = frozenset(
    [
        "output_config",  # structured outputs: {"format": {"type": "json_schema", "schema"}}
        "model",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "stream",
        "metadata",
        "thinking",
        "service_tier",
    ]
)
USER_BLOCKS = frozenset({"text", "image", "tool_result", "document"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
PREFIX = "Hello from fake anthropic: "
CITIES = ("Paris", "東京", "Zürich")


class Invalid(Exception):
    """What the real API would answer with 400 invalid_request_error."""


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def anthropic_error(status: int, kind: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(error_body(kind, message)),
        content_type="application/json",
        headers={"request-id": "req_fake"},
    )


# ---------------------------------------------------------------- validation


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("The request body is not a JSON object")
    extra = sorted(set(body) - TOP_LEVEL)
    if extra:
        raise Invalid(f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Invalid("max_tokens: Field required")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise Invalid(f"{name}: range: 0..1")
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise Invalid("stop_sequences: Input should be a valid list of strings")
    system = body.get("system")
    if not (system is None or isinstance(system, str)) and (
        not isinstance(system, list) or any(b.get("type") != "text" for b in system)
    ):
        raise Invalid("system: Input should be a string or a list of text blocks")
    _validate_tools(body)
    _validate_messages(body.get("messages"))


def _validate_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool.get("name"), str):
                raise Invalid(f"tools.{i}.name: Field required")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Invalid(f"tools.{i}.input_schema.type: Input should be 'object'")
            names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Invalid("tool_choice: Input tag does not match any of the expected tags")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise Invalid(f"tool_choice: Tool '{choice.get('name')}' not found in provided tools")
    if choice["type"] == "none" and "disable_parallel_tool_use" in choice:
        raise Invalid("tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: Field required")
    pending: set[str] = set()  # tool_use ids of the previous assistant turn
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if not isinstance(m.get("content"), str | list):
            raise Invalid(f"messages.{i}.content: Field required")
        allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
        answered: set[str] = set()
        used: set[str] = set()
        for j, block in enumerate(_blocks(m)):
            where = f"messages.{i}.content.{j}"
            kind = block.get("type")
            if kind not in allowed:
                raise Invalid(f"{where}.type: '{kind}' is not allowed in a {role} message")
            if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
                raise Invalid("messages: text content blocks must be non-empty")
            if kind == "image":
                _validate_image(block.get("source"), where)
            if kind == "tool_use":
                if not isinstance(block.get("input"), dict) or not block.get("id"):
                    raise Invalid(f"{where}.input: Input should be a valid dictionary")
                used.add(block["id"])
            if kind == "tool_result":
                if j != len(answered):
                    raise Invalid(
                        f"messages.{i}: Did not find {len(pending)} `tool_result` block(s) at the "
                        "beginning of this message. Messages following `tool_use` blocks must "
                        "begin with a matching number of `tool_result` blocks."
                    )
                if block.get("tool_use_id") not in pending:
                    raise Invalid(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
                answered.add(block["tool_use_id"])
        if pending - answered and role == "user":
            raise Invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(pending - answered))}"
            )
        pending = used


def _validate_image(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise Invalid(f"{where}.source: Field required")
    if source.get("type") == "base64":
        if source.get("media_type") not in IMAGE_TYPES or not source.get("data"):
            raise Invalid(f"{where}.source.base64.media_type: Input should be an image type")
    elif source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise Invalid(f"{where}.source.url.url: must be an http(s) URL")
    else:
        raise Invalid(f"{where}.source: Input tag does not match any of the expected tags")


# ---------------------------------------------------------------- answering


def _tokens(text: str) -> int:
    return len(text) // 4 + 1  # deterministic and never zero


def _last_user_text(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    """The last user turn's text (or its tool results' text) and whether it holds tool results."""
    last = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    texts: list[str] = []
    results: list[str] = []
    for block in _blocks(last):
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_result":
            content = block.get("content", "")
            inner = _blocks({"content": content})
            results.append("".join(b.get("text", "") for b in inner if b["type"] == "text"))
    return (" ".join(texts) or " ".join(results)), bool(results)


def sample_input(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """An object valid for a simple schema: each property gets a value of its type."""
    values = {"string": text, "integer": 1, "number": 1.5, "boolean": True, "array": []}
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name, prop in props.items():
        if "enum" in prop:
            out[name] = prop["enum"][0]
        else:
            out[name] = values.get(prop.get("type"), {})
    if not props and schema.get("type") == "object":
        out["answer"] = text
    return out


def answer(body: dict[str, Any], serial: int) -> dict[str, Any]:
    """The Message the fake answers to a valid request."""
    messages = body["messages"]
    text, is_result = _last_user_text(messages)
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    blocks: list[dict[str, Any]] = []
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        blocks.append(
            {"type": "thinking", "thinking": f"Thinking about: {text}", "signature": "c2lnLWZha2U="}
        )
    stop_reason, stop_sequence = "end_turn", None
    named = [t for t in tools if t["name"] in text] if not is_result else []
    called: list[dict[str, Any]] = []
    if choice["type"] == "tool":
        called = [next(t for t in tools if t["name"] == choice["name"])]
    elif tools and choice["type"] == "any":
        called = named or tools[:1]
    elif tools and choice["type"] == "auto" and not is_result:
        called = named or (tools[:1] if "weather" in text.lower() else [])
        if called:
            blocks.append({"type": "text", "text": "Let me look that up."})
    if choice.get("disable_parallel_tool_use"):
        called = called[:1]
    if called:
        tool_text = "Paris" if "weather" in text.lower() else "fake answer"
        for k, tool in enumerate(called):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{serial:04d}" + (f"_{k}" if k else ""),
                    "name": tool["name"],
                    "input": sample_input(tool["input_schema"], CITIES[k % 3] if k else tool_text),
                }
            )
        stop_reason = "tool_use"
    elif ((body.get("output_config") or {}).get("format") or {}).get("type") == "json_schema":
        schema = body["output_config"]["format"]["schema"]
        blocks.append({"type": "text", "text": orjson.dumps(sample_input(schema, text)).decode()})
    else:
        reply = PREFIX + text
        cuts = [(reply.find(s), s) for s in body.get("stop_sequences") or [] if s and s in reply]
        if cuts:
            cut, stop_sequence = min(cuts)
            reply, stop_reason = reply[:cut], "stop_sequence"
        words = reply.split(" ")
        if len(words) > body["max_tokens"]:  # a word stands for a token here
            reply, stop_reason, stop_sequence = (
                " ".join(words[: body["max_tokens"]]),
                "max_tokens",
                None,
            )
        if reply:
            blocks.append({"type": "text", "text": reply})
    prompt = orjson.dumps([body.get("system"), messages, tools]).decode()
    output = orjson.dumps(blocks).decode()
    return {
        "id": f"msg_fake{serial:04d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": _tokens(prompt),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": _tokens(output),
            "service_tier": "standard",
        },
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(message: dict[str, Any]) -> list[bytes]:
    """A Message as the SSE events Anthropic streams for it, in order."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events = [sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 5)]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], 7)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            first = {**block, "input": {}}
            # fragments cut mid-key and mid-value, as the real API does
            json_text = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(json_text, 3)
            ]
        started = {"type": "content_block_start", "index": index, "content_block": first}
        events.append(sse(started, "content_block_start"))
        if index == 0:
            events.append(sse({"type": "ping"}, "ping"))
        for delta in deltas:
            moved = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(sse(moved, "content_block_delta"))
        events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"))
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return events


def create_fake_anthropic(recorder: Recorder, *, chunking: int | None = None) -> web.Application:
    """The fake as an aiohttp app; ``chunking`` splits streamed bytes into pieces of that size."""
    serials = itertools.count(1)

    async def messages(request: web.Request) -> web.StreamResponse:
        rec = await recorder.record(request)
        scripted = recorder.next_scripted()
        if scripted is not None:
            return await scripted(request, rec)
        # The API reference documents x-api-key; the official SDK now sends the key as a
        # bearer token, which the API accepts as well.
        bearer = rec.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not (rec.headers.get("x-api-key") or bearer):
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        version = rec.headers.get("anthropic-version")
        if not version:
            return anthropic_error(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        if version not in VERSIONS:
            return anthropic_error(
                400, "invalid_request_error", f"anthropic-version: invalid version {version}"
            )
        try:
            body = orjson.loads(rec.body)
            validate(body)
        except orjson.JSONDecodeError:
            return anthropic_error(
                400, "invalid_request_error", "There was an error parsing the body"
            )
        except Invalid as exc:
            return anthropic_error(400, "invalid_request_error", str(exc))
        message = answer(body, next(serials))
        if body.get("stream"):
            return await send_sse(request, stream_events(message), chunking=chunking)
        return web.Response(
            body=orjson.dumps(message),
            content_type="application/json",
            headers={"request-id": "req_fake"},
        )

    async def not_found(request: web.Request) -> web.StreamResponse:
        await recorder.record(request)
        return anthropic_error(404, "not_found_error", f"Not Found: {request.path}")

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
