"""The cache's lookup costs: the semantic index at 100,000 entries, and an exact-cache hit.

Usage: ``python bench/cache_lookup.py [--entries 100000] [--queries 2000]``

The semantic part fills one scope (the largest a scope can be: every entry is
compared) with random unit vectors of 384 dimensions, then looks up
near-duplicates of stored vectors at known cosines (0.80 to 0.999) and fresh
random vectors (no match), at thresholds 0.90 and 0.95. Every answer is
checked against a full float32 scan (the exact answer): the bench says how
many disagree, which must be none. A second run does the same over
clustered vectors (all around one direction, as real embeddings are: cosine
0.5 between unrelated ones), and a third over a tight cluster (cosine 0.86
between any two), the worst case, where most codes fall inside the radius
and the index scores every row. It prints p50/p99 lookup times (excluding
the query embedding), the full scan's for comparison, and memory.

The exact part times what a hit costs the gateway besides I/O: the key of a
typical chat request, and a memory-store ``get``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelyard.cache.keys import cacheable, exact_key
from modelyard.cache.semantic import SemanticIndex
from modelyard.cache.store import Entry, MemoryCacheStore
from modelyard.types import Usage

D = 384
SCOPE = "s" * 64
COSINES = (0.80, 0.88, 0.90, 0.92, 0.95, 0.97, 0.99, 0.999)
THRESHOLDS = (0.90, 0.95)
Matrix = npt.NDArray[np.float32]


def unit_rows(m: Matrix) -> Matrix:
    out: Matrix = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
    return out


def at_cosine(x: Matrix, c: float, rng: np.random.Generator) -> Matrix:
    """A unit vector at exactly cosine ``c`` from unit vector ``x``."""
    u = rng.standard_normal(D).astype(np.float32)
    u -= (u @ x) * x
    u /= np.linalg.norm(u)
    q: Matrix = (c * x + np.sqrt(1 - c * c) * u).astype(np.float32)
    return q


def random_vectors(n: int, rng: np.random.Generator) -> Matrix:
    return unit_rows(rng.standard_normal((n, D), dtype=np.float32))


def clustered_vectors(n: int, rng: np.random.Generator, spread: float = 1.0) -> Matrix:
    """Around one direction: unrelated pairs at cosine 1 / (1 + spread²) (0.5 for 1.0)."""
    centre = unit_rows(rng.standard_normal((1, D), dtype=np.float32))[0]
    noise = spread * rng.standard_normal((n, D), dtype=np.float32) / np.sqrt(D)
    return unit_rows(centre + noise)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(samples: list[float]) -> str:
    return (
        f"p50 {percentile(samples, 0.5) * 1e3:6.3f} ms   "
        f"p99 {percentile(samples, 0.99) * 1e3:6.3f} ms   "
        f"mean {statistics.fmean(samples) * 1e3:6.3f} ms"
    )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def scenario(name: str, vectors: Matrix, queries: int, rng: np.random.Generator) -> None:
    n = len(vectors)
    before = rss_mb()
    index = SemanticIndex(max_entries=n)
    t0 = time.perf_counter()
    for i in range(n):
        index.add(SCOPE, vectors[i], f"k{i}")
    built = time.perf_counter() - t0
    print(f"\n== {name}: {n} entries in one scope, built in {built:.1f} s")
    grown = rss_mb() - before
    print(f"   index arrays {index.nbytes / 2**20:.1f} MiB; process RSS +{grown:.0f} MiB")

    cases: list[tuple[Matrix, float]] = []
    for j in range(queries):
        threshold = THRESHOLDS[j % len(THRESHOLDS)]
        if j % 4 == 3:
            q = random_vectors(1, rng)[0]  # no match
        else:
            c = COSINES[j % len(COSINES)]
            q = at_cosine(vectors[int(rng.integers(n))], c, rng)
        cases.append((q, threshold))

    times: list[float] = []
    scan_times: list[float] = []
    wrong = hits = boundary = 0
    for q, threshold in cases:
        t0 = time.perf_counter()
        found = index.search(SCOPE, q, threshold)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scores = vectors @ q
        best = int(np.argmax(scores))
        scan_times.append(time.perf_counter() - t0)
        truth = (f"k{best}", float(scores[best])) if scores[best] >= threshold else None
        hits += truth is not None
        if (found is None) != (truth is None) or (
            found is not None and truth is not None and abs(found[1] - truth[1]) > 1e-5
        ):
            # float32 sums in another order differ in the last bit: at the threshold exactly,
            # either answer is right
            if abs(float(scores[best]) - threshold) < 1e-6:
                boundary += 1
            else:
                wrong += 1
    print(f"   index lookup        {ms(times)}")
    print(f"   full float32 scan   {ms(scan_times)}")
    print(
        f"   {len(cases)} lookups, {hits} at or above the threshold; differing from the scan: "
        f"{wrong} (and {boundary} at cosine = threshold within float32 rounding)"
    )


def exact_hit(repeat: int = 20_000) -> None:
    body: dict[str, Any] = {
        "model": "support-bot",
        "temperature": 0,
        "max_tokens": 512,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for ACME. " * 20},
            {"role": "user", "content": "How do I reset my password on the mobile app?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup_account",
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                },
            }
        ],
    }
    long_chat = {
        **body,
        "messages": [
            {"role": "user" if i % 2 else "assistant", "content": f"Turn {i}: " + "words " * 160}
            for i in range(100)
        ],
    }
    store = MemoryCacheStore()
    entry = Entry(b"{}" * 500, False, "application/json", "gpt", Usage(100, 20), 31, time.time())
    hit = exact_key("team-a", "support-bot", "chat", body)
    asyncio.run(store.put(hit, entry, 60))

    def timed(fn: Callable[[], object]) -> list[float]:
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return samples

    async def get() -> None:
        for _ in range(repeat):
            found = await store.get(hit)
        assert found is entry

    print("\n== exact cache")
    for name, request in (("chat request", body), ("100-turn conversation", long_chat)):

        def key(request: dict[str, Any] = request) -> object:
            return cacheable(request) and exact_key("team-a", "support-bot", "chat", request)

        size = len(orjson.dumps(request))
        print(f"   cacheable + exact_key, {size:6d}-byte {name:22s} {ms(timed(key))}")
    t0 = time.perf_counter()
    asyncio.run(get())
    each = (time.perf_counter() - t0) / repeat
    print(f"   memory store get (a hit)        mean {each * 1e6:.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    scenario("random unit vectors", random_vectors(args.entries, rng), args.queries, rng)
    scenario("clustered unit vectors", clustered_vectors(args.entries, rng), args.queries, rng)
    # the worst case: every pair at cosine ~0.86, so most codes pass the radius and every
    # row is scored (a cache that adds only after a miss at 0.9 rarely holds such a scope)
    tight = clustered_vectors(args.entries, rng, spread=0.4)
    scenario("tight cluster (worst case)", tight, args.queries // 4, rng)
    exact_hit()


if __name__ == "__main__":
    main()
