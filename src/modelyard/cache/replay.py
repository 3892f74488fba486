"""What may be stored in the cache, and what a hit sends. Pure: bytes in, answers out.

Only a whole, successful answer is stored:

- a JSON answer: status 200, a JSON object with no ``error`` (some upstreams
  say 200 and put an error in the body), and for the Responses API status
  ``completed``;
- a stream: status 200, every event whole (nothing after the last blank
  line), no error event anywhere, and the format's last event last:
  ``data: [DONE]`` for OpenAI chat and completions, ``event: message_stop``
  for Anthropic Messages, ``event: response.completed`` for the Responses API.
  An ``error`` event, ``response.failed``, ``response.incomplete``, a
  ``data: {"error": ...}`` chunk or a cut-off stream is not stored.

A hit sends the stored bytes unchanged (``replay_pieces`` only cuts them at
event boundaries so that a long stream goes out in writes of bounded size):
the client reads the same events, in its own wire format, that the first
client read.

``ends_whole`` is the "last event is the final one" test that
``api.idempotency._ended`` makes on a stream's tail; that module can use it
in place of its own ``_STREAM_ENDS``. What does not live here: capturing the
bytes as they are written (``api.idempotency.tap_streams``), HTTP headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from modelyard.wire.sse import SSEDecoder, SSEEvent

#: the final event of a whole stream, per endpoint (``Call.endpoint``)
STREAM_ENDS: Mapping[str, bytes] = {
    "chat": b"data: [DONE]",
    "completions": b"data: [DONE]",
    "messages": b"event: message_stop",
    "responses": b"event: response.completed",
}
#: events that end a stream badly, in any format
ERROR_EVENTS = frozenset({"error", "response.failed", "response.incomplete"})
REPLAY_PIECE_BYTES = 64 * 1024


def answer_cacheable(endpoint: str, status: int, body: bytes, *, stream: bool) -> bool:
    """Whether an answer may be stored: a 200, whole, with no error in it."""
    if status != 200 or endpoint not in STREAM_ENDS:
        return False
    if stream:
        return stream_complete(endpoint, body)
    return json_answer_complete(endpoint, body)


def json_answer_complete(endpoint: str, body: bytes) -> bool:
    """A JSON answer that is an object without an error (and, for Responses, completed)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(answer, dict) or answer.get("error") is not None:
        return False
    if answer.get("type") == "error":  # Anthropic's error body
        return False
    return endpoint != "responses" or answer.get("status") == "completed"


def stream_complete(endpoint: str, body: bytes) -> bool:
    """A stream that ended with its format's final event and carries no error event."""
    end = STREAM_ENDS.get(endpoint)
    if end is None:
        return False
    decoder = SSEDecoder(max_event_bytes=len(body) + 1)
    try:
        events = decoder.feed(body)
        if decoder.close():  # bytes after the last blank line: the stream was cut
            return False
    except ValueError:
        return False
    if len(events) < 2:  # the final event alone is no answer
        return False
    if not _is_end(events[-1], end):
        return False
    return not any(_is_error(e) or _is_end(e, end) for e in events[:-1])


def _name(event: SSEEvent) -> str | None:
    """The event's type: its ``event:`` line, else the ``type`` in its JSON (as some relays
    send Responses and Anthropic events without the line)."""
    if event.event is not None:
        return event.event
    if '"type"' not in event.data:
        return None
    data = _json(event.data)
    kind = data.get("type") if data is not None else None
    return kind if isinstance(kind, str) else None


def _is_end(event: SSEEvent, end: bytes) -> bool:
    if end == b"data: [DONE]":
        return event.event is None and event.data == "[DONE]"
    return _name(event) == end.removeprefix(b"event: ").decode()


def _is_error(event: SSEEvent) -> bool:
    if _name(event) in ERROR_EVENTS:
        return True
    if '"error"' not in event.data:  # the common case: no parse
        return False
    data = _json(event.data)
    return data is not None and data.get("error") is not None


def _json(text: str) -> dict[str, Any] | None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def ends_whole(body: bytes) -> bool:
    """Whether a stream's last event is a final one (of any of the formats); no parse.

    Looks back from the end only as far as the last event's start, so it costs
    the length of that event, not of the stream. It needs the whole last event:
    a Responses API ``response.completed`` carries the whole response, so a
    fixed-size tail (``api.idempotency._ended`` takes 512 bytes) can miss its
    ``event:`` line.
    """
    body = body.rstrip()
    cut = body.rfind(b"\n\n")
    last = body[cut + 2 :] if cut >= 0 else body
    return last.startswith(tuple(STREAM_ENDS.values()))


def replay_pieces(body: bytes, piece_bytes: int = REPLAY_PIECE_BYTES) -> Iterator[bytes]:
    """A stored stream as the writes that send it: the same bytes, cut after whole events.

    Each piece ends at an event boundary and is at most ``piece_bytes`` long
    unless one event is longer. Their concatenation is ``body``, byte for byte.
    """
    start = 0
    size = len(body)
    while size - start > piece_bytes:
        cut = body.rfind(b"\n\n", start, start + piece_bytes)
        if cut < 0:  # one event longer than a piece: send it whole
            cut = body.find(b"\n\n", start + piece_bytes)
            if cut < 0:
                break
        yield body[start : cut + 2]
        start = cut + 2
    if start < size:
        yield body[start:]
