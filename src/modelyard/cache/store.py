"""Where cached answers are kept: ``Entry``, the ``CacheStore`` protocol, memory and Redis.

A store maps an exact key (``cache.keys.exact_key``) to an ``Entry``: what a
replay sends (the body, or a stream's bytes as they were sent), and what the
ledger books for a hit (the deployment that answered, its usage, the cost it
saves). Entries live for the TTL given to ``put``.

- ``MemoryCacheStore``: one process, bounded in entries and in bytes, least
  recently used first out; the embedded default.
- ``RedisCacheStore``: shared by every replica; one Redis string per entry,
  ``SET PX`` for its TTL. The value is a header line of JSON (orjson never
  writes a raw newline) and then the body's raw bytes: no pickle.

A cache must never fail a request: the Redis store logs a failure and answers
a miss (``get``) or drops the write (``put``). What is cacheable, and what a
hit sends, is decided by ``cache.keys`` and ``cache.replay``; the semantic
index is ``cache.semantic``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from modelyard.types import Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("modelyard.cache")

PREFIX = "modelyard:cache:"
MAX_ENTRY_BYTES = 8 * 1024 * 1024  # as api.idempotency.MAX_ANSWER_BYTES
_MAGIC = b"MYC1"  # the Redis value's format; another format reads as a miss
_OVERHEAD = 256  # bytes an entry costs besides its body, for the memory bound


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached answer: what a hit replays and what the ledger books for it.

    ``usage`` is the answer's own usage, shared by every hit: copy it before
    adding to it.
    """

    body: bytes  # the JSON body, or the stream's bytes as sent to the client
    stream: bool
    content_type: str
    deployment: str  # the deployment that answered
    usage: Usage
    cost_micros: int  # what the answer cost, so what each hit saves
    created: float  # wall-clock seconds (time.time()) when it was answered

    @property
    def size(self) -> int:
        """Bytes it takes, roughly: the body and a fixed overhead."""
        return len(self.body) + _OVERHEAD

    def age(self, now: float | None = None) -> float:
        """Seconds since it was answered (never negative)."""
        return max(0.0, (time.time() if now is None else now) - self.created)


class CacheStore(Protocol):
    async def get(self, key: str) -> Entry | None:
        """The live entry under ``key``, or None (missing, expired, or the store failed)."""
        ...

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        """Keep ``entry`` for ``ttl`` seconds; ``ttl <= 0`` or an oversize entry stores nothing."""
        ...

    async def delete(self, key: str) -> None: ...


# ---------------------------------------------------------------- memory


@dataclass(slots=True)
class _Held:
    entry: Entry
    expires: float


class MemoryCacheStore:
    """This process's entries in a dict in recency order; bounded in entries and in bytes.

    ``get`` makes an entry the most recent; a ``put`` past either bound drops
    the least recent. An expired entry is dropped when it is next read, or
    when its turn to be evicted comes.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.clock = clock
        self._entries: OrderedDict[str, _Held] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def get(self, key: str) -> Entry | None:
        held = self._entries.get(key)
        if held is None:
            return None
        if held.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return held.entry

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        if key in self._entries:
            self._drop(key)
        size = entry.size
        if ttl <= 0 or size > min(self.max_entry_bytes, self.max_bytes):
            return
        self._entries[key] = _Held(entry, self.clock() + ttl)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, key: str) -> None:
        if key in self._entries:
            self._drop(key)

    def _drop(self, key: str) -> None:
        held = self._entries.pop(key)
        self._bytes -= held.entry.size


# ---------------------------------------------------------------- Redis


class RedisCacheStore:
    """Entries in Redis, shared by every replica: ``SET PX`` with the TTL, ``GET`` on lookup.

    The client must not decode responses (``storage.redis.connect_redis``).
    Memory is Redis's to bound (``maxmemory`` with an LRU policy): a TTL is
    always set, so ``volatile-lru`` works too.
    """

    def __init__(
        self, redis: Redis, *, prefix: str = PREFIX, max_entry_bytes: int = MAX_ENTRY_BYTES
    ):
        from redis.exceptions import RedisError

        self.redis = redis
        self.prefix = prefix
        self.max_entry_bytes = max_entry_bytes
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError)

    async def get(self, key: str) -> Entry | None:
        try:
            value = await self.redis.get(self.prefix + key)
        except self._failures as exc:
            log.warning("cache: Redis read failed, answering a miss: %s", exc)
            return None
        if value is None:
            return None
        assert isinstance(value, bytes), "the client must not decode responses"
        entry = decode_entry(value)
        if entry is None:
            log.warning("cache: an entry in Redis is not in this version's format: a miss")
        return entry

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        ms = int(ttl * 1000)
        if ms <= 0 or len(entry.body) > self.max_entry_bytes:
            return
        try:
            await self.redis.set(self.prefix + key, encode_entry(entry), px=ms)
        except self._failures as exc:
            log.warning("cache: Redis write failed, the answer is not cached: %s", exc)

    async def delete(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except self._failures as exc:
            log.warning("cache: Redis delete failed: %s", exc)


def encode_entry(entry: Entry) -> bytes:
    """``MYC1``, one line of JSON with everything but the body, a newline, the body's bytes."""
    head = {
        "stream": entry.stream,
        "content_type": entry.content_type,
        "deployment": entry.deployment,
        "usage": asdict(entry.usage),
        "cost_micros": entry.cost_micros,
        "created": entry.created,
    }
    return _MAGIC + orjson.dumps(head) + b"\n" + entry.body


def decode_entry(value: bytes) -> Entry | None:
    """The entry ``encode_entry`` wrote, or None for anything else."""
    if not value.startswith(_MAGIC):
        return None
    end = value.find(b"\n", len(_MAGIC))
    if end < 0:
        return None
    try:
        head: Any = orjson.loads(value[len(_MAGIC) : end])
        usage = Usage(**{k: int(v) for k, v in head["usage"].items()})
        return Entry(
            body=value[end + 1 :],
            stream=bool(head["stream"]),
            content_type=str(head["content_type"]),
            deployment=str(head["deployment"]),
            usage=usage,
            cost_micros=int(head["cost_micros"]),
            created=float(head["created"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def create_cache_store(
    redis: Redis | None,
    *,
    max_entries: int = 10_000,
    max_bytes: int = 64 * 1024 * 1024,
    max_entry_bytes: int = MAX_ENTRY_BYTES,
    prefix: str = PREFIX,
) -> CacheStore:
    """Redis when the gateway has one (replicas share answers), else this process's memory.

    ``max_entries`` and ``max_bytes`` bound the memory store (Redis's own
    ``maxmemory`` bounds Redis); ``prefix`` names the Redis keys.
    """
    if redis is None:
        return MemoryCacheStore(
            max_entries=max_entries, max_bytes=max_bytes, max_entry_bytes=max_entry_bytes
        )
    return RedisCacheStore(redis, prefix=prefix, max_entry_bytes=max_entry_bytes)
