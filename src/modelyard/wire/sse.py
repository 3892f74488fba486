"""Server-sent events: an incremental decoder and the encoder, bytes only, no I/O.

The decoder follows the WHATWG event-stream rules that matter for model APIs:
lines end in LF, CRLF or CR; ``data:`` lines of one event are joined with LF;
a blank line dispatches; ``:`` starts a comment; one leading space after the
colon is dropped. Chunks may split anywhere, including inside a multi-byte
UTF-8 character: bytes are only decoded once a whole line is in hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    raw: bytes = b""  # the event's bytes as received, blank line included


class SSEDecoder:
    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024):
        self._buf = bytearray()
        self._start = 0  # offset in _buf where the pending event began
        self._pos = 0  # offset in _buf of the next line not yet parsed
        self._data: list[str] = []
        self._event: str | None = None
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf
        buf += chunk
        events: list[SSEEvent] = []
        pos = self._pos
        while True:
            found = _find_eol(buf, pos)
            if found is None:
                break
            end, nxt = found
            line = bytes(buf[pos:end])
            pos = nxt
            if line:
                self._field(line)
                continue
            if self._data or self._event is not None:
                raw = bytes(buf[self._start : pos])
                events.append(SSEEvent("\n".join(self._data), self._event, raw))
            self._data = []
            self._event = None
            self._start = pos
        if self._start:
            del buf[: self._start]
            pos -= self._start
            self._start = 0
        self._pos = pos
        if len(buf) > self._max:
            raise ValueError(f"an event is longer than {self._max} bytes")
        return events

    def _field(self, line: bytes) -> None:
        if line.startswith(b":"):
            return
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        text = value.decode("utf-8", errors="replace")
        if name == b"data":
            self._data.append(text)
        elif name == b"event":
            self._event = text

    def close(self) -> list[SSEEvent]:
        """Dispatch an event left unterminated at the end of the stream."""
        if self._buf.strip() or self._data:
            return self.feed(b"\n\n")
        return []


def _find_eol(buf: bytearray, start: int) -> tuple[int, int] | None:
    """Index of the next line end at or after ``start`` and where the next line begins."""
    lf = buf.find(b"\n", start)
    cr = buf.find(b"\r", start)
    if cr < 0 and lf < 0:
        return None
    if cr < 0 or (0 <= lf < cr):
        return (lf, lf + 1)
    if cr + 1 < len(buf):
        return (cr, cr + 2 if buf[cr + 1] == 0x0A else cr + 1)
    return None  # a CR at the very end: a LF may follow


def whole_events(buf: bytes) -> tuple[bytes, bytes]:
    """``buf`` cut after its last complete event: (the whole events, the rest to keep).

    For relaying a stream unparsed. CRLF and CR line ends become LF; a trailing
    CR is kept back, since it may be the first half of a CRLF.
    """
    if b"\r" in buf:
        held = buf.endswith(b"\r")
        buf = buf[:-1] if held else buf
        buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if held:
            buf += b"\r"
    cut = buf.rfind(b"\n\n")
    if cut < 0:
        return b"", buf
    return buf[: cut + 2], buf[cut + 2 :]


def encode(data: bytes | str, event: str | None = None) -> bytes:
    body = data.encode() if isinstance(data, str) else data
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + body + b"\n\n"


DONE = b"data: [DONE]\n\n"
