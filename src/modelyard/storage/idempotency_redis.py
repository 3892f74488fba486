"""The idempotency store in Redis, so that replicas agree on who runs a key and on its answer.

A slot is one string: the owner's token, the body's fingerprint and a state
(``R`` running, ``D`` done), then, once done, one line of JSON (status,
headers, stream) and the body's raw bytes. ``SET NX PX GET`` (Redis 7) takes a
running mark or reads who holds it, in one round trip; finishing and releasing are
scripts that check the owner first. Any Redis failure is raised as
``StoreUnavailableError``.
"""

from __future__ import annotations

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from modelyard.storage.idempotency import (
    DAY,
    FINGERPRINT_CHARS,
    OWNER_CHARS,
    RUNNING_TTL,
    Existing,
    StoredAnswer,
    StoreUnavailableError,
)

PREFIX = "modelyard:idempotency:"
_HEAD = OWNER_CHARS + FINGERPRINT_CHARS
_FINISH = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, tonumber(ARGV[3])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
  return 1
end
return 0
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, tonumber(ARGV[2])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisIdempotencyStore:
    """Slots in Redis so that replicas agree: ``SET NX PX`` takes a running mark (with
    ``GET``, so a refused claim reads the holder in the same round trip); finishing and
    releasing check the owner in a script."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = PREFIX,
        ttl: float = DAY,
        running_ttl: float = RUNNING_TTL,
    ):
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.running_ms = int(running_ttl * 1000)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, slot: str, fingerprint: str, owner: str) -> Existing | None:
        mark = f"{owner}{fingerprint}R".encode()
        try:
            held = await self.redis.set(
                self.prefix + slot, mark, nx=True, px=self.running_ms, get=True
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(str(exc)) from exc
        if held is None:
            return None
        assert isinstance(held, bytes), "the client must not decode responses"
        return _decode(held)

    async def finish(self, slot: str, owner: str, fingerprint: str, answer: StoredAnswer) -> None:
        meta = orjson.dumps(
            {"status": answer.status, "headers": answer.headers, "stream": answer.stream}
        )
        value = f"{owner}{fingerprint}D".encode() + meta + b"\n" + answer.body
        try:
            await self._finish(
                keys=[self.prefix + slot], args=[owner, value, OWNER_CHARS, self.ttl_ms]
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(str(exc)) from exc

    async def release(self, slot: str, owner: str) -> None:
        try:
            await self._release(keys=[self.prefix + slot], args=[owner, OWNER_CHARS])
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(str(exc)) from exc


def _decode(value: bytes) -> Existing:
    fingerprint = value[OWNER_CHARS:_HEAD].decode()
    if value[_HEAD : _HEAD + 1] != b"D":
        return Existing(fingerprint, None)
    meta, _, body = value[_HEAD + 1 :].partition(b"\n")
    data = orjson.loads(meta)
    headers = tuple((str(k), str(v)) for k, v in data["headers"])
    return Existing(fingerprint, StoredAnswer(int(data["status"]), headers, body, data["stream"]))
