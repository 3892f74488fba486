"""The configuration of response caching: the gateway-wide ``cache`` section and a route's.

Gateway-wide (``Settings.cache``)::

    cache:
      enabled: true           # the exact cache, for deterministic requests of every route
      ttl: 3600               # seconds an answer is kept; a client's max-age may shorten it
      max_ttl: 86400          # the longest a client's Cache-Control: max-age may ask for
      max_entries: 10000      # the in-memory store's bounds (Redis: its own maxmemory policy)
      max_bytes: 67108864

A route (``RouteConfig.cache``) overrides what it names::

    cache:
      enabled: false          # never cache this route
      always: true            # cache even requests without temperature 0 or a seed
      ttl: 600
      semantic: {threshold: 0.95, embedding: all-minilm-l6-v2}

Behaviour lives in ``api.response_cache``; keys, stores and the semantic index
in the sibling modules.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheSettings(_Section):
    enabled: bool = True
    ttl: float = Field(default=3600, gt=0)
    max_ttl: float = Field(default=86400, gt=0)
    max_entries: int = Field(default=10_000, ge=1)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    semantic_max_entries: int = Field(default=100_000, ge=1)


class SemanticCache(_Section):
    """A request whose last user turn means the same (cosine similarity of its embedding at
    least ``threshold``) as a cached one, all else equal, gets the cached answer."""

    threshold: float = Field(gt=0, le=1)
    embedding: str = Field(default="all-minilm-l6-v2", min_length=1)  # an embeddings deployment


class RouteCache(_Section):
    enabled: bool | None = None  # None: the gateway-wide setting
    always: bool = False
    ttl: float | None = Field(default=None, gt=0)
    semantic: SemanticCache | None = None
