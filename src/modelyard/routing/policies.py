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

SortKey = Callable[[RouteMember], float]


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
    keys: dict[PolicyName, SortKey] = {
        "fallback": lambda m: 0.0,  # the stable sort keeps the listed order
        "weighted": lambda m: -(rng.random() ** (1.0 / m.weight)),
        "latency": lambda m: health[m.name].latency_ms or 0.0,
        "cost": lambda m: request_cost(deployments[m.name], input_tokens, output_tokens),
    }
    ranked = list(members)
    for policy in reversed(policies):
        key = keys[policy]
        if policy == "weighted":
            draws = {m.name: key(m) for m in ranked}  # one draw per member
            ranked.sort(key=lambda m: draws[m.name])
        elif policy != "fallback":
            ranked.sort(key=key)
    ranked.sort(key=lambda m: not committed_left(m.name))
    ranked.sort(key=lambda m: m.tier)
    return ranked
