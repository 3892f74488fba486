"""``Idempotency-Key``: a client's retry of a POST gets the first answer, not a second call.

The middleware runs after authentication. A ``POST /v1/...`` that carries the
header claims a slot scoped to the caller's API key id (``anonymous`` in the
open embedded mode, where every caller shares one scope), the path and the
key. Then:

- first request: the claim marks the slot running, atomically (one of two
  concurrent requests wins; the other gets 409 ``idempotency_conflict``);
  the handler runs, and a 2xx answer is stored for ``ttl`` (24 h): status,
  ``Content-Type``, ``X-Modelyard-Deployment`` and the body. A stream is
  stored as the bytes written to the client, once it has ended;
- a retry with the same body gets the stored answer, marked
  ``Idempotent-Replayed: true``, without routing or calling a model (so it
  is neither rate limited nor billed again); a stream is replayed as a
  stream of the same bytes;
- the same key with another body: 422 ``idempotency_key_reused``.

Only successes are stored. Any error (a 4xx the gateway found, an upstream
4xx or 5xx, a 429, a stream that broke after its first byte), an exception
or a client that left releases the slot, so the retry runs again: errors
cost no model call to recompute, and the gateway's own state (budgets, rate
limits, key scopes) may have changed since. An answer over
``MAX_ANSWER_BYTES`` is not stored either.

Streams are captured without the handlers knowing: ``tap_streams``, an
``on_response_prepare`` signal, wraps the ``write`` and ``write_eof`` of a
first request's stream response so that the bytes are copied as they go out.
Whether a stream ended well is what the ledger says (``ANSWER_STATUS``, set by
``generation.Call.done``): a stream that broke after its first byte went out
as a 200 but is not stored.

The fingerprint is the SHA-256 of the raw body bytes, not of canonical JSON:
a retry (the SDKs' included) resends the bytes it sent, and hashing them
costs a parse less; a client that re-serializes differently gets a 422.

Requests without the header pay one header lookup.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any

from aiohttp import web

from modelyard.api.context import ANSWER_STATUS, DEPLOYMENT_HEADER, PRINCIPAL, REQUEST_ID
from modelyard.cache.replay import ends_whole
from modelyard.errors import ConflictError, GatewayError, InvalidRequestError, UnprocessableError
from modelyard.storage.idempotency import IdempotencyStore, StoredAnswer, StoreUnavailableError

log = logging.getLogger("modelyard.api")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ANONYMOUS_SCOPE = "anonymous"
MAX_KEY_CHARS = 255
MAX_ANSWER_BYTES = 8 * 1024 * 1024
KEPT_HEADERS = ("Content-Type", DEPLOYMENT_HEADER, "Cache-Control", "X-Accel-Buffering")


class _Capture:
    """The bytes a streamed answer wrote, kept for storing."""

    __slots__ = ("chunks", "response", "size", "tapped")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.tapped = False
        self.response: web.StreamResponse | None = None

    def add(self, data: bytes | bytearray | memoryview) -> None:
        if self.size <= MAX_ANSWER_BYTES:
            self.chunks.append(bytes(data))
        self.size += len(data)


_CAPTURE = web.RequestKey("idempotency_capture", _Capture)


def idempotency_middleware(store: IdempotencyStore) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        key = request.headers.get(HEADER)
        if key is None or request.method != "POST" or not request.path.startswith("/v1/"):
            response: web.StreamResponse = await handler(request)
            return response
        return await _idempotent(request, handler, store, key)

    return middleware


async def tap_streams(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a streamed answer of a first request copies what it writes.

    Wrapping the one response's ``write`` keeps every handler unaware of idempotency.
    """
    capture = request.get(_CAPTURE)
    if capture is None or isinstance(response, web.Response):
        return
    capture.tapped = True
    capture.response = response
    write, write_eof = response.write, response.write_eof

    async def tee(data: bytes | bytearray | memoryview) -> None:
        capture.add(data)
        await write(data)

    async def tee_eof(data: bytes = b"") -> None:
        capture.add(data)
        await write_eof(data)

    response.write = tee  # type: ignore[method-assign]
    response.write_eof = tee_eof  # type: ignore[method-assign]


def slot_of(request: web.Request, key: str) -> str:
    """The slot of one caller's key on one path; hashed, so any key makes a fixed-size name."""
    if not (0 < len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable()):
        raise InvalidRequestError(
            f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
            param=HEADER,
            code="invalid_idempotency_key",
        )
    principal = request[PRINCIPAL]
    scope = principal.key.id if principal.key is not None else ANONYMOUS_SCOPE
    return slot_name(scope, request.path, key)


def slot_name(scope: str, path: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\n{path}\n{key}".encode()).hexdigest()


async def _idempotent(
    request: web.Request, handler: Any, store: IdempotencyStore, key: str
) -> web.StreamResponse:
    slot = slot_of(request, key)
    fingerprint = hashlib.sha256(await request.read()).hexdigest()
    owner = secrets.token_hex(16)
    try:
        held = await store.claim(slot, fingerprint, owner)
    except StoreUnavailableError as exc:
        log.warning("idempotency store unavailable: %s", exc)
        raise GatewayError(
            f"The {HEADER} store is unavailable; retry later",
            status=503,
            code="idempotency_store_unavailable",
            retry_after=1.0,
        ) from None
    if held is not None:
        if held.fingerprint != fingerprint:
            raise UnprocessableError(
                f"This {HEADER} was already used with a different request body; "
                "send a new key for a new request",
                param=HEADER,
                code="idempotency_key_reused",
            )
        if held.answer is None:
            raise ConflictError(
                f"A request with this {HEADER} is still in progress; "
                "retry once it has finished to get its answer",
                param=HEADER,
                code="idempotency_conflict",
                retry_after=1.0,
            )
        return await _replay(request, held.answer)
    capture = request[_CAPTURE] = _Capture()
    try:
        response: web.StreamResponse = await handler(request)
    except BaseException:
        # A client that reads a stream to its end may close the connection before
        # the handler returns, which cancels it: the answer is whole all the same
        # when the ledger booked it as a success (its last byte was written).
        whole = None
        if capture.response is not None and _ended(request, capture):
            whole = _answer_of(request, capture.response, capture, ended=True)
        await _settle(store, slot, owner, fingerprint, whole)
        raise
    await _settle(store, slot, owner, fingerprint, _answer_of(request, response, capture))
    return response


def _ended(request: web.Request, capture: _Capture) -> bool:
    """Whether a stream whose handler did not return had sent all of its answer.

    The ledger says so (200), or, when the client closed the connection as soon
    as it read the last event (which cancels the handler, so the ledger says
    499), the bytes do: the stream's last event is its format's final one.
    """
    if request.get(ANSWER_STATUS) == 200:
        return True
    if not capture.chunks or capture.size > MAX_ANSWER_BYTES:
        return False
    # the whole last event: a Responses stream's response.completed carries the whole
    # response, so a fixed-size tail missed its event line
    return ends_whole(b"".join(capture.chunks))


def _answer_of(
    request: web.Request, response: web.StreamResponse, capture: _Capture, *, ended: bool = False
) -> StoredAnswer | None:
    """What to store of a finished request: a success whose bytes are in hand, else None."""
    status = 200 if ended else request.get(ANSWER_STATUS, response.status)
    if not (200 <= status < 300 and 200 <= response.status < 300):
        return None
    if capture.tapped:
        if capture.size > MAX_ANSWER_BYTES:
            return None
        body, stream = b"".join(capture.chunks), True
    elif isinstance(response, web.Response) and isinstance(response.body, bytes):
        body, stream = response.body, False
    else:
        return None  # a payload object or a file: not replayable
    if len(body) > MAX_ANSWER_BYTES:
        return None
    headers = tuple((h, response.headers[h]) for h in KEPT_HEADERS if h in response.headers)
    return StoredAnswer(response.status, headers, body, stream)


async def _settle(
    store: IdempotencyStore, slot: str, owner: str, fingerprint: str, answer: StoredAnswer | None
) -> None:
    """Store the answer or release the slot; a store failure loses only the replay."""
    try:
        if answer is None:
            await store.release(slot, owner)
        else:
            await store.finish(slot, owner, fingerprint, answer)
    except StoreUnavailableError as exc:
        log.warning("idempotency store: could not settle a slot: %s", exc)


async def _replay(request: web.Request, answer: StoredAnswer) -> web.StreamResponse:
    headers = dict(answer.headers)
    headers[REPLAYED_HEADER] = "true"
    if not answer.stream:
        return web.Response(status=answer.status, body=answer.body, headers=headers)
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    await response.prepare(request)
    await response.write(answer.body)
    return response
