"""Upstream failures in: the one place that turns what a vendor answered into our errors.

The HTTP status decides first (``STATUS_TABLE``); the vendor's own error code
refines it where the status is ambiguous (an Anthropic 529 ``overloaded_error``,
a Gemini ``RESOURCE_EXHAUSTED``, an OpenAI ``context_length_exceeded``). The
vendor's message is kept, with anything that looks like a credential removed,
and with the credentials the gateway sent it: an upstream may repeat the key
or header it was given, and its message reaches clients, logs and the ledger.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from modelyard.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
    UnprocessableError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from modelyard.providers.http1 import ProtocolError

STATUS_TABLE: dict[int, type[GatewayError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: UpstreamTimeoutError,
    413: RequestTooLargeError,
    422: UnprocessableError,
    429: RateLimitedError,
    500: UpstreamError,
    502: UpstreamBadResponseError,
    503: UpstreamUnavailableError,
    504: UpstreamTimeoutError,
    529: UpstreamUnavailableError,  # Anthropic: overloaded
}

# Vendor error codes / types / statuses that say more than the HTTP status.
VENDOR_CODES: dict[str, type[GatewayError]] = {
    # Anthropic error.type
    "overloaded_error": UpstreamUnavailableError,
    "rate_limit_error": RateLimitedError,
    "request_too_large": RequestTooLargeError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    # Google RPC status
    "RESOURCE_EXHAUSTED": RateLimitedError,
    "UNAVAILABLE": UpstreamUnavailableError,
    "DEADLINE_EXCEEDED": UpstreamTimeoutError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "INVALID_ARGUMENT": InvalidRequestError,
    "FAILED_PRECONDITION": InvalidRequestError,
    "NOT_FOUND": NotFoundError,
    # OpenAI error.code
    "rate_limit_exceeded": RateLimitedError,
    "insufficient_quota": RateLimitedError,
    "context_length_exceeded": InvalidRequestError,
    "invalid_api_key": AuthenticationError,
    "model_not_found": NotFoundError,
}

_SECRETISH = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{4,}|AIza[0-9A-Za-z_\-]{10,}|(?i:bearer)\s+\S+|key=[^&\s\"]+)"
)


# Request headers whose values are never credentials; every other value sent may be one.
_PUBLIC_HEADERS = frozenset({"content-type", "accept", "anthropic-version"})
_SHORTEST_SECRET = 8  # shorter header values are flags and names, and too common to remove


def sent_credentials(headers: Mapping[str, str]) -> list[str]:
    """The header values of a request that may be credentials (and their tokens), longest first."""
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() not in _PUBLIC_HEADERS:
            found.add(value.strip())
            found.add(value.partition(" ")[2].strip())  # the token of "Bearer <token>"
    return sorted((v for v in found if len(v) >= _SHORTEST_SECRET), key=len, reverse=True)


def scrub(text: str, credentials: Iterable[str] = ()) -> str:
    """Remove ``credentials`` and what looks like a credential from a vendor's message."""
    for secret in credentials:
        text = text.replace(secret, "[redacted]")
    return _SECRETISH.sub("[redacted]", text)[:2000]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def _vendor_error(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from the error shapes of OpenAI, Anthropic and Gemini."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return (text or None, None, None)
    if isinstance(data, list) and data:  # Gemini sometimes wraps in a list
        data = data[0]
    if not isinstance(data, dict):
        return (None, None, None)
    err = data.get("error", data)
    if isinstance(err, str):
        return (err, None, None)
    if not isinstance(err, dict):
        return (None, None, None)
    message = err.get("message")
    code = err.get("code") if isinstance(err.get("code"), str) else None
    code = code or err.get("status") or err.get("type")
    param = err.get("param") if isinstance(err.get("param"), str) else None
    return (str(message) if message else None, str(code) if code else None, param)


def from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    deployment: str,
    *,
    sent: Mapping[str, str] | None = None,
) -> GatewayError:
    """The error of an upstream's answer; ``sent``: the headers of the request, never repeated."""
    message, code, param = _vendor_error(body)
    cls = STATUS_TABLE.get(status)
    refined = VENDOR_CODES.get(code or "")
    if cls is None or (refined is not None and cls in (UpstreamError, InvalidRequestError)):
        cls = refined or (InvalidRequestError if 400 <= status < 500 else UpstreamBadResponseError)
    text = scrub(message or f"the upstream answered HTTP {status}", sent_credentials(sent or {}))
    text = f"deployment {deployment!r}: {text}"
    kwargs: dict[str, Any] = {"param": param, "retry_after": retry_after(headers)}
    if code and code.lower() == code:  # pass OpenAI-style snake_case codes on
        kwargs["code"] = code
    if issubclass(cls, UpstreamError):
        err: GatewayError = cls(text, deployment=deployment, upstream_status=status, **kwargs)
        if cls is UpstreamError:
            err.status = 500 if status == 500 else 502
        elif status == 408:
            err.status = 408  # the vendor's own request timeout, not a gateway timeout
        return err
    return cls(text, **kwargs)


def from_exception(exc: BaseException, deployment: str) -> GatewayError:
    """A network failure on the way to or from an upstream."""
    if isinstance(exc, GatewayError):
        return exc
    name = f"deployment {deployment!r}"
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(
            f"{name}: the upstream did not answer in time", deployment=deployment
        )
    if isinstance(exc, ProtocolError):
        return UpstreamBadResponseError(
            f"{name}: the upstream's answer was malformed ({exc})", deployment=deployment
        )
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return UpstreamUnavailableError(
            f"{name}: the upstream closed the connection", deployment=deployment
        )
    return UpstreamUnavailableError(
        f"{name}: cannot reach the upstream ({type(exc).__name__})", deployment=deployment
    )
