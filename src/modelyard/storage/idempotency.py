"""Where idempotent requests are remembered: an in-memory store, and a Redis one for replicas.

A slot (one caller's one ``Idempotency-Key`` on one path, hashed by the
caller of this module) holds either a *running* mark, taken atomically by the
first request, or the *answer* that request finished with. Both carry the
fingerprint of the request body and the token of the request that owns them,
so that a request whose running mark expired (and was taken by a retry) can
neither store its answer over the retry's nor release the retry's mark.

The Redis store is ``modelyard.storage.idempotency_redis``. What lives here
is only storage; what is stored, replayed or refused is decided by
``modelyard.api.idempotency``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis


DAY = 24 * 3600.0
# a running mark outlives the longest request (600 s timeout by default) and then
# frees the slot if its owner died without releasing it
RUNNING_TTL = 900.0
OWNER_CHARS = 32  # a token: 16 random bytes in hex
FINGERPRINT_CHARS = 64  # SHA-256 in hex


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The answer of a finished request: what a retry gets back, byte for byte."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stream: bool


@dataclass(frozen=True, slots=True)
class Existing:
    """What a slot held when a request tried to claim it."""

    fingerprint: str
    answer: StoredAnswer | None  # None: the first request is still running


class IdempotencyStore(Protocol):
    async def claim(self, slot: str, fingerprint: str, owner: str) -> Existing | None:
        """Take ``slot`` for ``owner`` (None), or say what holds it; atomic."""
        ...

    async def finish(self, slot: str, owner: str, fingerprint: str, answer: StoredAnswer) -> None:
        """Replace ``owner``'s running mark with its answer; a mark owner lost stays lost."""
        ...

    async def release(self, slot: str, owner: str) -> None:
        """Free ``owner``'s running mark so that a retry runs again."""
        ...


@dataclass(slots=True)
class _Entry:
    owner: str
    fingerprint: str
    answer: StoredAnswer | None
    expires: float
    size: int


class MemoryIdempotencyStore:
    """One process's slots in a dict, least recently written first; bounded in entries and
    in stored bytes (the oldest go first), each with its time to live."""

    def __init__(
        self,
        *,
        ttl: float = DAY,
        running_ttl: float = RUNNING_TTL,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ttl = ttl
        self.running_ttl = running_ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, slot: str, fingerprint: str, owner: str) -> Existing | None:
        # no await before the write: one event loop makes check-and-set atomic
        now = self.clock()
        entry = self._entries.get(slot)
        if entry is not None:
            if entry.expires > now:
                return Existing(entry.fingerprint, entry.answer)
            self._drop(slot)
        self._put(slot, _Entry(owner, fingerprint, None, now + self.running_ttl, 0))
        return None

    async def finish(self, slot: str, owner: str, fingerprint: str, answer: StoredAnswer) -> None:
        entry = self._entries.get(slot)
        if entry is None or entry.owner != owner:
            return
        self._drop(slot)
        size = len(answer.body) + sum(len(k) + len(v) for k, v in answer.headers)
        if size > self.max_bytes:
            return
        self._put(slot, _Entry(owner, fingerprint, answer, self.clock() + self.ttl, size))

    async def release(self, slot: str, owner: str) -> None:
        entry = self._entries.get(slot)
        if entry is not None and entry.owner == owner:
            self._drop(slot)

    def _put(self, slot: str, entry: _Entry) -> None:
        self._entries[slot] = entry
        self._bytes += entry.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, slot: str) -> None:
        entry = self._entries.pop(slot)
        self._bytes -= entry.size


class StoreUnavailableError(Exception):
    """The store could not be reached; the request cannot be made idempotent."""


def create_idempotency_store(redis: Redis | None) -> IdempotencyStore:
    """Redis when the gateway has one (replicas must agree), else this process's memory."""
    if redis is None:
        return MemoryIdempotencyStore()
    from modelyard.storage.idempotency_redis import RedisIdempotencyStore  # imports redis

    return RedisIdempotencyStore(redis)
