"""A route served by a fitted learned router: its file, its operating point, its answers.

``LearnedServing.load(route, deployments)`` reads the route's ``learned`` block
(``routing.config.LearnedRoute``), loads the router file and picks the one
operating point the target knob names; it raises ``ValueError`` naming the route
when the block does not fit the route. ``extract`` turns a model's text into the
answer the router's features read. Not here: calling deployments (``api.learned``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigError
from modelyard.routing.config import LearnedSample, LearnedTarget, RouteConfig
from modelyard.routing.learned.model import LearnedRouter, OperatingPoint
from modelyard.routing.learned.policy import CascadePolicy

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def choose_point(front: list[OperatingPoint], target: LearnedTarget) -> OperatingPoint:
    """The frontier point (cheapest first) that the one knob of ``target`` names."""
    if target.quality is not None:
        q = target.quality
        return next((p for p in front if p.est_quality >= q), front[-1])
    if target.cost_per_request is not None:
        c = target.cost_per_request
        within = [p for p in front if p.est_cost <= c]
        return within[-1] if within else front[0]
    pay = target.pay_per_quality or 0.0
    return max(front, key=lambda p: p.est_quality * pay - p.est_cost)


def extract_answer(text: str | None, how: str) -> str | None:
    """The final answer in a model's text: ``number`` (the last one), ``json:FIELD``, ``none``."""
    if text is None:
        return None
    if how == "number":
        found = _NUMBER.findall(text)
        return found[-1].replace(",", "") if found else None
    if how.startswith("json:"):
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        value = data.get(how[5:]) if isinstance(data, dict) else None
        return None if value is None else str(value)
    return text.strip() or None


@dataclass(frozen=True, slots=True)
class LearnedServing:
    route: str
    policy: CascadePolicy
    deployments: dict[str, str]  # router model -> deployment
    answer: str
    sample: LearnedSample | None = None  # learning from live traffic (``routing.learned.live``)

    @property
    def router(self) -> LearnedRouter:
        return self.policy.router

    @property
    def point(self) -> OperatingPoint:
        return self.policy.point

    @classmethod
    def load(cls, route: RouteConfig, deployments: Collection[str]) -> LearnedServing:
        learned = route.learned
        assert learned is not None
        where = f"route {route.name!r}: learned router {learned.router!r}"
        try:
            from modelyard.routing.learned.store import load_router
        except ImportError:
            raise ValueError(f"{where} needs numpy (pip install 'modelyard[router]')") from None
        path = Path(learned.router)
        if not path.is_file():
            raise ValueError(f"{where}: no such file")
        try:
            router = load_router(path)
        except ConfigError as err:
            raise ValueError(f"{where}: {err}") from None
        members = {m.name for m in route.deployments}
        unknown = set(learned.models) - set(router.models)
        if unknown:
            raise ValueError(f"{where} was not fitted on: {', '.join(sorted(unknown))}")
        mapping = {m: learned.models.get(m, m) for m in router.models}
        unmapped = sorted(m for m, d in mapping.items() if d not in members or d not in deployments)
        if unmapped:
            raise ValueError(
                f"{where}: models {', '.join(unmapped)} are not mapped to deployments of "
                "the route (learned.models: {router model: deployment})"
            )
        sample = learned.sample
        if sample is not None:
            for role, name in (("reference", sample.reference), ("judge", sample.judge)):
                if name != "match" and name not in deployments:
                    raise ValueError(f"{where}: sample.{role} {name!r} is not a deployment")
            if sample.reference == "match":
                raise ValueError(f"{where}: sample.reference must name a deployment")
        point = choose_point(router.frontier(), learned.target)
        return cls(route.name, CascadePolicy(router, point), mapping, learned.answer, sample)

    def extract(self, text: str | None) -> str | None:
        return extract_answer(text, self.answer)
