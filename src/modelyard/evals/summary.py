"""Per-model comparison of a run: quality, cost, latency, errors; and the Pareto frontier
of quality against cost. Pure: results in, numbers out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from modelyard.evals.store import Result


@dataclass
class ModelSummary:
    model: str
    items: int
    scored: int
    errors: int
    quality: float | None  # mean score; an error or an unscorable answer counts as 0
    cost_usd: float | None  # None when no cost is known for any item
    cost_known: int
    p50_ms: float | None
    p95_ms: float | None
    latencies_ms: list[float]
    input_tokens: int
    output_tokens: int

    @property
    def cost_per_item(self) -> float | None:
        if self.cost_usd is None or not self.cost_known:
            return None
        return self.cost_usd / self.cost_known


def summarize(results: Iterable[Result], models: list[str] | None = None) -> list[ModelSummary]:
    by_model: dict[str, list[Result]] = {m: [] for m in models or []}
    for result in results:
        by_model.setdefault(result.model, []).append(result)
    return [_one(model, rs) for model, rs in by_model.items()]


def _one(model: str, results: list[Result]) -> ModelSummary:
    scores = [r.score for r in results if r.score is not None]
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    ok = [r.latency_ms for r in results if r.error is None]
    p50, p95 = np.percentile(ok, [50, 95]).tolist() if ok else (None, None)
    return ModelSummary(
        model=model,
        items=len(results),
        scored=len(scores),
        errors=sum(r.error is not None for r in results),
        quality=sum(scores) / len(results) if results else None,
        cost_usd=sum(costs) if costs else None,
        cost_known=len(costs),
        p50_ms=p50,
        p95_ms=p95,
        latencies_ms=ok,
        input_tokens=sum(r.input_tokens or 0 for r in results),
        output_tokens=sum(r.output_tokens or 0 for r in results),
    )


def pareto_frontier(points: list[tuple[str, float, float]]) -> list[str]:
    """The names on the frontier of (name, cost, quality): no other point costs no more
    and scores at least as well, being better in one. Ordered by cost."""
    frontier: list[tuple[str, float, float]] = []
    for name, cost, quality in sorted(points, key=lambda p: (p[1], -p[2])):
        if not frontier or quality > frontier[-1][2]:
            frontier.append((name, cost, quality))
    return [name for name, _, _ in frontier]
