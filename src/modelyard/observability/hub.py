"""``Observability``: what the request path calls, wiring metrics, traces and logs together.

``create_app`` makes one per app (``OBSERVABILITY``) and hands its hooks to the
router (``on_attempt``, ``on_plan``), the governance gate (``on_spent``) and
the ledger (``storage_span``); ``api.generation.Call.done`` calls
``finished`` with the request's ledger row. Each hook is a plain method call
on the event loop; tracing's work is skipped by one ``None`` test when no OTLP
endpoint is configured.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from modelyard.observability.metrics import GatewayMetrics

if TYPE_CHECKING:
    from modelyard.governance.budgets import BudgetScope
    from modelyard.governance.gate import Governance
    from modelyard.observability.config import ObservabilitySettings
    from modelyard.observability.tracing import Tracing
    from modelyard.routing.decision import Attempt
    from modelyard.routing.health import HealthBoard
    from modelyard.routing.router import Router
    from modelyard.storage.request_log import RequestLog, RequestRecord

log = logging.getLogger("modelyard.requests")


class Observability:
    def __init__(self, conf: ObservabilitySettings, vendors: dict[str, str], health: HealthBoard):
        self.metrics = GatewayMetrics(conf.metrics_max_label_values)
        self.metrics.vendors = vendors
        self.metrics.health = health
        self.tracing: Tracing | None = None
        if conf.otlp_endpoint is not None:
            from modelyard.observability.tracing import Tracing

            self.tracing = Tracing(conf, vendors)
        self._debug = log.isEnabledFor(logging.DEBUG)

    def finished(self, rec: RequestRecord, request: web.Request) -> None:
        """A request is over: count it, describe its span, and at DEBUG log one line."""
        self.metrics.request(rec)
        if self.tracing is not None:
            span = request.get(self.tracing.span_key)
            if span is not None:
                self.tracing.finished(span, rec)
        if self._debug:
            log.debug(
                "%s %s: route %s, deployment %s, status %d, %.1f ms",
                rec.endpoint,
                rec.model,
                rec.route,
                rec.deployment,
                rec.status,
                rec.latency_ms,
            )

    def attempted(self, record: Attempt, t0: float) -> None:
        self.metrics.attempt(record)
        if self.tracing is not None:
            self.tracing.attempted(record, t0)

    def spent(self, scope: BudgetScope, spent_micros: int) -> None:
        self.metrics.budget(scope.counter, scope.limit_micros, spent_micros)

    async def scrape(self, request: web.Request) -> web.Response:
        """``GET /metrics``: open like the health probes; no label holds a secret."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def close(self) -> None:
        if self.tracing is not None:
            self.tracing.close()


def observe(
    app: web.Application,
    conf: ObservabilitySettings,
    router: Router,
    governance: Governance,
    request_log: RequestLog,
) -> Observability:
    """Make the app's ``Observability``: ``/metrics``, the hooks, and spans when configured."""
    vendors = {name: dep.provider for name, dep in router.deployments.items()}
    obs = Observability(conf, vendors, router.health)
    router.on_attempt = obs.attempted
    governance.on_spent = obs.spent
    app.router.add_get("/metrics", obs.scrape)
    tracing = obs.tracing
    if tracing is not None:
        router.on_plan = tracing.planned
        request_log.storage_span = tracing.storage_write
        app.middlewares.insert(1, tracing.middleware())  # inside the one that names requests

    async def close(app: web.Application) -> None:
        obs.close()  # after the ledger's last write: the cleanup context runs first

    app.on_cleanup.append(close)
    return obs
