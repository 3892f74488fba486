"""Client errors out: the one place that turns the error hierarchy into HTTP answers.

Every error body has OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``, except on the Anthropic Messages paths (``/v1/messages...``), whose
clients get Anthropic's ``{"type": "error", "error": {"type", "message"}}``.
Nothing unexpected reaches a client as a traceback: it is logged
with the request id and answered as a plain 500.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from modelyard.api.context import MAX_BODY_BYTES, REQUEST_ID
from modelyard.errors import GatewayError, InvalidRequestError, RequestTooLargeError
from modelyard.observability.logs import REQUEST_ID as LOGGED_REQUEST_ID
from modelyard.wire import anthropic_inbound

ANTHROPIC_PATHS = "/v1/messages"  # a prefix: the Messages API and its count_tokens

log = logging.getLogger("modelyard.api")

_HTTP_TYPES = {
    404: ("not_found_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
}


def error_body(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def error_response(err: GatewayError) -> web.Response:
    headers: dict[str, str] = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return web.Response(
        status=err.status,
        body=error_body(err.message, err.type, err.param, err.code),
        content_type="application/json",
        headers=headers,
    )


def stream_error_event(err: GatewayError) -> bytes:
    """An error that happens after a stream has started: one SSE event, then the end."""
    return b"data: " + error_body(err.message, err.type, err.param, err.code) + b"\n\n"


_BRANCH_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal"}
_MISMATCH = {
    "string_type",
    "list_type",
    "dict_type",
    "model_type",
    "int_type",
    "float_type",
    "bool_type",
    "literal_error",
    "model_attributes_type",
    "none_required",
}


def _loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a client reads it: ``messages[0].role``, union branches left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part[:1].isupper() or "[" in part or part in _BRANCH_TAGS:
            continue  # the name of a union member, not a field
        else:
            out += f".{part}" if out else part
    return out


def validation_error(exc: ValidationError) -> InvalidRequestError:
    """A pydantic failure as a 400 that names the first field at fault."""
    errors: list[Any] = list(exc.errors(include_url=False))
    # in a union every branch reports; a branch that matched the type says the most
    specific = [e for e in errors if e["type"] not in _MISMATCH]
    first: Any = (specific or errors)[0]
    param = _loc(tuple(first["loc"]))
    msg = str(first["msg"]).removeprefix("Value error, ")
    more = exc.error_count() - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{param}: " if param else ""
    return InvalidRequestError(f"Invalid request: {where}{msg}{tail}", param=param or None)


def gateway_middleware(id_prefix: str) -> Any:
    """The one middleware: give the request an id, and answer every error in OpenAI's shape.

    Request ids are a random per-process prefix and a counter: unique across
    replicas and restarts, and far cheaper than a uuid per request. They key
    the ledger (one row per request), so a client's own ``X-Request-Id`` never
    replaces one: the ledger keeps it beside it (``client_request_id``).
    """
    counter = itertools.count()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        rid = f"req_{id_prefix}{next(counter):08x}"
        request[REQUEST_ID] = rid
        token = LOGGED_REQUEST_ID.set(rid)  # the request id of its log lines
        try:
            response = await _answer(request, handler)
        finally:
            LOGGED_REQUEST_ID.reset(token)
        if response.status >= 400 and request.path.startswith(ANTHROPIC_PATHS):
            response = _as_anthropic(response, rid)
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        return response

    return middleware


def _as_anthropic(response: web.StreamResponse, rid: str) -> web.StreamResponse:
    """An error answer in Anthropic's shape: its message kept, its type from the status."""
    if response.prepared or not isinstance(response, web.Response):
        return response
    try:
        message = str(orjson.loads(response.body)["error"]["message"])  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.reason or "error"
    response.body = anthropic_inbound.error_body(response.status, message, rid)
    response.headers["request-id"] = rid  # where Anthropic's SDKs look for it
    return response


async def _answer(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except GatewayError as err:
        return error_response(err)
    except ValidationError as exc:
        return error_response(validation_error(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            RequestTooLargeError(
                f"The request body is larger than this gateway's limit of "
                f"{request.app[MAX_BODY_BYTES]} bytes"
            )
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        type_, code = _HTTP_TYPES.get(exc.status, ("invalid_request_error", None))
        message = exc.reason if exc.status != 404 else f"Unknown path {request.path}"
        if exc.status == 405:
            message = f"Method {request.method} is not allowed on {request.path}"
        return web.Response(
            status=exc.status,
            body=error_body(message, type_, None, code),
            content_type="application/json",
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        rid = request.get(REQUEST_ID, "-")
        log.exception(
            "unexpected error handling %s %s (request %s)", request.method, request.path, rid
        )
        return web.Response(
            status=500,
            body=error_body(f"Internal error (request {rid})", "api_error", None, None),
            content_type="application/json",
        )
