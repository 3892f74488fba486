"""The exception hierarchy of modelyard, and nothing else.

Errors are translated in exactly two places: upstream failures come in through
``modelyard.providers.classify`` and every error goes out to a client through
``modelyard.api.errors``. Everything in between raises one of these::

    ModelyardError
    ├── ConfigError                 the operator's mistake, found at start-up
    │   └── MissingCredentialError  a key variable named in the config is unset
    └── GatewayError                answered to a client with ``status``
        ├── InvalidRequestError     400: malformed body or a bad field (``param``)
        ├── AuthenticationError     401
        ├── BudgetExceededError     402: a hard budget would be exceeded
        ├── PermissionDeniedError   403
        ├── NotFoundError           404: unknown model, route or path
        ├── ConflictError           409: the same Idempotency-Key is still running
        ├── RequestTooLargeError    413: body over the configured limit
        ├── UnprocessableError      422
        ├── RateLimitedError        429, with ``retry_after``
        └── UpstreamError           a failure of a model provider
            ├── UpstreamTimeoutError      504 (or 408 when the vendor said so)
            ├── UpstreamUnavailableError  503 / connection refused or reset
            └── UpstreamBadResponseError  502: the vendor answered nonsense

An ``UpstreamError`` carries the status the upstream returned so that a 400
from a vendor reaches the client as a 400, not as a 502.
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Root of every error modelyard raises on purpose."""


class ConfigError(ModelyardError):
    """The configuration is wrong: file, key and what is wrong, at start-up."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.key = key


class MissingCredentialError(ConfigError):
    """A credential variable is named in the config but not set."""

    def __init__(self, variable: str, deployment: str):
        super().__init__(
            f"environment variable {variable} is not set "
            f"(it holds the API key of deployment {deployment!r})",
            key=f"deployments.{deployment}.api_key_env",
        )
        self.variable = variable


class GatewayError(ModelyardError):
    """An error answered to a client with an HTTP status and a typed body."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"


class BudgetExceededError(GatewayError):
    """402, not 429: an SDK retries a 429, and retrying cannot make a budget larger."""

    status = 402
    type = "insufficient_quota"
    code = "budget_exceeded"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class ConflictError(GatewayError):
    status = 409
    type = "invalid_request_error"


class RequestTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnprocessableError(GatewayError):
    status = 422
    type = "invalid_request_error"


class RateLimitedError(GatewayError):
    status = 429
    type = "rate_limit_error"


class UpstreamError(GatewayError):
    """A provider failed. ``status`` is what the client gets."""

    status = 502
    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        deployment: str | None = None,
        upstream_status: int | None = None,
        **kwargs: object,
    ):
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.deployment = deployment
        self.upstream_status = upstream_status


class UpstreamTimeoutError(UpstreamError):
    status = 504
    type = "timeout_error"


class UpstreamUnavailableError(UpstreamError):
    status = 503
    type = "service_unavailable"


class UpstreamBadResponseError(UpstreamError):
    status = 502
    type = "upstream_error"
