"""Redis for the cache tests: the server this machine runs, a key prefix per test.

They fail, rather than skip, when Redis is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from modelyard.storage.redis import connect_redis

REDIS_URL = "redis://127.0.0.1:6379/0"


async def drop_prefix(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; whatever is under it is deleted afterwards."""
    name = f"test:cache:{uuid.uuid4().hex}:"
    yield name
    client = connect_redis(REDIS_URL)
    await drop_prefix(client, name)
    await client.aclose()


@pytest.fixture
async def redis_a() -> AsyncIterator[Redis]:
    """A client with its own connections (Redis must answer: no skip)."""
    client = connect_redis(REDIS_URL)
    await client.ping()
    yield client
    await client.aclose()


@pytest.fixture
async def redis_b() -> AsyncIterator[Redis]:
    """A second client, as another replica would have."""
    client = connect_redis(REDIS_URL)
    await client.ping()
    yield client
    await client.aclose()
