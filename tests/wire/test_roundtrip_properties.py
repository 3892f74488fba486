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
* Gemini: ``tool_call_id`` when the gateway made it up for a call Gemini gave
  no id (``call_`` and 24 hex digits; results are then matched by name and
  order; the generated ids here are not of that form), ``parallel_tool_calls``,
  a tool's ``strict``, an image's ``detail``, a message's ``name``, the JSON
  schema's ``name``, ``description`` and ``strict``.

Answers go the other way: ``test_stream_properties`` (streamed and whole).
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.types import ChatRequest, ImagePart, Message, NamedToolChoice
from modelyard.wire import anthropic, gemini, openai

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
        if not json_only and req.tools:  # the client's tools stay callable, as it asked
            assert set(sent) == {t.function.name for t in req.tools} | {anthropic.JSON_TOOL}
            wanted = req.parallel_tool_calls is False
            assert choice.get("disable_parallel_tool_use", False) == wanted
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
                item = ("call", call.get("id"), call["name"], call["args"])
            elif "functionResponse" in part:
                resp = part["functionResponse"]
                item = ("result", resp.get("id"), resp["name"], resp["response"])
            else:
                item = ("image", _gemini_image(part))
            out.append((role, item))
    return out


def _as_gemini(items: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The internal items as Gemini carries them: results name their function."""
    names: dict[str, str] = {}
    out: list[tuple[str, tuple[Any, ...]]] = []
    for role, item in items:
        if item[0] == "call":
            names[item[1]] = item[2]
            out.append((role, item))
        elif item[0] == "result":
            try:
                value = orjson.loads(item[2])
            except orjson.JSONDecodeError:
                value = item[2]
            response = value if isinstance(value, dict) else {"output": value}
            out.append((role, ("result", item[1], names[item[1]], response)))
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
