"""The Messages relay: whole events, byte-exact but for the model name, and the usage they carry."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given
from hypothesis import strategies as st

from modelyard.types import Usage
from modelyard.wire.anthropic_relay import MessageStreamRelay, first_event


def _event(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-upstream-name",
        "content": [],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1},
    },
}
REST = [
    _event("ping", {"type": "ping"}),
    _event("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "thinking", "thinking": ""}}),
    _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "signature_delta", "signature": "c2ln"}}),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("message_delta", {"type": "message_delta",
                             "delta": {"stop_reason": "stop_sequence", "stop_sequence": "漢"},
                             "usage": {"output_tokens": 42}}),
    _event("message_stop", {"type": "message_stop"}),
]  # fmt: skip
STREAM = _event("message_start", START) + b"".join(REST)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_relays_the_same_events_and_usage(cuts: list[int]) -> None:
    relay = MessageStreamRelay("claude")
    bounds = [0, *sorted(cuts), len(STREAM)]
    out = b"".join(relay.feed(STREAM[a:b]) for a, b in itertools.pairwise(bounds))
    out += relay.close()
    renamed = {**START, "message": {**START["message"], "model": "claude"}}  # type: ignore[dict-item]
    assert out == _event("message_start", renamed) + b"".join(REST)
    assert relay.usage == Usage(
        input_tokens=14, output_tokens=42, cached_input_tokens=4, cache_write_tokens=0
    )
    assert first_event(out)["type"] == "message_start"


def test_an_error_first_is_seen_before_any_byte_is_sent() -> None:
    error = _event("error", {"type": "error", "error": {"type": "overloaded_error"}})
    assert first_event(b": comment\n\n" + error)["type"] == "error"
    assert MessageStreamRelay("m").usage is None
