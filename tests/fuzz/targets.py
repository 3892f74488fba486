"""Fuzz targets: one function per parser or translator, bytes in, nothing out.

Each target takes the bytes a fuzzer made and raises only if the code under
test misbehaves. The errors a translator documents are part of its contract
and are swallowed here:

* client input (``chat_request``, ``anthropic_inbound``, ``responses_inbound``):
  ``InvalidRequestError``, which the gateway answers as a 400 in the client's
  wire format. Anything else would be a 500.
* upstream answers (``openai_upstream``, ``anthropic_upstream``,
  ``gemini_upstream``): ``GatewayError`` (``UpstreamBadResponseError``, an
  upstream's error event) and ``wire.anthropic.StreamError``.
* ``sse``: ``ValueError`` for an event longer than the decoder's bound.

What a translator returns must also serialise (``orjson.dumps``), as the
gateway sends it on. The same targets run under atheris
(``python -m tests.fuzz.atheris_main TARGET``, coverage-guided, needs the
``fuzz`` extra) and under hypothesis (``tests/fuzz/test_targets.py``, in CI),
and every file of ``tests/fuzz/corpus/TARGET/`` is replayed through them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from modelyard.api.body import check_depth, check_generation_limits, parse
from modelyard.api.responses_api import ResponsesRequest
from modelyard.errors import GatewayError, InvalidRequestError
from modelyard.settings import Limits
from modelyard.types import ChatRequest
from modelyard.wire import anthropic, anthropic_inbound, gemini, openai, responses
from modelyard.wire.anthropic_events import MessageStreamEncoder
from modelyard.wire.anthropic_relay import MessageStreamRelay
from modelyard.wire.chunks import response_chunks
from modelyard.wire.responses_stream import ResponsesStream
from modelyard.wire.sse import SSEDecoder, whole_events

LIMITS = Limits()
UPSTREAM_ERRORS = (GatewayError, anthropic.StreamError)


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _pieces(data: bytes) -> list[bytes]:
    """``data`` cut where its first byte says: the same bytes, split at varying places."""
    if not data:
        return [b""]
    step = data[0] % 7 + 1
    body = data[1:]
    return [body[i : i + step] for i in range(0, len(body), step)] or [b""]


# ------------------------------------------------------------------ client input


def _render_everywhere(req: ChatRequest) -> None:
    """A valid request, written for every upstream wire format."""
    orjson.dumps(openai.chat_request_to_dict(req))
    orjson.dumps(gemini.chat_request_to_gemini(req))
    orjson.dumps(anthropic.messages_request(req, model="m", default_max_tokens=1024))


def chat_request(data: bytes) -> None:
    """The request validator: limits, then ``ChatRequest``, then every outbound translator."""
    body = _json(data)
    if not isinstance(body, dict):
        return
    try:
        check_depth(data, body, LIMITS.max_json_depth)
        check_generation_limits(body, LIMITS, responses=False)
        req = parse(ChatRequest, body)
        _render_everywhere(req)
    except InvalidRequestError:
        pass


def anthropic_inbound_target(data: bytes) -> None:
    """A Messages request (``/v1/messages`` and ``count_tokens``) into a ``ChatRequest``."""
    body = _json(data)
    if not isinstance(body, dict):
        return
    for counting in (False, True):
        try:
            translated = anthropic_inbound.chat_from_messages(body, counting=counting)
            chat = translated.chat | ({"max_tokens": 1} if counting else {})
            req = parse(ChatRequest, chat)
            if translated.native:
                parse(ChatRequest, chat | translated.native)
            anthropic_inbound.count_tokens(translated)
            _render_everywhere(req)
        except InvalidRequestError:
            pass


def responses_inbound(data: bytes) -> None:
    """A Responses request into the internal chat request, and what its answer echoes."""
    body = _json(data)
    if not isinstance(body, dict):
        return
    try:
        r = parse(ResponsesRequest, body)
        items = responses.normalize_input(r.input)
        req = parse(ChatRequest, responses.chat_body(body, items, r.instructions))
        orjson.dumps(responses.echo_of(body, None))
        _render_everywhere(req)
    except InvalidRequestError:
        pass


# --------------------------------------------------------------- upstream answers


def _render_for_clients(resp: Any) -> None:
    """An internal answer written in every client wire format, whole and streamed."""
    orjson.dumps(openai.chat_response_to_dict(resp))
    orjson.dumps(anthropic_inbound.message_from_chat(resp, model="m"))
    echo = responses.echo_of({"model": "m"}, None)
    orjson.dumps(responses.render_response(resp, "resp_0", 0, "m", echo))
    events = MessageStreamEncoder("m")
    stream = ResponsesStream("resp_0", "m", echo, 0)
    for chunk in response_chunks(resp):
        orjson.dumps(openai.chat_chunk_to_dict(chunk))
        events.feed(chunk)
        stream.feed(chunk)
    events.close()
    stream.close()


def _objects(doc: Any) -> list[dict[str, Any]]:
    """A corpus document as events: a list of objects, or one object."""
    items = doc if isinstance(doc, list) else [doc]
    return [item for item in items if isinstance(item, dict)]


def openai_upstream(data: bytes) -> None:
    """An OpenAI-compatible answer, whole or as stream chunks, and the byte relay."""
    relay = openai.StreamRelay(keep_usage=bool(data[:1] == b"{"))
    for piece in _pieces(data):
        relay.feed(piece)
    relay.close()
    openai.valid_events(whole_events(data)[0])
    for d in _objects(_json(data)):
        try:
            _render_for_clients(openai.chat_response_from_dict(d))
            chunk = openai.chat_chunk_from_dict(d)
            orjson.dumps(openai.chat_chunk_to_dict(chunk))
            openai.usage_from_dict(d.get("usage"))
        except UPSTREAM_ERRORS:
            pass


def anthropic_upstream(data: bytes) -> None:
    """An Anthropic Message, or a list of its stream events, and the byte relay."""
    relay = MessageStreamRelay("m")
    for piece in _pieces(data):
        relay.feed(piece)
    relay.close()
    events = _objects(_json(data))
    try:
        for d in events:
            _render_for_clients(anthropic.chat_response_from_message(d, created=0))
        translator = anthropic.AnthropicStreamTranslator(json_mode=len(events) % 2 == 1)
        for d in events:
            for chunk in translator.feed(str(d.get("type", "")), d):
                orjson.dumps(openai.chat_chunk_to_dict(chunk))
        translator.usage  # noqa: B018 - computing it is the test
    except UPSTREAM_ERRORS:
        pass


def gemini_upstream(data: bytes) -> None:
    """A Gemini ``GenerateContentResponse``, or a list of stream events; embeddings too."""
    events = _objects(_json(data))
    try:
        for d in events:
            _render_for_clients(gemini.chat_response_from_gemini(d, model="m", created=0))
            gemini.embed_response_from_gemini(d, model="m")
        translator = gemini.GeminiStreamTranslator("m", created=0)
        for d in events:
            for chunk in translator.feed(d):
                orjson.dumps(openai.chat_chunk_to_dict(chunk))
        for chunk in translator.finish():
            orjson.dumps(openai.chat_chunk_to_dict(chunk))
    except UPSTREAM_ERRORS:
        pass


# --------------------------------------------------------------------------- SSE


def sse(data: bytes) -> None:
    """The incremental SSE decoder, fed the bytes in pieces: same events as in one piece."""
    whole = SSEDecoder(max_event_bytes=1 << 20)
    try:
        expected = whole.feed(data[1:]) + whole.close()
    except ValueError:
        return
    split = SSEDecoder(max_event_bytes=1 << 20)
    got = []
    for piece in _pieces(data):
        got += split.feed(piece)
    got += split.close()
    assert [(e.event, e.data) for e in got] == [(e.event, e.data) for e in expected]
    ready, _ = whole_events(data)
    assert not ready or ready.endswith(b"\n\n")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sse": sse,
    "chat_request": chat_request,
    "anthropic_inbound": anthropic_inbound_target,
    "responses_inbound": responses_inbound,
    "openai_upstream": openai_upstream,
    "anthropic_upstream": anthropic_upstream,
    "gemini_upstream": gemini_upstream,
}
