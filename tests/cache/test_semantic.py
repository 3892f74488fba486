"""The semantic index: threshold, scopes, eviction, expiry, the same answers as a full
scan, and replicas kept in step through Redis (the server this machine runs)."""

from __future__ import annotations

import asyncio
import logging
import math

import numpy as np
import numpy.typing as npt
import pytest
from redis.asyncio import Redis

from modelyard.cache import semantic
from modelyard.cache.semantic import (
    DIMENSIONS,
    LocalSemanticIndex,
    SemanticIndex,
    SharedSemanticIndex,
    create_semantic_index,
    radius,
)
from modelyard.storage.redis import connect_redis
from tests.fakes.harness import free_port

Vectors = npt.NDArray[np.float32]


def unit_rows(m: npt.NDArray[np.float64] | Vectors) -> Vectors:
    out: Vectors = (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)
    return out


def random_vectors(n: int, seed: int = 0) -> Vectors:
    return unit_rows(np.random.default_rng(seed).standard_normal((n, DIMENSIONS)))


def at_cosine(x: Vectors, c: float, seed: int = 1) -> Vectors:
    """A unit vector at cosine ``c`` from the unit vector ``x``."""
    u = np.random.default_rng(seed).standard_normal(DIMENSIONS)
    u -= (u @ x) * x
    u /= np.linalg.norm(u)
    return unit_rows(c * x + math.sqrt(1 - c * c) * u)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the radius


def test_the_radius_shrinks_as_the_threshold_rises_and_covers_the_whole_code_at_zero() -> None:
    radii = [radius(t) for t in (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)]
    assert radii[0] == DIMENSIONS and radii == sorted(radii, reverse=True)
    assert radius(-0.5) == DIMENSIONS and radius(1.0) >= 1
    # above the distance expected at the threshold, below random vectors' (half the bits)
    assert DIMENSIONS * math.acos(0.9) / math.pi < radius(0.9) < DIMENSIONS / 2 - 50


def test_codes_of_vectors_at_cosine_t_fall_inside_the_radius() -> None:
    index = SemanticIndex()
    xs = random_vectors(150, seed=3)
    for t in (0.8, 0.9, 0.95):
        worst = 0
        for i, x in enumerate(xs):
            q = at_cosine(x, t, seed=i)
            worst = max(worst, int(np.bitwise_count(index.code(x) ^ index.code(q)).sum()))
        assert worst <= radius(t)


# ---------------------------------------------------------------- search


def test_a_near_duplicate_is_found_above_the_threshold_only() -> None:
    index = SemanticIndex()
    xs = random_vectors(1000)
    for i, x in enumerate(xs):
        index.add("scope", x, f"k{i}")
    q = at_cosine(xs[42], 0.93)
    found = index.search("scope", q, 0.9)
    assert found is not None
    assert found[0] == "k42" and found[1] == pytest.approx(0.93, abs=1e-5)
    assert index.search("scope", q, 0.95) is None
    assert index.search("scope", xs[7], 0.999) == ("k7", pytest.approx(1.0, abs=1e-6))
    assert index.search("scope", random_vectors(1, seed=99)[0], 0.5) is None


def test_the_most_similar_of_several_matches_is_returned() -> None:
    index = SemanticIndex()
    x = random_vectors(1)[0]
    for i, c in enumerate((0.91, 0.97, 0.94)):
        index.add("scope", at_cosine(x, c, seed=i), f"k{c}")
    found = index.search("scope", x, 0.9)
    assert found is not None and found[0] == "k0.97"


def test_scopes_are_isolated() -> None:
    index = SemanticIndex()
    x = random_vectors(1)[0]
    index.add("team-a", x, "a")
    assert index.search("team-b", x, 0.5) is None
    assert index.search("team-a", x, 0.5) == ("a", pytest.approx(1.0, abs=1e-6))


def test_vectors_are_checked_and_made_unit_length() -> None:
    index = SemanticIndex()
    with pytest.raises(ValueError, match="384"):
        index.add("s", [1.0] * 383, "k")
    with pytest.raises(ValueError, match="zero"):
        index.add("s", [0.0] * DIMENSIONS, "k")
    with pytest.raises(ValueError, match="finite"):
        index.add("s", [math.nan] * DIMENSIONS, "k")
    x = random_vectors(1)[0]
    index.add("s", (x * 3).tolist(), "k")  # any length, any sequence of floats
    assert index.search("s", x, 0.999) == ("k", pytest.approx(1.0, abs=1e-6))


@pytest.mark.parametrize("clustered", [False, True])
def test_answers_are_those_of_a_full_scan(clustered: bool) -> None:
    rng = np.random.default_rng(5)
    n = 6000
    if clustered:  # all around one direction, as real embeddings are: many codes pass
        centre = random_vectors(1, seed=6)[0]
        xs = unit_rows(centre + rng.standard_normal((n, DIMENSIONS)) / math.sqrt(DIMENSIONS))
    else:
        xs = random_vectors(n, seed=7)
    index = SemanticIndex()
    for i, x in enumerate(xs):
        index.add("scope", x, f"k{i}")
    hits = 0
    for j in range(300):
        threshold = (0.85, 0.9, 0.95)[j % 3]
        target = xs[int(rng.integers(n))]
        q = at_cosine(target, (0.8, 0.86, 0.91, 0.96, 0.99)[j % 5], seed=j)
        scores = xs @ q
        best = int(np.argmax(scores))
        found = index.search("scope", q, threshold)
        if scores[best] >= threshold:
            hits += 1
            assert found is not None and found[1] == pytest.approx(float(scores[best]), abs=1e-5)
        else:
            assert found is None
    assert 100 < hits < 300


@pytest.mark.parametrize("scan_fraction", [semantic.SCAN_FRACTION, 1.0])
def test_a_scope_of_near_identical_questions_still_agrees_with_a_scan(
    monkeypatch: pytest.MonkeyPatch, scan_fraction: float
) -> None:
    # every row passes the radius: scored all at once (the default), or gathered (1.0)
    monkeypatch.setattr(semantic, "SCAN_FRACTION", scan_fraction)
    centre = random_vectors(1, seed=8)[0]
    rng = np.random.default_rng(9)
    xs = unit_rows(centre + 0.3 * rng.standard_normal((3000, DIMENSIONS)) / math.sqrt(DIMENSIONS))
    index = SemanticIndex()
    for i, x in enumerate(xs):
        index.add("scope", x, f"k{i}")
    for j in range(50):
        q = at_cosine(xs[j], 0.97, seed=j)
        scores = xs @ q
        found = index.search("scope", q, 0.9)
        assert found is not None and found[1] == pytest.approx(float(scores.max()), abs=1e-5)
        assert found[0] == f"k{int(np.argmax(scores))}"


# ---------------------------------------------------------------- bounds and lifetime


def test_past_max_entries_the_oldest_added_go_first() -> None:
    index = SemanticIndex(max_entries=3)
    xs = random_vectors(5)
    for i in range(4):
        index.add("a" if i % 2 else "b", xs[i], f"k{i}")
    assert len(index) == 3 and "k0" not in index
    assert index.search("b", xs[0], 0.99) is None
    index.add("b", xs[1], "k1")  # added again: now the newest, with this vector
    index.add("b", xs[4], "k4")
    assert "k2" not in index and {"k1", "k3", "k4"} == {k for k in ("k1", "k3", "k4") if k in index}
    assert index.search("a", xs[1], 0.99) is None  # k1 moved to scope b
    assert index.search("b", xs[1], 0.99) == ("k1", pytest.approx(1.0, abs=1e-6))
    with pytest.raises(ValueError):
        SemanticIndex(max_entries=0)


def test_removed_rows_leave_every_other_row_findable() -> None:
    index = SemanticIndex()
    xs = random_vectors(500)
    for i, x in enumerate(xs):
        index.add("scope", x, f"k{i}")
    big = index.nbytes
    for i in range(0, 500, 3):
        index.remove(f"k{i}")
    for i in range(0, 500, 5):
        index.remove(f"k{i}")
    index.remove("never-added")
    alive = [i for i in range(500) if i % 3 and i % 5]
    assert len(index) == len(alive)
    for i in range(500):
        found = index.search("scope", xs[i], 0.999)
        assert (found[0] if found else None) == (f"k{i}" if i in alive else None)
    for i in alive:
        index.remove(f"k{i}")
    assert len(index) == 0 and index.search("scope", xs[1], 0.1) is None
    assert index.nbytes < big  # an emptied scope gives its memory back


def test_expired_entries_are_not_found_and_are_dropped() -> None:
    clock = Clock()
    index = SemanticIndex(clock=clock)
    x, y = random_vectors(2)
    index.add("s", x, "short", ttl=10)
    index.add("s", at_cosine(x, 0.95), "long", ttl=100)
    assert index.search("s", x, 0.9) == ("short", pytest.approx(1.0, abs=1e-6))
    clock.now += 10
    assert index.search("s", x, 0.9) == ("long", pytest.approx(0.95, abs=1e-5))
    assert "short" not in index and len(index) == 1
    index.add("s", y, "other", ttl=10)
    clock.now += 90
    assert index.search("s", x, -1.0) is None  # a threshold that low scores every row
    assert len(index) == 0
    index.add("s", y, "forever")
    clock.now += 1e9
    assert index.search("s", y, 0.9) is not None


# ---------------------------------------------------------------- replicas through Redis


async def test_a_replica_finds_what_another_added(
    redis_a: Redis, redis_b: Redis, prefix: str
) -> None:
    one = SharedSemanticIndex(SemanticIndex(), redis_a, key=prefix + "semantic")
    two = SharedSemanticIndex(SemanticIndex(), redis_b, key=prefix + "semantic")
    x, y = random_vectors(2)
    assert await two.search("s", x, 0.9) is None
    await one.add("s", x, "from-one", ttl=60)
    await two.add("s", y, "from-two", ttl=60)
    assert await two.search("s", at_cosine(x, 0.95), 0.9) == (
        "from-one",
        pytest.approx(0.95, abs=1e-5),
    )
    assert (await one.search("s", y, 0.99) or ("",))[0] == "from-two"
    assert await two.search("other-scope", x, 0.5) is None
    # a replica that starts later reads the whole stream on its first lookup
    three = SharedSemanticIndex(SemanticIndex(), redis_b, key=prefix + "semantic")
    assert (await three.search("s", x, 0.99) or ("",))[0] == "from-one"
    assert len(three.index) == 2


async def test_concurrent_lookups_share_one_read_of_the_stream(redis_a: Redis, prefix: str) -> None:
    one = SharedSemanticIndex(SemanticIndex(), redis_a, key=prefix + "semantic")
    for i, x in enumerate(random_vectors(30)):
        await one.add("s", x, f"k{i}", ttl=60)
    fresh = SharedSemanticIndex(SemanticIndex(), redis_a, key=prefix + "semantic")
    applied = await asyncio.gather(*(fresh.sync() for _ in range(5)))
    assert sorted(applied) == [0, 0, 0, 0, 30] and len(fresh.index) == 30
    assert await fresh.sync() == 0  # nothing new since


async def test_expired_additions_are_not_applied(redis_a: Redis, prefix: str) -> None:
    clock = Clock()
    one = SharedSemanticIndex(SemanticIndex(clock=clock), redis_a, key=prefix + "semantic")
    x = random_vectors(1)[0]
    await one.add("s", x, "k", ttl=10)
    clock.now += 11
    late = SharedSemanticIndex(SemanticIndex(clock=clock), redis_a, key=prefix + "semantic")
    assert await late.sync() == 0 and len(late.index) == 0


async def test_the_stream_is_trimmed_to_about_max_entries(redis_a: Redis, prefix: str) -> None:
    one = SharedSemanticIndex(SemanticIndex(max_entries=100), redis_a, key=prefix + "semantic")
    for i, x in enumerate(random_vectors(1000)):
        await one.add("s", x, f"k{i}", ttl=60)
    assert len(one.index) == 100
    assert 100 <= await redis_a.xlen(prefix + "semantic") < 400


async def test_malformed_stream_entries_are_skipped(
    redis_a: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = prefix + "semantic"
    await redis_a.xadd(key, {b"s": b"s", b"k": b"bad", b"v": b"short", b"e": b"9e99"})
    await redis_a.xadd(key, {b"junk": b"1"})
    one = SharedSemanticIndex(SemanticIndex(), redis_a, key=key)
    x = random_vectors(1)[0]
    await one.add("s", x, "good", ttl=60)
    with caplog.at_level(logging.WARNING, logger="modelyard.cache"):
        assert await one.search("s", x, 0.99) == ("good", pytest.approx(1.0, abs=1e-6))
    assert caplog.text.count("malformed") == 2


async def test_without_redis_a_replica_keeps_what_it_has(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = connect_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    alone = SharedSemanticIndex(SemanticIndex(), client, key="test:cache:nowhere")
    x = random_vectors(1)[0]
    with caplog.at_level(logging.WARNING, logger="modelyard.cache"):
        await alone.add("s", x, "k", ttl=60)
        assert await alone.search("s", x, 0.99) == ("k", pytest.approx(1.0, abs=1e-6))
        alone.remove("k")
        assert await alone.search("s", x, 0.99) is None
    await client.aclose()
    assert "append failed" in caplog.text and "read failed" in caplog.text


async def test_the_request_path_gets_a_local_index_without_redis_and_a_shared_one_with_it(
    redis_a: Redis, prefix: str
) -> None:
    x = random_vectors(1)[0]
    local = create_semantic_index(None, max_entries=10)
    assert isinstance(local, LocalSemanticIndex) and local.index.max_entries == 10
    await local.add("s", x, "k", ttl=60)
    assert await local.search("s", x, 0.99) == ("k", pytest.approx(1.0, abs=1e-6))
    local.remove("k")
    assert await local.search("s", x, 0.1) is None
    shared = create_semantic_index(redis_a, key=prefix + "semantic")
    assert isinstance(shared, SharedSemanticIndex)
    await shared.add("s", x, "k", ttl=60)
    assert await redis_a.xlen(prefix + "semantic") == 1
