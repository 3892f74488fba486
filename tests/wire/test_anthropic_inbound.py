"""The Anthropic Messages format, inbound: client requests in, Messages and stream events out.

Property tests check the two directions as a whole. A generated Messages
request (system, text / image / tool_use / tool_result blocks, tools, each
tool_choice, stop_sequences, max_tokens, temperature, top_p, top_k,
metadata.user_id) goes to an internal ``ChatRequest`` and back out through
the outbound translator (``wire.anthropic``): it must come back as it was,
up to what the internal types cannot carry (listed in ``normalized``). A
generated answer, cut into internal chunks at arbitrary points (inside
multi-byte text and tool-argument JSON), is encoded as Anthropic events and
cut again at arbitrary byte offsets: the events must follow the Messages
grammar, reassemble to the same text and tool inputs, and make the same
message in the official SDK's accumulator.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.errors import InvalidRequestError, UpstreamBadResponseError, UpstreamTimeoutError
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChoiceDelta,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)
from modelyard.wire import anthropic as outbound
from modelyard.wire.anthropic_events import MessageStreamEncoder
from modelyard.wire.anthropic_inbound import (
    chat_from_messages,
    count_tokens,
    error_body,
    field_name,
    message_from_chat,
)
from modelyard.wire.sse import SSEDecoder

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRICKY = st.sampled_from(["é", "漢", "😀", "\u200d", '"', "\\", "\n", " ", "a", "{", "}"])
TEXT = st.text(TRICKY | st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=16)
WORDS = TEXT.filter(bool)
NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True).filter(
    lambda n: n != outbound.JSON_TOOL
)
IDS = st.from_regex(r"toolu_[A-Za-z0-9]{1,12}", fullmatch=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
INPUTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)
IMAGE = st.one_of(
    st.builds(
        lambda mime, data: {
            "type": "image",
            "source": {"type": "base64", "media_type": mime, "data": data},
        },
        st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
        st.from_regex(r"[A-Za-z0-9+/]{4,16}={0,2}", fullmatch=True),
    ),
    st.builds(
        lambda path: {"type": "image", "source": {"type": "url", "url": f"https://x.test/{path}"}},
        NAMES,
    ),
)
TEXT_BLOCK = st.builds(lambda t: {"type": "text", "text": t}, WORDS)


# ---------------------------------------------------------------- requests


def _body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    } | fields


def test_system_string_and_blocks_become_system_messages() -> None:
    chat = chat_from_messages(_body(system="Be brief.")).chat
    assert chat["messages"][0] == {"role": "system", "content": "Be brief."}
    blocks = [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]
    chat = chat_from_messages(_body(system=blocks)).chat
    assert [m["content"] for m in chat["messages"][:2]] == ["One.", "Two."]


def test_system_messages_in_the_conversation_stay_in_place() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "Now answer in French."}]},
        {"role": "user", "content": "bye"},
    ]
    chat = chat_from_messages(_body(messages=messages)).chat
    assert [m["role"] for m in chat["messages"]] == ["user", "system", "user"]
    assert chat["messages"][1]["content"] == "Now answer in French."
    with pytest.raises(InvalidRequestError) as info:
        chat_from_messages(_body(messages=[{"role": "system", "content": [{"type": "image"}]}]))
    assert info.value.param == "messages.0.content.0.type"


def test_tool_results_become_tool_messages_before_the_users_words() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "w", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "21C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "3C"}],
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    chat = chat_from_messages(_body(messages=messages)).chat
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    assistant = chat["messages"][1]
    assert assistant["content"] == "Checking."  # the thinking block has no carrier
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [
        '{"city":"Paris"}',
        '{"city":"Oslo"}',
    ]
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "21C"}
    ChatRequest.model_validate(chat)


@pytest.mark.parametrize(
    ("choice", "internal", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ],
)
def test_tool_choice(choice: dict[str, Any], internal: Any, parallel: bool | None) -> None:
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    chat = chat_from_messages(_body(tools=tools, tool_choice=choice)).chat
    assert chat["tool_choice"] == internal
    assert chat.get("parallel_tool_calls") == parallel


def test_anthropic_only_fields_are_kept_apart() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    translated = chat_from_messages(_body(top_k=3, thinking=thinking, service_tier="auto"))
    assert translated.native == {"top_k": 3, "thinking": thinking, "service_tier": "auto"}
    assert not {"top_k", "thinking", "service_tier"} & set(translated.chat)


def test_output_format_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}
    chat = chat_from_messages(_body(output_config=fmt)).chat
    assert chat["response_format"]["json_schema"]["schema"] == schema
    assert ChatRequest.model_validate(chat).response_format is not None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(max_tokens=True), "max_tokens"),
        (_body(model=""), "model"),
        (_body(messages=[]), "messages"),
        (_body(messages=[{"role": "robot", "content": "x"}]), "messages.0.role"),
        (_body(messages=[{"role": "user", "content": 3}]), "messages.0.content"),
        (
            _body(messages=[{"role": "user", "content": [{"text": "x"}]}]),
            "messages.0.content.0.type",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "document"}]}]),
            "messages.0.content.0.type",
        ),
        (
            _body(
                messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": ""}]}]
            ),
            "messages.0.content.0.tool_use_id",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}],
                    }
                ]
            ),
            "messages.0.content.0.source.media_type",
        ),
        (_body(temperature=1.5), "temperature"),
        (_body(top_k=-1), "top_k"),
        (_body(stop_sequences="STOP"), "stop_sequences"),
        (_body(metadata={"user": "x"}), "metadata.user"),
        (_body(tools=[{"name": "w"}]), "tools.0.input_schema"),
        (_body(tools=[{"type": "web_search_20250305", "name": "w"}]), "tools.0.type"),
        (_body(tool_choice={"type": "maybe"}), "tool_choice.type"),
        (_body(frequency_penalty=1), "frequency_penalty"),
        (_body(output_config={"format": {"type": "xml"}}), "output_config.format.type"),
    ],
)
def test_bad_fields_are_named(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat_from_messages(body)
    assert info.value.param == param
    assert info.value.message.startswith(f"{param}: ")


def test_count_tokens_body_has_no_max_tokens_and_no_sampling() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert "max_tokens" not in chat_from_messages(body, counting=True).chat
    with pytest.raises(InvalidRequestError) as info:
        chat_from_messages(body | {"stop_sequences": ["x"]}, counting=True)
    assert info.value.param == "stop_sequences"


def test_internal_field_names_become_the_clients() -> None:
    assert field_name("stop") == "stop_sequences"
    assert field_name("user") == "metadata.user_id"
    assert field_name("messages[2].content") == "messages[2].content"
    assert field_name(None) is None


def test_count_tokens_grows_with_text_tools_and_images() -> None:
    def count(**fields: Any) -> int:
        return count_tokens(chat_from_messages(_body(**fields), counting=False))

    base = count()
    assert base > 0
    assert count(messages=[{"role": "user", "content": "x" * 400}]) >= base + 99
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    assert count(tools=tools) > base
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
    assert count(messages=[{"role": "user", "content": [image]}]) > base + 1000


# ------------------------------------------------------ request round trip


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A Messages request in the shapes the internal types can carry whole."""
    tool_names = draw(st.lists(NAMES, max_size=3, unique=True))
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids the next user turn answers
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2 == 0:
            blocks: list[dict[str, Any]] = []
            for call_id in pending:
                result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
                content = draw(st.none() | WORDS | st.lists(TEXT_BLOCK | IMAGE, max_size=2))
                if content is not None:
                    result["content"] = content
                blocks.append(result)
            blocks += draw(st.lists(TEXT_BLOCK | IMAGE, min_size=0 if pending else 1, max_size=3))
            pending = []
            as_string = len(blocks) == 1 and blocks[0]["type"] == "text" and draw(st.booleans())
            messages.append({"role": "user", "content": blocks[0]["text"] if as_string else blocks})
        else:
            blocks = draw(st.lists(TEXT_BLOCK, max_size=2))
            if tool_names:
                for call_id in draw(st.lists(IDS, max_size=2, unique=True)):
                    name = draw(st.sampled_from(tool_names))
                    tool_use = {"type": "tool_use", "id": call_id, "name": name}
                    blocks.append(tool_use | {"input": draw(INPUTS)})
                    pending.append(call_id)
            if not blocks:
                blocks = [draw(TEXT_BLOCK)]
            messages.append({"role": "assistant", "content": blocks})
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": draw(st.integers(1, 100_000)),
        "messages": messages,
    }
    system = draw(st.none() | WORDS | st.lists(TEXT_BLOCK, min_size=1, max_size=3))
    if system is not None:
        body["system"] = system
    if tool_names:
        body["tools"] = [
            {"name": n, "input_schema": {"type": "object", "properties": {"p": {"type": "string"}}}}
            | draw(st.just({}) | st.builds(lambda d: {"description": d}, WORDS))
            for n in tool_names
        ]
        choice: dict[str, Any] | None = draw(
            st.none()
            | st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}])
            | st.builds(lambda n: {"type": "tool", "name": n}, st.sampled_from(tool_names))
        )
        if choice is not None:
            if choice["type"] != "none" and draw(st.booleans()):
                choice["disable_parallel_tool_use"] = True
            body["tool_choice"] = choice
    optional = {
        "stop_sequences": st.lists(WORDS, min_size=1, max_size=4),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(0, 500),
        "metadata": st.builds(lambda u: {"user_id": u}, WORDS),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """The request as Anthropic's outbound translator writes it: strings as text blocks,
    a system of blocks joined into one string, turns of one role merged."""
    out = dict(body)
    system = out.pop("system", None)
    if isinstance(system, list):
        system = "\n\n".join(b["text"] for b in system)
    if system:
        out["system"] = system
    turns: list[dict[str, Any]] = []
    for m in body["messages"]:
        content = m["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if turns and turns[-1]["role"] == m["role"]:
            turns[-1]["content"] = turns[-1]["content"] + blocks
        else:
            turns.append({"role": m["role"], "content": list(blocks)})
    out["messages"] = turns
    return out


@SETTINGS
@given(requests())
def test_requests_round_trip_through_the_internal_types(body: dict[str, Any]) -> None:
    translated = chat_from_messages(body)
    req = ChatRequest.model_validate(translated.chat | translated.native)
    again = outbound.messages_request(req, model=body["model"])
    assert again == normalized(body)


# ---------------------------------------------------------------- answers


def test_message_from_chat() -> None:
    resp = ChatResponse(
        "chatcmpl-9x",
        "upstream-model",
        0,
        [
            Choice(
                0,
                "Checking.",
                "tool_calls",
                [ToolCallOut("call_1", "w", '{"city": "Paris"}'), ToolCallOut("call_2", "w", "")],
                reasoning="hmm",
            )
        ],
        Usage(input_tokens=100, output_tokens=7, cached_input_tokens=60, cache_write_tokens=10),
    )
    message = message_from_chat(resp, model="asked")
    assert message["id"] == "msg_chatcmpl9x" and message["model"] == "asked"
    assert message["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "w", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": 30,
        "output_tokens": 7,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 60,
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish: Any, reason: str) -> None:
    resp = ChatResponse("x", "m", 0, [Choice(0, "", finish)], Usage())
    message = message_from_chat(resp, model="m")
    assert message["stop_reason"] == reason
    assert message["content"] == [{"type": "text", "text": ""}]


def test_tool_calls_with_finish_stop_are_tool_use() -> None:
    calls = [ToolCallOut("c", "w", "{}")]
    resp = ChatResponse("x", "m", 0, [Choice(0, None, "stop", calls)], Usage())
    assert message_from_chat(resp, model="m")["stop_reason"] == "tool_use"


def test_tool_arguments_that_are_not_an_object_are_a_bad_upstream_answer() -> None:
    resp = ChatResponse(
        "x", "m", 0, [Choice(0, None, "tool_calls", [ToolCallOut("c", "w", "[1")])], Usage()
    )
    with pytest.raises(UpstreamBadResponseError):
        message_from_chat(resp, model="m")


def test_error_body_types_by_status() -> None:
    assert orjson.loads(error_body(404, "no")) == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "no"},
    }
    assert orjson.loads(error_body(402, "budget"))["error"]["type"] == "billing_error"
    assert orjson.loads(error_body(503, "x", "req_1"))["request_id"] == "req_1"
    assert orjson.loads(error_body(418, "x"))["error"]["type"] == "invalid_request_error"


# ---------------------------------------------------------------- streams


def _cuts(draw: st.DrawFn, n: int) -> list[int]:
    return sorted(set(draw(st.lists(st.integers(0, n), max_size=6))))


def _split(value: str | bytes, cuts: list[int]) -> list[Any]:
    edges = [0, *cuts, len(value)]
    return [value[a:b] for a, b in itertools.pairwise(edges)]


@st.composite
def answers(
    draw: st.DrawFn,
) -> tuple[str, str, list[tuple[str, str, dict[str, Any]]], list[ChatChunk]]:
    """A thought, a text and tool calls, as internal chunks cut at arbitrary points."""
    thought, text = draw(TEXT), draw(TEXT)
    calls = [
        (call_id, name, draw(INPUTS))
        for call_id, name in draw(
            st.lists(st.tuples(IDS, NAMES), max_size=3, unique_by=lambda t: t[0])
        )
    ]
    deltas = [ChoiceDelta(role="assistant", content="")]
    deltas += [ChoiceDelta(reasoning=p) for p in _split(thought, _cuts(draw, len(thought))) if p]
    deltas += [ChoiceDelta(content=p) for p in _split(text, _cuts(draw, len(text))) if p]
    for i, (call_id, name, args) in enumerate(calls):
        raw = json.dumps(args, ensure_ascii=draw(st.booleans()))
        pieces = _split(raw, _cuts(draw, len(raw)))
        deltas.append(ChoiceDelta(tool_calls=[ToolCallDelta(i, call_id, name, pieces[0])]))
        deltas += [ChoiceDelta(tool_calls=[ToolCallDelta(i, arguments=p)]) for p in pieces[1:]]
    deltas.append(ChoiceDelta(finish_reason="tool_calls" if calls else "stop"))
    chunks = [ChatChunk("chatcmpl-1", "m", 0, [d]) for d in deltas]
    chunks.append(
        ChatChunk("chatcmpl-1", "m", 0, [], usage=Usage(input_tokens=12, output_tokens=5))
    )
    return thought, text, calls, chunks


def _events(raw: bytes, cuts: list[int]) -> list[tuple[str, dict[str, Any]]]:
    decoder = SSEDecoder()
    out = []
    for piece in _split(raw, cuts):
        for e in decoder.feed(piece):
            data = json.loads(e.data)
            assert e.event is not None and e.event == data["type"]
            out.append((e.event, data))
    return out


def check_grammar(events: list[tuple[str, dict[str, Any]]]) -> None:
    """message_start ping (block_start delta* block_stop)* message_delta message_stop."""
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    kinds = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}
    kind = ""
    for name, data in events[2:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = next_index, next_index + 1
            kind = data["content_block"]["type"]
        elif name == "content_block_delta":
            assert data["index"] == open_index
            assert data["delta"]["type"] in (kinds[kind], "signature_delta")
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        else:
            raise AssertionError(f"unexpected event {name} inside the message")
    assert open_index is None and next_index >= 1


@SETTINGS
@given(answers(), st.data())
def test_streams_encode_as_a_valid_event_sequence(
    answer: tuple[str, str, list[tuple[str, str, dict[str, Any]]], list[ChatChunk]],
    data: st.DataObject,
) -> None:
    thought, text, calls, chunks = answer
    encoder = MessageStreamEncoder("asked")
    raw = b"".join(encoder.feed(c) for c in chunks) + encoder.close()
    events = _events(raw, sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))))
    check_grammar(events)
    blocks: dict[int, dict[str, Any]] = {}
    for name, e in events:
        if name == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"]) | {"json": ""}
        elif name == "content_block_delta":
            block, delta = blocks[e["index"]], e["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                block["json"] += delta["partial_json"]
    ordered = [blocks[i] for i in sorted(blocks)]
    assert "".join(b["thinking"] for b in ordered if b["type"] == "thinking") == thought
    assert "".join(b["text"] for b in ordered if b["type"] == "text") == text
    tools = [
        (b["id"], b["name"], json.loads(b["json"])) for b in ordered if b["type"] == "tool_use"
    ]
    assert tools == calls
    start, delta = events[0][1]["message"], events[-2][1]
    assert start["id"].startswith("msg_") and start["model"] == "asked" and start["content"] == []
    assert delta["delta"]["stop_reason"] == ("tool_use" if calls else "end_turn")
    assert delta["usage"]["input_tokens"] == 12 and delta["usage"]["output_tokens"] == 5
    # the official SDK builds the same message from these events
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for _, e in events:
        if e["type"] != "ping":
            snapshot = accumulate_event(event=e, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    assert "".join(b.text for b in snapshot.content if b.type == "text") == text
    assert [(b.id, b.name, b.input) for b in snapshot.content if b.type == "tool_use"] == calls
    assert snapshot.usage.input_tokens == 12 and snapshot.usage.output_tokens == 5


def test_an_empty_stream_still_makes_one_message() -> None:
    encoder = MessageStreamEncoder("m", "msg_fixed")
    events = _events(encoder.close(), [])
    check_grammar(events)
    assert events[0][1]["message"]["id"] == "msg_fixed"
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}


def test_a_failure_after_the_start_is_one_error_event() -> None:
    encoder = MessageStreamEncoder("m")
    encoder.feed(ChatChunk("x", "m", 0, [ChoiceDelta(content="partial")]))
    raw = encoder.error(UpstreamTimeoutError("the upstream timed out"))
    assert raw.startswith(b"event: error\ndata: ") and raw.endswith(b"\n\n")
    assert json.loads(raw.split(b"data: ", 1)[1]) == {
        "type": "error",
        "error": {"type": "timeout_error", "message": "the upstream timed out"},
    }


def test_tool_calls_with_finish_stop_still_end_with_tool_use() -> None:
    encoder = MessageStreamEncoder("m")
    encoder.feed(
        ChatChunk("x", "m", 0, [ChoiceDelta(tool_calls=[ToolCallDelta(0, "c", "w", "{}")])])
    )
    encoder.feed(ChatChunk("x", "m", 0, [ChoiceDelta(finish_reason="stop")]))
    events = _events(encoder.close(), [])
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
