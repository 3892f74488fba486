"""Internal chunks as the Responses API's semantic stream events, bytes only, no I/O.

One ``ResponsesStream`` per answer. It opens with ``response.created`` and
``response.in_progress``; text opens a message item (``output_item.added``,
``content_part.added``) and goes out as ``output_text.delta``; each tool call
opens a ``function_call`` item and its arguments go out as
``function_call_arguments.delta``. Items stay open until the answer ends, so
late deltas of any item still land in it; then each is closed in output order
(``output_text.done``, ``content_part.done``, ``function_call_arguments.done``,
``output_item.done``) and ``response.completed`` (or ``response.incomplete``)
carries the whole response. A stream that breaks ends with ``error`` and
``response.failed``. Every event has a ``sequence_number`` that counts from 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard.errors import GatewayError, RateLimitedError
from modelyard.types import ChatChunk, FinishReason, Usage
from modelyard.wire.responses import call_item, message_item, new_item_id, response_object


@dataclass(slots=True)
class _Item:
    id: str
    output_index: int
    call_id: str | None = None  # None: the message item
    name: str = ""
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def as_dict(self, status: str) -> dict[str, Any]:
        if self.call_id is None:
            return message_item(self.id, self.text, status)
        return call_item(self.id, self.call_id, self.name, self.text, status)


class ResponsesStream:
    """Writes one answer's chunks as Responses events (a ``ChunkEncoder``)."""

    def __init__(
        self, response_id: str, model: str, echo: dict[str, Any], created_at: int | None = None
    ):
        self.response_id = response_id
        self.model = model
        self.echo = echo
        self.created_at = created_at if created_at is not None else int(time.time())
        self.started = False
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self._seq = 0
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._calls: dict[int, _Item] = {}

    # ---------------------------------------------------------------- events

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _snapshot(self, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        item_status = "completed" if status in ("completed", "incomplete") else "incomplete"
        if status == "in_progress":
            output = []
        else:
            output = [item.as_dict(item_status) for item in self._items]
        return response_object(
            self.response_id,
            self.created_at,
            self.model,
            self.echo,
            output,
            finish=self.finish,
            usage=self.usage if status != "in_progress" else None,
            status=None if status in ("completed", "incomplete") else status,
            error=error,
        )

    def final(self) -> dict[str, Any]:
        """The response as ``response.completed`` carries it, once every chunk is in."""
        return self._snapshot("completed")

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        head = self._snapshot("in_progress")
        return self._event("response.created", response=head) + self._event(
            "response.in_progress", response=head
        )

    def _open(self, call_id: str | None, name: str = "") -> tuple[_Item, bytes]:
        item = _Item(
            new_item_id("msg" if call_id is None else "fc"), len(self._items), call_id, name
        )
        self._items.append(item)
        out = self._event(
            "response.output_item.added",
            output_index=item.output_index,
            item={**item.as_dict("in_progress"), "content": []}
            if call_id is None
            else item.as_dict("in_progress"),
        )
        if call_id is None:
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        return item, out

    def feed(self, chunk: ChatChunk) -> bytes:
        out = bytearray(self._start())
        if chunk.usage is not None:
            self.usage = chunk.usage
        for delta in chunk.choices:
            if delta.index != 0:
                continue  # the Responses API has one answer
            if delta.content:
                if self._message is None:
                    self._message, opened = self._open(None)
                    out += opened
                item = self._message
                item.parts.append(delta.content)
                out += self._event(
                    "response.output_text.delta",
                    item_id=item.id,
                    output_index=item.output_index,
                    content_index=0,
                    delta=delta.content,
                    logprobs=[],
                )
            for tc in delta.tool_calls:
                call = self._calls.get(tc.index)
                if call is None:
                    call, opened = self._open(tc.id or new_item_id("call"), tc.name or "")
                    self._calls[tc.index] = call
                    out += opened
                elif tc.name and not call.name:
                    call.name = tc.name
                if tc.arguments:
                    call.parts.append(tc.arguments)
                    out += self._event(
                        "response.function_call_arguments.delta",
                        item_id=call.id,
                        output_index=call.output_index,
                        delta=tc.arguments,
                    )
            if delta.finish_reason is not None:
                self.finish = delta.finish_reason
        return bytes(out)

    def close(self) -> bytes:
        out = bytearray(self._start())
        for item in self._items:
            where = {"item_id": item.id, "output_index": item.output_index}
            if item.call_id is None:
                text = item.text
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                out += self._event(
                    "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
                )
                out += self._event(
                    "response.content_part.done", **where, content_index=0, part=part
                )
            else:
                out += self._event(
                    "response.function_call_arguments.done",
                    **where,
                    arguments=item.text,
                )
            out += self._event(
                "response.output_item.done",
                output_index=item.output_index,
                item=item.as_dict("completed"),
            )
        final = self.final()
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out += self._event(kind, response=final)
        return bytes(out)

    def error(self, err: GatewayError) -> bytes:
        out = self._start()
        code = "rate_limit_exceeded" if isinstance(err, RateLimitedError) else "server_error"
        out += self._event("error", code=err.code or code, message=err.message, param=err.param)
        failed = self._snapshot("failed", {"code": code, "message": err.message})
        return out + self._event("response.failed", response=failed)
