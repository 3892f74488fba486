"""Evaluation runs for the dashboard: where they are found, and each one's comparison.

A run is a directory ``modelyard eval run`` wrote (``evals.store.RunDir``). They
are looked for in ``<data_dir>/evals`` and in every directory of
``MODELYARD_EVAL_DIRS`` (separated like ``PATH``), each directory itself and its
children to two levels. A run is named to clients by a digest of its path, so a
client picks among the runs found and never names a path.

The numbers come from ``evals.summary`` and the charts from ``evals.html``, as the
CLI's report has them; both import numpy, so they are imported only when a run is
summarized; ``modelyard.evals`` as a whole is imported only when the runs are looked
for, so that a gateway nobody opens the page of never loads it. Not here: HTTP
(``api.ui_api``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVAL_DIRS_ENV = "MODELYARD_EVAL_DIRS"
MAX_RUNS = 500


def eval_roots(data_dir: Path, env: dict[str, str] | None = None) -> list[Path]:
    """``<data_dir>/evals`` then the directories of ``MODELYARD_EVAL_DIRS``."""
    environ = os.environ if env is None else env
    extra = [Path(p) for p in environ.get(EVAL_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return list(dict.fromkeys([data_dir / "evals", *extra]))


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    path: Path
    name: str
    task: str | None
    models: list[str]
    modified: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "name": self.name,
            "task": self.task,
            "models": self.models,
            "modified": self.modified,
        }


def _info(path: Path) -> RunInfo | None:
    from modelyard.evals.store import RunDir

    run = RunDir(path)
    if not run.exists():
        return None
    try:
        meta = run.read_meta()
        modified = max(p.stat().st_mtime for p in (run.results_path, run.meta_path) if p.exists())
    except (OSError, ValueError):
        return None
    models = meta.get("models")
    return RunInfo(
        id=hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16],
        path=path,
        name=path.name,
        task=str(meta["task"]) if meta.get("task") else None,
        models=[str(m) for m in models] if isinstance(models, list) else [],
        modified=modified,
    )


def find_runs(roots: list[Path]) -> list[RunInfo]:
    """Every run under the roots, the newest first."""
    found: dict[str, RunInfo] = {}
    for root in roots:
        if not root.is_dir():
            continue
        candidates = [root]
        for child in sorted(root.iterdir()):
            if child.is_dir():
                candidates.append(child)
                candidates += sorted(c for c in child.iterdir() if c.is_dir())
        for path in candidates:
            info = _info(path)
            if info is not None:
                found.setdefault(info.id, info)
            if len(found) >= MAX_RUNS:
                break
    return sorted(found.values(), key=lambda r: -r.modified)


def run_report(run: RunInfo) -> dict[str, Any]:
    """A run's per-model summary, its Pareto frontier and the report's two SVG charts."""
    from modelyard.evals.html import latency_svg, quality_cost_svg
    from modelyard.evals.store import RunDir
    from modelyard.evals.summary import pareto_frontier, summarize

    summaries = summarize(RunDir(run.path).results().values(), run.models or None)
    points = [
        (s.model, s.cost_per_item, s.quality)
        for s in summaries
        if s.cost_per_item is not None and s.quality is not None
    ]
    return {
        **run.public(),
        "frontier": pareto_frontier(points),
        "models": [
            {
                "model": s.model,
                "items": s.items,
                "scored": s.scored,
                "errors": s.errors,
                "quality": s.quality,
                "cost_usd": s.cost_usd,
                "cost_per_item": s.cost_per_item,
                "p50_ms": s.p50_ms,
                "p95_ms": s.p95_ms,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
            }
            for s in summaries
        ],
        # drawn by evals.html from numbers only, every label escaped there
        "quality_cost_svg": quality_cost_svg(summaries),
        "latency_svg": latency_svg(summaries),
    }
