"""What may serve a request before any policy chooses: contract terms, then fit.

Each filter returns the candidates it keeps and, for each it removes, the
term that removed it; the reasons go into the routing decision and, when
nothing is left, into the client's error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelyard.routing.config import Interaction
from modelyard.settings import Deployment

#: what each kind of provider can do unless the deployment says otherwise
_LOCAL_CAPABILITIES = frozenset({"tools", "json_schema"})
_REMOTE_CAPABILITIES = frozenset({"tools", "json_schema", "images"})


@dataclass(frozen=True, slots=True)
class Demand:
    """What a request needs from whoever serves it."""

    kind: Interaction = "stateless"
    classification: str | None = None
    regions: frozenset[str] | None = None
    tokens: int = 0  # estimated prompt tokens plus the output limit
    prompt_tokens: int = 0  # estimated
    output_tokens: int = 0  # the output limit, or a typical answer's length when none
    capabilities: frozenset[str] = frozenset()


def capabilities(dep: Deployment) -> frozenset[str]:
    if dep.capabilities is not None:
        return frozenset(dep.capabilities)
    return _LOCAL_CAPABILITIES if dep.provider == "local" else _REMOTE_CAPABILITIES


def contract_terms(
    deps: list[Deployment], demand: Demand, healthy: Callable[[str], bool]
) -> tuple[list[Deployment], dict[str, str]]:
    kept: list[Deployment] = []
    removed: dict[str, str] = {}
    for dep in deps:
        c = dep.contract
        if c is None:
            if demand.regions is not None:
                removed[dep.name] = "region: the deployment declares no region"
            else:
                kept.append(dep)
            continue
        if c.kinds is not None and demand.kind not in c.kinds:
            removed[dep.name] = f"kinds: serves only {', '.join(c.kinds)} traffic"
        elif (
            demand.classification is not None
            and c.classifications is not None
            and demand.classification not in c.classifications
        ):
            removed[dep.name] = (
                f"classifications: {demand.classification!r} data may not go here "
                f"(allowed: {', '.join(c.classifications) or 'none'})"
            )
        elif demand.regions is not None and c.region not in demand.regions:
            removed[dep.name] = f"region: runs in {c.region or 'an undeclared region'}"
        else:
            kept.append(dep)
    exclusive = [
        d for d in kept if d.contract and demand.kind in d.contract.exclusive and healthy(d.name)
    ]
    if exclusive:
        owner = exclusive[0].name
        for dep in kept:
            if dep.name != owner:
                removed[dep.name] = f"exclusive: {demand.kind} traffic goes to {owner!r}"
        kept = [exclusive[0]]
    return kept, removed


def fit(deps: list[Deployment], demand: Demand) -> tuple[list[Deployment], dict[str, str]]:
    kept: list[Deployment] = []
    removed: dict[str, str] = {}
    for dep in deps:
        missing = demand.capabilities - capabilities(dep)
        if missing:
            removed[dep.name] = f"fit: lacks {', '.join(sorted(missing))}"
        elif dep.context_window is not None and demand.tokens > dep.context_window:
            removed[dep.name] = (
                f"fit: about {demand.tokens} tokens do not fit its context window "
                f"of {dep.context_window}"
            )
        else:
            kept.append(dep)
    return kept, removed
