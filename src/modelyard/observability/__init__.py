"""Observability: Prometheus metrics, OpenTelemetry traces and structured logs.

``config`` is the ``observability`` settings section; ``metrics`` the
``/metrics`` collector; ``tracing`` the spans, exported over OTLP/HTTP only
when an endpoint is configured (the SDK is imported then and only then);
``logs`` the JSON log format and the request-id context; ``hub`` the one
object ``create_app`` wires into the request path. Nothing here runs at import.
"""
