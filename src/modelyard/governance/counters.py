"""Choose the shared counters: in-process memory (one gateway) or Redis (replicas)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # redis is imported only where Redis is configured
    from redis.asyncio import Redis


from modelyard.governance.budgets import MemoryCounters, RedisCounters, SpendCounters
from modelyard.governance.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter


def create_counters(
    redis: Redis | None, prefix: str = "modelyard:"
) -> tuple[SpendCounters, RateLimiter]:
    """Budget counters and rate limiter on ``redis`` when given, else in this process."""
    if redis is None:
        return MemoryCounters(), MemoryRateLimiter()
    return RedisCounters(redis, prefix), RedisRateLimiter(redis, prefix)
