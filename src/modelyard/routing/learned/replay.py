"""Replay: run the router's serving policy against recorded outcomes.

Each model call is answered from the table's record for that prompt: its answer
and token counts. The table is stripped of references and correctness before the
policy sees anything, so a replay can only route on what serving would see.
One decision per prompt and operating point: ``{"id", "point", "called", "answer_from"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.model import LearnedRouter, OperatingPoint
from modelyard.routing.learned.policy import CascadePolicy
from modelyard.routing.learned.table import (
    OutcomeTable,
    OutcomeTableError,
    PromptRecord,
    strip_labels,
)


async def replay(
    router: LearnedRouter,
    table: OutcomeTable,
    points: Sequence[OperatingPoint],
) -> list[dict[str, Any]]:
    """Decisions for every prompt of ``table`` at every point, points in the order given."""
    blind = strip_labels(table)
    decisions: list[dict[str, Any]] = []
    for index, point in enumerate(points):
        policy = CascadePolicy(router, point)
        for record in blind.records:
            routed = await policy.run(record.prompt, _recorded_calls(record))
            decisions.append(
                {
                    "id": record.id,
                    "point": index,
                    "called": [c.model for c in routed.called],
                    "answer_from": routed.answer_from,
                }
            )
    return decisions


def _recorded_calls(record: PromptRecord) -> Callable[[str], Awaitable[CalledAnswer]]:
    """A model call answered from the record: its answer and tokens, nothing else."""

    async def call(model: str) -> CalledAnswer:
        if model not in record.outcomes:
            raise OutcomeTableError(f"no recorded outcome of {model!r}", source=record.id)
        o = record.outcomes[model]
        return CalledAnswer(model, o.answer, o.input_tokens, o.output_tokens)

    return call
