"""Cache keys, the default rule for what may be cached, and the client's ``Cache-Control``. Pure.

The exact key
-------------
``exact_key(team, route, endpoint, body)`` is the SHA-256 (hex) of one
canonical JSON document: a version, the team (``None`` in the open embedded
mode, which is kept apart from every named team), the route or deployment the
request was routed by, the wire endpoint (``Call.endpoint``: ``chat``,
``completions``, ``messages``, ``responses``) and the parsed request body.

The body goes in whole, less a short list of fields per endpoint
(``EXCLUDED``) known to change neither the answer nor the bytes the client
gets. A field not on the list (including any field a vendor adds tomorrow) is
part of the key: an unknown field can make a request miss, never make two
different requests share an answer. So every sampling and output field is
in: ``messages``, ``tools``, ``tool_choice``, ``parallel_tool_calls``,
``response_format``, ``temperature``, ``top_p``, ``seed``, ``max_tokens``,
``max_completion_tokens``, ``stop``, ``n``, ``logit_bias``, ``logprobs``,
``presence_penalty``, ``frequency_penalty``, ``reasoning_effort``,
``service_tier``, ``modalities``, the Responses API's ``instructions``,
``input``, ``text``, ``reasoning``, ``previous_response_id``,
``max_output_tokens``, ``include``, ``truncation``, and Anthropic's
``system``, ``stop_sequences``, ``top_k``, ``thinking``, ``output_config``.

Left out, and why (each changes neither the answer nor its bytes):

=========== =======================================================================
chat        ``user``, ``safety_identifier`` (abuse tracking), ``metadata`` and
            ``store`` (OpenAI's stored completions, a dashboard feature),
            ``prompt_cache_key`` and ``prompt_cache_retention`` (the vendor's
            prompt cache: cost and latency, not output). None of them is echoed
            in a chat completion.
completions ``user``.
messages    ``metadata`` (``user_id``, abuse tracking) and the top-level
            ``cache_control`` (Anthropic's prompt caching).
responses   ``safety_identifier``, ``prompt_cache_key``, ``prompt_cache_retention``.
            ``user``, ``metadata`` and ``store`` stay in: the response object
            echoes them (``wire.responses.echo_of``), and ``store`` also decides
            whether a later ``previous_response_id`` can find the answer's id.
=========== =======================================================================

``stream`` and ``stream_options`` are in the key: a hit replays the bytes
that were sent, and a stream is not a JSON body; ``include_usage`` adds a
chunk. Two normalisations only, both certain: ``stream: false`` is the same
as no ``stream`` (and then ``stream_options`` has no effect and is dropped),
and a top-level number that is a whole float (``0.0``) is the integer
(``0``). Nested values are hashed as they parsed.

Canonical means: keys sorted at every depth, no insignificant whitespace,
one spelling per string (``"\\u00e9"`` and ``"é"`` parse to the same text).
Whitespace inside strings is content and changes the key: a prompt with two
spaces is another prompt. The key is over the parsed body, which is what the
gateway sends upstream.

The semantic key
----------------
``semantic_key`` takes the last user turn's text out of the request: the rest
(system prompt, history, tools, parameters, team, route) is hashed as the
*scope*, in a separate domain from exact keys, and the text is what gets
embedded. A semantic hit therefore only ever matches a request that is
identical except for the wording of its last question. Requests whose last
turn is not plain user text (a tool result, an image) have no semantic key.

What does not live here: hashing bodies for ``Idempotency-Key`` (raw bytes,
``api.idempotency``), and deciding per route whether caching is on
(``routing``/``settings``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

KEY_VERSION = 1
_DOMAIN = "modelyard-cache"

#: per endpoint, the body fields that change neither the answer nor its bytes
EXCLUDED: Mapping[str, frozenset[str]] = {
    "chat": frozenset(
        {
            "user",
            "safety_identifier",
            "metadata",
            "store",
            "prompt_cache_key",
            "prompt_cache_retention",
        }
    ),
    "completions": frozenset({"user"}),
    "messages": frozenset({"metadata", "cache_control"}),
    "responses": frozenset({"safety_identifier", "prompt_cache_key", "prompt_cache_retention"}),
}

_MAX_EXACT_FLOAT = 2.0**53  # whole floats beyond this are not all integers exactly
MAX_AGE_CEILING = 2**31 - 1  # RFC 9111 §1.2.2: a larger delta-seconds means "a long time"


def canonical_body(endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as the key sees it: excluded fields out, the two normalisations made."""
    excluded = EXCLUDED.get(endpoint, frozenset())
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in excluded:
            continue
        if type(value) is float and value.is_integer() and abs(value) < _MAX_EXACT_FLOAT:
            value = int(value)
        out[name] = value
    if not out.get("stream"):
        out.pop("stream", None)
        out.pop("stream_options", None)
    return out


def _digest(kind: str, team: str | None, route: str, endpoint: str, body: Any) -> str:
    document = [_DOMAIN, KEY_VERSION, kind, team, route, endpoint, body]
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def exact_key(team: str | None, route: str, endpoint: str, body: Mapping[str, Any]) -> str:
    """The exact cache key: hex SHA-256 of the canonical request, scoped to team and route.

    ``body`` is the request as parsed from JSON; a value JSON cannot hold
    raises ``TypeError`` (``orjson.JSONEncodeError``).
    """
    return _digest("exact", team, route, endpoint, canonical_body(endpoint, body))


def cacheable(body: Mapping[str, Any]) -> bool:
    """The default rule: deterministic enough to cache, that is temperature 0 or a seed.

    A route may opt in (cache regardless) or out (never); that is the caller's
    decision. Anthropic and the Responses API have no ``seed``: there only
    ``temperature: 0`` qualifies.
    """
    temperature = body.get("temperature")
    if _is_number(temperature) and temperature == 0:
        return True
    seed = body.get("seed")
    return type(seed) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


# ---------------------------------------------------------------- the semantic key


@dataclass(frozen=True, slots=True)
class SemanticKey:
    """Where a request's nearest neighbours may be, and what to embed to find them."""

    scope: str  # hex SHA-256 of everything but ``text``
    text: str


_TEXT_PARTS: Mapping[str, str] = {"chat": "text", "messages": "text", "responses": "input_text"}


def semantic_key(
    team: str | None, route: str, endpoint: str, body: Mapping[str, Any]
) -> SemanticKey | None:
    """The scope and the text to embed, or None when the last turn is not plain user text."""
    found = _take_text(endpoint, canonical_body(endpoint, body))
    if found is None:
        return None
    rest, text = found
    if not text.strip():
        return None
    return SemanticKey(_digest("semantic", team, route, endpoint, rest), text)


def _take_text(endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """``body`` with the last user turn's text replaced by null, and that text.

    Copies only what it changes: the body, the turn list and the last turn.
    """
    if endpoint == "completions":
        prompt = body.get("prompt")
        return ({**body, "prompt": None}, prompt) if isinstance(prompt, str) else None
    if endpoint == "responses":
        field = "input"
        turns = body.get("input")
        if isinstance(turns, str):
            return {**body, "input": None}, turns
    elif endpoint in ("chat", "messages"):
        field = "messages"
        turns = body.get("messages")
    else:
        return None
    if not isinstance(turns, list) or not turns:
        return None
    last = turns[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    if endpoint == "responses" and last.get("type", "message") != "message":
        return None
    text = _plain_text(last.get("content"), _TEXT_PARTS[endpoint])
    if text is None:
        return None
    return {**body, field: [*turns[:-1], {**last, "content": None}]}, text


def _plain_text(content: Any, part_type: str) -> str | None:
    """A turn's content as text when it is only text (a string or text parts), else None."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != part_type:
            return None
        if set(part) - {"type", "text"}:  # cache_control, citations...: not plain text
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        texts.append(text)
    return "\n".join(texts)


# ---------------------------------------------------------------- Cache-Control


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What a client's ``Cache-Control`` request header asks of the cache.

    - ``no_cache``: do not answer from the cache (the fresh answer may be stored);
    - ``no_store``: do not store this answer (a stored one may still be served);
    - ``max_age``: seconds; an older entry is not served, and a stored answer
      lives at most this long. ``max-age=0`` therefore means neither.
    """

    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None

    def may_serve(self, age: float) -> bool:
        """Whether an entry this many seconds old may answer the request."""
        if self.no_cache:
            return False
        return self.max_age is None or age <= self.max_age

    def ttl(self, default: float, ceiling: float | None = None) -> float:
        """How long to keep the answer: 0 means do not store it.

        ``default`` is the route's TTL; the client's ``max-age`` may shorten it,
        and lengthen it up to ``ceiling`` when one is given.
        """
        if self.no_store:
            return 0.0
        if self.max_age is None:
            return default
        if ceiling is None:
            return float(min(self.max_age, default))
        return float(min(self.max_age, ceiling))


NO_DIRECTIVES = CacheControl()


def parse_cache_control(header: str | None) -> CacheControl:
    """``no-cache``, ``no-store`` and ``max-age=N`` from a request header; the rest is ignored.

    Directive names are case-insensitive; several headers are to be joined with
    commas by the caller. A ``max-age`` that is not a non-negative integer is
    ignored (RFC 9111 §5.2.1.1); of several, the smallest wins.
    """
    if not header:
        return NO_DIRECTIVES
    no_cache = no_store = False
    max_age: int | None = None
    for directive in header.split(","):
        name, eq, value = directive.partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age" and eq:
            seconds = _delta_seconds(value)
            if seconds is not None:
                max_age = seconds if max_age is None else min(max_age, seconds)
    return CacheControl(no_cache, no_store, max_age)


def _delta_seconds(value: str) -> int | None:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value.isascii() or not value.isdigit():
        return None
    if len(value) > len(str(MAX_AGE_CEILING)):
        return MAX_AGE_CEILING
    return min(int(value), MAX_AGE_CEILING)
