"""The Anthropic Messages stream translator, without a server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelyard.types import ChatChunk, Usage
from modelyard.wire import anthropic as wire
from modelyard.wire.sse import SSEDecoder
from tests.fakes.harness import sse
from tests.wire.test_anthropic import message

# -------------------------------------------------------------------- streams


def events(*blocks: tuple[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, {"type": name, **data}) for name, data in blocks]


START = (
    "message_start",
    {
        "message": {
            **message([], "end_turn"),
            "stop_reason": None,
            "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
        }
    },
)


def feed_all(
    translator: wire.AnthropicStreamTranslator, evs: list[tuple[str, dict[str, Any]]]
) -> list[ChatChunk]:
    out: list[ChatChunk] = []
    for name, data in evs:
        out.extend(translator.feed(name, data))
    return out


def test_stream_of_text() -> None:
    translator = wire.AnthropicStreamTranslator(created=99)
    chunks = feed_all(
        translator,
        events(
            START,
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ("ping", {}),
            ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
            ("content_block_stop", {"index": 0}),
            (
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 7},
                },
            ),
            ("message_stop", {}),
        ),
    )
    assert all((c.id, c.model, c.created) == ("msg_1", "claude-sonnet-4-5", 99) for c in chunks)
    assert chunks[0].choices[0].role == "assistant"
    assert [c.choices[0].content for c in chunks[1:3]] == ["Hel", "lo"]
    assert chunks[3].choices[0].finish_reason == "stop"
    assert chunks[4].choices == []
    assert chunks[4].usage == Usage(input_tokens=30, output_tokens=7, cached_input_tokens=5)
    assert len(chunks) == 5
    assert translator.finished


def test_stream_of_tool_calls_maps_block_index_to_tool_call_index() -> None:
    translator = wire.AnthropicStreamTranslator()
    tool = {"type": "tool_use", "name": "get_weather", "input": {}}

    def fragment(index: int, text: str) -> tuple[str, dict[str, Any]]:
        return (
            "content_block_delta",
            {"index": index, "delta": {"type": "input_json_delta", "partial_json": text}},
        )

    chunks = feed_all(
        translator,
        events(
            START,
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Ok."}}),
            ("content_block_stop", {"index": 0}),
            ("content_block_start", {"index": 1, "content_block": {**tool, "id": "toolu_a"}}),
            fragment(1, ""),
            fragment(1, '{"ci'),
            fragment(1, 'ty": "Par'),
            fragment(1, 'is"}'),
            ("content_block_stop", {"index": 1}),
            ("content_block_start", {"index": 2, "content_block": {**tool, "id": "toolu_b"}}),
            fragment(2, '{"city":"Rome"}'),
            ("content_block_stop", {"index": 2}),
            (
                "message_delta",
                {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 40}},
            ),
            ("message_stop", {}),
        ),
    )
    deltas = [t for c in chunks for d in c.choices for t in d.tool_calls]
    assert [(d.index, d.id, d.name) for d in deltas if d.id] == [
        (0, "toolu_a", "get_weather"),
        (1, "toolu_b", "get_weather"),
    ]
    # id and name only on the first delta of each call; arguments only after
    assert all(d.id is None and d.name is None for d in deltas if d.arguments)
    args = {i: "".join(d.arguments for d in deltas if d.index == i) for i in (0, 1)}
    assert orjson.loads(args[0]) == {"city": "Paris"}
    assert orjson.loads(args[1]) == {"city": "Rome"}
    assert [d.arguments for d in deltas if d.index == 0] == ["", '{"ci', 'ty": "Par', 'is"}']
    finishes = [d.finish_reason for c in chunks for d in c.choices if d.finish_reason]
    assert finishes == ["tool_calls"]


def test_stream_of_thinking_becomes_reasoning() -> None:
    chunks = feed_all(
        wire.AnthropicStreamTranslator(),
        events(
            START,
            (
                "content_block_start",
                {"index": 0, "content_block": {"type": "thinking", "thinking": ""}},
            ),
            (
                "content_block_delta",
                {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}},
            ),
            (
                "content_block_delta",
                {"index": 0, "delta": {"type": "signature_delta", "signature": "abc"}},
            ),
        ),
    )
    assert [(c.choices[0].reasoning, c.choices[0].content) for c in chunks[1:]] == [("Hmm", None)]


def test_stream_in_json_mode_turns_the_forced_tool_into_text() -> None:
    block = {"type": "tool_use", "id": "t", "name": "json_response", "input": {}}
    chunks = feed_all(
        wire.AnthropicStreamTranslator(json_mode=True),
        events(
            START,
            ("content_block_start", {"index": 0, "content_block": block}),
            (
                "content_block_delta",
                {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"answer": '}},
            ),
            (
                "content_block_delta",
                {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '"yes"}'}},
            ),
            (
                "message_delta",
                {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
            ),
        ),
    )
    assert "".join(c.choices[0].content or "" for c in chunks) == '{"answer": "yes"}'
    assert all(not c.choices[0].tool_calls for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_message_delta_without_stop_reason_emits_nothing_but_updates_usage() -> None:
    translator = wire.AnthropicStreamTranslator()
    feed_all(translator, events(START))
    assert translator.feed("message_delta", {"delta": {}, "usage": {"output_tokens": 3}}) == []
    assert translator.usage.output_tokens == 3
    assert not translator.finished


@pytest.mark.parametrize(
    ("kind", "status"), [("overloaded_error", 529), ("api_error", 500), ("mystery", 500)]
)
def test_error_event_raises_with_the_documented_status(kind: str, status: int) -> None:
    translator = wire.AnthropicStreamTranslator()
    feed_all(translator, events(START))
    data = {"type": "error", "error": {"type": kind, "message": "Overloaded"}}
    with pytest.raises(wire.StreamError) as info:
        translator.feed("error", data)
    assert info.value.status == status
    assert orjson.loads(info.value.body) == data


def test_multibyte_text_split_across_sse_chunks_survives_decoding() -> None:
    text = "naïve café 🌍 ok"
    payload = b"".join(
        [
            sse({"type": "message_start", "message": START[1]["message"]}, "message_start"),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            ),
        ]
    )
    globe = payload.index("🌍".encode())
    cuts = [globe + 1, globe + 2, payload.index("ï".encode()) + 1, len(payload)]
    decoder = SSEDecoder()
    translator = wire.AnthropicStreamTranslator()
    chunks: list[ChatChunk] = []
    start = 0
    for cut in sorted(cuts):
        for event in decoder.feed(payload[start:cut]):
            chunks.extend(translator.feed(event.event or "", orjson.loads(event.data)))
        start = cut
    assert "".join(c.choices[0].content or "" for c in chunks) == text
