"""Property tests: chat requests round-trip through each upstream wire format.

A generated internal ``ChatRequest`` (tools, each ``tool_choice``, parallel
tool calls and their results, system text, images, stop, an output limit,
JSON output) is translated to each upstream's body, then read back the way
the upstream reads it. Everything the target format can express must
survive. What each format cannot express, and so is not checked:

* OpenAI: nothing; the body is the request itself.
* Anthropic: ``n``, ``seed``, presence/frequency penalties, a tool's
  ``strict``, an image's ``detail``, a message's ``name``, the JSON schema's
  ``name`` and ``strict`` (the schema rides as a forced tool's input schema),
  a temperature above 1 (clamped to Anthropic's range), empty text blocks
  (Anthropic rejects them); ``json_object`` becomes the schema ``{"type": "object"}``.
* Gemini: ``tool_call_id`` (function results are matched by name and order),
  ``parallel_tool_calls``, a tool's ``strict``, an image's ``detail``, a
  message's ``name``, the JSON schema's ``name``, ``description`` and ``strict``.

Streams go the other way: a generated answer (text with multi-byte UTF-8,
several parallel tool calls with JSON arguments) is encoded as each
upstream's SSE byte stream, cut at arbitrary byte offsets (inside UTF-8
sequences and JSON arguments too), and fed through the decoding path the
providers use (``SSEDecoder``, then each format's chunk translator). The
text and the tool calls (id, name, arguments) must come back exactly.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    NamedToolChoice,
    ToolCallOut,
)
from modelyard.wire import anthropic, gemini, openai
from modelyard.wire.sse import SSEDecoder

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Text with the characters that break naive code: multi-byte UTF-8, quotes, escapes, newlines.
TRICKY = st.sampled_from(
    ["é", "漢", "字", "😀", "\u200d", '"', "\\", "\n", "\r", " ", "a", "Z", "{"]
)
TEXT = st.text(TRICKY | st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
WORDS = TEXT.filter(bool)
NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: n != anthropic.JSON_TOOL
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
ARGUMENTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)
SCHEMA = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(NAMES, st.just({"type": "string"}))}
)
IMAGES = st.sampled_from(
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "data:image/jpeg;base64,/9j/4AAQSkZJRg==",
        "https://example.com/cat.png",
    ]
)


@st.composite
def chat_requests(draw: st.DrawFn) -> ChatRequest:
    tool_names = draw(st.lists(NAMES, min_size=0, max_size=3, unique=True))
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                **({"description": d} if (d := draw(st.none() | WORDS)) else {}),
                "parameters": draw(SCHEMA),
            },
        }
        for name in tool_names
    ]
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append(
            {"role": draw(st.sampled_from(["system", "developer"])), "content": draw(WORDS)}
        )
    ids = iter(range(1000))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            parts: list[dict[str, Any]] = [{"type": "text", "text": draw(WORDS)}]
            parts.append({"type": "image_url", "image_url": {"url": draw(IMAGES)}})
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": draw(WORDS)})
        if tool_names and draw(st.booleans()):
            calls = [
                {
                    "id": f"call_{next(ids)}",
                    "type": "function",
                    "function": {
                        "name": draw(st.sampled_from(tool_names)),
                        "arguments": orjson.dumps(draw(ARGUMENTS)).decode(),
                    },
                }
                for _ in range(draw(st.integers(1, 3)))
            ]
            messages.append(
                {"role": "assistant", "content": draw(st.none() | WORDS), "tool_calls": calls}
            )
            for call in calls:
                result = draw(WORDS | ARGUMENTS.map(lambda a: orjson.dumps(a).decode()))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        else:
            messages.append({"role": "assistant", "content": draw(WORDS)})
    messages.append({"role": "user", "content": draw(WORDS)})
    body: dict[str, Any] = {"model": "m", "messages": messages}
    if tools:
        body["tools"] = tools
        choice = draw(st.sampled_from(["absent", "auto", "none", "required", "named"]))
        if choice == "named":
            body["tool_choice"] = {
                "type": "function",
                "function": {"name": draw(st.sampled_from(tool_names))},
            }
        elif choice != "absent":
            body["tool_choice"] = choice
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    if draw(st.booleans()):
        body["stop"] = draw(st.lists(WORDS, min_size=1, max_size=4))
    if draw(st.booleans()):
        body["max_tokens"] = draw(st.integers(1, 100_000))
    if draw(st.booleans()):
        body["temperature"] = draw(st.sampled_from([0.0, 0.5, 1.0, 1.5]))
    fmt = draw(st.sampled_from(["none", "json_object", "json_schema"]))
    if fmt == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt == "json_schema":
        spec: dict[str, Any] = {"name": "answer", "schema": draw(SCHEMA)}
        if description := draw(st.none() | WORDS):
            spec["description"] = description
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    return ChatRequest.model_validate(body)


def _schema(req: ChatRequest) -> dict[str, Any] | None:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    spec = fmt.json_schema
    return spec.json_schema if spec is not None and spec.json_schema else {"type": "object"}


# ------------------------------------------------------------------ OpenAI


@SETTINGS
@given(chat_requests())
def test_openai_request_round_trips_whole(req: ChatRequest) -> None:
    body = orjson.loads(orjson.dumps(openai.chat_request_to_dict(req)))
    back = ChatRequest.model_validate(body)
    assert back.model_dump() == req.model_dump()


# --------------------------------------------------------------- Anthropic


def _items(msgs: list[Message]) -> list[tuple[str, tuple[Any, ...]]]:
    """The conversation as (role, item) pairs in the order a model reads it."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    for m in msgs:
        if m.role in ("system", "developer"):
            continue
        if m.role == "tool":
            out.append(("user", ("result", m.tool_call_id, m.text())))
            continue
        parts = [m.content] if isinstance(m.content, str) else (m.content or [])
        for part in parts:
            if isinstance(part, str):
                out.append((m.role, ("text", part)))
            elif isinstance(part, ImagePart):
                out.append((m.role, ("image", part.image_url.url)))
            else:
                out.append((m.role, ("text", part.text)))
        for call in m.tool_calls or []:
            args = orjson.loads(call.function.arguments)
            out.append((m.role, ("call", call.id, call.function.name, args)))
    return out


def _anthropic_image(source: dict[str, Any]) -> str:
    if source["type"] == "url":
        return str(source["url"])
    return f"data:{source['media_type']};base64,{source['data']}"


def _anthropic_items(body: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """How Anthropic reads ``messages``: a flat list of (role, block)."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    for m in body["messages"]:
        for block in m["content"]:
            kind = block["type"]
            if kind == "text":
                item: tuple[Any, ...] = ("text", block["text"])
            elif kind == "image":
                item = ("image", _anthropic_image(block["source"]))
            elif kind == "tool_use":
                item = ("call", block["id"], block["name"], block["input"])
            else:
                item = ("result", block["tool_use_id"], block.get("content", ""))
            out.append((m["role"], item))
    return out


@SETTINGS
@given(chat_requests())
def test_anthropic_request_keeps_what_messages_can_express(req: ChatRequest) -> None:
    body = orjson.loads(orjson.dumps(anthropic.messages_request(req, model="claude")))
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), "turns must alternate"
    expected = [(role, item) for role, item in _items(req.messages) if item[0] != "text" or item[1]]
    assert _anthropic_items(body) == expected
    system = [m.text() for m in req.messages if m.role in ("system", "developer")]
    assert body.get("system", "") == "\n\n".join(s for s in system if s)
    assert body["max_tokens"] == (req.output_limit or anthropic.DEFAULT_MAX_TOKENS)
    assert body.get("stop_sequences", []) == req.stop_list
    if req.temperature is not None:
        assert body["temperature"] == min(req.temperature, 1.0)
    sent = {t["name"]: t for t in body.get("tools", [])}
    schema = _schema(req)
    json_only = schema is not None and req.tool_choice == "none"  # the tools cannot be called
    for tool in [] if json_only else req.tools or []:
        fn = tool.function
        assert sent[fn.name]["input_schema"] == fn.parameters
        assert sent[fn.name].get("description") == fn.description
    choice = body.get("tool_choice")
    if schema is not None:
        assert sent[anthropic.JSON_TOOL]["input_schema"] == schema
        assert choice is not None and choice["type"] in ("tool", "any")
        if isinstance(req.tool_choice, NamedToolChoice):
            assert (choice["type"], choice.get("name")) == ("tool", req.tool_choice.function.name)
        elif choice["type"] == "tool":
            assert choice["name"] == anthropic.JSON_TOOL
            assert req.tool_choice == "none" or not req.tools
    elif req.tools:
        assert set(sent) == {t.function.name for t in req.tools}
        _check_anthropic_choice(req, choice)


def _check_anthropic_choice(req: ChatRequest, choice: dict[str, Any] | None) -> None:
    wanted = req.tool_choice
    if isinstance(wanted, NamedToolChoice):
        assert choice is not None and choice["type"] == "tool"
        assert choice["name"] == wanted.function.name
    elif wanted is None:
        assert choice is None or choice["type"] == "auto"
    else:
        assert choice is not None
        assert choice["type"] == {"auto": "auto", "none": "none", "required": "any"}[wanted]
    if choice is not None and choice["type"] != "none":
        assert choice.get("disable_parallel_tool_use", False) == (req.parallel_tool_calls is False)


# ------------------------------------------------------------------ Gemini


def _gemini_image(part: dict[str, Any]) -> str:
    if "fileData" in part:
        return str(part["fileData"]["fileUri"])
    inline = part["inlineData"]
    return f"data:{inline['mimeType']};base64,{inline['data']}"


def _gemini_items(body: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """How Gemini reads ``contents``; results are matched to calls by name, in order."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    for content in body["contents"]:
        role = "assistant" if content["role"] == "model" else "user"
        for part in content["parts"]:
            if "text" in part:
                item: tuple[Any, ...] = ("text", part["text"])
            elif "functionCall" in part:
                call = part["functionCall"]
                item = ("call", call["name"], call["args"])
            elif "functionResponse" in part:
                resp = part["functionResponse"]
                item = ("result", resp["name"], resp["response"])
            else:
                item = ("image", _gemini_image(part))
            out.append((role, item))
    return out


def _as_gemini(items: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The internal items with what Gemini cannot carry (tool call ids) taken out."""
    names: dict[str, str] = {}
    out: list[tuple[str, tuple[Any, ...]]] = []
    for role, item in items:
        if item[0] == "call":
            names[item[1]] = item[2]
            out.append((role, ("call", item[2], item[3])))
        elif item[0] == "result":
            try:
                value = orjson.loads(item[2])
            except orjson.JSONDecodeError:
                value = item[2]
            response = value if isinstance(value, dict) else {"output": value}
            out.append((role, ("result", names[item[1]], response)))
        else:
            out.append((role, item))
    return out


@SETTINGS
@given(chat_requests())
def test_gemini_request_keeps_what_generate_content_can_express(req: ChatRequest) -> None:
    body = orjson.loads(orjson.dumps(gemini.chat_request_to_gemini(req)))
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), "turns must alternate"
    # an assistant turn of only tool calls has no text part; every other empty text stays
    expected = _as_gemini(_items(req.messages))
    got = _gemini_items(body)
    assert [i for i in got if i[1] != ("text", "")] == [i for i in expected if i[1] != ("text", "")]
    for content in body["contents"]:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if calls:  # the first call of a turn carries a signature, or Gemini rejects the turn
            assert calls[0]["thoughtSignature"] == gemini.SKIP_SIGNATURE
    system = [m.text() for m in req.messages if m.role in ("system", "developer")]
    assert [p["text"] for p in body.get("systemInstruction", {}).get("parts", [])] == system
    config = body.get("generationConfig", {})
    assert config.get("maxOutputTokens") == req.output_limit
    assert config.get("stopSequences", []) == req.stop_list
    assert config.get("temperature") == req.temperature
    schema = _schema(req)
    if schema is not None:
        assert config["responseMimeType"] == "application/json"
        if req.response_format and req.response_format.type == "json_schema":
            assert config["responseJsonSchema"] == schema
    else:
        assert "responseMimeType" not in config
    declared = [d for t in body.get("tools", []) for d in t["functionDeclarations"]]
    assert [(d["name"], d.get("description"), d.get("parametersJsonSchema")) for d in declared] == [
        (t.function.name, t.function.description, t.function.parameters) for t in req.tools or []
    ]
    calling = body.get("toolConfig", {}).get("functionCallingConfig")
    wanted = req.tool_choice
    if wanted is None:
        assert calling is None
    elif isinstance(wanted, NamedToolChoice):
        assert calling == {"mode": "ANY", "allowedFunctionNames": [wanted.function.name]}
    else:
        assert calling == {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[wanted]}


# ------------------------------------------------------------------ streams


@dataclass
class Answer:
    text: str
    calls: list[ToolCallOut]


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    names = draw(st.lists(NAMES, max_size=3))
    calls = [
        ToolCallOut(f"call_{i}_{draw(NAMES)}", name, orjson.dumps(draw(ARGUMENTS)).decode())
        for i, name in enumerate(names)
    ]
    return Answer(draw(TEXT), calls)


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut at arbitrary character offsets (so JSON arguments mid-token)."""
    cuts = sorted(draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=4)))
    bounds = [0, *(c for c in cuts if c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _cut(draw: st.DrawFn, payload: bytes) -> list[bytes]:
    """The byte stream as the network might deliver it: split anywhere, UTF-8 included."""
    cuts = sorted(draw(st.sets(st.integers(1, max(len(payload) - 1, 1)), max_size=12)))
    if draw(st.booleans()):  # also one byte at a time around a random spot
        start = draw(st.integers(0, len(payload)))
        cuts = sorted({*cuts, *range(start, min(start + 8, len(payload)))} - {0})
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _event(data: dict[str, Any], event: str | None, eol: bytes) -> bytes:
    head = b"event: " + event.encode() + eol if event else b""
    return head + b"data: " + orjson.dumps(data) + eol + eol


def _reassemble(chunks: list[ChatChunk]) -> Answer:
    """What an OpenAI client makes of the chunks the gateway sends it."""
    text = ""
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        wire_chunk = orjson.loads(orjson.dumps(openai.chat_chunk_to_dict(chunk)))
        for choice in wire_chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                parts = calls.setdefault(call["index"], ["", "", ""])
                parts[0] += call.get("id") or ""
                parts[1] += call["function"].get("name") or ""
                parts[2] += call["function"].get("arguments") or ""
    return Answer(text, [ToolCallOut(*calls[i]) for i in sorted(calls)])


def _openai_stream(draw: st.DrawFn, answer: Answer, eol: bytes) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _event({**base, "choices": [choice]}, None, eol)

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in _pieces(draw, answer.text)]
    for i, call in enumerate(answer.calls):
        head = {"index": i, "id": call.id, "type": "function"}
        pieces = _pieces(draw, call.arguments)
        # some hosts put the first piece of the arguments beside the name, others send ""
        first = pieces.pop(0) if pieces and draw(st.booleans()) else ""
        out.append(
            chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": first}}]})
        )
        for piece in pieces:
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if answer.calls else "stop"))
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    out.append(_event({**base, "choices": [], "usage": usage}, None, eol))
    return b"".join(out) + b"data: [DONE]" + eol + eol


@SETTINGS
@given(answers(), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_openai_stream_reassembles_exactly(answer: Answer, eol: bytes, data: st.DataObject) -> None:
    payload = _openai_stream(data.draw, answer, eol)
    pieces = _cut(data.draw, payload)
    # the typed path (another format's client, or a provider reading the stream)
    decoder = SSEDecoder()
    chunks = [
        openai.chat_chunk_from_dict(orjson.loads(event.data))
        for piece in pieces
        for event in decoder.feed(piece)
        if event.data != "[DONE]"
    ]
    assert _reassemble(chunks) == answer
    # the byte relay (an OpenAI client in front of an OpenAI upstream) passes every event whole
    relay = openai.StreamRelay(keep_usage=True)
    relayed = b"".join(relay.feed(piece) for piece in pieces) + relay.close()
    normalised = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    assert relayed == normalised
    assert relay.usage is not None and relay.usage.output_tokens == 4


def _anthropic_event(data: dict[str, Any]) -> bytes:
    return _event(data, str(data["type"]), b"\n")


def _anthropic_stream(
    draw: st.DrawFn, answer: Answer, *, thinking: str = "", json_text: str = ""
) -> bytes:
    """The stream Anthropic sends: thinking, text, then one tool_use block a call."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude"}
    message |= {"content": [], "stop_reason": None, "usage": {"input_tokens": 3}}
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(draw, thinking)]
        deltas.append({"type": "signature_delta", "signature": "c2ln"})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if answer.text:
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(draw, answer.text)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    calls = [(c.id, c.name, c.arguments) for c in answer.calls]
    if json_text:
        calls.append(("toolu_json", anthropic.JSON_TOOL, json_text))
    for call_id, name, arguments in calls:
        start = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [
            {"type": "input_json_delta", "partial_json": p} for p in _pieces(draw, arguments)
        ]
        blocks.append((start, deltas))
    out = [_anthropic_event({"type": "message_start", "message": message})]
    for index, (start, deltas) in enumerate(blocks):
        out.append(
            _anthropic_event(
                {"type": "content_block_start", "index": index, "content_block": start}
            )
        )
        if index == 0:
            out.append(_anthropic_event({"type": "ping"}))
        out += [
            _anthropic_event({"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        ]
        out.append(_anthropic_event({"type": "content_block_stop", "index": index}))
    stop = "tool_use" if calls else "end_turn"
    delta = {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}}
    out += [_anthropic_event(delta), _anthropic_event({"type": "message_stop"})]
    return b"".join(out)


def _anthropic_chunks(pieces: list[bytes], *, json_mode: bool = False) -> list[ChatChunk]:
    decoder = SSEDecoder()
    translator = anthropic.AnthropicStreamTranslator(json_mode=json_mode)
    chunks: list[ChatChunk] = []
    for piece in pieces:
        for event in decoder.feed(piece):
            body = orjson.loads(event.data)
            chunks += translator.feed(event.event or body["type"], body)
    assert translator.finished
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 9
    return chunks


def _finishes(chunks: list[ChatChunk]) -> list[str]:
    return [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]


@SETTINGS
@given(answers(), TEXT, st.data())
def test_anthropic_stream_reassembles_exactly(
    answer: Answer, thinking: str, data: st.DataObject
) -> None:
    payload = _anthropic_stream(data.draw, answer, thinking=thinking)
    chunks = _anthropic_chunks(_cut(data.draw, payload))
    assert _reassemble(chunks) == answer
    reasoning = "".join(c.reasoning or "" for chunk in chunks for c in chunk.choices)
    assert reasoning == thinking
    assert _finishes(chunks) == ["tool_calls" if answer.calls else "stop"]


@SETTINGS
@given(ARGUMENTS, st.data())
def test_anthropic_json_output_streams_as_exact_content(
    value: dict[str, Any], data: st.DataObject
) -> None:
    json_text = orjson.dumps(value).decode()
    payload = _anthropic_stream(data.draw, Answer("", []), json_text=json_text)
    chunks = _anthropic_chunks(_cut(data.draw, payload), json_mode=True)
    assert _reassemble(chunks) == Answer(json_text, [])
    assert _finishes(chunks) == ["stop"]


SIGNATURES = st.none() | st.binary(min_size=1, max_size=40).map(
    lambda b: base64.b64encode(b).decode()  # standard alphabet: "+", "/" and "=" padding
)


def _gemini_stream(draw: st.DrawFn, answer: Answer, eol: bytes, signature: str | None) -> bytes:
    head = {"modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}
    parts: list[dict[str, Any]] = [{"text": p} for p in _pieces(draw, answer.text)]
    for k, call in enumerate(answer.calls):
        fc = {"id": call.id, "name": call.name, "args": orjson.loads(call.arguments)}
        # in parallel calls only the first carries the thought signature
        parts.append(
            {
                "functionCall": fc,
                **({"thoughtSignature": signature} if k == 0 and signature else {}),
            }
        )
    out = []
    for part in parts:  # one part an event, as Gemini streams them
        cand = {"content": {"role": "model", "parts": [part]}, "index": 0}
        out.append(_event({"candidates": [cand], **head}, None, eol))
    final = {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}
    out.append(_event({"candidates": [final], "usageMetadata": usage, **head}, None, eol))
    return b"".join(out)


@SETTINGS
@given(answers(), st.sampled_from([b"\n", b"\r\n"]), SIGNATURES, st.data())
def test_gemini_stream_reassembles_exactly(
    answer: Answer, eol: bytes, signature: str | None, data: st.DataObject
) -> None:
    pieces = _cut(data.draw, _gemini_stream(data.draw, answer, eol, signature))
    decoder = SSEDecoder()
    translator = gemini.GeminiStreamTranslator("gemini-2.5-flash", created=1)
    chunks: list[ChatChunk] = []
    for piece in pieces:
        for event in decoder.feed(piece):
            chunks += translator.feed(orjson.loads(event.data))
    for event in decoder.close():
        chunks += translator.feed(orjson.loads(event.data))
    chunks += translator.finish()
    got = _reassemble(chunks)
    # Gemini sends each call's arguments whole, as an object: the JSON text is re-serialised,
    # which keeps it equal to the compact text generated here. The thought signature rides
    # in the first call's id.
    expected = [ToolCallOut(c.id, c.name, c.arguments) for c in answer.calls]
    if expected and signature:
        expected[0].id = gemini.encode_tool_call_id(expected[0].id, signature)
    assert got == Answer(answer.text, expected)
    assert _finishes(chunks) == ["tool_calls" if answer.calls else "stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 4
    if got.calls:  # the next turn hands the signature back, on the first call only
        _check_gemini_history(got, signature)


def _check_gemini_history(got: Answer, signature: str | None) -> None:
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in got.calls
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": got.text or None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls),
    ]
    req = ChatRequest.model_validate({"model": "g", "messages": messages})
    body = gemini.chat_request_to_gemini(req)
    sent = [p for p in body["contents"][1]["parts"] if "functionCall" in p]
    assert [(p["functionCall"]["name"], p["functionCall"]["args"]) for p in sent] == [
        (c.name, orjson.loads(c.arguments)) for c in got.calls
    ]
    assert [p.get("thoughtSignature") for p in sent] == [
        signature or gemini.SKIP_SIGNATURE,
        *[None] * (len(sent) - 1),
    ]
    results = [p["functionResponse"]["name"] for p in body["contents"][2]["parts"]]
    assert results == [c.name for c in got.calls]


# ------------------------------------------------------ whole (non-streamed) answers


def _whole(resp: ChatResponse) -> Answer:
    """What an OpenAI client reads from the gateway's answer."""
    message = orjson.loads(orjson.dumps(openai.chat_response_to_dict(resp)))["choices"][0]
    message = message["message"]
    calls = [
        ToolCallOut(c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in message.get("tool_calls") or []
    ]
    return Answer(message["content"] or "", calls)


@SETTINGS
@given(answers(), st.sampled_from(["openai", "anthropic", "gemini"]))
def test_whole_answers_round_trip(answer: Answer, vendor: str) -> None:
    if vendor == "openai":
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.calls
        ]
        message = {"role": "assistant", "content": answer.text or None, "tool_calls": calls}
        finish = "tool_calls" if calls else "stop"
        body = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        resp = openai.chat_response_from_dict(body)
    elif vendor == "anthropic":
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": answer.text}] if answer.text else []
        )
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": orjson.loads(c.arguments)}
            for c in answer.calls
        ]
        stop = "tool_use" if answer.calls else "end_turn"
        message = {"id": "msg_1", "model": "claude", "content": blocks, "stop_reason": stop}
        resp = anthropic.chat_response_from_message(message, created=1)
    else:
        parts: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
        parts += [
            {"functionCall": {"id": c.id, "name": c.name, "args": orjson.loads(c.arguments)}}
            for c in answer.calls
        ]
        cand = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        resp = gemini.chat_response_from_gemini({"candidates": [cand]}, model="g", created=1)
    assert _whole(resp) == answer
    assert resp.choices[0].finish_reason == ("tool_calls" if answer.calls else "stop")
