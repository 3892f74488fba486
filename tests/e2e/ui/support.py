"""What the dashboard tests share: evaluation runs written as ``modelyard eval run`` does."""

from __future__ import annotations

from pathlib import Path

from modelyard.evals.store import Result, RunDir

ITEMS = 4


def write_eval_run(
    path: Path,
    models: list[str],
    *,
    quality: dict[str, float] | None = None,
    cost_usd: dict[str, float] | None = None,
) -> RunDir:
    """A finished run of ``ITEMS`` items per model: a model's share of items right is its
    ``quality`` (default 1), each call costs its ``cost_usd`` (default $0.0001)."""
    run = RunDir(path)
    run.write_meta({"run_id": path.name, "task": path.name, "models": models})
    for model in models:
        right = round((quality or {}).get(model, 1.0) * ITEMS)
        for i in range(ITEMS):
            run.append(
                Result(
                    item=f"q{i}",
                    model=model,
                    answer="42",
                    extracted="42",
                    score=1.0 if i < right else 0.0,
                    input_tokens=11,
                    output_tokens=7,
                    cost_usd=(cost_usd or {}).get(model, 0.0001),
                    cost_source="prices",
                    latency_ms=100.0 + 50 * i + 10 * len(model),
                    error=None,
                    final=True,
                    ts=1.0,
                )
            )
    run.close()
    return run
