"""The semantic cache's index: nearest cached question by cosine, within one scope.

A scope (``cache.keys.semantic_key``) is everything about a request except
the wording of its last question; only entries of the same scope are
compared. Vectors are unit length (all-MiniLM-L6-v2: 384 float32), so cosine
similarity is a dot product.

How a lookup stays fast and exact
---------------------------------
A float32 scan of 100,000 vectors reads 150 MB and takes 15 to 25 ms on this
2-core machine (memory bound), so it is done only for a handful of candidates. Each vector
also has a 384-bit code: the signs of the vector after a fixed random
rotation (SimHash). For two vectors at angle θ, each bit differs with
probability θ/π, whatever the data looks like, since the rotation is random.
A lookup for threshold t computes the Hamming distance to every code of the
scope (48 bytes a vector, column-major: about 0.5 ms for 100,000) and keeps
the rows within ``radius(t)``: the expected distance at cosine t plus six
standard deviations (the bits of orthogonal hyperplanes vary less than
independent ones do, so this errs on the safe side). Only those candidates
are scored, in float32, exactly. A vector at cosine >= t is left out with a
probability under 1e-8 for t <= 0.95 and under 1e-7 up to 0.99 (the binomial
tail, ``radius``); ``bench/cache_lookup.py`` checks the answers against a
full float32 scan. When more than an eighth of the scope passes (a scope of
near-identical questions, which a cache that adds only after a miss rarely
holds), every row is scored: at worst the plain scan and the code pass.

Memory: about 2 KB an entry (1.5 KB the float32 vector; the code, expiry,
key and a scope's room to grow, up to a quarter, the rest): 190 MB at 100,000.
Entries leave oldest-added first past ``max_entries``, when they expire, or
when ``remove`` is called (the store no longer has the answer).

Replicas
--------
The request path calls a ``SemanticLookup`` (async): ``LocalSemanticIndex``
in one process, ``SharedSemanticIndex`` with Redis; ``create_semantic_index``
picks. ``SharedSemanticIndex`` keeps one ``SemanticIndex`` per process in step
through a Redis stream of additions (scope, entry key, vector bytes, expiry
time), trimmed to about ``max_entries``. Adding appends to the stream (and
to this process's index at once); every lookup first reads what was appended
since the last one (one ``XRANGE``, usually empty), so a process finds an
entry another added as soon as that ``add`` has returned. A new process
reads the whole stream on its first lookup. The answers themselves are in
the shared ``RedisCacheStore``.

What does not live here: computing embeddings (``providers.local``), the
scope and the text (``cache.keys``), the entries (``cache.store``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from redis.asyncio import Redis
    from redis.typing import EncodableT, FieldT

    Vector = Sequence[float] | npt.NDArray[Any]

log = logging.getLogger("modelyard.cache")

DIMENSIONS = 384  # all-MiniLM-L6-v2
ROTATION_SEED = 20_240_601  # any fixed seed: codes are only compared within one process
SIGMAS = 6.0  # how far past the expected Hamming distance a match may lie
SCAN_FRACTION = 0.125  # past this share of a scope's rows as candidates, score them all
STREAM_KEY = "modelyard:cache:semantic"
_READ_BATCH = 1000
_MIN_CAPACITY = 16


class _Scope:
    """One scope's rows: codes (column-major), vectors, expiry times, entry keys."""

    __slots__ = ("codes", "expires", "keys", "n", "rows", "vectors")

    def __init__(self, words: int, dimensions: int, capacity: int = _MIN_CAPACITY):
        import numpy as np

        self.codes = np.zeros((words, capacity), dtype=np.uint64)
        self.vectors = np.zeros((capacity, dimensions), dtype=np.float32)
        self.expires = np.zeros(capacity, dtype=np.float64)
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}
        self.n = 0

    @property
    def capacity(self) -> int:
        return len(self.expires)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.vectors.nbytes + self.expires.nbytes)

    def resize(self, capacity: int) -> None:
        import numpy as np

        n = self.n
        codes = np.zeros((self.codes.shape[0], capacity), dtype=np.uint64)
        codes[:, :n] = self.codes[:, :n]
        vectors = np.zeros((capacity, self.vectors.shape[1]), dtype=np.float32)
        vectors[:n] = self.vectors[:n]
        expires = np.zeros(capacity, dtype=np.float64)
        expires[:n] = self.expires[:n]
        self.codes, self.vectors, self.expires = codes, vectors, expires

    def put(self, key: str, code: npt.NDArray[np.uint64], vector: Any, expires: float) -> None:
        row = self.rows.get(key)
        if row is None:
            if self.n == self.capacity:  # grow by a quarter: a big scope wastes little
                self.resize(self.capacity + max(_MIN_CAPACITY, self.capacity // 4))
            row = self.n
            self.n += 1
            self.keys.append(key)
            self.rows[key] = row
        self.codes[:, row] = code
        self.vectors[row] = vector
        self.expires[row] = expires

    def drop(self, key: str) -> None:
        """Remove a row by moving the last row into its place."""
        row = self.rows.pop(key)
        last = self.n - 1
        if row != last:
            moved = self.keys[last]
            self.codes[:, row] = self.codes[:, last]
            self.vectors[row] = self.vectors[last]
            self.expires[row] = self.expires[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.keys.pop()
        self.n = last
        if self.capacity > _MIN_CAPACITY and self.n <= self.capacity // 4:
            self.resize(max(_MIN_CAPACITY, self.capacity // 2))


def radius(threshold: float, bits: int = DIMENSIONS, sigmas: float = SIGMAS) -> int:
    """The largest Hamming distance at which a vector at cosine >= ``threshold`` may lie."""
    if threshold <= 0:
        return bits
    p = math.acos(min(1.0, threshold)) / math.pi
    return min(bits, math.floor(bits * p + sigmas * math.sqrt(bits * p * (1 - p))) + 1)


class SemanticIndex:
    """Unit vectors by scope, each pointing at a cache entry; cosine search above a threshold.

    Synchronous and in-process: a lookup takes about a millisecond at 100,000
    entries in one scope, so it runs on the event loop.
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        dimensions: int = DIMENSIONS,
        clock: Callable[[], float] = time.time,
        seed: int = ROTATION_SEED,
    ):
        import numpy as np

        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.dimensions = dimensions
        self.clock = clock
        self._words = -(-dimensions // 64)
        gaussian = np.random.default_rng(seed).standard_normal((dimensions, dimensions))
        rotation, _ = np.linalg.qr(gaussian)
        self._rotation = rotation.astype(np.float32)
        self._scopes: dict[str, _Scope] = {}
        self._order: OrderedDict[str, str] = OrderedDict()  # entry key -> scope, oldest first
        self._scratch = np.zeros((self._words, 0), dtype=np.uint64)
        self._counts = np.zeros((self._words, 0), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, entry_key: object) -> bool:
        return entry_key in self._order

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (vectors, codes, expiry times, scratch)."""
        arrays = sum(s.nbytes for s in self._scopes.values())
        return int(arrays + self._scratch.nbytes + self._counts.nbytes + self._rotation.nbytes)

    def unit(self, vector: Vector) -> npt.NDArray[np.float32]:
        """``vector`` as float32 of unit length; refuses a wrong size, a zero or a NaN."""
        import numpy as np

        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dimensions:
            raise ValueError(f"a vector has {self.dimensions} dimensions, not {v.shape[0]}")
        norm = float(np.linalg.norm(v))
        if not (norm > 0 and math.isfinite(norm)):
            raise ValueError("a vector must be finite and not zero")
        return v if abs(norm - 1.0) < 1e-6 else v / np.float32(norm)

    def code(self, unit: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
        """The vector's SimHash: the signs after the rotation, packed into 64-bit words."""
        import numpy as np

        packed = np.packbits((self._rotation @ unit) > 0, bitorder="little")
        words = np.zeros(self._words * 8, dtype=np.uint8)
        words[: len(packed)] = packed
        return words.view(np.uint64)

    def add(self, scope: str, vector: Vector, entry_key: str, ttl: float | None = None) -> None:
        """Index ``entry_key`` under ``scope``; again, it replaces its earlier vector."""
        v = self.unit(vector)
        expires = math.inf if ttl is None else self.clock() + ttl
        old = self._order.pop(entry_key, None)
        if old is not None and old != scope:
            self._drop_row(old, entry_key)
        rows = self._scopes.get(scope)
        if rows is None:
            rows = self._scopes[scope] = _Scope(self._words, self.dimensions)
        rows.put(entry_key, self.code(v), v, expires)
        self._order[entry_key] = scope
        while len(self._order) > self.max_entries:
            oldest, where = self._order.popitem(last=False)
            self._drop_row(where, oldest)

    def remove(self, entry_key: str) -> None:
        """Forget ``entry_key`` (its answer left the store); unknown keys are ignored."""
        scope = self._order.pop(entry_key, None)
        if scope is not None:
            self._drop_row(scope, entry_key)

    def _drop_row(self, scope: str, entry_key: str) -> None:
        rows = self._scopes[scope]
        rows.drop(entry_key)
        if rows.n == 0:
            del self._scopes[scope]

    def search(self, scope: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        """The live entry of ``scope`` most similar to ``vector``, if at cosine >= ``threshold``.

        Returns its key and the similarity. Expired entries met on the way are removed.
        """
        import numpy as np

        rows = self._scopes.get(scope)
        if rows is None:
            return None
        q = self.unit(vector)
        n = rows.n
        # scores are float32: compare at that precision (0.9 is 0.8999999762 in float32)
        threshold = float(np.float32(threshold))
        reach = radius(threshold, self.dimensions)
        candidates = None  # None: score every row
        if reach < self.dimensions:
            distance = self._hamming(rows, self.code(q))
            candidates = np.flatnonzero(distance <= reach)
            if len(candidates) > max(SCAN_FRACTION * n, 64):
                candidates = None  # gathering that many rows costs more than reading them all
        if candidates is None:
            scores = rows.vectors[:n] @ q
            expires = rows.expires[:n]
            at = np.arange(n)
        else:
            scores = rows.vectors[candidates] @ q
            expires = rows.expires[candidates]
            at = candidates
        if not len(at):
            return None
        dead = expires <= self.clock()
        if dead.any():
            scores[dead] = -np.inf
        i = int(np.argmax(scores))
        best = float(scores[i])
        found = (rows.keys[int(at[i])], best) if best >= threshold else None
        if dead.any():
            for key in [rows.keys[int(r)] for r in at[dead]]:
                self.remove(key)
        return found

    def _hamming(self, rows: _Scope, code: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint16]:
        import numpy as np

        n = rows.n
        if self._scratch.shape[1] < n:
            size = max(n, 2 * self._scratch.shape[1])
            self._scratch = np.empty((self._words, size), dtype=np.uint64)
            self._counts = np.empty((self._words, size), dtype=np.uint8)
        diff, counts = self._scratch[:, :n], self._counts[:, :n]
        np.bitwise_xor(rows.codes[:, :n], code[:, None], out=diff)
        np.bitwise_count(diff, out=counts)
        total: npt.NDArray[np.uint16] = counts[0].astype(np.uint16)
        for word in range(1, self._words):
            total += counts[word]
        return total


class SemanticLookup(Protocol):
    """The semantic index as the request path calls it, whether one process's or shared."""

    async def add(self, scope: str, vector: Vector, entry_key: str, ttl: float) -> None: ...

    async def search(
        self, scope: str, vector: Vector, threshold: float
    ) -> tuple[str, float] | None: ...

    def remove(self, entry_key: str) -> None: ...


class LocalSemanticIndex:
    """One process's ``SemanticIndex`` behind the ``SemanticLookup`` interface."""

    def __init__(self, index: SemanticIndex):
        self.index = index

    async def add(self, scope: str, vector: Vector, entry_key: str, ttl: float) -> None:
        self.index.add(scope, vector, entry_key, ttl)

    async def search(
        self, scope: str, vector: Vector, threshold: float
    ) -> tuple[str, float] | None:
        return self.index.search(scope, vector, threshold)

    def remove(self, entry_key: str) -> None:
        self.index.remove(entry_key)


def create_semantic_index(
    redis: Redis | None, *, max_entries: int = 100_000, key: str = STREAM_KEY
) -> SemanticLookup:
    """Shared through Redis when the gateway has it (replicas find each other's entries),
    else this process's own. Builds the rotation (a few ms); call it in ``create_app``."""
    index = SemanticIndex(max_entries=max_entries)
    if redis is None:
        return LocalSemanticIndex(index)
    return SharedSemanticIndex(index, redis, key=key)


class SharedSemanticIndex:
    """A ``SemanticIndex`` per process, kept in step with every replica through a Redis stream.

    ``add`` appends (scope, key, vector, expiry) with ``XADD MAXLEN ~``; each
    ``search`` first applies what was appended since the last read. Redis
    failing leaves each process with what it has: logged, never raised.
    """

    def __init__(self, index: SemanticIndex, redis: Redis, *, key: str = STREAM_KEY):
        from redis.exceptions import RedisError

        self.index = index
        self.redis = redis
        self.key = key
        self._last_id = b""  # the last stream entry applied; empty: read from the start
        self._reading: asyncio.Event | None = None
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError)

    async def add(self, scope: str, vector: Vector, entry_key: str, ttl: float) -> None:
        v = self.index.unit(vector)
        self.index.add(scope, v, entry_key, ttl)  # this process sees it at once
        fields: dict[FieldT, EncodableT] = {
            b"s": scope,
            b"k": entry_key,
            b"v": v.astype("<f4").tobytes(),
            b"e": repr(self.index.clock() + ttl),
        }
        try:
            await self.redis.xadd(self.key, fields, maxlen=self.index.max_entries, approximate=True)
        except self._failures as exc:
            log.warning("semantic cache: Redis append failed, kept in this process: %s", exc)

    async def search(
        self, scope: str, vector: Vector, threshold: float
    ) -> tuple[str, float] | None:
        await self.sync()
        return self.index.search(scope, vector, threshold)

    def remove(self, entry_key: str) -> None:
        """Forget an entry in this process (its answer is gone from the shared store)."""
        self.index.remove(entry_key)

    async def sync(self) -> int:
        """Apply the stream's new additions; returns how many. One read at a time: a call
        made while another reads waits for that read instead of starting its own."""
        if self._reading is not None:
            await self._reading.wait()
            return 0
        self._reading = done = asyncio.Event()
        applied = 0
        try:
            while True:
                low = b"(" + self._last_id if self._last_id else b"-"
                batch = await self.redis.xrange(self.key, min=low, max=b"+", count=_READ_BATCH)
                for entry_id, fields in batch or ():
                    assert isinstance(entry_id, bytes), "the client must not decode responses"
                    applied += self._apply(fields or {})
                    self._last_id = entry_id
                if len(batch or ()) < _READ_BATCH:
                    break
        except self._failures as exc:
            log.warning("semantic cache: Redis read failed, searching this process's: %s", exc)
        finally:
            self._reading = None
            done.set()
        return applied

    def _apply(self, fields: Mapping[bytes | str, bytes | str]) -> int:
        import numpy as np

        try:
            ttl = float(fields[b"e"]) - self.index.clock()
            if ttl <= 0:
                return 0
            vector, scope, key = fields[b"v"], fields[b"s"], fields[b"k"]
            if not (isinstance(vector, bytes) and isinstance(scope, bytes)):
                raise ValueError("the client must not decode responses")
            key = key.decode() if isinstance(key, bytes) else key
            self.index.add(scope.decode(), np.frombuffer(vector, dtype="<f4"), key, ttl)
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            log.warning("semantic cache: a stream entry is malformed: %s", exc)
            return 0
        return 1
