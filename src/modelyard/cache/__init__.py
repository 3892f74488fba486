"""Response caching: the pieces below the request path, each usable and tested alone.

- ``keys``: which requests are the same request (the exact key, the semantic
  scope and the text to embed), which may be cached by default, and the
  client's ``Cache-Control``. Pure.
- ``store``: where answers are kept: ``Entry``, the ``CacheStore`` protocol,
  a bounded in-memory LRU and a Redis store shared by replicas.
- ``semantic``: the nearest-neighbour index of the semantic cache, per scope:
  ``SemanticIndex`` in one process, and the async ``SemanticLookup`` the
  request path calls (``LocalSemanticIndex``, or ``SharedSemanticIndex``,
  which keeps replicas' indexes in step through a Redis stream).
- ``replay``: whether an answer may be stored (a whole stream, no error) and
  the bytes a hit sends. Pure.

What does not live here: HTTP (reading headers, writing responses), the
routing explanation, the ledger and metrics. Those belong to ``api/``,
``routing/`` and ``governance/``, which call into this package. Nothing is
imported or built here at import time: numpy and redis are imported by the
objects that use them.
"""
