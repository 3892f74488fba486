"""Fitting a learned router from a labelled outcome table.

1. Per model, a ridge regression of its quality on hashed prompt features;
   out-of-fold estimates feed step 3, so stage models learn from honest estimates.
2. Candidate cascades: the models not beaten on both mean cost and mean quality,
   taken cheapest first, in every ordered combination up to ``max_chain`` long.
3. Per cascade prefix and called model, a logistic model of that model's
   correctness from the answer features (format, length, agreement).
4. Each cascade is simulated out of fold over a grid of thresholds; the points
   not beaten on both cost and quality are kept, per cascade.

Fitting needs numpy and scipy; serving (``model``, ``policy``) does not.
Nothing here knows a task or a model name.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix

from modelyard.routing.learned.features import (
    PROMPT_BUCKETS,
    CalledAnswer,
    answer_features,
    prompt_features,
    prompt_numbers,
)
from modelyard.routing.learned.model import (
    LearnedRouter,
    OperatingPoint,
    Prefix,
    PromptModel,
    StageModel,
    pick_answer,
)
from modelyard.routing.learned.table import (
    OutcomeTable,
    OutcomeTableError,
    Price,
    require_prices,
)

Array = npt.NDArray[np.float64]


def _logistic(x: Array, y: Array, penalty: float = 1.0) -> tuple[Array, float]:
    """Weights and bias of an l2-penalised logistic model of ``y`` in [0, 1], by Newton steps.

    Soft labels (scores) need no special case: the cross-entropy gradient takes them as is.
    """
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    ridge = np.full(d + 1, penalty / n)
    ridge[-1] = 0.0
    beta = np.zeros(d + 1)
    mean = float(np.clip(y.mean(), 0.01, 0.99))
    beta[-1] = math.log(mean / (1 - mean))

    def loss(b: Array) -> float:
        z = design @ b
        return float(np.mean(np.logaddexp(0, z) - y * z) + 0.5 * ridge @ (b * b))

    current = loss(beta)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        grad = design.T @ (p - y) / n + ridge * beta
        hess = (design.T * (p * (1 - p))) @ design / n + np.diag(ridge) + 1e-6 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while size > 1e-4 and loss(beta - size * step) > current:
            size /= 2
        beta -= size * step
        previous, current = current, loss(beta)
        if previous - current < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def _ridge_dual(x: csr_matrix, y: Array, penalty: float) -> tuple[Array, Array]:
    """Weights (buckets x outputs) and biases of ridge regressions of every column of ``y``.

    Solved in the dual, so the cost grows with prompts, not with hash buckets.
    """
    bias = y.mean(axis=0)
    gram = (x @ x.T).toarray()
    alpha = np.linalg.solve(gram + penalty * np.eye(x.shape[0]), y - bias)
    return np.asarray(x.T @ alpha), bias


def _compact(weights: Array) -> array[float]:
    """Float32 in a stdlib array: what a loaded router holds, so both decide alike."""
    return array("f", np.asarray(weights, np.float32).tobytes())


def _prompt_matrix(prompts: Sequence[str]) -> csr_matrix:
    rows, cols, vals = [], [], []
    for i, prompt in enumerate(prompts):
        for k, v in prompt_features(prompt).items():
            rows.append(i)
            cols.append(k)
            vals.append(v)
    return csr_matrix((vals, (rows, cols)), shape=(len(prompts), PROMPT_BUCKETS))


def _candidate_models(cost: Array, quality: Array, limit: int) -> list[int]:
    """Indices of models not beaten on both mean cost and mean quality, cheapest first."""
    order = sorted(range(len(cost)), key=lambda j: (cost[j], -quality[j]))
    kept: list[int] = []
    for j in order:
        if not kept or quality[j] > quality[kept[-1]]:
            kept.append(j)
    return kept[-limit:] if len(kept) > limit else kept


class _Fitter:
    def __init__(self, table: OutcomeTable, prices: dict[str, Price], seed: int, folds: int):
        self.models = table.models
        self.records = table.records
        n = len(self.records)
        self.quality = np.array(
            [[r.outcomes[m].quality for m in self.models] for r in self.records], float
        )
        self.cost = np.array(
            [[prices[m].cost(r.outcomes[m]) for m in self.models] for r in self.records], float
        )
        self.folds = np.random.default_rng(seed).permutation(n) % max(2, min(folds, n // 2))
        self.n_folds = int(self.folds.max()) + 1
        self.prompts = _prompt_matrix([r.prompt for r in self.records])
        self.numbers = [prompt_numbers(r.prompt) for r in self.records]
        self.prompt_models: dict[str, PromptModel] = {}
        self.oof_estimates = np.zeros((n, len(self.models)))
        self.stages: dict[tuple[Prefix, str], StageModel] = {}
        self.oof_confidence: dict[tuple[Prefix, str], Array] = {}

    def fit_prompt_models(self, penalty: float = 1.0) -> None:
        weights, bias = _ridge_dual(self.prompts, self.quality, penalty)
        for j, model in enumerate(self.models):
            self.prompt_models[model] = PromptModel(_compact(weights[:, j]), float(bias[j]))
        for f in range(self.n_folds):
            train, test = self.folds != f, self.folds == f
            weights, bias = _ridge_dual(self.prompts[train], self.quality[train], penalty)
            self.oof_estimates[test] = self.prompts[test] @ weights + bias

    def fit_stage(self, prefix: Prefix) -> None:
        index = {m: self.models.index(m) for m in prefix}
        rows = []
        for i, record in enumerate(self.records):
            numbers = self.numbers[i]
            called = [
                CalledAnswer(m, o.answer, o.input_tokens, o.output_tokens)
                for m in prefix
                for o in (record.outcomes[m],)
            ]
            rows.append(
                [
                    answer_features(numbers, self.oof_estimates[i, index[c.model]], c, called)
                    for c in called
                ]
            )
        feats = np.array(rows, float)  # prompts x called models x features
        for k, model in enumerate(prefix):
            x, y = feats[:, k, :], self.quality[:, index[model]]
            self.stages[(prefix, model)] = _stage_model(x, y)
            oof = np.zeros(len(y))
            for f in range(self.n_folds):
                train, test = self.folds != f, self.folds == f
                stage = _stage_model(x[train], y[train])
                oof[test] = [stage.probability(row) for row in x[test]]
            self.oof_confidence[(prefix, model)] = oof

    def simulate(self, chain: Prefix) -> list[OperatingPoint]:
        n = len(self.records)
        best_q, best_j, spent = [], [], []
        total = np.zeros(n)
        for k in range(len(chain)):
            prefix = chain[: k + 1]
            conf = {m: self.oof_confidence[(prefix, m)] for m in prefix}
            picks = [
                pick_answer(
                    {m: self.records[i].outcomes[m].answer for m in prefix},
                    {m: float(conf[m][i]) for m in prefix},
                )
                for i in range(n)
            ]
            best_q.append(np.array([score for _, score in picks]))
            best_j.append(np.array([self.models.index(model) for model, _ in picks]))
            total = total + self.cost[:, self.models.index(chain[k])]
            spent.append(total)
        if len(chain) == 1:
            thresholds = [0.0]
        else:
            pooled = np.concatenate(best_q[:-1])
            grid = np.quantile(pooled, np.linspace(0, 1, 65))
            thresholds = sorted({0.0, 1.01, *(round(float(t), 6) for t in grid)})
        points = []
        for t in thresholds:
            stop = np.full(n, len(chain) - 1)
            for k in reversed(range(len(chain) - 1)):
                stop = np.where(best_q[k] >= t, k, stop)
            rows = np.arange(n)
            answer_j = np.stack(best_j, axis=1)[rows, stop]
            cost = float(np.stack(spent, axis=1)[rows, stop].mean())
            quality = float(self.quality[rows, answer_j].mean())
            points.append(OperatingPoint(chain, t, cost, quality))
        points.sort(key=lambda p: (p.est_cost, -p.est_quality))
        kept: list[OperatingPoint] = []
        for p in points:
            if not kept or p.est_quality > kept[-1].est_quality:
                kept.append(p)
        return kept


def _stage_model(x: Array, y: Array) -> StageModel:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    coef, bias = _logistic((x - mean) / scale, y)
    return StageModel(mean.tolist(), scale.tolist(), coef.tolist(), bias)


def fit_router(
    table: OutcomeTable,
    prices: dict[str, Price],
    models: Sequence[str] | None = None,
    *,
    seed: int = 0,
    folds: int = 5,
    max_candidates: int = 6,
    max_chain: int = 4,
) -> LearnedRouter:
    """Fit a router on ``table`` (restricted to ``models``); deterministic for a seed."""
    pool = tuple(models) if models else table.models
    if not pool:
        raise OutcomeTableError("no model is recorded on every prompt")
    table = table.restricted(pool)
    require_prices(prices, pool)
    if not table.labelled:
        raise OutcomeTableError("fitting needs 'correct' or 'score' on every outcome")
    fitter = _Fitter(table, prices, seed, folds)
    fitter.fit_prompt_models()
    candidates = [
        pool[j]
        for j in _candidate_models(
            fitter.cost.mean(axis=0), fitter.quality.mean(axis=0), max_candidates
        )
    ]
    chains = [
        chain
        for length in range(1, min(max_chain, len(candidates)) + 1)
        for chain in combinations(candidates, length)
    ]
    for prefix in sorted({c[:k] for c in chains for k in range(1, len(c) + 1)}):
        fitter.fit_stage(prefix)
    points = [p for chain in chains for p in fitter.simulate(chain)]
    return LearnedRouter(
        models=pool,
        prompt_models=fitter.prompt_models,
        stages=fitter.stages,
        points=tuple(points),
        meta={"seed": seed, "prompts": len(table.records), "candidates": candidates},
    )
