"""The ``observability`` settings section (``Settings.observability``)::

    observability:
      otlp_endpoint: http://collector:4318    # OTLP/HTTP; traces go to {endpoint}/v1/traces
      service_name: modelyard                 # the traces' service.name
      log_format: text                        # or json: one JSON object per line
      metrics_max_label_values: 100           # distinct teams (and routes) before "other"

Environment variables override the file: ``MODELYARD_OTLP_ENDPOINT``,
``MODELYARD_LOG_FORMAT``. With no endpoint nothing is traced and the
OpenTelemetry SDK is never imported.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

LogFormat = Literal["text", "json"]


class ObservabilitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    otlp_endpoint: str | None = None
    service_name: str = Field(default="modelyard", min_length=1)
    log_format: LogFormat = "text"
    metrics_max_label_values: int = Field(default=100, ge=1, le=10_000)

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("otlp_endpoint must be an http:// or https:// URL")
        if "@" in parts.netloc:  # it would end up in messages
            raise ValueError("otlp_endpoint must not hold a user or password")
        return value

    def traces_url(self) -> str | None:
        """Where spans are posted: the endpoint's ``/v1/traces`` unless it names a path."""
        if self.otlp_endpoint is None:
            return None
        url = self.otlp_endpoint.rstrip("/")
        return url if url.endswith("/v1/traces") else url + "/v1/traces"
