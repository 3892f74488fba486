"""The Gemini stream translator, without a server."""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.types import ChatChunk
from modelyard.wire import gemini as g
from modelyard.wire.sse import SSEDecoder

# -------------------------------------------------------------- streams


def _deltas(chunks: list[ChatChunk]) -> list[tuple[Any, ...]]:
    out = []
    for c in chunks:
        if not c.choices:
            out.append(("usage", c.usage))
        for d in c.choices:
            out.append(
                (
                    d.index,
                    d.role,
                    d.content,
                    d.reasoning,
                    [(t.index, t.name, t.arguments) for t in d.tool_calls],
                    d.finish_reason,
                )
            )
    return out


def test_stream_translation_text_then_tool_calls_then_finish_and_usage() -> None:
    t = g.GeminiStreamTranslator("gemini-2.5-flash", created=5)
    head = {"responseId": "r-9", "modelVersion": "gemini-2.5-flash-002"}
    chunks = t.feed(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "hmm", "thought": True}, {"text": "Let me "}],
                    },
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
            **head,
        }
    )
    chunks += t.feed(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "check."},
                            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                        ],
                    }
                }
            ],
            **head,
        }
    )
    chunks += t.feed(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"functionCall": {"name": "get_time", "args": {}}}, {"text": ""}],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 3,
                "candidatesTokenCount": 8,
                "thoughtsTokenCount": 2,
                "totalTokenCount": 13,
            },
            **head,
        }
    )
    chunks += t.finish()
    assert {c.id for c in chunks} == {"r-9"}
    assert {c.model for c in chunks} == {"gemini-2.5-flash-002"}
    deltas = _deltas(chunks)
    assert deltas[:-1] == [
        (0, "assistant", "", None, [], None),
        (0, None, None, "hmm", [], None),
        (0, None, "Let me ", None, [], None),
        (0, None, "check.", None, [], None),
        (0, None, None, None, [(0, "get_weather", '{"city":"Oslo"}')], None),
        (0, None, None, None, [(1, "get_time", "{}")], None),
        (0, None, None, None, [], "tool_calls"),
    ]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (3, 10, 2)
    tool_ids = [d.tool_calls[0].id for c in chunks for d in c.choices if d.tool_calls]
    assert all(i and i.startswith("call_") for i in tool_ids) and len(set(tool_ids)) == 2


def test_stream_with_two_candidates_keeps_them_apart() -> None:
    t = g.GeminiStreamTranslator("m")
    chunks = t.feed(
        {
            "candidates": [
                {"content": {"parts": [{"text": "a"}]}, "index": 0},
                {"content": {"parts": [{"text": "b"}]}, "index": 1},
            ]
        }
    )
    chunks += t.feed(
        {
            "candidates": [
                {"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0},
                {"content": {"parts": [{"text": "c"}]}, "finishReason": "STOP", "index": 1},
            ]
        }
    )
    chunks += t.finish()
    text = {
        i: "".join(d.content or "" for c in chunks for d in c.choices if d.index == i)
        for i in (0, 1)
    }
    assert text == {0: "a", 1: "bc"}
    finishes = [(d.index, d.finish_reason) for c in chunks for d in c.choices if d.finish_reason]
    assert finishes == [(0, "length"), (1, "stop")]
    roles = [d.index for c in chunks for d in c.choices if d.role]
    assert roles == [0, 1]


def test_finish_closes_a_candidate_the_stream_left_open() -> None:
    t = g.GeminiStreamTranslator("m")
    t.feed({"candidates": [{"content": {"parts": [{"text": "cut"}]}}]})
    end = t.finish()
    assert end[0].choices[0].finish_reason == "stop"
    assert end[-1].usage is not None and end[-1].usage.input_tokens == 0


def test_multibyte_text_split_across_sse_chunks_arrives_whole() -> None:
    text = "Grüße, 世界 ☃ 🚀!"
    payload = b"".join(
        b"data: " + orjson.dumps(e) + b"\r\n\r\n"
        for e in (
            {"candidates": [{"content": {"parts": [{"text": text[:8]}]}, "index": 0}]},
            {
                "candidates": [
                    {"content": {"parts": [{"text": text[8:]}]}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2},
            },
        )
    )
    cut = payload.index("🚀".encode()) + 2  # inside the 4-byte character
    for pieces in (
        [payload[:cut], payload[cut:]],
        [payload[i : i + 3] for i in range(0, len(payload), 3)],
    ):
        decoder, t = SSEDecoder(), g.GeminiStreamTranslator("m")
        chunks: list[ChatChunk] = []
        for piece in pieces:
            for event in decoder.feed(piece):
                chunks += t.feed(orjson.loads(event.data))
        chunks += t.finish()
        assert "".join(d.content or "" for c in chunks for d in c.choices) == text
        assert "\ufffd" not in "".join(d.content or "" for c in chunks for d in c.choices)
