"""Request and response bodies: size-limited JSON in, validated into typed requests; JSON out.

``read_json`` enforces the request limits that need the body (the table is in
``modelyard.settings``): its size before a byte is read, its nesting depth, and
the fields that say how much work a generation asks for (messages, ``n``,
output tokens), under the same names in every wire format. A limit exceeded is
an ``InvalidRequestError`` (the size a ``RequestTooLargeError``) whose message
names the setting and its value; ``api.errors`` gives it each format's shape.

Also the one request header every generation reads: ``X-Modelyard-Tags``.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from modelyard.api.context import MAX_BODY_BYTES, SETTINGS
from modelyard.api.errors import validation_error
from modelyard.errors import InvalidRequestError, RequestTooLargeError
from modelyard.settings import Limits

T = TypeVar("T", bound=BaseModel)
TAGS_HEADER = "X-Modelyard-Tags"
MAX_TAGS = 16
LIMIT_CODE = "limit_exceeded"
_OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


async def read_json(request: web.Request) -> dict[str, Any]:
    limit = request.app[MAX_BODY_BYTES]
    length = request.content_length
    if length is not None and length > limit:
        # refuse before reading a byte of it
        raise RequestTooLargeError(
            f"The request body is {length} bytes, over this gateway's limit of {limit} bytes "
            "(server.max_body_bytes)"
        )
    raw = await request.read()  # aiohttp stops reading past client_max_size
    if not raw:
        raise InvalidRequestError("The request body is empty; send a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object")
    limits = request.app[SETTINGS].limits
    check_depth(raw, data, limits.max_json_depth)
    if not request.path.startswith("/admin/"):  # generations: /v1, and the dashboard's chat
        check_generation_limits(data, limits, responses=request.path.startswith("/v1/responses"))
    return data


def _over(what: str, value: int, setting: str, limit: int, param: str | None) -> NoReturn:
    raise InvalidRequestError(
        f"{what} is {value}, over this gateway's limit of {limit} (limits.{setting})",
        param=param,
        code=LIMIT_CODE,
    )


def check_depth(raw: bytes, data: Any, limit: int) -> None:
    """Refuse JSON nested deeper than ``limit`` arrays and objects (the top object is 1).

    orjson reads 1024 levels and writes 254: a deep body could be accepted and
    then fail when forwarded. Counting brackets (in C, about 1 µs a kilobyte)
    proves most bodies shallow enough; only the rest are walked (about a
    fifth of what validating them costs).
    """
    if raw.count(b"[") + raw.count(b"{") > limit and not _within(data, limit - 1):
        raise InvalidRequestError(
            f"The JSON nesting depth is over this gateway's limit of {limit} "
            "(limits.max_json_depth)",
            code=LIMIT_CODE,
        )


def _within(node: Any, levels: int) -> bool:
    """Whether no container inside ``node`` is more than ``levels`` levels below it."""
    for child in node.values() if type(node) is dict else node:
        kind = type(child)
        if (kind is dict or kind is list) and (levels == 0 or not _within(child, levels - 1)):
            return False
    return True


def check_generation_limits(data: dict[str, Any], limits: Limits, *, responses: bool) -> None:
    """Messages, choices and output tokens, bounded before validation; wrong types pass on."""
    key = "input" if responses else "messages"
    items = data.get(key)
    if isinstance(items, list) and len(items) > limits.max_messages:
        _over(f"The number of {key}", len(items), "max_messages", limits.max_messages, key)
    n = data.get("n")
    if type(n) is int and n > limits.max_n:
        _over("n", n, "max_n", limits.max_n, "n")
    for name in _OUTPUT_FIELDS:
        value = data.get(name)
        if type(value) is int and value > limits.max_tokens:
            _over(name, value, "max_tokens", limits.max_tokens, name)


def parse(model: type[T], data: dict[str, Any]) -> T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def tags_of(request: web.Request) -> str | None:
    """The request's ``X-Modelyard-Tags: feature=search, env=prod`` as a JSON object, or None."""
    header = request.headers.get(TAGS_HEADER)
    if header is None:
        return None
    tags: dict[str, str] = {}
    for item in header.split(","):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or len(name) > 64 or len(value) > 128:
            raise InvalidRequestError(
                f"{TAGS_HEADER} must be name=value pairs separated by commas "
                "(names up to 64 characters, values up to 128)",
                param=TAGS_HEADER,
            )
        tags[name] = value
    if len(tags) > MAX_TAGS:
        raise InvalidRequestError(f"{TAGS_HEADER} may carry {MAX_TAGS} tags at most")
    return orjson.dumps(tags).decode()
