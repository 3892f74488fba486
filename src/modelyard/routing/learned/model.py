"""A fitted learned router: its linear models and its operating points.

``LearnedRouter`` holds, per model, a linear model of the chance that the model
answers a prompt well (from the prompt alone), and per cascade stage a linear
model of the chance that a called model's answer is right given what every
called model answered; per prefix, a calibration of the best answer's score, and
per prefix and next model, a weight that makes stopping cost-aware. An
``OperatingPoint`` is a cascade (models in calling order) and a threshold on that
stop score; points run from cheapest to best quality.
Pure Python: serving reads this without numpy. Not here: fitting (``fit``),
the calling loop (``policy``) or files (``store``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from modelyard.routing.learned.features import (
    CalledAnswer,
    answer_features,
    canonical_answer,
    prompt_features,
    prompt_numbers,
)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


IDENTITY = (1.0, 0.0)


def calibrated(score: float, calibration: tuple[float, float] = IDENTITY) -> float:
    """``score`` mapped through a logistic ``(slope, intercept)`` on its log-odds."""
    if calibration == IDENTITY:
        return score
    slope, intercept = calibration
    p = min(max(score, 1e-6), 1.0 - 1e-6)
    return sigmoid(slope * math.log(p / (1.0 - p)) + intercept)


def stop_score(probability: float, weight: float = 1.0) -> float:
    """What a threshold is compared with: 1 less the weighted doubt (``probability`` at 1)."""
    return 1.0 - weight * (1.0 - probability)


def pick_answer(
    answers: Mapping[str, str | None], confidence: Mapping[str, float]
) -> tuple[str, float]:
    """The model to answer from, and the chance that its answer is right.

    Models giving the same answer vote together: an answer is wrong only if every
    model giving it is (noisy-or); a missing answer votes alone.
    """
    groups: dict[str, list[str]] = {}
    for model, answer in answers.items():
        key = canonical_answer(answer)
        groups.setdefault("\0" + model if key is None else key, []).append(model)
    best, best_score = "", -1.0
    for members in groups.values():
        score = 1.0 - math.prod(1.0 - confidence[m] for m in members)
        if score > best_score:
            best, best_score = max(members, key=lambda m: confidence[m]), score
    return best, best_score


@dataclass(frozen=True, slots=True)
class PromptModel:
    """A linear estimate of a model's quality on a prompt from hashed prompt features.

    ``weights`` is one float a hash bucket (a float32 ``array`` once fitted or loaded:
    a quarter of the memory of a list, and as fast to index).
    """

    weights: Sequence[float]
    bias: float

    def estimate(self, features: Mapping[int, float]) -> float:
        w = self.weights
        return self.bias + sum(w[k] * v for k, v in features.items())


@dataclass(frozen=True, slots=True)
class StageModel:
    """Logistic model of one called model's correctness at one cascade prefix."""

    mean: Sequence[float]
    scale: Sequence[float]
    coef: Sequence[float]
    bias: float

    def probability(self, x: Sequence[float]) -> float:
        z = self.bias + sum(
            c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.scale, strict=True)
        )
        return sigmoid(z)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A cascade and its threshold, with the cost and quality estimated when fitting."""

    chain: tuple[str, ...]
    threshold: float
    est_cost: float
    est_quality: float


Prefix = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LearnedRouter:
    models: tuple[str, ...]
    prompt_models: Mapping[str, PromptModel]
    stages: Mapping[tuple[Prefix, str], StageModel]
    points: tuple[OperatingPoint, ...]
    meta: Mapping[str, object]
    # Per prefix, the calibration of the best answer's score; per prefix and the model
    # called next, the weight of the doubt in the stop rule. Missing: identity, 1.
    calibration: Mapping[Prefix, tuple[float, float]] = field(default_factory=dict)
    escalation: Mapping[tuple[Prefix, str], float] = field(default_factory=dict)

    def prompt_estimates(self, prompt: str, models: Iterable[str]) -> dict[str, float]:
        features = prompt_features(prompt)
        return {m: self.prompt_models[m].estimate(features) for m in models}

    def confidences(
        self, prompt: str, called: Sequence[CalledAnswer], estimates: Mapping[str, float]
    ) -> dict[str, float]:
        """Per called model, the estimated chance that its answer is right."""
        prefix = tuple(c.model for c in called)
        numbers = prompt_numbers(prompt)
        return {
            c.model: self.stages[(prefix, c.model)].probability(
                answer_features(numbers, estimates[c.model], c, called)
            )
            for c in called
        }

    def stop_score(self, prefix: Prefix, following: str, score: float) -> float:
        """The statistic a point's threshold is compared with before calling ``following``.

        ``score`` is ``pick_answer``'s for the answers of ``prefix``: calibrated, it is the
        chance that the best answer is right; weighted, its doubt counts for more before a
        call that pays off and for less before a dear one.
        """
        chance = calibrated(score, self.calibration.get(prefix, IDENTITY))
        return stop_score(chance, self.escalation.get((prefix, following), 1.0))

    def frontier(self, models: Iterable[str] | None = None) -> list[OperatingPoint]:
        """Points using only ``models``, without any beaten on both cost and quality."""
        pool = set(self.models if models is None else models)
        unknown = pool - set(self.models)
        if unknown:
            raise ValueError(f"the router was not fitted on: {', '.join(sorted(unknown))}")
        usable = sorted(
            (p for p in self.points if set(p.chain) <= pool),
            key=lambda p: (p.est_cost, -p.est_quality),
        )
        kept: list[OperatingPoint] = []
        for point in usable:
            if not kept or point.est_quality > kept[-1].est_quality:
                kept.append(point)
        if not kept:
            raise ValueError(
                "no operating point uses only the given models; fit a router on this pool"
                " (modelyard router fit --models ...)"
            )
        return kept

    def select_points(
        self, count: int, models: Iterable[str] | None = None
    ) -> list[OperatingPoint]:
        """``count`` points spread evenly along the cost-quality frontier, cheapest first."""
        front = self.frontier(models)
        if count >= len(front):
            return front
        if count <= 1:
            return [front[-1]]
        costs = [p.est_cost for p in front]
        quals = [p.est_quality for p in front]
        span_c = (costs[-1] - costs[0]) or 1.0
        span_q = (quals[-1] - quals[0]) or 1.0
        arc = [0.0]
        for i in range(1, len(front)):
            arc.append(
                arc[-1]
                + math.hypot((costs[i] - costs[i - 1]) / span_c, (quals[i] - quals[i - 1]) / span_q)
            )
        chosen: list[int] = []
        for j in range(count):
            target = arc[-1] * j / (count - 1)
            best = min(range(len(front)), key=lambda i: abs(arc[i] - target))
            if best not in chosen:
                chosen.append(best)
        return [front[i] for i in sorted(chosen)]
