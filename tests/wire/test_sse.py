from __future__ import annotations

import pytest

from modelyard.wire.sse import SSEDecoder, encode


def _feed_all(payload: bytes, size: int) -> list[tuple[str | None, str]]:
    dec = SSEDecoder()
    out = []
    for i in range(0, len(payload), size):
        out += [(e.event, e.data) for e in dec.feed(payload[i : i + size])]
    out += [(e.event, e.data) for e in dec.close()]
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_events_survive_any_chunking(size: int) -> None:
    payload = (
        b'event: message_start\ndata: {"a": 1}\n\n'
        b": a comment\n\n"
        b"data: line one\ndata: line two\n\n"
        b"data:no-space\r\n\r\n"
        b"data: cr only\r\r" + encode("caf\u00e9 \u6f22\u5b57 \U0001f600")
    )
    assert _feed_all(payload, size) == [
        ("message_start", '{"a": 1}'),
        (None, "line one\nline two"),
        (None, "no-space"),
        (None, "cr only"),
        (None, "caf\u00e9 \u6f22\u5b57 \U0001f600"),
    ]


def test_multibyte_character_split_across_chunks_is_intact() -> None:
    payload = encode("\U0001f600")
    dec = SSEDecoder()
    events = dec.feed(payload[:8]) + dec.feed(payload[8:])
    assert [e.data for e in events] == ["\U0001f600"]


def test_raw_bytes_are_the_event_as_received() -> None:
    dec = SSEDecoder()
    payload = b"data: x\n\ndata: y\n\n"
    events = dec.feed(payload)
    assert b"".join(e.raw for e in events) == payload


def test_unterminated_final_event_is_dispatched_on_close() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: tail") == []
    assert [e.data for e in dec.close()] == ["tail"]


def test_oversized_event_is_refused() -> None:
    dec = SSEDecoder(max_event_bytes=100)
    with pytest.raises(ValueError, match="longer than"):
        dec.feed(b"data: " + b"x" * 200)
