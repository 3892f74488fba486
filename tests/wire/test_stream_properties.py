"""Property tests: streamed and whole answers of each upstream come back exactly.

A generated answer (text with multi-byte UTF-8 such as "é", "漢", emoji;
several parallel tool calls with JSON arguments; thinking; a thought
signature) is encoded as each upstream's SSE byte stream, cut at arbitrary
byte offsets (inside UTF-8 sequences and JSON arguments too), and replayed
to each provider's ``chat_stream`` through a transport that hands over those
pieces, so the provider's own path runs (``SSEDecoder``, then the format's
chunk translator); the OpenAI byte relay gets the same pieces. What an OpenAI
client reassembles from the gateway's chunks (text, and each call's id, name
and arguments) must equal the original. Whole answers are checked the same way.

What a format cannot carry is not checked: Gemini sends arguments as an
object (re-serialised, so the generated compact JSON text comes back equal)
and a thought signature, which rides in the first call's id; the next turn
must hand both the signature and Gemini's call ids back.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import orjson
from hypothesis import given
from hypothesis import strategies as st

from modelyard.providers.anthropic import AnthropicProvider
from modelyard.providers.base import Provider
from modelyard.providers.gemini import GeminiProvider
from modelyard.providers.openai_compat import OpenAICompatibleProvider
from modelyard.providers.transport import Transport
from modelyard.settings import Deployment
from modelyard.types import ChatChunk, ChatRequest, ChatResponse, ToolCallOut
from modelyard.wire import anthropic, gemini, openai
from tests.wire.test_roundtrip_properties import ARGUMENTS, NAMES, SETTINGS, TEXT


@dataclass
class Answer:
    text: str
    calls: list[ToolCallOut]


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    names = draw(st.lists(NAMES, max_size=3))
    calls = [
        ToolCallOut(f"call_{i}_{draw(NAMES)}", name, orjson.dumps(draw(ARGUMENTS)).decode())
        for i, name in enumerate(names)
    ]
    return Answer(draw(TEXT), calls)


def _pieces(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut at arbitrary character offsets (so JSON arguments mid-token)."""
    cuts = sorted(draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=4)))
    bounds = [0, *(c for c in cuts if c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _cut(draw: st.DrawFn, payload: bytes) -> list[bytes]:
    """The byte stream as the network might deliver it: split anywhere, UTF-8 included."""
    cuts = sorted(draw(st.sets(st.integers(1, max(len(payload) - 1, 1)), max_size=12)))
    if draw(st.booleans()):  # also one byte at a time around a random spot
        start = draw(st.integers(0, len(payload)))
        cuts = sorted({*cuts, *range(start, min(start + 8, len(payload)))} - {0})
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _event(data: dict[str, Any], event: str | None, eol: bytes) -> bytes:
    head = b"event: " + event.encode() + eol if event else b""
    return head + b"data: " + orjson.dumps(data) + eol + eol


class _Replay(Transport):
    """A transport whose upstream answers with the given pieces of bytes."""

    def __init__(self, pieces: list[bytes]):
        super().__init__()
        self.pieces = pieces

    async def stream(  # type: ignore[override]
        self, url: str, body: bytes, headers: dict[str, str], **_: object
    ) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


def _provider_stream(
    kind: type[Provider], provider: str, pieces: list[bytes], **fields: Any
) -> list[ChatChunk]:
    """What the provider makes of the upstream's bytes: its own decoding path, end to end."""
    dep = Deployment(name="d", provider=provider, model="m", api_key_env="REPLAY_KEY")
    with mock.patch.dict(os.environ, {"REPLAY_KEY": "k"}):
        upstream = kind(dep, _Replay(pieces))  # type: ignore[call-arg]
    req = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "go"}], "stream": True, **fields}
    )

    async def collect() -> list[ChatChunk]:
        return [chunk async for chunk in upstream.chat_stream(req)]

    return asyncio.run(collect())


def _reassemble(chunks: list[ChatChunk]) -> Answer:
    """What an OpenAI client makes of the chunks the gateway sends it."""
    text = ""
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        wire_chunk = orjson.loads(orjson.dumps(openai.chat_chunk_to_dict(chunk)))
        for choice in wire_chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                parts = calls.setdefault(call["index"], ["", "", ""])
                parts[0] += call.get("id") or ""
                parts[1] += call["function"].get("name") or ""
                parts[2] += call["function"].get("arguments") or ""
    return Answer(text, [ToolCallOut(*calls[i]) for i in sorted(calls)])


def _openai_stream(draw: st.DrawFn, answer: Answer, eol: bytes) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _event({**base, "choices": [choice]}, None, eol)

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in _pieces(draw, answer.text)]
    for i, call in enumerate(answer.calls):
        head = {"index": i, "id": call.id, "type": "function"}
        pieces = _pieces(draw, call.arguments)
        # some hosts put the first piece of the arguments beside the name, others send ""
        first = pieces.pop(0) if pieces and draw(st.booleans()) else ""
        out.append(
            chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": first}}]})
        )
        for piece in pieces:
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if answer.calls else "stop"))
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    out.append(_event({**base, "choices": [], "usage": usage}, None, eol))
    return b"".join(out) + b"data: [DONE]" + eol + eol


@SETTINGS
@given(answers(), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_openai_stream_reassembles_exactly(answer: Answer, eol: bytes, data: st.DataObject) -> None:
    payload = _openai_stream(data.draw, answer, eol)
    pieces = _cut(data.draw, payload)
    # the typed path (another format's client, or a provider reading the stream)
    chunks = _provider_stream(OpenAICompatibleProvider, "vllm", pieces)
    assert _reassemble(chunks) == answer
    # the byte relay (an OpenAI client in front of an OpenAI upstream) passes every event whole
    normalised = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    events = normalised.split(b"\n\n")
    for keep_usage in (True, False):  # a client that did not ask for usage does not get it
        relay = openai.StreamRelay(keep_usage=keep_usage)
        relayed = b"".join(relay.feed(piece) for piece in pieces) + relay.close()
        kept = events if keep_usage else [e for e in events if not _usage_only(e)]
        assert relayed == b"\n\n".join(kept)
        assert relay.usage is not None and relay.usage.output_tokens == 4


def _usage_only(event: bytes) -> bool:
    data = event.removeprefix(b"data: ")
    if not data.startswith(b"{"):
        return False
    body = orjson.loads(data)
    return bool(body.get("usage")) and not body.get("choices")


def _anthropic_event(data: dict[str, Any]) -> bytes:
    return _event(data, str(data["type"]), b"\n")


def _anthropic_stream(
    draw: st.DrawFn, answer: Answer, *, thinking: str = "", json_text: str = ""
) -> bytes:
    """The stream Anthropic sends: thinking, text, then one tool_use block a call."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude"}
    message |= {"content": [], "stop_reason": None, "usage": {"input_tokens": 3}}
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(draw, thinking)]
        deltas.append({"type": "signature_delta", "signature": "c2ln"})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if answer.text:
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(draw, answer.text)]
        blocks.append(({"type": "text", "text": ""}, deltas))
    calls = [(c.id, c.name, c.arguments) for c in answer.calls]
    if json_text:
        calls.append(("toolu_json", anthropic.JSON_TOOL, json_text))
    for call_id, name, arguments in calls:
        start = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [
            {"type": "input_json_delta", "partial_json": p} for p in _pieces(draw, arguments)
        ]
        blocks.append((start, deltas))
    out = [_anthropic_event({"type": "message_start", "message": message})]
    for index, (start, deltas) in enumerate(blocks):
        out.append(
            _anthropic_event(
                {"type": "content_block_start", "index": index, "content_block": start}
            )
        )
        if index == 0:
            out.append(_anthropic_event({"type": "ping"}))
        out += [
            _anthropic_event({"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        ]
        out.append(_anthropic_event({"type": "content_block_stop", "index": index}))
    stop = "tool_use" if calls else "end_turn"
    delta = {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}}
    out += [_anthropic_event(delta), _anthropic_event({"type": "message_stop"})]
    return b"".join(out)


def _anthropic_chunks(pieces: list[bytes], *, json_mode: bool = False) -> list[ChatChunk]:
    fmt = {"response_format": {"type": "json_object"}} if json_mode else {}
    chunks = _provider_stream(AnthropicProvider, "anthropic", pieces, **fmt)
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 9
    return chunks


def _finishes(chunks: list[ChatChunk]) -> list[str]:
    return [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]


@SETTINGS
@given(answers(), TEXT, st.data())
def test_anthropic_stream_reassembles_exactly(
    answer: Answer, thinking: str, data: st.DataObject
) -> None:
    payload = _anthropic_stream(data.draw, answer, thinking=thinking)
    chunks = _anthropic_chunks(_cut(data.draw, payload))
    assert _reassemble(chunks) == answer
    reasoning = "".join(c.reasoning or "" for chunk in chunks for c in chunk.choices)
    assert reasoning == thinking
    assert _finishes(chunks) == ["tool_calls" if answer.calls else "stop"]


@SETTINGS
@given(ARGUMENTS, st.data())
def test_anthropic_json_output_streams_as_exact_content(
    value: dict[str, Any], data: st.DataObject
) -> None:
    json_text = orjson.dumps(value).decode()
    payload = _anthropic_stream(data.draw, Answer("", []), json_text=json_text)
    chunks = _anthropic_chunks(_cut(data.draw, payload), json_mode=True)
    assert _reassemble(chunks) == Answer(json_text, [])
    assert _finishes(chunks) == ["stop"]


SIGNATURES = st.none() | st.binary(min_size=1, max_size=40).map(
    lambda b: base64.b64encode(b).decode()  # standard alphabet: "+", "/" and "=" padding
)


def _gemini_stream(draw: st.DrawFn, answer: Answer, eol: bytes, signature: str | None) -> bytes:
    head = {"modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}
    parts: list[dict[str, Any]] = [{"text": p} for p in _pieces(draw, answer.text)]
    for k, call in enumerate(answer.calls):
        fc = {"id": call.id, "name": call.name, "args": orjson.loads(call.arguments)}
        # in parallel calls only the first carries the thought signature
        parts.append(
            {
                "functionCall": fc,
                **({"thoughtSignature": signature} if k == 0 and signature else {}),
            }
        )
    out = []
    for part in parts:  # one part an event, as Gemini streams them
        cand = {"content": {"role": "model", "parts": [part]}, "index": 0}
        out.append(_event({"candidates": [cand], **head}, None, eol))
    final = {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}
    out.append(_event({"candidates": [final], "usageMetadata": usage, **head}, None, eol))
    return b"".join(out)


@SETTINGS
@given(answers(), st.sampled_from([b"\n", b"\r\n"]), SIGNATURES, st.data())
def test_gemini_stream_reassembles_exactly(
    answer: Answer, eol: bytes, signature: str | None, data: st.DataObject
) -> None:
    pieces = _cut(data.draw, _gemini_stream(data.draw, answer, eol, signature))
    chunks = _provider_stream(GeminiProvider, "gemini", pieces)
    got = _reassemble(chunks)
    # Gemini sends each call's arguments whole, as an object: the JSON text is re-serialised,
    # which keeps it equal to the compact text generated here. The thought signature rides
    # in the first call's id.
    expected = [ToolCallOut(c.id, c.name, c.arguments) for c in answer.calls]
    if expected and signature:
        expected[0].id = gemini.encode_tool_call_id(expected[0].id, signature)
    assert got == Answer(answer.text, expected)
    assert _finishes(chunks) == ["tool_calls" if answer.calls else "stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 4
    if got.calls:  # the next turn hands the signature back, on the first call only
        _check_gemini_history(got, signature)


def _check_gemini_history(got: Answer, signature: str | None) -> None:
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in got.calls
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": got.text or None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls),
    ]
    req = ChatRequest.model_validate({"model": "g", "messages": messages})
    body = gemini.chat_request_to_gemini(req)
    sent = [p for p in body["contents"][1]["parts"] if "functionCall" in p]
    assert [(p["functionCall"]["name"], p["functionCall"]["args"]) for p in sent] == [
        (c.name, orjson.loads(c.arguments)) for c in got.calls
    ]
    assert [p.get("thoughtSignature") for p in sent] == [
        signature or gemini.SKIP_SIGNATURE,
        *[None] * (len(sent) - 1),
    ]
    results = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert [r["name"] for r in results] == [c.name for c in got.calls]
    ids = [gemini.gemini_call_id(c.id) for c in got.calls]  # Gemini's own, given back
    assert [p["functionCall"].get("id") for p in sent] == [r.get("id") for r in results] == ids
    assert ids == [c.id.partition("__sig_")[0] for c in got.calls]


# ------------------------------------------------------ whole (non-streamed) answers


def _whole(resp: ChatResponse) -> Answer:
    """What an OpenAI client reads from the gateway's answer."""
    message = orjson.loads(orjson.dumps(openai.chat_response_to_dict(resp)))["choices"][0]
    message = message["message"]
    calls = [
        ToolCallOut(c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in message.get("tool_calls") or []
    ]
    return Answer(message["content"] or "", calls)


@SETTINGS
@given(answers(), st.sampled_from(["openai", "anthropic", "gemini"]))
def test_whole_answers_round_trip(answer: Answer, vendor: str) -> None:
    if vendor == "openai":
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.calls
        ]
        message = {"role": "assistant", "content": answer.text or None, "tool_calls": calls}
        finish = "tool_calls" if calls else "stop"
        body = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        resp = openai.chat_response_from_dict(body)
    elif vendor == "anthropic":
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": answer.text}] if answer.text else []
        )
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": orjson.loads(c.arguments)}
            for c in answer.calls
        ]
        stop = "tool_use" if answer.calls else "end_turn"
        message = {"id": "msg_1", "model": "claude", "content": blocks, "stop_reason": stop}
        resp = anthropic.chat_response_from_message(message, created=1)
    else:
        parts: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
        parts += [
            {"functionCall": {"id": c.id, "name": c.name, "args": orjson.loads(c.arguments)}}
            for c in answer.calls
        ]
        cand = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        resp = gemini.chat_response_from_gemini({"candidates": [cand]}, model="g", created=1)
    assert _whole(resp) == answer
    assert resp.choices[0].finish_reason == ("tool_calls" if answer.calls else "stop")
