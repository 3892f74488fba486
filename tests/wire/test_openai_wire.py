from __future__ import annotations

import base64
import struct

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
