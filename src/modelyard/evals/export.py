"""A run as an outcome table (the format of ``routing-data/gsm8k-outcomes.jsonl``), so the
learned router can be fitted on it: one prompt a line,
``{"id", "task", "prompt", "reference", "outcomes": {MODEL: {"correct" or "score",
"answer", "input_tokens", "output_tokens"}}}``.

A scorer that only gives 0 or 1 is exported as ``correct`` (bool), any other as ``score``.
A call that failed counts as a wrong answer: ``answer`` null, its tokens 0 when unknown.
A pair never run is left out of its prompt's ``outcomes``, and a prompt with none at all
is left out of the table. A scorer that gave no score (a judge that did not answer) counts
as 0.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.evals.store import Result


def outcome_rows(
    items: list[dict[str, Any]], results: dict[tuple[str, str], Result], task: str
) -> list[dict[str, Any]]:
    models = sorted({model for _, model in results})
    binary = all(r.score in (None, 0.0, 1.0) for r in results.values())
    rows = []
    for item in items:
        outcomes: dict[str, Any] = {}
        for model in models:
            result = results.get((item["id"], model))
            if result is None:
                continue
            score = result.score or 0.0
            cell: dict[str, Any] = {"correct": score == 1.0} if binary else {"score": score}
            cell["answer"] = result.extracted if result.error is None else None
            cell["input_tokens"] = result.input_tokens or 0
            cell["output_tokens"] = result.output_tokens or 0
            outcomes[model] = cell
        if not outcomes:
            continue
        rows.append(
            {
                "id": item["id"],
                "task": task,
                "prompt": item["prompt"],
                "reference": _text(item.get("reference")),
                "outcomes": outcomes,
            }
        )
    return rows


def _text(reference: Any) -> str | None:
    """The table's references are text: a number or an object is written as its JSON."""
    if reference is None or isinstance(reference, str):
        return reference
    return orjson.dumps(reference).decode()
