from __future__ import annotations

import base64
import struct

import pytest

from modelyard.types import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChoiceDelta,
    EmbeddingResponse,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)
from modelyard.wire import openai as wire


def test_usage_round_trip_keeps_cached_and_reasoning_tokens() -> None:
    u = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=4, reasoning_tokens=2)
    d = wire.usage_to_dict(u)
    assert d["total_tokens"] == 15
    assert d["prompt_tokens_details"] == {"cached_tokens": 4}
    assert wire.usage_from_dict(d) == u


def test_deepseek_cache_hit_field_counts_as_cached() -> None:
    u = wire.usage_from_dict(
        {"prompt_tokens": 9, "completion_tokens": 1, "prompt_cache_hit_tokens": 6}
    )
    assert u.cached_input_tokens == 6


def test_chat_response_round_trip_with_tool_calls() -> None:
    r = ChatResponse(
        id="x",
        model="m",
        created=1,
        usage=Usage(1, 2),
        choices=[
            Choice(
                index=0,
                content=None,
                finish_reason="tool_calls",
                tool_calls=[ToolCallOut(id="c1", name="f", arguments='{"a":1}')],
            )
        ],
    )
    d = wire.chat_response_to_dict(r)
    assert d["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": '{"a":1}',
    }
    assert wire.chat_response_from_dict(d) == r


def test_chunk_round_trip() -> None:
    c = ChatChunk(
        id="x",
        model="m",
        created=1,
        choices=[
            ChoiceDelta(
                index=0,
                role="assistant",
                content="hé",
                tool_calls=[ToolCallDelta(index=0, id="c", name="f", arguments="{")],
            )
        ],
    )
    d = wire.chat_chunk_to_dict(c)
    assert d["object"] == "chat.completion.chunk" and "usage" not in d
    assert wire.chat_chunk_from_dict(d) == c


def test_passthrough_renames_output_limit_and_forces_stream_usage() -> None:
    body = {"model": "alias", "messages": [], "max_tokens": 9, "stream": True}
    out = wire.passthrough_body(
        body, model="real", max_tokens_field="max_completion_tokens", stream_usage=True
    )
    assert out["model"] == "real"
    assert out["max_completion_tokens"] == 9 and "max_tokens" not in out
    assert out["stream_options"] == {"include_usage": True}
    assert body["model"] == "alias"  # the client's body is not mutated


def test_passthrough_leaves_usage_alone_for_hosts_without_it() -> None:
    out = wire.passthrough_body(
        {"model": "a", "stream": True}, model="b", max_tokens_field="max_tokens", stream_usage=False
    )
    assert "stream_options" not in out


def test_embeddings_base64_encodes_little_endian_float32() -> None:
    r = EmbeddingResponse(model="e", vectors=[[0.5, -1.0]], usage=Usage(3))
    d = wire.embedding_response_to_dict(r, "base64")
    raw = base64.b64decode(d["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)
    assert d["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def _stream(include_usage_chunk: bool = True) -> bytes:
    events = [
        b'data: {"choices":[{"index":0,"delta":{"content":"h\xc3\xa9"}}],"usage":null}\n\n',
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
    ]
    if include_usage_chunk:
        events.append(b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n')
    return b"".join(events) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [1, 3, 17, 10_000])
@pytest.mark.parametrize("keep", [True, False])
def test_stream_relay_forwards_whole_events_and_finds_usage(size: int, keep: bool) -> None:
    payload = _stream()
    relay = wire.StreamRelay(keep_usage=keep)
    out = b""
    for i in range(0, len(payload), size):
        piece = relay.feed(payload[i : i + size])
        assert piece == b"" or piece.endswith(b"\n\n")  # never half an event
        out += piece
    out += relay.close()
    assert relay.usage == Usage(input_tokens=4, output_tokens=2)
    expected = payload if keep else _stream(include_usage_chunk=False)
    assert out == expected


def test_stream_relay_normalises_crlf_split_between_chunks() -> None:
    payload = _stream().replace(b"\n", b"\r\n")
    relay = wire.StreamRelay(keep_usage=True)
    out = b"".join(relay.feed(payload[i : i + 2]) for i in range(0, len(payload), 2))
    assert out + relay.close() == _stream()


def test_stream_relay_flushes_an_unterminated_last_event() -> None:
    relay = wire.StreamRelay(keep_usage=True)
    assert relay.feed(b"data: [DONE]") == b""
    assert relay.close() == b"data: [DONE]\n\n"
