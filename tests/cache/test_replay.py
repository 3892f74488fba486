"""What may be stored (a whole answer, no error) and what a hit sends (the same bytes).

The streams are written by the gateway's own encoders for each wire format,
so the checks are made against the bytes clients really get.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from modelyard.api.generation import ChunkEncoder, OpenAIEncoder
from modelyard.cache.replay import (
    STREAM_ENDS,
    answer_cacheable,
    ends_whole,
    json_answer_complete,
    replay_pieces,
    stream_complete,
)
from modelyard.errors import UpstreamError
from modelyard.types import ChatChunk, ChoiceDelta, ToolCallDelta, Usage
from modelyard.wire.anthropic_events import MessageStreamEncoder
from modelyard.wire.openai import chat_chunk_to_dict
from modelyard.wire.responses_stream import ResponsesStream

ENCODERS: dict[str, Callable[[], ChunkEncoder]] = {
    "chat": lambda: OpenAIEncoder(chat_chunk_to_dict, keep_usage=True),
    "messages": lambda: MessageStreamEncoder("claude-x", "msg_01"),
    "responses": lambda: ResponsesStream("resp_" + "1" * 48, "gpt-x", {}, 1_700_000_000),
}


def chunks() -> list[ChatChunk]:
    def chunk(delta: ChoiceDelta, usage: Usage | None = None) -> ChatChunk:
        return ChatChunk("c1", "m", 1_700_000_000, [delta] if delta else [], usage)

    return [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content="An error\n\nis not ")),
        chunk(ChoiceDelta(content='what "error" means here: data: [DONE]')),
        chunk(ChoiceDelta(tool_calls=[ToolCallDelta(0, "call_1", "lookup", '{"q":')])),
        chunk(ChoiceDelta(tool_calls=[ToolCallDelta(0, arguments='"error"}')])),
        chunk(ChoiceDelta(finish_reason="tool_calls")),
        ChatChunk("c1", "m", 1_700_000_000, [], Usage(10, 5)),
    ]


def whole(endpoint: str) -> bytes:
    encoder = ENCODERS[endpoint]()
    return b"".join(encoder.feed(c) for c in chunks()) + encoder.close()


def broken(endpoint: str, after: int) -> bytes:
    """A stream that broke after ``after`` chunks, ended the way the gateway ends it."""
    encoder = ENCODERS[endpoint]()
    out = b"".join(encoder.feed(c) for c in chunks()[:after])
    return out + encoder.error(UpstreamError("the upstream went away"))


FORMATS = list(ENCODERS)


# ---------------------------------------------------------------- whole streams


@pytest.mark.parametrize("endpoint", FORMATS)
def test_a_whole_stream_may_be_stored(endpoint: str) -> None:
    body = whole(endpoint)
    assert body.rstrip().endswith(b"[DONE]") or STREAM_ENDS[endpoint] in body
    assert stream_complete(endpoint, body)
    assert answer_cacheable(endpoint, 200, body, stream=True)
    assert ends_whole(body)
    if endpoint == "responses":  # the final event carries the whole response
        assert len(body) - body.rfind(b"event: response.completed") > 512


@pytest.mark.parametrize("endpoint", FORMATS)
def test_a_stream_cut_anywhere_may_not_be_stored(endpoint: str) -> None:
    body = whole(endpoint)
    for cut in range(len(body) - 1):
        assert not stream_complete(endpoint, body[:cut]), body[:cut][-80:]
    assert not stream_complete(endpoint, body[:-1])


@pytest.mark.parametrize("endpoint", FORMATS)
@pytest.mark.parametrize("after", [0, 2, 5, 7])
def test_a_stream_that_broke_may_not_be_stored(endpoint: str, after: int) -> None:
    assert not stream_complete(endpoint, broken(endpoint, after))
    assert not ends_whole(broken(endpoint, after))


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("chat", b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'),
        ("messages", b'event: error\ndata: {"type": "error", "error": {"type": "x"}}\n\n'),
        ("messages", b'data: {"type": "error", "error": {"type": "overloaded_error"}}\n\n'),
        ("responses", b'event: error\ndata: {"type": "error", "code": "server_error"}\n\n'),
        ("responses", b'event: response.failed\ndata: {"type": "response.failed"}\n\n'),
    ],
)
def test_an_error_event_anywhere_forbids_storing(endpoint: str, error: bytes) -> None:
    body = whole(endpoint)
    events = body.split(b"\n\n")
    for at in (0, 1, len(events) - 2):  # first, second, just before the final event
        spliced = b"\n\n".join(events[:at]) + (b"\n\n" if at else b"") + error
        spliced += b"\n\n".join(events[at:])
        assert stream_complete(endpoint, spliced.replace(error, b"")) is True
        assert not stream_complete(endpoint, spliced), at


def test_the_responses_stream_must_complete_not_stop_incomplete() -> None:
    encoder = ResponsesStream("resp_" + "2" * 48, "gpt-x", {}, 1)
    body = encoder.feed(ChatChunk("c", "m", 1, [ChoiceDelta(content="Par")]))
    body += encoder.feed(ChatChunk("c", "m", 1, [ChoiceDelta(finish_reason="length")]))
    body += encoder.close()
    assert b"event: response.incomplete" in body
    assert not stream_complete("responses", body)


@pytest.mark.parametrize("endpoint", FORMATS)
def test_a_stream_is_checked_against_its_own_format(endpoint: str) -> None:
    body = whole(endpoint)
    others = [e for e in FORMATS if e != endpoint and STREAM_ENDS[e] != STREAM_ENDS[endpoint]]
    assert others and all(not stream_complete(other, body) for other in others)
    assert not stream_complete("embeddings", body)


def test_anything_after_the_final_event_or_a_second_final_event_forbids_storing() -> None:
    body = whole("chat")
    assert not stream_complete("chat", body + b'data: {"choices": []}\n\n')
    assert not stream_complete("chat", body + b"data: [DONE]\n\n")
    assert not stream_complete("chat", body + b'data: {"choi')  # an event begun, never ended
    assert not stream_complete("messages", whole("messages") + b"event: ping\n")
    assert stream_complete("chat", body + b"\n")  # a stray line end is not an event
    assert not stream_complete("chat", b"data: [DONE]\n\n")  # the end alone is no answer
    assert not stream_complete("chat", b"")


def test_line_ends_of_any_kind_are_read() -> None:
    body = whole("messages")
    assert stream_complete("messages", body.replace(b"\n", b"\r\n"))


def test_streams_without_event_lines_are_read_by_their_type() -> None:
    # some relays send the Responses and Anthropic events as data only
    body = b"".join(
        b"data: " + line.removeprefix(b"data: ") + b"\n\n"
        for line in whole("responses").split(b"\n")
        if line.startswith(b"data: ")
    )
    assert b"event:" not in body
    assert stream_complete("responses", body)


# ---------------------------------------------------------------- JSON answers


@pytest.mark.parametrize(
    ("endpoint", "status", "body", "expected"),
    [
        ("chat", 200, b'{"id": "x", "choices": []}', True),
        ("chat", 200, b'{"id": "x", "error": null}', True),
        ("chat", 201, b'{"id": "x"}', False),
        ("chat", 500, b'{"id": "x"}', False),
        ("chat", 429, b'{"error": {"message": "slow down"}}', False),
        ("chat", 200, b'{"error": {"message": "an error said with 200"}}', False),
        ("chat", 200, b'{"id": "x", "choi', False),
        ("chat", 200, b"[1, 2]", False),
        ("chat", 200, b"", False),
        ("messages", 200, b'{"type": "message", "content": []}', True),
        ("messages", 200, b'{"type": "error", "error": {"type": "overloaded_error"}}', False),
        ("responses", 200, b'{"status": "completed", "error": null}', True),
        ("responses", 200, b'{"status": "incomplete", "error": null}', False),
        ("responses", 200, b'{"status": "failed", "error": {"code": "x"}}', False),
        ("embeddings", 200, b'{"data": []}', False),
    ],
)
def test_only_a_200_json_answer_without_an_error_may_be_stored(
    endpoint: str, status: int, body: bytes, expected: bool
) -> None:
    assert answer_cacheable(endpoint, status, body, stream=False) is expected


def test_a_stream_is_not_read_as_json_nor_json_as_a_stream() -> None:
    assert not answer_cacheable("chat", 200, whole("chat"), stream=False)
    assert not answer_cacheable("chat", 200, b'{"id": "x"}', stream=True)
    assert not answer_cacheable("chat", 500, whole("chat"), stream=True)
    assert json_answer_complete("chat", orjson.dumps({"id": "x"}))


# ---------------------------------------------------------------- replay


@pytest.mark.parametrize("endpoint", FORMATS)
@pytest.mark.parametrize("piece", [1, 100, 1000, 64 * 1024])
def test_a_replay_sends_the_same_bytes_cut_after_whole_events(endpoint: str, piece: int) -> None:
    body = whole(endpoint) * 3
    pieces = list(replay_pieces(body, piece))
    assert b"".join(pieces) == body
    assert all(p.endswith(b"\n\n") for p in pieces)
    longest_event = max(len(e) + 2 for e in body.split(b"\n\n") if e)
    assert all(len(p) <= max(piece, longest_event) for p in pieces)
    if piece >= len(body):
        assert pieces == [body]


def test_a_replay_of_bytes_that_do_not_end_an_event_still_sends_them_all() -> None:
    body = b"data: 1\n\ndata: 2\n\ndata: unterminated"
    assert b"".join(replay_pieces(body, 4)) == body
    assert list(replay_pieces(b"", 4)) == []


def test_ends_whole_reads_only_the_last_event() -> None:
    assert ends_whole(b'data: {"x": 1}\n\ndata: [DONE]\n\n')
    assert ends_whole(b"event: message_stop\ndata: {}\n\n")
    assert ends_whole(b"event: response.completed\ndata: {}\n\n")
    assert not ends_whole(b"data: [DONE]\n\ndata: {}\n\n")
    assert not ends_whole(b"event: response.incomplete\ndata: {}\n\n")
    assert not ends_whole(b"")
