"""A whole answer as a stream: the chunks, and what each client format makes of them."""

from __future__ import annotations

import json

from modelyard.types import ChatResponse, Choice, ToolCallOut, Usage
from modelyard.wire import openai as wire
from modelyard.wire.anthropic_events import MessageStreamEncoder
from modelyard.wire.chunks import response_chunks
from modelyard.wire.sse import SSEDecoder


def _answer() -> ChatResponse:
    calls = [ToolCallOut("call_1", "get_weather", '{"city": "Paris"}')]
    return ChatResponse(
        "chatcmpl-1",
        "m",
        1,
        [Choice(0, "Let me look.", "tool_calls", calls, reasoning="Weather needs a tool.")],
        Usage(input_tokens=12, output_tokens=9),
    )


def test_the_chunks_carry_every_part_once_in_stream_order() -> None:
    chunks = response_chunks(_answer())
    deltas = [c.choices[0] for c in chunks if c.choices]
    assert deltas[0].role == "assistant" and deltas[0].content == "Let me look."
    assert deltas[0].reasoning == "Weather needs a tool."
    assert [(t.id, t.name, t.arguments) for t in deltas[1].tool_calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}')
    ]
    assert deltas[-1].finish_reason == "tool_calls"
    assert [c.usage for c in chunks if c.usage is not None] == [Usage(12, 9)]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_openai_clients_reassemble_the_same_answer() -> None:
    dicts = [wire.chat_chunk_to_dict(c) for c in response_chunks(_answer())]
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in dicts if d["choices"])
    deltas = [d["choices"][0]["delta"] for d in dicts if d["choices"]]
    calls = [t for delta in deltas for t in delta.get("tool_calls") or []]
    assert text == "Let me look."
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert dicts[-1]["usage"]["completion_tokens"] == 9


def test_anthropic_clients_get_a_text_block_then_a_tool_use_block() -> None:
    encoder = MessageStreamEncoder("m")
    raw = b"".join(encoder.feed(c) for c in response_chunks(_answer())) + encoder.close()
    events = [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(raw)]
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    stop = next(d for n, d in events if n == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use" and stop["usage"]["output_tokens"] == 9
