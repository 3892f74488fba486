"""The ledger's spool: rows on local disk until the database has them, so none is lost.

Every ledger row is appended to the process's open segment file (one
``write``: it is in the operating system's hands before the client has its
answer, so a crash of the gateway process loses nothing) and, separately,
queued in memory for the next batch. After a batch is committed the segment
that held it is deleted; while the database is down, closed segments stay and
are replayed once it is back. At start a gateway replays the segments of
processes that died; the open segment of a live process is held under an
exclusive ``flock`` and skipped. Replays insert with ON CONFLICT DO NOTHING on
the request id, so a segment written twice adds nothing twice.

A line cut short by a crash in the middle of a write is skipped (its request
never got an answer).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        self._stamp = f"{os.getpid()}-{time.time_ns()}"
        self._fd = -1
        self._path = directory
        self._size = 0
        self._closed: list[Path] = []
        self._open()

    def _open(self) -> None:
        self._seq += 1
        self._path = self.directory / f"ledger-{self._stamp}-{self._seq:06d}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._size = 0

    def append(self, line: bytes) -> None:
        """One row (a JSON text without newlines), written through to the OS at once."""
        data = line + b"\n"
        written = os.write(self._fd, data)
        if written != len(data):  # a short write to a regular file: disk full
            raise OSError(f"spool write cut short ({written} of {len(data)} bytes)")
        self._size += written

    def rotate(self) -> Path | None:
        """Close the open segment and start a new one; the closed one's path, if it held rows."""
        if self._size == 0:
            return None
        old = self._path
        os.close(self._fd)  # releases its lock
        self._open()
        self._closed.append(old)
        return old

    def done(self, path: Path) -> None:
        """The segment's rows are in the database: delete it."""
        with contextlib.suppress(ValueError):
            self._closed.remove(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def backlog(self) -> list[Path]:
        """Closed segments to replay: this process's, and those of processes no longer running."""
        found = list(self._closed)
        for path in sorted(self.directory.glob("ledger-*.jsonl")):
            if path == self._path or path in found:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # the open segment of a live process
            finally:
                os.close(fd)
            found.append(path)
        return found

    @staticmethod
    def read(path: Path) -> list[bytes]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if lines and lines[-1]:
            log.warning("spool segment %s ends in a cut line; it is skipped", path.name)
        return [line for line in lines[:-1] if line]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._size == 0:
                with contextlib.suppress(FileNotFoundError):
                    self._path.unlink()
