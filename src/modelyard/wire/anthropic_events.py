"""Internal stream chunks as Anthropic Messages stream events, bytes out. Pure.

The event grammar a Messages client expects::

    message_start ping
    (content_block_start content_block_delta* content_block_stop)*
    message_delta message_stop

Blocks are numbered from 0 in order and never overlap: a chunk of another
kind (thinking, text, a new tool call) closes the open block and opens the
next. ``message_delta`` carries ``stop_reason`` and the usage, so it waits
for ``close``: the internal stream's usage may come after its finish reason.
A failure after the start is one ``event: error``, and nothing after it.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.errors import GatewayError
from modelyard.types import ChatChunk, ChoiceDelta, FinishReason, Usage
from modelyard.wire.anthropic_inbound import error_body, message_id, stop_reason, usage_to_dict


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(status: int, message: str) -> bytes:
    return b"event: error\ndata: " + error_body(status, message) + b"\n\n"


class MessageStreamEncoder:
    """One answer's internal chunks as the events of one Anthropic message stream."""

    __slots__ = (
        "_finish",
        "_kind",
        "_open",
        "_out",
        "_started",
        "_tools",
        "_usage",
        "blocks",
        "id",
        "model",
    )

    def __init__(self, model: str, message_id: str | None = None):
        self.model = model
        self.id = message_id
        self.blocks = 0  # blocks started so far; the next one's index
        self._open: int | None = None  # index of the open block
        self._kind = ""  # its kind: "thinking", "text" or "tool_use"
        self._tools: dict[int, int] = {}  # internal tool call index -> block index
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._started = False
        self._out: list[bytes] = []

    def feed(self, chunk: ChatChunk) -> bytes:
        if not self._started:
            self._start(chunk.id)
        if chunk.usage is not None:
            self._usage = chunk.usage
        for delta in chunk.choices:
            if delta.index == 0:  # a Messages answer has one choice
                self._delta(delta)
        return self._flush()

    def close(self) -> bytes:
        if not self._started:
            self._start("")
        if self.blocks == 0:  # a message always has content, if only empty text
            self._begin("text", {"type": "text", "text": ""})
        self._end()
        usage = usage_to_dict(self._usage or Usage())
        reason = stop_reason(self._finish, bool(self._tools))
        self._out.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        self._out.append(event("message_stop", {"type": "message_stop"}))
        return self._flush()

    def error(self, err: GatewayError) -> bytes:
        return error_event(err.status, err.message)

    # ------------------------------------------------------------ internals

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _start(self, chunk_id: str) -> None:
        self._started = True
        if self.id is None:
            self.id = message_id(chunk_id)
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        self._out.append(event("message_start", {"type": "message_start", "message": message}))
        self._out.append(event("ping", {"type": "ping"}))

    def _delta(self, d: ChoiceDelta) -> None:
        if d.reasoning:
            if self._kind != "thinking":
                self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._block_delta({"type": "thinking_delta", "thinking": d.reasoning})
        if d.content:
            if self._kind != "text":
                self._begin("text", {"type": "text", "text": ""})
            self._block_delta({"type": "text_delta", "text": d.content})
        for call in d.tool_calls:
            index = self._tools.get(call.index)
            if index is None:
                block = {"type": "tool_use", "id": call.id or "", "name": call.name or ""}
                index = self._tools[call.index] = self._begin("tool_use", block | {"input": {}})
            if call.arguments:
                # an earlier call's late arguments go to its own block (the index says which)
                delta = {"type": "input_json_delta", "partial_json": call.arguments}
                self._block_delta(delta, index)
        if d.finish_reason is not None:
            self._finish = d.finish_reason

    def _begin(self, kind: str, block: dict[str, Any]) -> int:
        self._end()
        index = self._open = self.blocks
        self.blocks += 1
        self._kind = kind
        self._out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return index

    def _block_delta(self, delta: dict[str, Any], index: int | None = None) -> None:
        self._out.append(
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self._open if index is None else index,
                    "delta": delta,
                },
            )
        )

    def _end(self) -> None:
        if self._open is not None:
            self._out.append(
                event("content_block_stop", {"type": "content_block_stop", "index": self._open})
            )
            self._open = None
            self._kind = ""
