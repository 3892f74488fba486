"""Request and response bodies: size-limited JSON in, validated into typed requests; JSON out.

Also the one request header every generation reads: ``X-Modelyard-Tags``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from modelyard.api.context import MAX_BODY_BYTES
from modelyard.api.errors import validation_error
from modelyard.errors import InvalidRequestError, RequestTooLargeError

T = TypeVar("T", bound=BaseModel)
TAGS_HEADER = "X-Modelyard-Tags"
MAX_TAGS = 16


async def read_json(request: web.Request) -> dict[str, Any]:
    limit = request.app[MAX_BODY_BYTES]
    length = request.content_length
    if length is not None and length > limit:
        # refuse before reading a byte of it
        raise RequestTooLargeError(
            f"The request body is {length} bytes, over this gateway's limit of {limit} bytes"
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
    return data


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
