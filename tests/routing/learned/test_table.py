"""Outcome tables and prices: what loads, and errors that name the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.routing.learned.table import (
    OutcomeTableError,
    load_prices,
    load_table,
    strip_labels,
)

GOOD = {
    "id": "a",
    "task": "t",
    "prompt": "2+2?",
    "reference": "4",
    "outcomes": {
        "m1": {"correct": True, "answer": "4", "input_tokens": 3, "output_tokens": 5},
        "m2": {"score": 0.25, "answer": None, "input_tokens": 3, "output_tokens": 9},
    },
}


def _table(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _bad(**changes: object) -> str:
    row = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        target, _, field = key.partition("__")
        if field:
            row["outcomes"][target][field] = value
        else:
            row[target] = value
    return json.dumps(row)


def test_a_valid_table_loads_with_bool_and_score_outcomes(tmp_path: Path) -> None:
    table = load_table(_table(tmp_path, json.dumps(GOOD), "", json.dumps({**GOOD, "id": "b"})))
    assert [r.id for r in table.records] == ["a", "b"]
    assert table.models == ("m1", "m2")
    assert table.records[0].outcomes["m1"].quality == 1.0
    assert table.records[0].outcomes["m2"].quality == 0.25
    assert table.labelled


def test_strip_labels_removes_correctness_and_reference(tmp_path: Path) -> None:
    table = strip_labels(load_table(_table(tmp_path, json.dumps(GOOD))))
    record = table.records[0]
    assert record.reference is None
    assert all(o.quality is None for o in record.outcomes.values())
    assert record.outcomes["m1"].answer == "4"
    assert not table.labelled


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("{not json", ["t.jsonl:2", "not JSON"]),
        ("[1, 2]", ["t.jsonl:2", "object"]),
        (_bad(prompt=None), ["t.jsonl:2", "'prompt'"]),
        (_bad(outcomes={}), ["t.jsonl:2", "'outcomes'"]),
        (_bad(m1__input_tokens="3"), ["t.jsonl:2", "outcomes.m1", "'input_tokens'"]),
        (_bad(m1__output_tokens=-1), ["t.jsonl:2", "outcomes.m1", "'output_tokens'"]),
        (_bad(m1__correct="yes"), ["t.jsonl:2", "outcomes.m1", "'correct'"]),
        (_bad(m2__score=1.5), ["t.jsonl:2", "outcomes.m2", "'score'"]),
        (_bad(m2__answer=4), ["t.jsonl:2", "outcomes.m2", "'answer'"]),
        (json.dumps(GOOD), ["t.jsonl:2", "duplicate id"]),
    ],
)
def test_bad_lines_are_named_by_line_and_field(tmp_path: Path, line: str, names: list[str]) -> None:
    with pytest.raises(OutcomeTableError) as caught:
        load_table(_table(tmp_path, json.dumps(GOOD), line))
    for name in names:
        assert name in str(caught.value)


def test_an_empty_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OutcomeTableError, match="no prompts"):
        load_table(_table(tmp_path, ""))


def test_prices_skip_notes_and_name_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"_about": "x", "m1": {"input": 1, "output": 2.5, "host": "h"}}))
    prices = load_prices(path)
    assert list(prices) == ["m1"]
    assert prices["m1"].input == 1.0 and prices["m1"].output == 2.5
    path.write_text(json.dumps({"m1": {"input": 1}}))
    with pytest.raises(OutcomeTableError, match=r"m1.*'output'"):
        load_prices(path)
    path.write_text(json.dumps({"m1": {"input": -1, "output": 1}}))
    with pytest.raises(OutcomeTableError, match="non-negative"):
        load_prices(path)
