"""Anthropic Messages wire format <-> internal types. Pure: dict in, dict out, no I/O.

Requests: an OpenAI-shaped ``ChatRequest`` becomes a ``POST /v1/messages`` body.
System and developer messages move to the top-level ``system``; tool messages
become user turns of ``tool_result`` blocks; consecutive turns of one role are
merged; JSON output (``response_format``) is emulated with a forced tool whose
input is handed back as the text answer.

Responses: a Message, or its stream of events (``AnthropicStreamTranslator``),
becomes internal types. HTTP, credentials and the classification of errors
live in ``modelyard.providers.anthropic``; a stream's ``error`` event surfaces
here as ``StreamError`` for the provider to classify.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from modelyard.errors import InvalidRequestError
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    ToolCall,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)
from modelyard.wire.upstream_shape import index, tokens, upstream_shape

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often omit it
JSON_TOOL = "json_response"
# Anthropic-only request fields a client may pass as extras; they go through untouched.
PASSTHROUGH_FIELDS = ("top_k", "thinking", "metadata", "service_tier")

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status Anthropic documents for each error type: a stream's ``error``
# event carries only the type, and classification starts from a status.
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]+)(?:;[^;,]*)*;base64,(?P<data>.*)", re.DOTALL)


class StreamError(Exception):
    """An ``error`` event in a stream: the status Anthropic documents for it, and its body."""

    def __init__(self, status: int, body: bytes):
        super().__init__(f"the upstream stream failed with HTTP-equivalent {status}")
        self.status = status
        self.body = body


def error_status(data: dict[str, Any]) -> int:
    err = data.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    return ERROR_STATUS.get(str(kind), 500)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------- requests


def emulates_json(req: ChatRequest) -> bool:
    """Whether the request asks for JSON output, which Anthropic gets as a forced tool."""
    fmt = req.response_format
    return fmt is not None and fmt.type in ("json_object", "json_schema")


def messages_request(
    req: ChatRequest,
    *,
    model: str,
    default_max_tokens: int | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The body of ``POST /v1/messages`` for an internal chat request."""
    if req.n > 1:
        raise InvalidRequestError("Anthropic models return one choice per request", param="n")
    system, messages = _messages(req.messages)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": req.output_limit or default_max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system
    if req.stop_list:
        body["stop_sequences"] = req.stop_list
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # Anthropic's range is 0..1
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.user:
        body["metadata"] = {"user_id": req.user}
    extra = req.model_extra or {}
    for key in PASSTHROUGH_FIELDS:
        if key in extra:
            body[key] = extra[key]
    tools, choice = _tools(req)
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
    if stream:
        body["stream"] = True
    return body


def _messages(msgs: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        if m.role in ("system", "developer"):
            if text := m.text():
                system.append(text)
            continue
        param = f"messages.{i}.content"
        if m.role == "tool":
            role, blocks = "user", [_tool_result(m, param)]
        else:
            role, blocks = m.role, _content_blocks(m.content, param)
            for j, call in enumerate(m.tool_calls or []):
                blocks.append(_tool_use(call, f"messages.{i}.tool_calls.{j}.function.arguments"))
        # Anthropic wants alternating turns: tool results and the user's next words share one.
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return "\n\n".join(system), out


def _content_blocks(content: str | list[ContentPart] | None, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        if isinstance(part, ImagePart):
            blocks.append(_image(part.image_url.url, f"{param}.{k}.image_url.url"))
        elif part.text:  # Anthropic rejects empty text blocks
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _image(url: str, param: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise InvalidRequestError(
            "an image must be an http(s) URL or a base64 data: URL", param=param
        )
    mime = match["mime"].strip().lower().replace("image/jpg", "image/jpeg")
    if mime not in _IMAGE_TYPES:
        raise InvalidRequestError(
            f"image type {mime!r} is not supported; use one of {', '.join(sorted(_IMAGE_TYPES))}",
            param=param,
        )
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": mime, "data": match["data"]},
    }


def _tool_use(call: ToolCall, param: str) -> dict[str, Any]:
    try:
        args = orjson.loads(call.function.arguments or "{}")
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError("tool call arguments must be a JSON object", param=param)
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": args}


def _tool_result(m: Message, param: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id}
    if isinstance(m.content, str):
        if m.content:
            block["content"] = m.content
    else:
        block["content"] = _content_blocks(m.content, param)
    return block


def _tools(req: ChatRequest) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    tools = [
        {
            "name": t.function.name,
            **({"description": t.function.description} if t.function.description else {}),
            "input_schema": t.function.parameters or {"type": "object", "properties": {}},
        }
        for t in req.tools or []
    ]
    choice = req.tool_choice
    no_parallel = req.parallel_tool_calls is False
    if emulates_json(req):
        if any(t["name"] == JSON_TOOL for t in tools):
            raise InvalidRequestError(
                f"a tool named {JSON_TOOL!r} cannot be combined with a JSON response_format",
                param="tools",
            )
        json_tool_def = _json_tool(req)
        if not tools or choice == "none":
            return [json_tool_def], {"type": "tool", "name": JSON_TOOL}
        tools.append(json_tool_def)
        if choice in (None, "auto", "required"):
            # The model either calls one of the client's tools or answers through the JSON tool.
            choice = "required"
    if not tools:
        return [], None
    mapped: dict[str, Any] | None
    if choice is None:
        mapped = {"type": "auto"} if no_parallel else None
    elif choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    else:
        mapped = {"type": "tool", "name": choice.function.name}
    if mapped is not None and no_parallel and mapped["type"] != "none":
        mapped["disable_parallel_tool_use"] = True
    return tools, mapped


def _json_tool(req: ChatRequest) -> dict[str, Any]:
    fmt = req.response_format
    spec = fmt.json_schema if fmt is not None else None
    schema = spec.json_schema if spec is not None and spec.json_schema else {"type": "object"}
    description = (spec.description if spec is not None else None) or (
        "Give your final answer by calling this tool; its input is the answer, as JSON."
    )
    return {"name": JSON_TOOL, "description": description, "input_schema": schema}


# --------------------------------------------------------------- responses


def usage_from_dict(u: dict[str, Any] | None) -> Usage:
    """Anthropic's ``input_tokens`` leaves cached tokens out; ours is the whole prompt."""
    if not u:
        return Usage()
    read = tokens(u.get("cache_read_input_tokens"))
    write = tokens(u.get("cache_creation_input_tokens"))
    details = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=tokens(u.get("input_tokens")) + read + write,
        output_tokens=tokens(u.get("output_tokens")),
        cached_input_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=tokens(details.get("thinking_tokens")),
    )


def _finish(stop_reason: str | None, *, answered_json: bool, has_calls: bool) -> FinishReason:
    finish = _FINISH.get(stop_reason or "", "stop")
    if answered_json and finish == "tool_calls" and not has_calls:
        return "stop"
    return finish


@upstream_shape
def chat_response_from_message(
    d: dict[str, Any], *, created: int, json_mode: bool = False
) -> ChatResponse:
    """A Message (the answer of a non-streamed request) as an internal response."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCallOut] = []
    json_text: str | None = None
    for block in d.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            thoughts.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            args = _dumps(block.get("input") or {})
            if json_mode and block.get("name") == JSON_TOOL:
                json_text = args
            else:
                name = str(block.get("name", ""))
                calls.append(ToolCallOut(str(block.get("id", "")), name, args))
    # OpenAI's content is null beside tool calls when the model said nothing
    content = "".join(texts) if texts or not calls else None
    if json_text is not None:
        content = json_text
    choice = Choice(
        index=0,
        content=content,
        finish_reason=_finish(
            d.get("stop_reason"), answered_json=json_text is not None, has_calls=bool(calls)
        ),
        tool_calls=calls,
        reasoning="".join(thoughts) if thoughts else None,
    )
    return ChatResponse(
        id=str(d.get("id", "")),
        model=str(d.get("model", "")),
        created=created,
        choices=[choice],
        usage=usage_from_dict(d.get("usage")),
    )


class AnthropicStreamTranslator:
    """Turns the events of one Messages stream into OpenAI-shaped chunks.

    Stateful and pure: feed it each event's name and decoded data in order.
    Anthropic numbers content blocks (text, thinking, tool_use) together; OpenAI
    numbers tool calls on their own, so each tool_use block gets the next tool
    call index. The last two chunks are the one with ``finish_reason`` (at
    ``message_delta``) and the usage chunk with no choices (at ``message_stop``).
    """

    def __init__(self, *, created: int = 0, json_mode: bool = False):
        self.id = ""
        self.model = ""
        self.created = created
        self.json_mode = json_mode
        self.finished = False
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._json_blocks: set[int] = set()  # blocks of the emulated JSON tool
        self._finish_sent = False

    @property
    def usage(self) -> Usage:
        return usage_from_dict(self._usage)

    def _chunk(self, delta: ChoiceDelta) -> list[ChatChunk]:
        return [ChatChunk(self.id, self.model, self.created, [delta])]

    @upstream_shape
    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]:
        if event == "message_start":
            message = data.get("message") or {}
            self.id = str(message.get("id", ""))
            self.model = str(message.get("model", ""))
            self._usage.update(message.get("usage") or {})
            return self._chunk(ChoiceDelta(role="assistant", content=""))
        if event == "content_block_start":
            return self._block_start(index(data.get("index", 0)), data.get("content_block") or {})
        if event == "content_block_delta":
            return self._block_delta(index(data.get("index", 0)), data.get("delta") or {})
        if event == "message_delta":
            usage = data.get("usage") or {}
            self._usage.update({k: v for k, v in usage.items() if v is not None})  # cumulative
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            if stop_reason is None or self._finish_sent:
                return []
            self._finish_sent = True
            finish = _finish(
                stop_reason, answered_json=bool(self._json_blocks), has_calls=bool(self._tool_index)
            )
            return self._chunk(ChoiceDelta(finish_reason=finish))
        if event == "message_stop":
            self.finished = True
            return [ChatChunk(self.id, self.model, self.created, [], usage=self.usage)]
        if event == "error":
            raise StreamError(error_status(data), orjson.dumps(data))
        # ping, content_block_stop, and event types Anthropic may add later carry nothing for us
        return []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[ChatChunk]:
        kind = block.get("type")
        if kind == "tool_use":
            if self.json_mode and block.get("name") == JSON_TOOL:
                self._json_blocks.add(index)
                return []
            tool_index = self._tool_index[index] = len(self._tool_index)
            initial = block.get("input")
            call = ToolCallDelta(
                index=tool_index,
                id=str(block.get("id", "")),
                name=str(block.get("name", "")),
                arguments=_dumps(initial) if initial else "",
            )
            return self._chunk(ChoiceDelta(tool_calls=[call]))
        if kind == "text" and block.get("text"):
            return self._chunk(ChoiceDelta(content=str(block["text"])))
        if kind == "thinking" and block.get("thinking"):
            return self._chunk(ChoiceDelta(reasoning=str(block["thinking"])))
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[ChatChunk]:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._chunk(ChoiceDelta(content=str(delta.get("text", ""))))
        if kind == "thinking_delta":
            return self._chunk(ChoiceDelta(reasoning=str(delta.get("thinking", ""))))
        if kind == "input_json_delta":
            fragment = str(delta.get("partial_json", ""))
            if not fragment:
                return []
            if index in self._json_blocks:
                return self._chunk(ChoiceDelta(content=fragment))
            if index in self._tool_index:
                call = ToolCallDelta(index=self._tool_index[index], arguments=fragment)
                return self._chunk(ChoiceDelta(tool_calls=[call]))
        # signature_delta and citations_delta have no OpenAI counterpart
        return []
