"""Messages clients served by an Anthropic deployment: the upstream's bytes, relayed.

Nothing is translated either way, so all the format can carry reaches the
client: thinking blocks with their signatures, ``stop_sequence``, citations.
Only usage is read, for the ledger. The first events of a stream are checked
before any byte is sent, so an upstream that starts with an ``error`` event
(overloaded, say) can still fail over to another deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelyard.api.generation import Call, Pieces
from modelyard.errors import UpstreamBadResponseError
from modelyard.providers.anthropic import AnthropicProvider
from modelyard.providers.base import Provider
from modelyard.providers.classify import from_response
from modelyard.types import Usage
from modelyard.wire import anthropic as wire
from modelyard.wire.anthropic_relay import MessageStreamRelay, first_event


class AnthropicPassthrough:
    def serves(self, provider: Provider) -> bool:
        return isinstance(provider, AnthropicProvider)

    async def once(
        self, provider: Provider, path: str, body: dict[str, Any]
    ) -> tuple[Usage, bytes]:
        assert isinstance(provider, AnthropicProvider)
        raw = await provider.forward(body)
        data = orjson.loads(raw)  # forward() checked that it is a JSON object
        if data.get("type") != "message":
            raise UpstreamBadResponseError(
                f"deployment {provider.name!r}: the upstream answered something that is not "
                "a Message",
                deployment=provider.name,
            )
        data["model"] = body["model"]  # the name the client asked for, as translated answers
        return wire.usage_from_dict(data.get("usage")), orjson.dumps(data)

    def stream(
        self, call: Call, provider: Provider, path: str, body: dict[str, Any], keep_usage: bool
    ) -> Pieces:
        assert isinstance(provider, AnthropicProvider)
        return _relay(call, provider, provider.forward_stream(body), str(body["model"]))


ANTHROPIC_PASSTHROUGH = AnthropicPassthrough()


async def _relay(
    call: Call, provider: AnthropicProvider, upstream: AsyncIterator[bytes], model: str
) -> Pieces:
    relay = MessageStreamRelay(model)
    checked = False
    try:
        async for chunk in upstream:
            out = relay.feed(chunk)
            if out:
                if not checked:
                    _check(out, provider)
                    checked = True
                yield out
            if relay.usage is not None:
                call.usage = relay.usage
        tail = relay.close()
        if relay.usage is not None:
            call.usage = relay.usage
        if tail:
            if not checked:
                _check(tail, provider)
            yield tail
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]


def _check(events: bytes, provider: AnthropicProvider) -> None:
    first = first_event(events)
    kind = first.get("type")
    if kind == "error":
        raise from_response(
            wire.error_status(first), orjson.dumps(first), {}, provider.name, sent=provider.headers
        )
    if kind not in ("message_start", "ping"):
        raise UpstreamBadResponseError(
            f"deployment {provider.name!r}: the upstream's stream is not Messages events",
            deployment=provider.name,
        )
