"""Anthropic Messages wire format, inbound: a client's request in, our answer out. Pure.

The mirror image of ``wire.anthropic`` (which speaks to Anthropic upstreams).
Here a ``POST /v1/messages`` body becomes the OpenAI-shaped dict that
``types.ChatRequest`` validates, and an internal ``ChatResponse`` becomes a
Message. Streams are written by ``wire.anthropic_events``. HTTP lives in
``api.anthropic_api``.

What the internal types cannot carry is said here, not hidden:

* Anthropic-only sampling fields (``top_k``, ``thinking``, ``service_tier``)
  are returned apart (``Translated.native``): they reach Anthropic upstreams
  only, since OpenAI-compatible hosts reject fields they do not know;
* thinking blocks in the history (and their signatures) are dropped: no
  internal message field holds them;
* ``cache_control`` marks and a tool result's ``is_error`` are dropped, and so
  are ``output_config.effort`` and the serving hints in ``IGNORED_FIELDS``;
* a system prompt given as blocks reaches upstreams as one text (blocks
  joined by a blank line).

Errors name the field the way Anthropic does: ``messages.1.content.0.type``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from modelyard.errors import InvalidRequestError, UpstreamBadResponseError
from modelyard.types import ChatResponse, FinishReason, Usage

# Every top-level field of the Messages API this gateway understands.
KNOWN_FIELDS = frozenset(
    {
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
        "output_config",
    }
)
# Hints about Anthropic's own serving (caching, region, speed, workspace) with no
# effect on the answer: accepted, and not sent on.
IGNORED_FIELDS = frozenset(
    {"cache_control", "inference_geo", "speed", "diagnostics", "user_profile_id", "workspace_id"}
)
NATIVE_FIELDS = ("top_k", "thinking", "service_tier")  # only an Anthropic upstream takes them
COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

# Anthropic's error types by HTTP status (its documented table), for errors we answer.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_ID_CHARS = re.compile(r"[^A-Za-z0-9_]")


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(status: int, message: str, request_id: str | None = None) -> bytes:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


# ---------------------------------------------------------------- requests


@dataclass(slots=True)
class Translated:
    """A Messages request as internal fields, and the fields only Anthropic takes."""

    chat: dict[str, Any]
    native: dict[str, Any]


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _field(d: dict[str, Any], key: str, kind: type | tuple[type, ...], param: str) -> Any:
    if key not in d:
        raise _bad("Field required", param)
    value = d[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _bad(f"Input should be of type {_kind_name(kind)}", param)
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "string", int: "integer", float: "number", list: "array", dict: "object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _number(d: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("Input should be a number", key)
    if not low <= value <= high:
        raise _bad(f"Input should be between {low:g} and {high:g}", key)
    return float(value)


def chat_from_messages(body: dict[str, Any], *, counting: bool = False) -> Translated:
    """A Messages request body as a ``ChatRequest`` dict (OpenAI's shape).

    ``counting``: the body of ``/v1/messages/count_tokens``, which has no
    ``max_tokens`` and fewer fields.
    """
    allowed = COUNT_FIELDS if counting else KNOWN_FIELDS
    for key in body:
        if key not in allowed and key not in IGNORED_FIELDS:
            raise _bad("Extra inputs are not permitted", key)
    model = _field(body, "model", str, "model")
    if not model:
        raise _bad("String should have at least 1 character", "model")
    chat: dict[str, Any] = {"model": model}
    native: dict[str, Any] = {}
    if not counting:
        max_tokens = _field(body, "max_tokens", int, "max_tokens")
        if max_tokens < 1:
            raise _bad("Input should be greater than or equal to 1", "max_tokens")
        chat["max_tokens"] = max_tokens
    messages = _field(body, "messages", list, "messages")
    chat["messages"] = _system(body.get("system")) + _turns(messages)
    if not counting:
        _sampling(body, chat, native)
    if "thinking" in body and body["thinking"] is not None:
        native["thinking"] = _field(body, "thinking", dict, "thinking")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("Input should be a valid list", "tools")
        if tools:
            chat["tools"] = [_tool(t, f"tools.{i}") for i, t in enumerate(tools)]
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    if body.get("output_config") is not None:
        _output_config(body["output_config"], chat)
    return Translated(chat, native)


def _output_config(config: Any, chat: dict[str, Any]) -> None:
    """``format`` becomes a JSON-schema response format; ``effort`` has no carrier: dropped."""
    if not isinstance(config, dict):
        raise _bad("Input should be a valid dictionary", "output_config")
    for key in config:
        if key not in ("format", "effort"):
            raise _bad("Extra inputs are not permitted", f"output_config.{key}")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad("Input should be 'json_schema'", "output_config.format.type")
    schema = _field(fmt, "schema", dict, "output_config.format.schema")
    chat["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def _sampling(body: dict[str, Any], chat: dict[str, Any], native: dict[str, Any]) -> None:
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("Input should be a list of strings", "stop_sequences")
        if stops:
            chat["stop"] = stops
    for key in ("temperature", "top_p"):
        value = _number(body, key, 0, 1)
        if value is not None:
            chat[key] = value
    if body.get("top_k") is not None:
        top_k = _field(body, "top_k", int, "top_k")
        if top_k < 0:
            raise _bad("Input should be greater than or equal to 0", "top_k")
        native["top_k"] = top_k
    if body.get("service_tier") is not None:
        native["service_tier"] = _field(body, "service_tier", str, "service_tier")
    if body.get("stream") is not None:
        chat["stream"] = _field(body, "stream", bool, "stream")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _bad("Input should be a valid dictionary", "metadata")
        for key in metadata:
            if key != "user_id":
                raise _bad("Extra inputs are not permitted", f"metadata.{key}")
        user = metadata.get("user_id")
        if user is not None:
            chat["user"] = _field(metadata, "user_id", str, "metadata.user_id")


def _system(system: Any, param: str = "system") -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise _bad("Input should be a string or a list of text blocks", param)
    out = []
    for i, block in enumerate(system):
        where = f"{param}.{i}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad("a system block must be a text block", f"{where}.type")
        text = _field(block, "text", str, f"{where}.text")
        if text:
            out.append({"role": "system", "content": text})
    return out


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad("Input should be a string or a list of content blocks", param)
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise _bad("Input should be a valid dictionary", f"{param}.{j}")
        if not isinstance(block.get("type"), str):
            raise _bad("Field required", f"{param}.{j}.type")
    return content


def _turns(messages: list[Any]) -> list[dict[str, Any]]:
    if not messages:
        raise _bad("List should have at least 1 item", "messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        param = f"messages.{i}"
        if not isinstance(m, dict):
            raise _bad("Input should be a valid dictionary", param)
        for key in m:
            if key not in ("role", "content"):
                raise _bad("Extra inputs are not permitted", f"{param}.{key}")
        role = _field(m, "role", str, f"{param}.role")
        blocks = _blocks(m.get("content"), f"{param}.content")
        if role == "user":
            out += _user_turn(blocks, f"{param}.content")
        elif role == "assistant":
            out.append(_assistant_turn(blocks, f"{param}.content"))
        elif role == "system":  # instructions in the middle of a conversation
            out += _system(blocks, f"{param}.content")
        else:
            raise _bad("Input should be 'user', 'assistant' or 'system'", f"{param}.role")
    return out


def _user_turn(blocks: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    """A user turn: its tool results become tool messages, the rest one user message."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{param}.{j}"
        if block["type"] == "tool_result":
            if parts:
                out.append({"role": "user", "content": parts})
                parts = []
            out.append(_tool_result(block, where))
        else:
            parts.append(_part(block, where))
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _part(block: dict[str, Any], param: str) -> dict[str, Any]:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": _field(block, "text", str, f"{param}.text")}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _image_url(block, param)}}
    raise _bad(f"content block type {kind!r} is not supported here", f"{param}.type")


def _image_url(block: dict[str, Any], param: str) -> str:
    source = _field(block, "source", dict, f"{param}.source")
    kind = source.get("type")
    if kind == "url":
        return str(_field(source, "url", str, f"{param}.source.url"))
    if kind == "base64":
        mime = _field(source, "media_type", str, f"{param}.source.media_type")
        if mime not in _IMAGE_TYPES:
            raise _bad(
                f"Input should be one of {', '.join(sorted(_IMAGE_TYPES))}",
                f"{param}.source.media_type",
            )
        data = _field(source, "data", str, f"{param}.source.data")
        return f"data:{mime};base64,{data}"
    raise _bad("an image source must be of type 'base64' or 'url'", f"{param}.source.type")


def _tool_result(block: dict[str, Any], param: str) -> dict[str, Any]:
    call_id = _field(block, "tool_use_id", str, f"{param}.tool_use_id")
    if not call_id:
        raise _bad("String should have at least 1 character", f"{param}.tool_use_id")
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        param = f"{param}.content"
        content = [_part(b, f"{param}.{k}") for k, b in enumerate(_blocks(content, param))]
    elif not isinstance(content, str):
        raise _bad("Input should be a string or a list of content blocks", f"{param}.content")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _assistant_turn(blocks: list[dict[str, Any]], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where, kind = f"{param}.{j}", block["type"]
        if kind == "text":
            texts.append(_field(block, "text", str, f"{where}.text"))
        elif kind == "tool_use":
            tool_input = _field(block, "input", dict, f"{where}.input")
            function = {
                "name": _field(block, "name", str, f"{where}.name"),
                "arguments": orjson.dumps(tool_input).decode(),
            }
            call_id = _field(block, "id", str, f"{where}.id")
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind not in ("thinking", "redacted_thinking"):
            raise _bad(f"content block type {kind!r} is not supported here", f"{where}.type")
    message: dict[str, Any] = {"role": "assistant"}
    if len(texts) == 1:
        message["content"] = texts[0]
    elif texts:
        message["content"] = [{"type": "text", "text": t} for t in texts]
    elif not calls:
        message["content"] = ""  # a turn of thinking only (or of nothing)
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise _bad("Input should be a valid dictionary", param)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise _bad(f"tool type {kind!r} (a server tool) is not supported", f"{param}.type")
    function: dict[str, Any] = {"name": _field(tool, "name", str, f"{param}.name")}
    if tool.get("description") is not None:
        function["description"] = _field(tool, "description", str, f"{param}.description")
    function["parameters"] = _field(tool, "input_schema", dict, f"{param}.input_schema")
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise _bad("Input should be a valid dictionary", "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        name = _field(choice, "name", str, "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise _bad("Input should be 'auto', 'any', 'tool' or 'none'", "tool_choice.type")
    if choice.get("disable_parallel_tool_use") is not None:
        disable = _field(
            choice, "disable_parallel_tool_use", bool, "tool_choice.disable_parallel_tool_use"
        )
        chat["parallel_tool_calls"] = not disable


# The internal request's fields by their Messages names, for validation errors.
FIELD_NAMES = {"stop": "stop_sequences", "user": "metadata.user_id"}


def field_name(param: str | None) -> str | None:
    """An internal request's field as the client named it."""
    if param is None:
        return None
    head, dot, rest = param.partition(".")
    head, bracket, tail = head.partition("[")
    return FIELD_NAMES.get(head, head) + bracket + tail + dot + rest


# ---------------------------------------------------------------- counting

CHARS_PER_TOKEN = 4  # the rule of thumb vendors document for English text
MESSAGE_FRAMING = 4  # tokens a chat template spends around each turn
IMAGE_TOKENS = 1_600  # Anthropic's estimate for an image of about 1.15 megapixels


def count_tokens(translated: Translated) -> int:
    """An estimate of the prompt's tokens, the same for every serving model.

    The text a model reads (message texts, tool calls and results, tool
    definitions as JSON) at four characters a token, four tokens of framing
    per turn, and Anthropic's figure for a mid-sized image. The gateway sizes
    requests by bytes / 4 elsewhere (``api.generation.demand``); this counts
    characters, so non-ASCII text is not overcounted.
    """
    chars = 0
    images = 0
    chat = translated.chat
    for m in chat["messages"]:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    chars += len(part["text"])
                else:
                    images += 1
        for call in m.get("tool_calls") or []:
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    if chat.get("tools"):
        chars += len(orjson.dumps(chat["tools"]))
    text_tokens = math.ceil(chars / CHARS_PER_TOKEN)
    return text_tokens + MESSAGE_FRAMING * len(chat["messages"]) + IMAGE_TOKENS * images


# --------------------------------------------------------------- responses


def message_id(response_id: str) -> str:
    """An Anthropic-looking message id (``msg_...``) for an upstream's response id."""
    if response_id.startswith("msg_"):
        return response_id
    return "msg_" + (_ID_CHARS.sub("", response_id) or "0")


def usage_to_dict(u: Usage) -> dict[str, int]:
    """Anthropic's ``input_tokens`` leaves cache reads and writes out; ours includes them."""
    return {
        "input_tokens": max(0, u.input_tokens - u.cached_input_tokens - u.cache_write_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as a Messages ``input`` object."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamBadResponseError("the model's tool call arguments are not a JSON object")
    return value


def stop_reason(finish: FinishReason | None, called_tools: bool) -> str:
    """Messages' ``stop_reason``; some upstreams call tools and say "stop"."""
    if called_tools and finish in (None, "stop"):
        return "tool_use"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def message_from_chat(resp: ChatResponse, *, model: str) -> dict[str, Any]:
    """An internal answer as a Message; ``model`` is the name the client asked for."""
    if not resp.choices:
        raise UpstreamBadResponseError("the upstream answered with no choices")
    choice = resp.choices[0]
    content: list[dict[str, Any]] = []
    if choice.reasoning:
        # no signature: only an Anthropic upstream signs thinking, and it is not carried
        content.append({"type": "thinking", "thinking": choice.reasoning, "signature": ""})
    if choice.content or not choice.tool_calls:
        content.append({"type": "text", "text": choice.content or ""})
    for call in choice.tool_calls:
        block = {"type": "tool_use", "id": call.id, "name": call.name}
        content.append(block | {"input": tool_input(call.arguments)})
    return {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, bool(choice.tool_calls)),
        "stop_sequence": None,
        "usage": usage_to_dict(resp.usage),
    }
