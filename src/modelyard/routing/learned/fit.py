"""Fitting a learned router from a labelled outcome table.

1. Per model, a ridge regression of its quality on hashed prompt features;
   out-of-fold estimates feed step 3, so stage models learn from honest estimates.
2. Candidate cascades: the models not beaten on both mean cost and mean quality,
   taken cheapest first, in every ordered combination up to ``max_chain`` long.
3. Per cascade prefix and called model, a logistic model of that model's
   correctness from the answer features (format, length, agreement).
4. Per prefix, a calibration of the best answer's score (``calibrate``), and per
   prefix and next model, the weight that makes the stop rule cost-aware
   (``escalation_weight``).
5. Each cascade is simulated out of fold over a grid of thresholds; the points
   not beaten on both cost and quality are kept, per cascade.

Every penalty (steps 1 and 3) is chosen per model by the out-of-fold loss over the
same folds, from the fixed grids below; nothing is tuned on data the caller holds out.

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
    calibrated,
    pick_answer,
    stop_score,
)
from modelyard.routing.learned.table import (
    OutcomeTable,
    OutcomeTableError,
    Price,
    require_prices,
)

Array = npt.NDArray[np.float64]

# Ridge penalties tried per model (prompt features are l2-normalised, so the Gram
# diagonal is 1) and per stage model (times 1/n on standardised answer features).
PROMPT_PENALTIES = (1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
STAGE_PENALTIES = (1.0, 10.0, 100.0)


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


def _ridge_path(x: csr_matrix, y: Array, penalties: Sequence[float]) -> list[tuple[Array, Array]]:
    """Weights (buckets x outputs) and biases of ridge regressions of every column of ``y``,
    at every penalty.

    Solved in the dual, so the cost grows with prompts, not with hash buckets; one
    eigendecomposition of the Gram matrix serves every penalty.
    """
    bias = y.mean(axis=0)
    values, vectors = np.linalg.eigh((x @ x.T).toarray())
    projected = vectors.T @ (y - bias)
    dual = x.T @ vectors  # buckets x prompts, sparse times dense
    return [
        (np.asarray(dual @ (projected / (values + penalty)[:, None])), bias)
        for penalty in penalties
    ]


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
        self.prompt_penalty: dict[str, float] = {}
        self.stage_penalty: dict[tuple[Prefix, str], float] = {}
        self.oof_estimates = np.zeros((n, len(self.models)))
        self.stages: dict[tuple[Prefix, str], StageModel] = {}
        self.oof_confidence: dict[tuple[Prefix, str], Array] = {}
        self.calibration: dict[Prefix, tuple[float, float]] = {}
        self.picks: dict[Prefix, tuple[Array, Array]] = {}
        self.escalation: dict[tuple[Prefix, str], float] = {}

    def fit_prompt_models(self, penalties: Sequence[float] = PROMPT_PENALTIES) -> None:
        """Per model, the ridge penalty with the least out-of-fold squared error.

        Where the prompt says little about a model's quality, a large penalty wins and the
        estimate stays near the model's mean rather than feeding noise to the stages.
        """
        n, m = self.quality.shape
        oof = np.zeros((len(penalties), n, m))
        for f in range(self.n_folds):
            train, test = self.folds != f, self.folds == f
            fitted = _ridge_path(self.prompts[train], self.quality[train], penalties)
            for p, (weights, bias) in enumerate(fitted):
                oof[p][test] = self.prompts[test] @ weights + bias
        error = ((oof - self.quality) ** 2).mean(axis=1)  # penalties x models
        chosen = error.argmin(axis=0)
        self.oof_estimates = oof[chosen, :, np.arange(m)].T
        fitted = _ridge_path(self.prompts, self.quality, penalties)
        for j, model in enumerate(self.models):
            weights, bias = fitted[chosen[j]]
            self.prompt_models[model] = PromptModel(_compact(weights[:, j]), float(bias[j]))
            self.prompt_penalty[model] = float(penalties[chosen[j]])

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
            oof = np.zeros((len(STAGE_PENALTIES), len(y)))
            for f in range(self.n_folds):
                train, test = self.folds != f, self.folds == f
                for p, penalty in enumerate(STAGE_PENALTIES):
                    stage = _stage_model(x[train], y[train], penalty)
                    oof[p, test] = _stage_probability(stage, x[test])
            clipped = np.clip(oof, 1e-9, 1 - 1e-9)
            loss = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean(axis=1)
            best = int(loss.argmin())
            self.stages[(prefix, model)] = _stage_model(x, y, STAGE_PENALTIES[best])
            self.stage_penalty[(prefix, model)] = STAGE_PENALTIES[best]
            self.oof_confidence[(prefix, model)] = oof[best]

    def calibrate(self, prefix: Prefix) -> None:
        """Per prefix, a logistic map from the pick's score to the chance it is right.

        The noisy-or of ``pick_answer`` counts agreeing models as independent witnesses,
        and the stage models already weigh agreement, so raw scores run high, the more so
        the more models were called; once calibrated, one threshold means the same chance
        of a right answer at every stage of a cascade.
        """
        conf = {m: self.oof_confidence[(prefix, m)] for m in prefix}
        picks = [
            pick_answer(
                {m: record.outcomes[m].answer for m in prefix},
                {m: float(conf[m][i]) for m in prefix},
            )
            for i, record in enumerate(self.records)
        ]
        score = np.array([s for _, s in picks])
        chosen = np.array([self.models.index(model) for model, _ in picks])
        right = self.quality[np.arange(len(chosen)), chosen]
        clipped = np.clip(score, 1e-6, 1 - 1e-6)
        coef, bias = _logistic(np.log(clipped / (1 - clipped))[:, None], right)
        self.calibration[prefix] = (float(coef[0]), bias)
        self.picks[prefix] = (
            np.array([calibrated(s, self.calibration[prefix]) for s in score]),
            chosen,
        )

    def escalation_weight(self, prefix: Prefix, following: str) -> float:
        """What one more doubt is worth before calling ``following`` after ``prefix``.

        Calling it gains about ``alpha * (1 - p)`` in quality (``p``: the calibrated chance
        that the best answer so far is right; ``alpha`` fitted out of fold); divided by the
        call's mean cost (relative to the pool's), a threshold on ``1 - weight * (1 - p)``
        stops before a dear call sooner than before a cheap one that helps as much.
        """
        key = (prefix, following)
        if key not in self.escalation:
            p, now = self.picks[prefix]
            _, after = self.picks[(*prefix, following)]
            rows = np.arange(len(now))
            gain = self.quality[rows, after] - self.quality[rows, now]
            doubt = 1.0 - p
            alpha = max(float(gain @ doubt) / max(float(doubt @ doubt), 1e-12), 1e-3)
            pool = float(self.cost.mean())
            dear = float(self.cost[:, self.models.index(following)].mean())
            self.escalation[key] = alpha * pool / max(dear, pool * 1e-6) if pool > 0 else alpha
        return self.escalation[key]

    def simulate(self, chain: Prefix) -> list[OperatingPoint]:
        n = len(self.records)
        best_q, best_j, spent = [], [], []
        total = np.zeros(n)
        for k in range(len(chain)):
            prefix = chain[: k + 1]
            score, chosen = self.picks[prefix]
            if k + 1 < len(chain):
                weight = self.escalation_weight(prefix, chain[k + 1])
                score = np.array([stop_score(p, weight) for p in score])
            best_q.append(score)
            best_j.append(chosen)
            total = total + self.cost[:, self.models.index(chain[k])]
            spent.append(total)
        if len(chain) == 1:
            thresholds = [0.0]
        else:
            pooled = np.concatenate(best_q[:-1])
            grid = np.quantile(pooled, np.linspace(0, 1, 65))
            thresholds = sorted({1.01, *(round(float(t), 12) for t in grid)})
        rows = np.arange(n)
        answers = np.stack(best_j, axis=1)
        costs = np.stack(spent, axis=1)
        points = []
        for t in thresholds:
            stop = np.full(n, len(chain) - 1)
            for k in reversed(range(len(chain) - 1)):
                stop = np.where(best_q[k] >= t, k, stop)
            cost = float(costs[rows, stop].mean())
            quality = float(self.quality[rows, answers[rows, stop]].mean())
            points.append(OperatingPoint(chain, t, cost, quality))
        points.sort(key=lambda p: (p.est_cost, -p.est_quality))
        kept: list[OperatingPoint] = []
        for p in points:
            if not kept or p.est_quality > kept[-1].est_quality:
                kept.append(p)
        return kept


def _stage_probability(stage: StageModel, x: Array) -> Array:
    """``stage.probability`` of every row of ``x`` at once."""
    z = ((x - np.array(stage.mean)) / np.array(stage.scale)) @ np.array(stage.coef) + stage.bias
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))


def _stage_model(x: Array, y: Array, penalty: float) -> StageModel:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    coef, bias = _logistic((x - mean) / scale, y, penalty)
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
        fitter.calibrate(prefix)
    points = [p for chain in chains for p in fitter.simulate(chain)]
    return LearnedRouter(
        models=pool,
        prompt_models=fitter.prompt_models,
        stages=fitter.stages,
        calibration=fitter.calibration,
        escalation=fitter.escalation,
        points=tuple(points),
        meta={
            "seed": seed,
            "prompts": len(table.records),
            "candidates": candidates,
            "prompt_penalty": fitter.prompt_penalty,
            "stage_penalty": {
                f"{p:g}": sum(1 for v in fitter.stage_penalty.values() if v == p)
                for p in STAGE_PENALTIES
            },
        },
    )
