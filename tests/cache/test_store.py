"""Cache stores: the memory LRU (entries, bytes, TTL) and Redis (shared, TTL, no pickle).

The Redis tests use the server this machine runs (127.0.0.1:6379) under a
key prefix of the test's own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from redis.asyncio import Redis

from modelyard.cache.store import (
    Entry,
    MemoryCacheStore,
    RedisCacheStore,
    create_cache_store,
    decode_entry,
    encode_entry,
)
from modelyard.storage.redis import connect_redis
from modelyard.types import Usage
from tests.fakes.harness import free_port

STREAM = b'data: {"choices":[{"delta":{"content":"Hi\\n\\n"}}]}\n\ndata: [DONE]\n\n'


def entry(body: bytes = b'{"id":"x"}', **changes: object) -> Entry:
    fields: dict[str, object] = {
        "body": body,
        "stream": False,
        "content_type": "application/json",
        "deployment": "gpt-4o-mini",
        "usage": Usage(input_tokens=12, output_tokens=3, cached_input_tokens=2),
        "cost_micros": 41,
        "created": 1_700_000_000.25,
    }
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- Entry


def test_an_entry_knows_its_age_and_size() -> None:
    e = entry(created=100.0)
    assert e.age(160.5) == 60.5
    assert e.age(90.0) == 0.0  # a clock behind the writer's: never negative
    assert e.age() >= 0 and entry(b"x" * 1000).size - entry(b"").size == 1000


def test_the_encoding_round_trips_any_bytes_and_every_field() -> None:
    body = bytes(range(256)) + b"\n\n" + STREAM
    e = entry(body, stream=True, content_type="text/event-stream; charset=utf-8")
    encoded = encode_entry(e)
    assert b"pickle" not in encoded and encoded.endswith(body)
    assert decode_entry(encoded) == e


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        b"MYC1",
        b"MYC1{not json}\nbody",
        b'MYC1{"stream": true}\nbody',  # fields missing
        b"MYC2" + encode_entry(entry())[4:],  # another version's format
        b"\x80\x04\x95pickle",
    ],
)
def test_anything_else_decodes_as_nothing(value: bytes) -> None:
    assert decode_entry(value) is None


# ---------------------------------------------------------------- memory


async def test_memory_returns_what_was_put() -> None:
    store = MemoryCacheStore()
    assert await store.get("k") is None
    await store.put("k", entry(), ttl=60)
    assert await store.get("k") == entry()
    assert await store.get("other") is None


async def test_memory_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    store = MemoryCacheStore(clock=clock)
    await store.put("short", entry(), ttl=10)
    await store.put("long", entry(), ttl=100)
    clock.now += 9.9
    assert await store.get("short") is not None
    clock.now += 0.1
    assert await store.get("short") is None
    assert len(store) == 1 and await store.get("long") is not None


async def test_memory_evicts_the_least_recently_used_past_max_entries() -> None:
    store = MemoryCacheStore(max_entries=3)
    for k in "abc":
        await store.put(k, entry(k.encode()), ttl=60)
    assert await store.get("a") is not None  # a is now the most recent
    await store.put("d", entry(b"d"), ttl=60)
    assert [k for k in "abcd" if await store.get(k) is not None] == ["a", "c", "d"]
    assert len(store) == 3


async def test_memory_is_bounded_in_bytes() -> None:
    one = entry(b"x" * 1000).size
    store = MemoryCacheStore(max_bytes=3 * one)
    for k in "abc":
        await store.put(k, entry(b"x" * 1000), ttl=60)
    assert store.bytes == 3 * one
    await store.get("a")
    await store.put("d", entry(b"y" * 1500), ttl=60)  # b and c must go to make room
    assert [k for k in "abcd" if await store.get(k) is not None] == ["a", "d"]
    assert store.bytes == one + entry(b"y" * 1500).size <= store.max_bytes


async def test_memory_stores_nothing_oversize_or_without_a_ttl() -> None:
    store = MemoryCacheStore(max_entry_bytes=100)
    await store.put("big", entry(b"x" * 101), ttl=60)
    await store.put("zero", entry(), ttl=0)
    await store.put("negative", entry(), ttl=-1)
    assert len(store) == 0 and store.bytes == 0
    tight = MemoryCacheStore(max_bytes=entry(b"x").size)
    await tight.put("fits", entry(b"x"), ttl=60)
    await tight.put("too-big", entry(b"xx"), ttl=60)  # bigger than the whole store
    assert await tight.get("fits") is not None and len(tight) == 1


async def test_memory_replacing_or_deleting_keeps_the_byte_count() -> None:
    store = MemoryCacheStore()
    await store.put("k", entry(b"x" * 500), ttl=60)
    await store.put("k", entry(b"y" * 100), ttl=60)
    assert len(store) == 1 and store.bytes == entry(b"y" * 100).size
    assert (await store.get("k")) == entry(b"y" * 100)
    await store.put("k", entry(), ttl=0)  # a put that stores nothing still replaces
    assert await store.get("k") is None and store.bytes == 0
    await store.put("k", entry(), ttl=60)
    await store.delete("k")
    await store.delete("never")
    assert len(store) == 0 and store.bytes == 0


def test_without_redis_the_store_is_memory() -> None:
    store = create_cache_store(None, max_entries=5)
    assert isinstance(store, MemoryCacheStore) and store.max_entries == 5


# ---------------------------------------------------------------- Redis


async def test_redis_returns_what_was_put_byte_for_byte(redis_a: Redis, prefix: str) -> None:
    store = RedisCacheStore(redis_a, prefix=prefix)
    e = entry(STREAM, stream=True, content_type="text/event-stream")
    assert await store.get("k") is None
    await store.put("k", e, ttl=60)
    assert await store.get("k") == e
    raw = await redis_a.get(prefix + "k")
    assert raw is not None and raw.endswith(STREAM)


async def test_redis_is_shared_by_two_stores_on_two_clients(
    redis_a: Redis, redis_b: Redis, prefix: str
) -> None:
    one = RedisCacheStore(redis_a, prefix=prefix)
    two = create_cache_store(redis_b, prefix=prefix)
    assert isinstance(two, RedisCacheStore) and two.redis is not one.redis
    await one.put("k1", entry(b"from one"), ttl=60)
    await two.put("k2", entry(b"from two"), ttl=60)
    assert (await two.get("k1")) == entry(b"from one")
    assert (await one.get("k2")) == entry(b"from two")
    await two.delete("k1")
    assert await one.get("k1") is None


async def test_redis_entries_expire(redis_a: Redis, prefix: str) -> None:
    store = RedisCacheStore(redis_a, prefix=prefix)
    await store.put("k", entry(), ttl=0.1)
    assert 0 < await redis_a.pttl(prefix + "k") <= 100
    assert await store.get("k") is not None
    await asyncio.sleep(0.15)
    assert await store.get("k") is None


async def test_redis_stores_nothing_oversize_or_without_a_ttl(redis_a: Redis, prefix: str) -> None:
    store = RedisCacheStore(redis_a, prefix=prefix, max_entry_bytes=100)
    await store.put("big", entry(b"x" * 101), ttl=60)
    await store.put("zero", entry(), ttl=0)
    await store.put("sub-ms", entry(), ttl=0.0004)
    assert [key async for key in redis_a.scan_iter(match=prefix + "*")] == []


async def test_redis_keys_are_prefixed_so_stores_do_not_mix(redis_a: Redis, prefix: str) -> None:
    one = RedisCacheStore(redis_a, prefix=prefix + "one:")
    two = RedisCacheStore(redis_a, prefix=prefix + "two:")
    await one.put("k", entry(), ttl=60)
    assert await two.get("k") is None


async def test_a_foreign_value_in_redis_reads_as_a_miss(
    redis_a: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    await redis_a.set(prefix + "k", b"written by something else", px=60_000)
    with caplog.at_level(logging.WARNING, logger="modelyard.cache"):
        assert await RedisCacheStore(redis_a, prefix=prefix).get("k") is None
    assert "format" in caplog.text


async def test_a_redis_outage_is_a_miss_and_a_dropped_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = connect_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    store = RedisCacheStore(client)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="modelyard.cache"):
        await store.put("k", entry(), ttl=60)
        assert await store.get("k") is None
        await store.delete("k")
    await client.aclose()
    assert time.monotonic() - t0 < 10
    assert caplog.text.count("cache: Redis") == 3
