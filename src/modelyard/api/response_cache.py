"""The response cache on the request path: look up before routing, replay a hit, store a miss.

``ResponseCache.lookup`` runs in ``generation.generate`` once the route is
known. A request is looked up when caching is on for its route (the
gateway-wide ``cache.enabled`` or the route's ``cache.enabled``) and it is
deterministic enough (``cache.keys.cacheable``: temperature 0 or a seed) or
the route caches ``always``. The exact key covers the caller's team, the route,
the wire endpoint and every output-changing field of the body; a semantic
route also searches for a cached request that means the same (its last user
turn embedded by the route's embeddings deployment). The client's
``Cache-Control`` may bypass the lookup (``no-cache``), forbid storing
(``no-store``) or bound the age and lifetime (``max-age``).

A hit is replayed byte for byte, as the answer or stream that was sent the
first time (``X-Modelyard-Cache: exact|semantic``), routes and calls nothing,
costs nothing, and books what it saved in the ledger; the routing decision
says how it was found (the threshold and similarity of a semantic hit). A miss
is stored only when it is a whole success: a 200 answer, or a stream that
ended with its format's final event and no error (``cache.replay``). Not here:
keys, stores, the index (``modelyard.cache``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from modelyard.api.context import DEPLOYMENT_HEADER, REQUEST_ID, SSE_HEADERS
from modelyard.cache.config import CacheSettings, RouteCache
from modelyard.cache.keys import CacheControl, cacheable, exact_key, parse_cache_control
from modelyard.cache.replay import answer_cacheable, replay_pieces
from modelyard.cache.store import CacheStore, Entry
from modelyard.errors import GatewayError
from modelyard.routing.router import Plan, Router
from modelyard.types import EmbeddingRequest, Usage

if TYPE_CHECKING:
    from modelyard.cache.semantic import SemanticLookup

log = logging.getLogger("modelyard.cache")

CACHE_HEADER = "X-Modelyard-Cache"
_NO_ROUTE_CACHE = RouteCache()


@dataclass(slots=True)
class Lookup:
    """One request's cache lookup: its key, and the entry found, if any."""

    key: str
    control: CacheControl
    ttl: float
    entry: Entry | None = None
    how: str | None = None  # "exact" | "semantic" when ``entry`` was found
    scope: str | None = None  # the semantic scope, and the request's embedding
    vector: list[float] | None = None
    explained: dict[str, Any] | None = None


class ResponseCache:
    def __init__(
        self,
        settings: CacheSettings,
        store: CacheStore,
        router: Router,
        semantic: SemanticLookup | None = None,
    ):
        self.settings = settings
        self.store = store
        self.router = router
        self.semantic = semantic
        self._pending: set[asyncio.Task[None]] = set()

    def _route_conf(self, plan: Plan) -> RouteCache | None:
        conf = plan.route.cache or _NO_ROUTE_CACHE
        on = self.settings.enabled if conf.enabled is None else conf.enabled
        return conf if on else None

    async def lookup(
        self,
        request: web.Request,
        plan: Plan,
        endpoint: str,
        body: dict[str, Any],
        team: str | None,
    ) -> Lookup | None:
        """The request's lookup, with the entry when it is a hit; None when not cached."""
        conf = self._route_conf(plan)
        if conf is None or not (conf.always or cacheable(body)):
            return None
        header = request.headers.get("Cache-Control")
        control = parse_cache_control(header)
        ttl = control.ttl(conf.ttl or self.settings.ttl, self.settings.max_ttl)
        route = plan.route.name
        found = Lookup(exact_key(team, route, endpoint, body), control, ttl)
        explained: dict[str, Any] = {"key": found.key[:16]}
        found.explained = explained
        if not control.no_cache:
            entry = await self.store.get(found.key)
            if entry is not None and control.may_serve(entry.age()):
                found.entry, found.how = entry, "exact"
        if conf.semantic is not None and self.semantic is not None:
            await self._semantic(found, conf, team, route, endpoint, body)
        explained["result"] = found.how or "miss"
        plan.decision.cache = explained
        return found

    async def _semantic(
        self,
        found: Lookup,
        conf: RouteCache,
        team: str | None,
        route: str,
        endpoint: str,
        body: dict[str, Any],
    ) -> None:
        from modelyard.cache.keys import semantic_key

        semantic = conf.semantic
        assert semantic is not None and self.semantic is not None
        explained = found.explained
        assert explained is not None
        explained["threshold"] = semantic.threshold
        if found.entry is not None:
            return
        key = semantic_key(team, route, endpoint, body)
        if key is None:
            explained["semantic"] = "the last turn is not plain user text"
            return
        provider = self.router.providers[semantic.embedding]
        try:
            asked = EmbeddingRequest(model=semantic.embedding, input=key.text)
            embedded = await provider.embed(asked)
        except GatewayError as err:  # no semantic lookup, and nothing to index: still an answer
            explained["semantic"] = f"embedding failed: {err.message}"
            return
        found.scope, found.vector = key.scope, embedded.vectors[0]
        if found.control.no_cache:
            return
        near = await self.semantic.search(key.scope, found.vector, semantic.threshold)
        if near is None:
            return
        entry = await self.store.get(near[0])
        if entry is None:
            self.semantic.remove(near[0])  # expired or evicted from the store
            return
        if found.control.may_serve(entry.age()):
            found.entry, found.how = entry, "semantic"
            explained["similarity"] = round(near[1], 6)
            explained["matched"] = near[0][:16]

    async def replay(self, request: web.Request, found: Lookup) -> web.StreamResponse:
        """Send the entry as it was sent the first time."""
        entry = found.entry
        assert entry is not None and found.how is not None
        headers = {DEPLOYMENT_HEADER: entry.deployment, CACHE_HEADER: found.how}
        if not entry.stream:
            return web.Response(
                body=entry.body, headers={"Content-Type": entry.content_type, **headers}
            )
        reply = web.StreamResponse(headers={**SSE_HEADERS, **headers})
        reply.headers["X-Request-Id"] = request[REQUEST_ID]
        await reply.prepare(request)
        for piece in replay_pieces(entry.body):
            await reply.write(piece)
        return reply

    def keep(
        self,
        found: Lookup,
        endpoint: str,
        deployment: str,
        data: bytes,
        usage: Usage,
        cost: int,
        *,
        stream: bool,
    ) -> None:
        """Store a whole successful answer in the background (the client is not kept waiting)."""
        if found.ttl <= 0 or not answer_cacheable(endpoint, 200, data, stream=stream):
            return
        content = SSE_HEADERS["Content-Type"] if stream else "application/json"
        entry = Entry(data, stream, content, deployment, usage, cost, time.time())
        task = asyncio.get_running_loop().create_task(self._put(found, entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, found: Lookup, entry: Entry) -> None:
        try:
            await self.store.put(found.key, entry, found.ttl)
            if self.semantic is not None and found.scope is not None and found.vector:
                await self.semantic.add(found.scope, found.vector, found.key, found.ttl)
        except Exception as err:  # a cache that cannot store loses a saving, not an answer
            log.warning("cache: an answer was not stored: %s", type(err).__name__)

    async def close(self) -> None:
        await asyncio.gather(*list(self._pending), return_exceptions=True)


RESPONSE_CACHE = web.AppKey("response_cache", ResponseCache)
