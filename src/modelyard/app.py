"""``create_app(settings)``: the only place that wires the parts of the gateway together."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web

from modelyard.api import admin, health, openai_api
from modelyard.api.context import (
    MAX_BODY_BYTES,
    REQUEST_LOG,
    ROUTE_STORE,
    ROUTER,
    SETTINGS,
    TRANSPORT,
)
from modelyard.api.errors import gateway_middleware
from modelyard.providers.base import Provider
from modelyard.providers.registry import HOSTS
from modelyard.providers.transport import Transport
from modelyard.routing.router import Router
from modelyard.settings import Deployment, Settings
from modelyard.storage.request_log import RequestLog, create_db_engine, sqlite_url
from modelyard.storage.route_store import RouteStore

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
    transport = Transport()
    providers = [build_provider(d, settings, transport) for d in settings.deployments]
    url = settings.server.database_url or sqlite_url(settings.server.data_dir)
    request_log = RequestLog(create_db_engine(url))

    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[gateway_middleware(os.urandom(6).hex())],
    )
    app[SETTINGS] = settings
    app[TRANSPORT] = transport
    router = app[ROUTER] = Router(settings, providers)
    router.on_refusal = request_log.record_decision
    store = app[ROUTE_STORE] = RouteStore(request_log.engine)
    for name, route in store.load():  # the admin API's changes outlive restarts
        try:
            if route is None:
                router.routes.pop(name, None)
            else:
                router.set_route(route)
        except ValueError as exc:  # its deployment left the config since
            log.warning("stored route %r is not applied: %s", name, exc)
    app[REQUEST_LOG] = request_log
    app[MAX_BODY_BYTES] = settings.server.max_body_bytes

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await transport.start()
        month_start = time.mktime(time.strptime(time.strftime("%Y-%m"), "%Y-%m"))
        for name, tokens_in, tokens_out in await asyncio.to_thread(
            request_log.tokens_since, month_start
        ):
            router.spent(name, tokens_in, tokens_out)  # committed spend survives restarts
        request_log.start()
        yield
        for provider in providers:
            await provider.close()
        await request_log.close()
        await transport.close()

    app.cleanup_ctx.append(lifecycle)
    app.add_routes(health.routes())
    app.add_routes(openai_api.routes())
    app.add_routes(admin.routes())
    return app
