"""Which provider serves a model name: deployments by name, and aliases.

This is the seam the routing issue widens into routes with policies; for now a
name resolves to exactly one deployment.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelyard.errors import InvalidRequestError, NotFoundError
from modelyard.providers.base import Provider
from modelyard.settings import Settings


class ModelDirectory:
    def __init__(self, settings: Settings, providers: Iterable[Provider]):
        self._by_name = {p.name: p for p in providers}
        self._aliases = dict(settings.aliases)

    def names(self) -> list[tuple[str, Provider]]:
        """Every callable name with its provider: deployments, then aliases."""
        out = list(self._by_name.items())
        out += [(alias, self._by_name[target]) for alias, target in self._aliases.items()]
        return out

    def providers(self) -> list[Provider]:
        return list(self._by_name.values())

    def resolve(self, model: str, *, kind: str = "chat") -> Provider:
        provider = self._by_name.get(self._aliases.get(model, model))
        if provider is None:
            raise NotFoundError(
                f"The model {model!r} does not exist; "
                "GET /v1/models lists what this gateway serves",
                param="model",
                code="model_not_found",
            )
        serves = provider.deployment.kind == kind or (
            kind == "embeddings" and provider.serves_embeddings
        )
        if not serves:
            raise InvalidRequestError(
                f"model {model!r} serves {provider.deployment.kind}, not {kind}",
                param="model",
            )
        return provider
