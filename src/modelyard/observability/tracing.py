"""OpenTelemetry spans of each request, exported over OTLP/HTTP, built only when configured.

The span tree of one generation::

    POST /v1/chat/completions          (server span; route, deployment, vendor, team,
    ├── modelyard.route                 status, tokens, cost: never prompt text or keys)
    ├── modelyard.attempt              (deployment, vendor, retry, hedge, outcome, status)
    └── modelyard.attempt              (a retry, a fallback or a hedge)

and, on their own, ``modelyard.storage.write`` spans for the ledger's batched
writes (rows, decisions). The routing and attempt spans are written when the
step is over, with the start time it had (the router records each step's
timing anyway), so the request path holds no span objects of its own and the
router stays free of OpenTelemetry. With no ``otlp_endpoint`` no ``Tracing``
exists: no span is created and ``opentelemetry`` is not imported.

The provider is the gateway's own (``TracerProvider`` made here, never set as
the process's global one); spans are batched and posted by the SDK's
background thread, and flushed at shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from modelyard.api.context import REQUEST_ID
from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.observability.config import ObservabilitySettings
    from modelyard.routing.decision import Attempt, Decision
    from modelyard.storage.request_log import RequestRecord

SPAN = web.RequestKey("trace_span", object)  # the request's server span


class Tracing:
    def __init__(self, conf: ObservabilitySettings, vendors: dict[str, str]):
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:  # pragma: no cover - the dev install has them
            raise ConfigError(
                "observability.otlp_endpoint needs OpenTelemetry: pip install 'modelyard[otel]'"
            ) from None
        self._trace = trace
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": conf.service_name})
        )
        exporter = OTLPSpanExporter(endpoint=conf.traces_url(), timeout=5)
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("modelyard")
        self.vendors = vendors  # deployment -> vendor
        self.span_key = SPAN

    def middleware(self) -> Any:
        """The server span of each request; it is current while the request is served."""
        tracer, trace = self.tracer, self._trace
        server = trace.SpanKind.SERVER

        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            resource = request.match_info.route.resource
            path = resource.canonical if resource is not None else "unmatched"
            with tracer.start_as_current_span(
                f"{request.method} {path}",
                kind=server,
                attributes={
                    "http.request.method": request.method,
                    "http.route": path,
                    "modelyard.request_id": request[REQUEST_ID],
                },
                record_exception=False,  # an error's message may quote an upstream's
                set_status_on_exception=False,
            ) as span:
                request[SPAN] = span
                try:
                    response: web.StreamResponse = await handler(request)
                except web.HTTPException as exc:
                    _status(trace, span, exc.status)
                    raise
                except Exception as exc:
                    span.set_attribute("error.type", type(exc).__name__)
                    _status(trace, span, getattr(exc, "status", 500))
                    raise
                _status(trace, span, response.status)
                return response

        return middleware

    # -------------------------------------------------- the router's steps, once over

    def planned(self, decision: Decision) -> None:
        """The routing decision, as a span from its start to now."""
        now = time.time_ns()
        attributes: dict[str, Any] = {
            "modelyard.route": decision.route,
            "modelyard.policy": list(decision.policy),
            "modelyard.candidates": decision.candidates,
            "modelyard.order": decision.order,
            "modelyard.removed": list(decision.removed),
        }
        if decision.error is not None:
            attributes["modelyard.refused"] = True
        start = min(now, int(decision.ts * 1e9))
        self.tracer.start_span("modelyard.route", start_time=start, attributes=attributes).end(
            end_time=now
        )

    def attempted(self, record: Attempt, t0: float) -> None:
        """One upstream attempt; ``t0``: its ``perf_counter`` start."""
        now = time.time_ns()
        start = now - int((time.perf_counter() - t0) * 1e9)
        span = self.tracer.start_span(
            "modelyard.attempt",
            kind=self._trace.SpanKind.CLIENT,
            start_time=start,
            attributes={
                "modelyard.deployment": record.deployment,
                "modelyard.vendor": self.vendors.get(record.deployment, ""),
                "modelyard.retry": record.retry,
                "modelyard.hedge": record.hedge,
                "modelyard.outcome": record.outcome,
                **({"http.response.status_code": record.status} if record.status else {}),
            },
        )
        if record.outcome not in ("ok", "cancelled"):
            span.set_status(self._trace.StatusCode.ERROR)
            span.set_attribute("error.type", record.outcome)
        span.end(end_time=now)

    def finished(self, span: Any, rec: RequestRecord) -> None:
        """What the ledger row says of the request, on its server span."""
        attributes: dict[str, Any] = {
            "modelyard.endpoint": rec.endpoint,
            "modelyard.status": rec.status,
            "modelyard.stream": rec.stream,
            "modelyard.input_tokens": rec.input_tokens,
            "modelyard.output_tokens": rec.output_tokens,
            "modelyard.cost_usd": rec.cost_micros / 1e6,
        }
        for name, value in (
            ("modelyard.route", rec.route),
            ("modelyard.deployment", rec.deployment),
            ("modelyard.vendor", rec.provider),
            ("modelyard.team", rec.team),
            ("modelyard.cache", rec.cache),
            ("modelyard.ttft_ms", rec.ttft_ms),
            ("error.type", rec.error_type),
        ):
            if value is not None:
                attributes[name] = value
        span.set_attributes(attributes)

    @contextmanager
    def storage_write(self, rows: int, decisions: int) -> Iterator[None]:
        """A span around one write of the ledger (its worker thread's)."""
        with self.tracer.start_as_current_span(
            "modelyard.storage.write",
            attributes={"modelyard.rows": rows, "modelyard.decisions": decisions},
            record_exception=False,  # a driver's message is not for a trace
        ):
            yield

    def close(self) -> None:
        self.provider.shutdown()  # flushes what is batched


def _status(trace: Any, span: Any, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)
