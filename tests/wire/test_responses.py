"""The Responses API translator: items to chat messages and back, the response object, the events.

Property tests: generated input items go to internal chat messages and back
and keep what the format can express (ids and statuses are the gateway's;
an assistant message's several text parts join into one, as chat carries one
string). A generated answer (text with multi-byte UTF-8, several tool calls
with JSON arguments) cut into arbitrary chunks is encoded as Responses events,
cut again at arbitrary byte offsets and decoded: every event validates against
the openai SDK's own models, the sequence is well formed, and the text and
arguments come back exactly.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from modelyard.errors import InvalidRequestError, UpstreamUnavailableError
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
from modelyard.wire import responses as wire
from modelyard.wire.responses_stream import ResponsesStream
from modelyard.wire.sse import SSEDecoder

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ECHO = wire.echo_of({"model": "m"}, None)

TRICKY = st.sampled_from(["é", "漢", "字", "😀", "\u200d", '"', "\\", "\n", " ", "a", "{"])
TEXT = st.text(TRICKY | st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
WORDS = TEXT.filter(bool)
NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
IMAGES = st.sampled_from(["data:image/png;base64,iVBORw0KGgo=", "https://example.com/cat.png"])
DETAILS = st.sampled_from(["auto", "low", "high"])


# ---------------------------------------------------------------- input items


def test_a_string_input_is_one_user_message() -> None:
    [item] = wire.normalize_input("héllo")
    assert item["type"] == "message" and item["role"] == "user"
    assert item["content"] == [{"type": "input_text", "text": "héllo"}]
    assert item["id"].startswith("msg_") and len(item["id"]) == 4 + 48


def test_given_item_ids_are_kept_and_new_ones_have_prefixes() -> None:
    items = wire.normalize_input(
        [
            {"type": "message", "id": "msg_given", "role": "user", "content": "q"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ]
    )
    assert items[0]["id"] == "msg_given"
    assert items[1]["id"].startswith("fc_") and items[2]["id"].startswith("fco_")


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ([], "input"),
        (7, "input"),
        ([{"type": "reasoning", "summary": []}], "input[0].type"),
        ([{"role": "robot", "content": "x"}], "input[0].role"),
        ([{"role": "user", "content": [{"type": "input_file"}]}], "input[0].content[0].type"),
        (
            [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
            "input[0].content[0]",
        ),
        ([{"role": "user", "content": [{"type": "input_text"}]}], "input[0].content[0].text"),
        ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id"),
        ([{"type": "function_call_output", "call_id": "c", "output": 3}], "input[0].output"),
        ([{"role": "user", "content": None}], "input[0].content"),
    ],
)
def test_invalid_items_name_the_field(value: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        wire.normalize_input(value)
    assert refused.value.param == param and param in refused.value.message


def test_function_calls_join_the_assistant_turn_before_them() -> None:
    items = wire.normalize_input(
        [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Looking."},
            {"type": "function_call", "call_id": "a", "name": "w", "arguments": '{"c":1}'},
            {"type": "function_call", "call_id": "b", "name": "w", "arguments": '{"c":2}'},
            {"type": "function_call_output", "call_id": "a", "output": "sun"},
            {"type": "function_call_output", "call_id": "b", "output": "rain"},
        ]
    )
    messages = wire.items_to_messages(items)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[1]["content"] == "Looking."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["a", "b"]
    ChatRequest.model_validate({"model": "m", "messages": messages})


def _message_items(draw: st.DrawFn) -> dict[str, Any]:
    role = draw(st.sampled_from(["user", "system", "developer", "assistant"]))
    if role == "assistant":
        return {
            "type": "message",
            "role": role,
            "content": [{"type": "output_text", "text": draw(WORDS), "annotations": []}],
        }
    parts = draw(
        st.lists(
            st.builds(lambda t: {"type": "input_text", "text": t}, TEXT)
            | st.builds(
                lambda u, d: {"type": "input_image", "image_url": u, "detail": d}, IMAGES, DETAILS
            ),
            min_size=1,
            max_size=3,
        )
    )
    return {"type": "message", "role": role, "content": parts}


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["message", "message", "function_call", "output"]))
        if kind == "message":
            items.append(_message_items(draw))
        elif kind == "function_call":
            call_id = draw(NAMES)
            items.append(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": draw(NAMES),
                    "arguments": orjson.dumps({"q": draw(TEXT)}).decode(),
                }
            )
        else:
            items.append(
                {"type": "function_call_output", "call_id": draw(NAMES), "output": draw(TEXT)}
            )
    return items


def _without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k not in ("id", "status")} for item in items]


@given(conversations())
@SETTINGS
def test_items_to_messages_and_back_keep_what_the_format_expresses(
    items: list[dict[str, Any]],
) -> None:
    normalised = wire.normalize_input(items)
    assert _without_ids(normalised) == items  # already in the normal form: nothing changes
    messages = wire.items_to_messages(normalised)
    assert wire.messages_to_items(messages) == items
    ChatRequest.model_validate({"model": "m", "messages": messages})


# ---------------------------------------------------------------- request options


def test_chat_body_maps_options_and_puts_instructions_first() -> None:
    request = {
        "model": "m",
        "input": "x",
        "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}},
        "max_output_tokens": 9,
        "temperature": 0.5,
        "top_p": 0.9,
        "stream": True,
    }
    body = wire.chat_body(request, wire.normalize_input("x"), "Be brief.")
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}},
    }
    assert body["max_completion_tokens"] == 9 and body["stream_options"]["include_usage"]
    req = ChatRequest.model_validate(body)
    assert req.output_limit == 9 and req.stream


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("tools", [{"type": "web_search"}], "tools[0].type"),
        ("tools", [{"type": "function"}], "tools[0].name"),
        ("tool_choice", {"type": "mcp"}, "tool_choice"),
        ("text", {"format": {"type": "yaml"}}, "text.format.type"),
        ("text", {"format": {"type": "json_schema", "name": "r"}}, "text.format.schema"),
        ("background", True, "background"),
        ("conversation", "conv_1", "conversation"),
    ],
)
def test_unsupported_options_name_the_field(field: str, value: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        wire.chat_body({"model": "m", field: value}, wire.normalize_input("x"), None)
    assert refused.value.param == param


# ---------------------------------------------------------------- the response object


def _answer(content: str | None, calls: list[ToolCallOut], finish: Any) -> ChatResponse:
    usage = Usage(input_tokens=5, output_tokens=3, cached_input_tokens=1, reasoning_tokens=1)
    return ChatResponse("x", "m", 1, [Choice(0, content, finish, calls)], usage)


def test_render_response_validates_as_the_sdk_response() -> None:
    resp = _answer("Let me see.", [ToolCallOut("call_1", "w", '{"c": "é"}')], "tool_calls")
    out = wire.render_response(resp, "resp_" + "a" * 48, 7, "alias", ECHO)
    parsed = Response.model_validate(out)
    assert parsed.output_text == "Let me see." and parsed.status == "completed"
    assert [item.type for item in parsed.output] == ["message", "function_call"]
    assert parsed.output[1].call_id == "call_1"  # type: ignore[union-attr]
    assert parsed.usage is not None and parsed.usage.input_tokens_details.cached_tokens == 1
    assert parsed.usage.total_tokens == 8 and parsed.model == "alias"


def test_a_truncated_answer_is_incomplete() -> None:
    out = wire.render_response(_answer("cut", [], "length"), "resp_1", 7, "m", ECHO)
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}


# ---------------------------------------------------------------- the stream


def _cuts(draw: st.DrawFn, text: str) -> list[str]:
    points = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, str]], list[ChatChunk]]:
    text = draw(TEXT)
    calls = [
        (f"call_{i}", draw(NAMES), orjson.dumps({"q": draw(TEXT)}).decode())
        for i in range(draw(st.integers(0, 3)))
    ]
    chunks = [ChatChunk("c", "m", 1, [ChoiceDelta(role="assistant")])]
    chunks += [ChatChunk("c", "m", 1, [ChoiceDelta(content=piece)]) for piece in _cuts(draw, text)]
    for i, (call_id, name, args) in enumerate(calls):
        first = True
        for piece in _cuts(draw, args) or [""]:
            delta = ToolCallDelta(i, call_id if first else None, name if first else None, piece)
            chunks.append(ChatChunk("c", "m", 1, [ChoiceDelta(tool_calls=[delta])]))
            first = False
    finish = "tool_calls" if calls else "stop"
    chunks.append(ChatChunk("c", "m", 1, [ChoiceDelta(finish_reason=finish)]))
    chunks.append(ChatChunk("c", "m", 1, [], Usage(input_tokens=4, output_tokens=2)))
    return text, calls, chunks


def _decode(data: bytes, cuts: list[int]) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    events = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for a, b in itertools.pairwise(bounds):
        events += decoder.feed(data[a:b])
    events += decoder.close()
    out = []
    for event in events:
        body = orjson.loads(event.data)
        assert event.event == body["type"]  # the SSE event name is the event's type
        EVENTS.validate_python(body)  # the SDK's own models accept every event
        out.append(body)
    return out


def _check_sequence(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Events in a valid order; answers each output index's reassembled item."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    items: dict[int, dict[str, Any]] = {}
    done: set[int] = set()
    for e in events[2:-1]:
        kind, index = e["type"], e.get("output_index")
        if kind == "response.output_item.added":
            assert index == len(items)  # indices count up from 0 in the order items open
            items[index] = {"item": e["item"], "text": "", "parts": 0}
            continue
        assert index in items and index not in done, kind
        item = items[index]
        assert (e["item_id"] if "item_id" in e else e["item"]["id"]) == item["item"]["id"]
        if "content_index" in e:
            assert e["content_index"] == 0 and item["item"]["type"] == "message"
        if kind == "response.content_part.added":
            item["parts"] += 1
        elif kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            assert item["parts"] == 1 or item["item"]["type"] == "function_call"
            item["text"] += e["delta"]
        elif kind == "response.output_text.done":
            assert e["text"] == item["text"]
        elif kind == "response.function_call_arguments.done":
            assert e["arguments"] == item["text"]
        elif kind == "response.output_item.done":
            done.add(index)
    assert done == set(items)
    return items


@given(answers(), st.lists(st.integers(0, 10**6), max_size=8))
@SETTINGS
def test_chunks_reencoded_as_events_form_a_valid_sequence_with_the_same_content(
    answer: tuple[str, list[tuple[str, str, str]], list[ChatChunk]], cuts: list[int]
) -> None:
    text, calls, chunks = answer
    encoder = ResponsesStream("resp_" + "b" * 48, "alias", ECHO, created_at=5)
    data = b"".join(encoder.feed(c) for c in chunks) + encoder.close()
    events = _decode(data, cuts)
    items = _check_sequence(events)
    final = events[-1]
    assert final["type"] == "response.completed"
    response = Response.model_validate(final["response"])
    assert response.output_text == text
    got_calls = [
        (i["item"]["call_id"], i["item"]["name"], i["text"])
        for i in items.values()
        if i["item"]["type"] == "function_call"
    ]
    assert got_calls == calls
    messages = [i["text"] for i in items.values() if i["item"]["type"] == "message"]
    assert messages == ([text] if text else [])
    finals = [
        (o.call_id, o.name, o.arguments) for o in response.output if o.type == "function_call"
    ]
    assert finals == calls
    assert response.usage is not None and response.usage.total_tokens == 6
    assert final["response"] == encoder.final()


def test_an_empty_stream_still_opens_and_completes() -> None:
    encoder = ResponsesStream("resp_1", "m", ECHO)
    events = _decode(encoder.close(), [])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]


def test_a_broken_stream_ends_with_error_and_failed() -> None:
    encoder = ResponsesStream("resp_1", "m", ECHO)
    data = encoder.feed(ChatChunk("c", "m", 1, [ChoiceDelta(content="half")]))
    data += encoder.error(UpstreamUnavailableError("the upstream went away"))
    events = _decode(data, [])
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["output"][0]["status"] == "incomplete"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_a_truncated_stream_ends_incomplete() -> None:
    encoder = ResponsesStream("resp_1", "m", ECHO)
    data = encoder.feed(ChatChunk("c", "m", 1, [ChoiceDelta(content="cu", finish_reason="length")]))
    events = _decode(data + encoder.close(), [])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
