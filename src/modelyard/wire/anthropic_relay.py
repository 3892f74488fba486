"""Anthropic's stream relayed unparsed, for a Messages client served by an Anthropic deployment.

When client and upstream both speak Messages, the upstream's events go to the
client byte for byte (thinking signatures, ``stop_sequence``, citations and
whatever Anthropic adds next included); only the events that carry usage
(``message_start``, ``message_delta``) are parsed, for the ledger, and
``message_start`` names the model the client asked for, as a translated
answer would.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.types import Usage
from modelyard.wire.anthropic import usage_from_dict
from modelyard.wire.sse import whole_events


def _data(event: bytes) -> bytes:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            return line[5:].strip()
    return b""


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class MessageStreamRelay:
    """Cuts the byte stream into whole events and keeps the usage they report."""

    __slots__ = ("_buf", "_model", "_usage")

    def __init__(self, model: str) -> None:
        self._buf = b""
        self._model = model
        self._usage: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> bytes:
        ready, self._buf = whole_events(self._buf + chunk)
        if not ready:
            return b""
        if b'"usage"' not in ready:
            return ready
        events = ready.split(b"\n\n")
        for i, event in enumerate(events):
            if b'"usage"' in event:
                data = _json(_data(event))
                if self._account(data):
                    events[i] = b"event: message_start\ndata: " + orjson.dumps(data)
        return b"\n\n".join(events)

    def _account(self, data: dict[str, Any]) -> bool:
        """Keep the usage; True when ``data`` was a message_start, renamed to our model."""
        start = data.get("type") == "message_start"
        message = data.get("message") if start else None
        usage = message.get("usage") if isinstance(message, dict) else data.get("usage")
        if isinstance(usage, dict):  # message_delta's counts are cumulative: the last wins
            self._usage.update({k: v for k, v in usage.items() if v is not None})
        if isinstance(message, dict):
            message["model"] = self._model
            return True
        return False

    def close(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest

    @property
    def usage(self) -> Usage | None:
        return usage_from_dict(self._usage) if self._usage else None


def first_event(events: bytes) -> dict[str, Any]:
    """The JSON of the first event that is not a comment; {} when it is not JSON."""
    for event in events.split(b"\n\n"):
        if event.strip() and not event.startswith(b":"):
            return _json(_data(event))
    return {}
