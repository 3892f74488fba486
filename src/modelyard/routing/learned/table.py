"""Outcome tables: what each model answered on each recorded prompt, and prices.

An outcome table is JSON Lines, one prompt a line::

    {"id", "task", "prompt", "reference",
     "outcomes": {MODEL: {"correct": bool | "score": float in [0, 1],
                          "answer": str | null, "input_tokens": int, "output_tokens": int}}}

A prices file maps each model to USD per million tokens:
``{MODEL: {"input": float, "output": float}}``; keys starting with ``_`` are notes.

Here: parsing, validation (errors name the file, line and field), the cost of a
recorded call, and ``strip_labels`` (what replay hands the router: answers and
tokens, never correctness). Not here: fitting or serving a router.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigError


class OutcomeTableError(ConfigError):
    """An outcome table or a prices file is malformed; the message names line and field."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One model's recorded call on one prompt. ``quality`` is None once labels are stripped."""

    answer: str | None
    input_tokens: int
    output_tokens: int
    quality: float | None = None


@dataclass(frozen=True, slots=True)
class PromptRecord:
    id: str
    task: str
    prompt: str
    reference: str | None
    outcomes: Mapping[str, Outcome]


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float

    def cost(self, outcome: Outcome) -> float:
        """USD for one recorded call."""
        return (outcome.input_tokens * self.input + outcome.output_tokens * self.output) / 1e6


@dataclass(frozen=True, slots=True)
class OutcomeTable:
    records: tuple[PromptRecord, ...]

    @property
    def models(self) -> tuple[str, ...]:
        """Models recorded on every prompt, in first-seen order."""
        if not self.records:
            return ()
        common = set(self.records[0].outcomes)
        for record in self.records[1:]:
            common &= set(record.outcomes)
        return tuple(m for m in self.records[0].outcomes if m in common)

    @property
    def labelled(self) -> bool:
        return all(o.quality is not None for r in self.records for o in r.outcomes.values())

    def restricted(self, models: Iterable[str]) -> OutcomeTable:
        """The same prompts with only ``models``; each must be recorded on every prompt."""
        wanted = list(models)
        missing = [m for m in wanted if m not in self.models]
        if missing:
            raise OutcomeTableError(f"models not recorded on every prompt: {', '.join(missing)}")
        return OutcomeTable(
            tuple(replace(r, outcomes={m: r.outcomes[m] for m in wanted}) for r in self.records)
        )


def strip_labels(table: OutcomeTable) -> OutcomeTable:
    """The table without references and without any correctness or score."""
    return OutcomeTable(
        tuple(
            replace(
                r,
                reference=None,
                outcomes={m: replace(o, quality=None) for m, o in r.outcomes.items()},
            )
            for r in table.records
        )
    )


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in obj:
        raise OutcomeTableError(f"missing field {name!r}", source=where)
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise OutcomeTableError(f"field {name!r} has the wrong type: {value!r}", source=where)
    return value


def _outcome(raw: Any, where: str) -> Outcome:
    if not isinstance(raw, dict):
        raise OutcomeTableError("an outcome must be an object", source=where)
    quality: float | None = None
    if "correct" in raw and raw["correct"] is not None:
        quality = float(_field(raw, "correct", bool, where))
    elif "score" in raw and raw["score"] is not None:
        score = _field(raw, "score", (int, float), where)
        if isinstance(score, bool) or not (0.0 <= score <= 1.0) or math.isnan(score):
            raise OutcomeTableError(f"field 'score' must be in [0, 1]: {score!r}", source=where)
        quality = float(score)
    answer = raw.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise OutcomeTableError(
            f"field 'answer' must be a string or null: {answer!r}", source=where
        )
    tokens = []
    for name in ("input_tokens", "output_tokens"):
        value = _field(raw, name, int, where)
        if value < 0:
            raise OutcomeTableError(f"field {name!r} must be >= 0: {value}", source=where)
        tokens.append(value)
    return Outcome(answer, tokens[0], tokens[1], quality)


def parse_record(line: str, where: str) -> PromptRecord:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise OutcomeTableError(f"not JSON: {exc.msg}", source=where) from None
    if not isinstance(raw, dict):
        raise OutcomeTableError("a line must be a JSON object", source=where)
    outcomes_raw = _field(raw, "outcomes", dict, where)
    if not outcomes_raw:
        raise OutcomeTableError("field 'outcomes' is empty", source=where)
    reference = raw.get("reference")
    return PromptRecord(
        id=str(_field(raw, "id", (str, int), where)),
        task=str(raw.get("task", "")),
        prompt=_field(raw, "prompt", str, where),
        reference=None if reference is None else str(reference),
        outcomes={str(m): _outcome(o, f"{where}: outcomes.{m}") for m, o in outcomes_raw.items()},
    )


def load_table(path: Path) -> OutcomeTable:
    """Parse and validate a JSON Lines outcome table; ids must be unique."""
    records: list[PromptRecord] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            record = parse_record(line, where)
            if record.id in seen:
                raise OutcomeTableError(f"duplicate id {record.id!r}", source=where)
            seen.add(record.id)
            records.append(record)
    if not records:
        raise OutcomeTableError("the table has no prompts", source=str(path))
    return OutcomeTable(tuple(records))


def load_prices(path: Path) -> dict[str, Price]:
    """USD per million tokens per model; keys starting with ``_`` are skipped."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OutcomeTableError(
            f"not JSON: {exc.msg} (line {exc.lineno})", source=str(path)
        ) from None
    if not isinstance(raw, dict):
        raise OutcomeTableError("a prices file must be a JSON object", source=str(path))
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        if model.startswith("_"):
            continue
        where = f"{path}: {model}"
        if not isinstance(entry, dict):
            raise OutcomeTableError("a price must be an object", source=where)
        values = [_field(entry, side, (int, float), where) for side in ("input", "output")]
        if any(isinstance(v, bool) or v < 0 for v in values):
            raise OutcomeTableError(f"prices must be non-negative numbers: {values}", source=where)
        prices[model] = Price(float(values[0]), float(values[1]))
    return prices


def require_prices(prices: Mapping[str, Price], models: Iterable[str]) -> None:
    missing = [m for m in models if m not in prices]
    if missing:
        raise OutcomeTableError(f"no price for: {', '.join(missing)}", source="prices")
