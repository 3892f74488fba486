"""OpenAI chat/completions/embeddings wire format <-> internal types. Pure: dict in, dict out.

Used both ways: to answer clients that speak OpenAI, and to talk to every
OpenAI-compatible host. When both sides speak it, ``passthrough_body`` makes
the few edits the upstream needs and the rest of the bytes are left alone.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    CompletionResponse,
    EmbeddingResponse,
    FinishReason,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)
from modelyard.wire.sse import whole_events
from modelyard.wire.upstream_shape import index, tokens, upstream_shape

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


# ------------------------------------------------------------------ usage


def usage_to_dict(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
    }
    prompt = _details(cached_tokens=u.cached_input_tokens, audio_tokens=u.audio_input_tokens)
    if prompt:
        out["prompt_tokens_details"] = prompt
    completion = _details(reasoning_tokens=u.reasoning_tokens, audio_tokens=u.audio_output_tokens)
    if completion:
        out["completion_tokens_details"] = completion
    return out


def _details(**counts: int) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n}


def usage_from_dict(d: dict[str, Any] | None) -> Usage:
    if not d:
        return Usage()
    prompt_details = d.get("prompt_tokens_details") or {}
    completion_details = d.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=tokens(d.get("prompt_tokens")),
        output_tokens=tokens(d.get("completion_tokens")),
        # DeepSeek reports cache hits as prompt_cache_hit_tokens
        cached_input_tokens=tokens(
            prompt_details.get("cached_tokens") or d.get("prompt_cache_hit_tokens")
        ),
        reasoning_tokens=tokens(completion_details.get("reasoning_tokens")),
        audio_input_tokens=tokens(prompt_details.get("audio_tokens")),
        audio_output_tokens=tokens(completion_details.get("audio_tokens")),
    )


# ------------------------------------------------------------- responses out


def _tool_calls_out(calls: list[ToolCallOut]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def chat_response_to_dict(r: ChatResponse) -> dict[str, Any]:
    choices = []
    for c in r.choices:
        message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": None}
        if c.tool_calls:
            message["tool_calls"] = _tool_calls_out(c.tool_calls)
        if c.reasoning:
            message["reasoning_content"] = c.reasoning
        choices.append(
            {
                "index": c.index,
                "message": message,
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
        )
    return {
        "id": r.id,
        "object": "chat.completion",
        "created": r.created,
        "model": r.model,
        "choices": choices,
        "usage": usage_to_dict(r.usage),
        "system_fingerprint": None,
    }


def chat_chunk_to_dict(c: ChatChunk) -> dict[str, Any]:
    choices = []
    for d in c.choices:
        delta: dict[str, Any] = {}
        if d.role:
            delta["role"] = d.role
        if d.content is not None:
            delta["content"] = d.content
        if d.reasoning is not None:
            delta["reasoning_content"] = d.reasoning
        if d.tool_calls:
            calls = []
            for t in d.tool_calls:
                call: dict[str, Any] = {"index": t.index}
                if t.id is not None:
                    call["id"] = t.id
                    call["type"] = "function"
                fn: dict[str, Any] = {"arguments": t.arguments}
                if t.name is not None:
                    fn["name"] = t.name
                call["function"] = fn
                calls.append(call)
            delta["tool_calls"] = calls
        choices.append(
            {"index": d.index, "delta": delta, "logprobs": None, "finish_reason": d.finish_reason}
        )
    out: dict[str, Any] = {
        "id": c.id,
        "object": "chat.completion.chunk",
        "created": c.created,
        "model": c.model,
        "choices": choices,
    }
    if c.usage is not None:
        out["usage"] = usage_to_dict(c.usage)
    return out


def completion_response_to_dict(r: CompletionResponse) -> dict[str, Any]:
    return {
        "id": r.id,
        "object": "text_completion",
        "created": r.created,
        "model": r.model,
        "choices": [
            {"index": c.index, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
            for c in r.choices
        ],
        "usage": usage_to_dict(r.usage),
    }


def embedding_response_to_dict(r: EmbeddingResponse, encoding: str) -> dict[str, Any]:
    data = []
    for i, vec in enumerate(r.vectors):
        value: Any = vec
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": r.model,
        "usage": {"prompt_tokens": r.usage.input_tokens, "total_tokens": r.usage.input_tokens},
    }


# -------------------------------------------------------------- responses in


def _text(value: Any) -> str | None:
    """Text as the internal types hold it; some hosts send a list of text parts."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p for p in value if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text") or "") for p in parts)
    raise TypeError(f"text of type {type(value).__name__}")


def _arguments(value: Any) -> str:
    """A tool call's arguments as JSON text; some hosts send the object itself."""
    if value is None or isinstance(value, str):
        return value or ""
    return orjson.dumps(value).decode()


@upstream_shape
def chat_response_from_dict(d: dict[str, Any]) -> ChatResponse:
    choices: list[Choice] = []
    for c in d.get("choices") or []:
        m = c.get("message") or {}
        calls = [
            ToolCallOut(
                id=str(t.get("id") or ""),
                name=str((t.get("function") or {}).get("name") or ""),
                arguments=_arguments((t.get("function") or {}).get("arguments")),
            )
            for t in m.get("tool_calls") or []
        ]
        choices.append(
            Choice(
                index=index(c.get("index", len(choices))),
                content=_text(m.get("content")),
                finish_reason=_FINISH.get(c.get("finish_reason") or ""),
                tool_calls=calls,
                reasoning=_text(m.get("reasoning_content") or m.get("reasoning")),
            )
        )
    return ChatResponse(
        id=str(d.get("id", "")),
        model=str(d.get("model", "")),
        created=int(d.get("created") or 0),
        choices=choices,
        usage=usage_from_dict(d.get("usage")),
    )


@upstream_shape
def chat_chunk_from_dict(d: dict[str, Any]) -> ChatChunk:
    choices: list[ChoiceDelta] = []
    for c in d.get("choices") or []:
        delta = c.get("delta") or {}
        calls = [
            ToolCallDelta(
                index=index(t.get("index", 0)),
                id=_text(t.get("id")),
                name=_text((t.get("function") or {}).get("name")),
                arguments=_arguments((t.get("function") or {}).get("arguments")),
            )
            for t in delta.get("tool_calls") or []
        ]
        choices.append(
            ChoiceDelta(
                index=index(c.get("index", 0)),
                role="assistant" if delta.get("role") else None,
                content=_text(delta.get("content")),
                reasoning=_text(delta.get("reasoning_content") or delta.get("reasoning")),
                tool_calls=calls,
                finish_reason=_FINISH.get(c.get("finish_reason") or ""),
            )
        )
    usage = d.get("usage")
    return ChatChunk(
        id=str(d.get("id", "")),
        model=str(d.get("model", "")),
        created=int(d.get("created") or 0),
        choices=choices,
        usage=usage_from_dict(usage) if usage else None,
    )


# ---------------------------------------------------------------- requests


def passthrough_body(
    body: dict[str, Any],
    *,
    model: str,
    max_tokens_field: str,
    stream_usage: bool,
    drop_model: bool = False,
) -> dict[str, Any]:
    """The client's OpenAI body with the few edits an OpenAI-compatible upstream needs.

    The model name becomes the deployment's; the output limit goes by the
    name the host understands; a stream always asks for usage (the gateway
    needs it to account), the client sees it only if it asked.
    """
    out = dict(body)
    if drop_model:
        out.pop("model", None)
    else:
        out["model"] = model
    other = "max_tokens" if max_tokens_field == "max_completion_tokens" else "max_completion_tokens"
    if other in out and max_tokens_field not in out:
        out[max_tokens_field] = out.pop(other)
    if out.get("stream") and stream_usage:
        opts = dict(out.get("stream_options") or {})
        opts["include_usage"] = True
        out["stream_options"] = opts
    return out


def chat_request_to_dict(req: ChatRequest) -> dict[str, Any]:
    """The internal request as an OpenAI body (for a request that came in another format)."""
    return req.model_dump(mode="json", exclude_none=True, by_alias=True, exclude_defaults=False)


# ------------------------------------------------------------ byte relay


class StreamRelay:
    """Cuts an OpenAI SSE byte stream into whole events, unparsed, and finds its usage.

    Only an event that carries usage is parsed; a usage-only event is dropped
    unless ``keep_usage`` (the gateway asks upstreams for usage on every
    stream, and a client that did not ask must not get it). CRLF line ends
    are normalised to LF.
    """

    __slots__ = ("_buf", "_keep_usage", "usage")

    def __init__(self, *, keep_usage: bool):
        self._buf = b""
        self._keep_usage = keep_usage
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        ready, self._buf = whole_events(self._buf + chunk)
        if not ready:
            return b""
        if b'"usage":' in ready or b'"usage" :' in ready:
            ready = self._account(ready)
        return ready

    def _account(self, ready: bytes) -> bytes:
        kept: list[bytes] = []
        for event in ready.split(b"\n\n")[:-1]:
            if b'"usage"' in event:
                data = _event_json(_event_data(event))
                usage = data.get("usage")
                if usage:
                    self.usage = usage_from_dict(usage)
                    if not self._keep_usage and not data.get("choices"):
                        continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def close(self) -> bytes:
        """What is left when the upstream ends: a last unterminated event, if any."""
        rest = self._buf.rstrip(b"\r\n")
        self._buf = b""
        return self._account(rest + b"\n\n") if rest else b""


def _event_data(event: bytes) -> str:
    lines = [
        line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    return b"\n".join(lines).decode("utf-8", errors="replace")


def valid_events(events: bytes) -> bool:
    """Whether whole SSE events all carry data that is a JSON object (or ``[DONE]``)."""
    found = False
    for event in events.split(b"\n\n"):
        if not event.strip() or event.startswith(b":"):
            continue
        data = _event_data(event)
        if data == "[DONE]":
            found = True
            continue
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(value, dict):
            return False
        found = True
    return found


def _event_json(data: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
