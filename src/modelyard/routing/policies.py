"""Policies: the order in which a route's candidates are tried.

Tiers come first (tier 0 before tier 1: ordered fallback). Within a tier, a
deployment with committed spend left comes first, then the route's policies
apply as sort keys in the order listed, so they compose:
``[cost, latency]`` is cheapest first, the faster of equally cheap ones next.

- ``fallback``: the order the route lists them;
- ``weighted``: a random order drawn in proportion to the weights;
- ``latency``: lowest moving latency estimate first (unmeasured ones first,
  so that they get measured);
- ``cost``: lowest price for this request's tokens first (unpriced last).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from modelyard.routing.config import PolicyName, RouteMember
from modelyard.routing.health import HealthBoard
from modelyard.settings import Deployment


def request_cost(dep: Deployment, input_tokens: int, output_tokens: int) -> float:
    """USD for a request of this size at the deployment's configured prices; inf if unpriced."""
    if dep.prices is None:
        return math.inf
    return (input_tokens * dep.prices.input + output_tokens * dep.prices.output) / 1e6


def order(
    members: list[RouteMember],
    policies: list[PolicyName],
    deployments: dict[str, Deployment],
    health: HealthBoard,
    *,
    input_tokens: int,
    output_tokens: int,
    committed_left: Callable[[str], bool],
    rng: random.Random,
) -> list[RouteMember]:
    """Members sorted by (tier, committed spend left, each policy's key, listed order)."""
    keyed: list[tuple[tuple[float, ...], RouteMember]] = []
    for i, m in enumerate(members):
        key: list[float] = [m.tier, 0.0 if committed_left(m.name) else 1.0]
        for policy in policies:
            if policy == "fallback":
                key.append(i)
            elif policy == "weighted":  # Efraimidis-Spirakis: a weighted random order
                key.append(-(rng.random() ** (1.0 / m.weight)))
            elif policy == "latency":  # unmeasured first, so that they get measured
                key.append(health[m.name].latency_ms or 0.0)
            else:
                key.append(request_cost(deployments[m.name], input_tokens, output_tokens))
        key.append(i)
        keyed.append((tuple(key), m))
    keyed.sort(key=lambda pair: pair[0])
    return [m for _, m in keyed]
