"""The Redis client of a scaled-out gateway: how it is made, and nothing else.

Redis holds what replicas must share and agree on at once: budget counters
and rate-limit state (``modelyard.governance.budgets`` and ``.ratelimit``, each
an atomic Lua script registered with ``register_script``: EVALSHA, and EVAL
again when a restarted Redis has forgotten the script). Nothing here is the
record of anything: the ledger is in the database and the counters are
re-seeded from it.

The client is created in ``create_app`` (never at import) and closed on
shutdown with ``await client.aclose()``; the governance objects only borrow it.

Connections: a bounded pool that makes a request wait for a free connection
(redis-py's default pool raises "Too many connections" past 100 at once).

Retries: only a connection that could not be used is retried. A timeout is
not, because the command may have run: running a reservation twice would
reserve twice.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

SOCKET_TIMEOUT = 2.0  # seconds a command may take before the request fails
CONNECT_TIMEOUT = 2.0
POOL_SIZE = 64  # connections per replica; a script takes ~0.1 ms, so this serves plenty
POOL_TIMEOUT = 2.0  # seconds a command waits for a free connection
HEALTH_CHECK_INTERVAL = 15  # seconds idle before a pooled connection is PINGed first
RETRIES = 2


def connect_redis(url: str) -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``); connects lazily."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_TIMEOUT,
        decode_responses=False,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(
            ExponentialWithJitterBackoff(base=0.01, cap=0.2),
            RETRIES,
            supported_errors=(RedisConnectionError,),
        ),
        client_name="modelyard",
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes both
