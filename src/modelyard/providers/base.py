"""The interface every provider implements, and what they share.

A provider is a deployment's name, base URL, credentials and client; the
translation of wire formats lives in ``modelyard.wire``. Every provider is
called the same way, so wrappers (fallback, budget checks, the router) can
wrap one and still look like one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from modelyard.errors import InvalidRequestError
from modelyard.settings import Deployment
from modelyard.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
)

_ids = itertools.count()


def new_id(prefix: str) -> str:
    """A response id: unique within the process and across restarts."""
    return f"{prefix}-{time.time_ns():x}{next(_ids):04x}"


class Provider:
    """Base class: chat is required; the rest have sensible defaults."""

    #: the OpenAI-compatible host row when the upstream speaks OpenAI chat
    speaks_openai: bool = False
    #: whether a chat deployment of this provider also answers /v1/embeddings
    serves_embeddings: bool = False

    def __init__(self, deployment: Deployment):
        self.deployment = deployment

    @property
    def name(self) -> str:
        return self.deployment.name

    async def chat(self, req: ChatRequest) -> ChatResponse:
        raise NotImplementedError

    def chat_stream(self, req: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError

    async def complete(self, req: CompletionRequest) -> ChatResponse:
        """A legacy completion, served as chat for providers without one."""
        return await self.chat(completion_as_chat(req))

    def complete_stream(self, req: CompletionRequest) -> AsyncIterator[ChatChunk]:
        return self.chat_stream(completion_as_chat(req))

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResponse:
        raise InvalidRequestError(f"model {req.model!r} does not serve embeddings", param="model")

    async def ready(self) -> None:
        """Raise if the provider cannot serve now. Remote providers are not probed."""

    async def close(self) -> None:
        """Release what the provider holds."""


def completion_as_chat(req: CompletionRequest) -> ChatRequest:
    if len(req.prompts) != 1:
        raise InvalidRequestError("this model takes one prompt per request", param="prompt")
    fields: dict[str, Any] = req.model_dump(exclude={"prompt", "echo", "suffix"}, exclude_none=True)
    fields["messages"] = [Message(role="user", content=req.prompts[0])]
    return ChatRequest.model_validate(fields)
