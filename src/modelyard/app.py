"""``create_app(settings)``: the only place that wires the parts of the gateway together."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from modelyard.api import (
    admin,
    anthropic_api,
    debug_admin,
    governance_admin,
    health,
    learned_admin,
    openai_api,
    openapi,
    responses_api,
    ui_api,
)
from modelyard.api.auth import auth_middleware
from modelyard.api.context import (
    GOVERNANCE,
    GOVERNANCE_STORE,
    KEY_RING,
    LEARNER,
    MAX_BODY_BYTES,
    OBSERVABILITY,
    REQUEST_LOG,
    ROUTE_STORE,
    ROUTER,
    SETTINGS,
    TRANSPORT,
)
from modelyard.api.errors import gateway_middleware
from modelyard.api.idempotency import idempotency_middleware, tap_streams
from modelyard.api.response_cache import RESPONSE_CACHE, ResponseCache
from modelyard.cache.store import create_cache_store
from modelyard.errors import ConfigError
from modelyard.governance.auth import LOOPBACK, KeyRing
from modelyard.governance.counters import create_counters
from modelyard.governance.gate import Governance
from modelyard.governance.keys import ADMIN_KEY_ENV, KeyHasher, load_secret
from modelyard.governance.prices import resolve_prices
from modelyard.governance.store import GovernanceStore
from modelyard.observability.hub import observe
from modelyard.providers.base import Provider
from modelyard.providers.registry import HOSTS
from modelyard.providers.transport import Transport
from modelyard.routing.learned.live import LiveLearner
from modelyard.routing.router import Router
from modelyard.settings import Deployment, Settings
from modelyard.storage.idempotency import create_idempotency_store
from modelyard.storage.outcome_store import OutcomeStore
from modelyard.storage.request_log import RequestLog, create_db_engine, sqlite_url
from modelyard.storage.route_store import RouteStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("modelyard")


def build_provider(dep: Deployment, settings: Settings, transport: Transport) -> Provider:
    """The provider of one deployment. Imports are local so that unused adapters cost nothing."""
    if dep.provider in HOSTS:
        from modelyard.providers.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(dep, transport)
    if dep.provider == "anthropic":
        from modelyard.providers.anthropic import AnthropicProvider

        return AnthropicProvider(dep, transport)
    if dep.provider == "gemini":
        from modelyard.providers.gemini import GeminiProvider

        return GeminiProvider(dep, transport)
    from modelyard.providers.local import LocalChatProvider, LocalEmbeddingProvider

    data_dir = settings.server.data_dir
    if dep.kind == "embeddings":
        return LocalEmbeddingProvider(dep, data_dir=data_dir)
    return LocalChatProvider(
        dep,
        data_dir=data_dir,
        threads=settings.server.local_model_threads,
        n_ctx=settings.server.local_context,
    )


def create_app(settings: Settings) -> web.Application:
    """Build the gateway: storage, transport, providers and routes. Nothing starts until run."""
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    resolve_prices(settings)  # an unpriced model is a config error, found at start
    transport = Transport(max_response_bytes=settings.limits.max_upstream_response_bytes)
    providers = [build_provider(d, settings, transport) for d in settings.deployments]
    server = settings.server
    url = server.database_url or sqlite_url(server.data_dir)
    engine = create_db_engine(url)
    request_log = RequestLog(engine, server.data_dir / "spool")
    store = GovernanceStore(engine, KeyHasher(load_secret(server.data_dir)))
    env_admin = os.environ.get(ADMIN_KEY_ENV) or None
    if env_admin is None and not store.has_admin_key():
        _first_admin_key(store)
    ring = KeyRing(
        store,
        loopback_only=server.host in LOOPBACK,
        env_admin_key=env_admin,
        sqlite_path=Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else None,
    )
    ring.load()
    redis = None
    if server.redis_url:
        from modelyard.storage.redis import connect_redis  # not imported by the embedded default

        redis = connect_redis(server.redis_url)
    governance = Governance(*create_counters(redis), request_log)
    idempotency = create_idempotency_store(redis)
    ring.on_reload = governance.forget

    app = web.Application(
        client_max_size=server.max_body_bytes,
        middlewares=[
            gateway_middleware(os.urandom(6).hex()),
            auth_middleware(),
            idempotency_middleware(idempotency),  # after auth: slots are per API key
        ],
    )
    app.on_response_prepare.append(tap_streams)
    app[KEY_RING] = ring
    app[GOVERNANCE] = governance
    app[GOVERNANCE_STORE] = store
    app[SETTINGS] = settings
    app[TRANSPORT] = transport
    router = app[ROUTER] = Router(settings, providers)
    router.on_refusal = request_log.record_decision
    app[OBSERVABILITY] = observe(app, settings.observability, router, governance, request_log)
    shared_health = None
    if redis is not None:
        from modelyard.routing.shared_health import SharedHealth  # imports redis too

        shared_health = SharedHealth(redis, router.health)
    route_store = app[ROUTE_STORE] = RouteStore(engine)
    for name, route in route_store.load():  # the admin API's changes outlive restarts
        try:
            if route is None:
                router.routes.pop(name, None)
            else:
                router.set_route(route)
        except ValueError as exc:  # its deployment left the config since
            log.warning("stored route %r is not applied: %s", name, exc)
    app[REQUEST_LOG] = request_log
    learner = app[LEARNER] = LiveLearner(
        router.providers, router.health, OutcomeStore(engine), request_log
    )
    app[RESPONSE_CACHE] = response_cache = _response_cache(settings, router, redis)
    app[MAX_BODY_BYTES] = settings.server.max_body_bytes

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await transport.start()
        month_start = time.mktime(time.strptime(time.strftime("%Y-%m"), "%Y-%m"))
        for name, tokens_in, tokens_out in await asyncio.to_thread(
            request_log.tokens_since, month_start
        ):
            router.spent(name, tokens_in, tokens_out)  # committed spend survives restarts
        request_log.start()
        if shared_health is not None:
            await shared_health.start()
        yield
        await learner.close()
        await response_cache.close()
        for provider in providers:
            await provider.close()
        await governance.close()
        await request_log.close()
        ring.close()
        if shared_health is not None:
            await shared_health.close()
        if redis is not None:
            await redis.aclose()
        await transport.close()

    app.cleanup_ctx.append(lifecycle)
    app.add_routes(health.routes())
    app.add_routes(openai_api.routes())
    app.add_routes(responses_api.routes())
    app.add_routes(anthropic_api.routes())
    app.add_routes(admin.routes())
    app.add_routes(governance_admin.routes())
    app.add_routes(learned_admin.routes())
    app.add_routes(openapi.routes())  # GET /openapi.json: the public /v1 API
    app.add_routes(debug_admin.routes())  # /admin/debug/runtime: tasks, fds, RSS
    ui_api.setup(app)  # the dashboard at /ui
    return app


def _response_cache(settings: Settings, router: Router, redis: Redis | None) -> ResponseCache:
    """The cache's store, and a semantic index when a route asks for one."""
    conf = settings.cache
    store = create_cache_store(redis, max_entries=conf.max_entries, max_bytes=conf.max_bytes)
    semantic_routes = [r for r in settings.routes if r.cache and r.cache.semantic]
    index = None
    if semantic_routes:
        for route in semantic_routes:
            assert route.cache is not None and route.cache.semantic is not None
            name = route.cache.semantic.embedding
            if router.deployments[name].kind != "embeddings":
                raise ConfigError(
                    f"route {route.name!r}: cache.semantic.embedding {name!r} is not an "
                    "embeddings deployment"
                )
        try:
            from modelyard.cache.semantic import create_semantic_index
        except ImportError:  # pragma: no cover - numpy comes with the local and router extras
            raise ConfigError(
                "the semantic cache needs numpy: pip install 'modelyard[router]'"
            ) from None
        index = create_semantic_index(redis, max_entries=conf.semantic_max_entries)
    return ResponseCache(conf, store, router, index)


def _first_admin_key(store: GovernanceStore) -> None:
    """No admin key anywhere: make one and show it this once, on the terminal, never in a log."""
    key, _ = store.create_key(name="first admin key", team=None, role="admin")
    sys.stderr.write(
        "\nmodelyard: created the admin key; it is shown only now, keep it safe:\n"
        f"    {key}\n"
        "  (admin API: Authorization: Bearer <key>; or set MODELYARD_ADMIN_KEY)\n\n"
    )
    sys.stderr.flush()
