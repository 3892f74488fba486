"""Two processes share the cache through Redis: one answers and indexes, the other finds it.

The other process is a real one (``python -c``), with its own client, store
and semantic index, as another gateway replica would have. Redis is the
server this machine runs, under this test's own prefix.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from asyncio.subprocess import PIPE

import numpy as np
import pytest
from redis.asyncio import Redis

from modelyard.cache.keys import exact_key, semantic_key
from modelyard.cache.semantic import DIMENSIONS, SemanticIndex, SharedSemanticIndex
from modelyard.cache.store import RedisCacheStore
from tests.cache.conftest import REDIS_URL

BODY = {
    "model": "support",
    "temperature": 0,
    "stream": True,
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}
STREAM = b'data: {"choices":[{"delta":{"content":"Paris"}}]}\n\ndata: [DONE]\n\n'

OTHER_REPLICA = """
import asyncio, sys, time
import numpy as np
from modelyard.cache.keys import exact_key, semantic_key
from modelyard.cache.semantic import SemanticIndex, SharedSemanticIndex
from modelyard.cache.store import Entry, RedisCacheStore
from modelyard.storage.redis import connect_redis
from modelyard.types import Usage

async def main():
    url, prefix = sys.argv[1], sys.argv[2]
    body = {body!r}
    client = connect_redis(url)
    store = RedisCacheStore(client, prefix=prefix)
    index = SharedSemanticIndex(SemanticIndex(), client, key=prefix + "semantic")
    key = exact_key("team-a", "support", "chat", body)
    sk = semantic_key("team-a", "support", "chat", body)
    vector = np.random.default_rng(11).standard_normal({dims})
    entry = Entry({stream!r}, True, "text/event-stream", "gpt-x", Usage(9, 1), 12, time.time())
    await store.put(key, entry, 60)
    await index.add(sk.scope, vector, key, 60)
    await client.aclose()
    print(key)

asyncio.run(main())
"""


async def test_a_replica_replays_what_another_process_stored_and_finds_it_by_meaning(
    redis_a: Redis, prefix: str
) -> None:
    code = textwrap.dedent(OTHER_REPLICA).format(body=BODY, dims=DIMENSIONS, stream=STREAM)
    replica = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, REDIS_URL, prefix, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(replica.communicate(), timeout=60)
    assert replica.returncode == 0, err.decode()
    key = exact_key("team-a", "support", "chat", BODY)
    assert out.decode().strip() == key  # the same key in both processes

    store = RedisCacheStore(redis_a, prefix=prefix)
    entry = await store.get(key)
    assert entry is not None and entry.body == STREAM and entry.stream
    assert (entry.deployment, entry.usage.input_tokens, entry.cost_micros) == ("gpt-x", 9, 12)
    assert await store.get(exact_key("team-b", "support", "chat", BODY)) is None

    index = SharedSemanticIndex(SemanticIndex(), redis_a, key=prefix + "semantic")
    vector = np.random.default_rng(11).standard_normal(DIMENSIONS)
    near = vector + 0.2 * np.random.default_rng(12).standard_normal(DIMENSIONS)
    sk = semantic_key("team-a", "support", "chat", BODY)
    assert sk is not None
    found = await index.search(sk.scope, near, 0.9)
    assert found is not None and found[0] == key and found[1] == pytest.approx(0.98, abs=0.01)
    other_team = semantic_key("team-b", "support", "chat", BODY)
    assert other_team is not None
    assert await index.search(other_team.scope, vector, 0.5) is None
