"""The local scorers, the JSON Schema subset validator and the judge's verdict parsing."""

from __future__ import annotations

import pytest

from modelyard.evals.jsonschema import validate
from modelyard.evals.scorers import (
    contains,
    exact,
    extract_number,
    json_schema,
    judge_messages,
    numeric,
    parse_verdict,
    regex,
    score_answer,
)


def test_exact_folds_case_and_whitespace_unless_told_not_to() -> None:
    assert exact("  Paris\n is  nice ", "paris is NICE", {}).score == 1.0
    assert exact("Paris", "paris", {"normalize": False}).score == 0.0
    assert exact("Paris", "Paris", {"normalize": False}).score == 1.0
    assert exact("Lyon", "Paris", {}).detail == "differs from the reference"


@pytest.mark.parametrize(
    ("text", "how", "expected"),
    [
        ("first 3 then 1,234.5 then -7", "last", -7.0),
        ("first 3 then 1,234.5 then -7", "first", 3.0),
        ('thinking 12... {"answer": "1,234"} and 99', "json", 1234.0),
        ('```json\n{"reasoning": "5+5", "answer": 10}\n```', "json", 10.0),
        ("no digits here", "last", None),
        ('{"other": 3}', "json", None),
        ("1e3 apples", "last", 1000.0),
    ],
)
def test_extract_number(text: str, how: str, expected: float | None) -> None:
    assert extract_number(text, how) == expected


def test_numeric_compares_within_relative_tolerance() -> None:
    assert numeric("The answer is 18.0", "18", {}).score == 1.0
    assert numeric("The answer is 18.0", "18", {}).extracted == "18"
    assert numeric("about 101", 100, {"rel_tol": 0.02}).score == 1.0
    assert numeric("about 101", 100, {}).score == 0.0
    assert numeric("The answer is 3 not 4", "3", {"extract": "first"}).score == 1.0
    missing = numeric("none", "3", {})
    assert (missing.score, missing.extracted, missing.detail) == (
        0.0,
        None,
        "no number found (last)",
    )
    assert numeric("7", "n/a", {}).detail == "the reference holds no number"


def test_regex_uses_the_pattern_or_the_reference_and_extracts_the_first_group() -> None:
    found = regex("Final: ANSWER=42", None, {"pattern": r"answer=(\d+)", "flags": "i"})
    assert (found.score, found.extracted) == (1.0, "42")
    assert regex("abc", "b.", {}).extracted == "bc"
    assert regex("abc", None, {"pattern": "z"}).score == 0.0
    assert regex("abc", None, {}).detail == "no pattern"


def test_contains_needs_every_value() -> None:
    assert contains("Paris and Rome", None, {"values": ["Paris", "Rome"]}).score == 1.0
    partial = contains("Paris", None, {"values": ["Paris", "Rome"]})
    assert (partial.score, partial.detail) == (0.0, "missing ['Rome']")
    assert contains("PARIS", "paris", {"ignore_case": True}).score == 1.0
    assert contains("PARIS", "paris", {}).score == 0.0


SCHEMA = {
    "type": "object",
    "required": ["name", "tags"],
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
        "kind": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}


def test_json_schema_validates_the_answer_or_the_first_object_in_it() -> None:
    good = json_schema(
        'Sure: {"name": "x", "tags": ["a"], "age": 3} done', None, {"schema": SCHEMA}
    )
    assert (good.score, good.extracted) == (1.0, '{"age": 3, "name": "x", "tags": ["a"]}')
    bad = json_schema('{"name": 1, "tags": ["c"]}', None, {"schema": SCHEMA})
    assert bad.score == 0.0
    assert (
        bad.detail
        == "$.name: expected string, got integer; $.tags[0]: 'c' is not one of ['a', 'b']"
    )
    assert json_schema("no json", None, {"schema": SCHEMA}).detail == "the answer holds no JSON"


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ({"name": "x", "tags": []}, []),
        ({"name": "x", "tags": [], "kind": None}, []),
        ({"name": "x"}, ["$: 'tags' is required"]),
        ({"name": "x", "tags": [], "extra": 1}, ["$: 'extra' is not allowed"]),
        ({"name": "x", "tags": [], "age": 2.0}, []),  # 2.0 is an integer in JSON Schema
        ({"name": "x", "tags": [], "age": True}, ["$.age: expected integer, got boolean"]),
        ({"name": "x", "tags": [], "age": 2.5}, ["$.age: expected integer, got number"]),
        ([1], ["$: expected object, got array"]),
    ],
)
def test_validator_subset(value: object, errors: list[str]) -> None:
    assert validate(value, SCHEMA) == errors


def test_validator_additional_properties_schema_enum_and_const() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "number"}}
    assert validate({"a": 1, "b": 2.5}, schema) == []
    assert validate({"a": "x"}, schema) == ["$.a: expected number, got string"]
    assert validate(True, {"enum": [1]}) == ["$: True is not one of [1]"]  # true is not 1
    assert validate(1.0, {"const": 1}) == []
    assert validate("x", True) == [] and validate("x", False) == ["$: no value is allowed here"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 0.75, "reason": "mostly"}', 0.75),
        ('Here is my verdict:\n```json\n{"score": 1, "reason": "right"}\n```', 1.0),
        ('{"score": "0.5"}', 0.5),
        ('{"score": "8/10"}', 0.8),
        ('{"score": "90%"}', 0.9),
        ('{"score": 7}', 0.7),  # a 0-10 scale
        ('{"score": true}', 1.0),
        ("Score: 0.4 because it is half right", 0.4),
        ("score = 3/4", 0.75),
        ('{"reason": "no score"}', None),
        ("I cannot grade this.", None),
        ('{"score": -1}', None),
        ('{"score": 250}', None),
    ],
)
def test_parse_verdict(text: str, expected: float | None) -> None:
    assert parse_verdict(text) == expected


def test_judge_prompt_holds_task_reference_answer_and_asks_for_json() -> None:
    [message] = judge_messages("What is 2+2?", "4", "four", {"criteria": "brevity"})
    text = message["content"]
    assert message["role"] == "user"
    for part in ("What is 2+2?", "## Reference answer\n4", "four", "brevity", '{"score": S'):
        assert part in text
    assert "(none)" in judge_messages("t", None, "a", {})[0]["content"]


def test_score_answer_dispatches_on_type() -> None:
    assert score_answer("x 5", "5", {"type": "numeric"}).score == 1.0
    assert score_answer("x 5", "6", {"type": "exact"}).score == 0.0
