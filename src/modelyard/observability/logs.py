"""The gateway's log lines: plain text for a terminal (the default) or one JSON object a line.

``MODELYARD_LOG_FORMAT=json`` (or ``observability.log_format: json``) writes
each record as ``{"ts", "level", "logger", "message"}``, with ``request_id``
when it was logged while a request was being served and ``exc`` for a
traceback. The request id comes from ``REQUEST_ID``, a context variable that
the gateway's middleware sets for the request's task (a context variable is
per task, not shared state: it is the one module-level object here).

What is never logged: credentials (no code path formats one; the canary test
checks every level), and the prompts and completions of requests, unless their
route sets ``log_content: true``; then ``log_content`` writes them at INFO on
the ``modelyard.content`` logger.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "modelyard_request_id", default=None
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CONTENT_LOGGER = "modelyard.content"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; fields given as ``extra={"fields": {...}}`` too."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            out["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str, log_format: str) -> None:
    """Send every logger's records to stderr in ``log_format`` (``text`` or ``json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def log_content(route: str, prompt: dict[str, Any], completion: bytes) -> None:
    """A request's prompt and answer, for a route that opted in (``log_content: true``)."""
    text = completion.decode("utf-8", errors="replace")
    logging.getLogger(CONTENT_LOGGER).info(
        "route %s: request %s answer %s",
        route,
        orjson.dumps(prompt).decode(),
        text,
        extra={"fields": {"route": route}},
    )
