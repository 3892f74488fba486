"""Redis for the governance tests: the server this machine runs, a key prefix per test.

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
async def redis_env() -> AsyncIterator[tuple[Redis, str]]:
    """A client (Redis must answer: no skip) and a key prefix of this test's own."""
    client = connect_redis(REDIS_URL)
    await client.ping()
    prefix = f"test:{uuid.uuid4().hex}:"
    yield client, prefix
    await drop_prefix(client, prefix)
    await client.aclose()
