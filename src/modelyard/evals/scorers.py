"""Scorers: pure functions from (answer text, reference, params) to a ``Score``.

Every scorer but the judge is here and needs no network; the judge's prompt and the
parsing of its verdict are here too, while its call to the gateway is the runner's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelyard.evals.jsonschema import validate


@dataclass(frozen=True)
class Score:
    score: float  # in [0, 1]
    extracted: str | None  # the final answer taken from the text, when there is one
    detail: str | None = None  # why, when the score is not 1


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def first_json_object(text: str) -> Any:
    """The first JSON value that parses starting at a ``{`` or ``[`` in ``text``, else None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return value
    return None


def _numbers(text: str) -> list[float]:
    out = []
    for raw in _NUMBER.findall(text):
        try:
            out.append(float(raw.replace(",", "")))
        except ValueError:
            continue
    return out


def extract_number(text: str, how: str = "last") -> float | None:
    """A number from the answer: the ``last`` or ``first`` one, or (``json``) the JSON
    object's ``answer`` field (itself a number or a text holding one)."""
    if how == "json":
        found = first_json_object(text)
        if not isinstance(found, dict) or "answer" not in found:
            return None
        value = found["answer"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        numbers = _numbers(str(value))
        return numbers[0] if numbers else None
    numbers = _numbers(text)
    if not numbers:
        return None
    return numbers[0] if how == "first" else numbers[-1]


def _fmt(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def exact(answer: str, reference: Any, params: dict[str, Any]) -> Score:
    ref = "" if reference is None else str(reference)
    ok = normalize(answer) == normalize(ref) if params.get("normalize", True) else answer == ref
    return Score(float(ok), answer.strip(), None if ok else "differs from the reference")


def numeric(answer: str, reference: Any, params: dict[str, Any]) -> Score:
    how = str(params.get("extract", "last"))
    got = extract_number(answer, how)
    ref = reference if isinstance(reference, int | float) else extract_number(str(reference))
    if got is None:
        return Score(0.0, None, f"no number found ({how})")
    if ref is None:
        return Score(0.0, _fmt(got), "the reference holds no number")
    rel_tol = float(params.get("rel_tol", 1e-6))
    ok = math.isclose(got, float(ref), rel_tol=rel_tol, abs_tol=float(params.get("abs_tol", 0)))
    return Score(float(ok), _fmt(got), None if ok else f"{_fmt(got)} is not {reference}")


def regex(answer: str, reference: Any, params: dict[str, Any]) -> Score:
    pattern = params.get("pattern", reference)
    if not isinstance(pattern, str):
        return Score(0.0, None, "no pattern")
    flags = 0
    for letter in str(params.get("flags", "")):
        flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}.get(letter, 0)
    found = re.search(pattern, answer, flags)
    if found is None:
        return Score(0.0, None, f"no match for {pattern!r}")
    extracted = found.group(1) if found.groups() else found.group(0)
    return Score(1.0, extracted)


def contains(answer: str, reference: Any, params: dict[str, Any]) -> Score:
    values = params.get("values", [reference])
    values = [values] if isinstance(values, str) else [str(v) for v in values or []]
    fold: Callable[[str], str] = str.casefold if params.get("ignore_case") else str
    missing = [v for v in values if fold(v) not in fold(answer)]
    detail = f"missing {missing!r}" if missing else None
    return Score(float(not missing and bool(values)), answer.strip(), detail)


def json_schema(answer: str, reference: Any, params: dict[str, Any]) -> Score:
    try:
        value = json.loads(answer)
    except ValueError:
        value = first_json_object(answer)
        if value is None:
            return Score(0.0, None, "the answer holds no JSON")
    errors = validate(value, params.get("schema", True))
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return Score(float(not errors), text, "; ".join(errors[:3]) or None)


LOCAL_SCORERS: dict[str, Callable[[str, Any, dict[str, Any]], Score]] = {
    "exact": exact,
    "numeric": numeric,
    "regex": regex,
    "contains": contains,
    "json_schema": json_schema,
}


def score_answer(answer: str, reference: Any, scorer: dict[str, Any]) -> Score:
    """Score with a local scorer (any type but ``judge``)."""
    return LOCAL_SCORERS[scorer["type"]](answer, reference, scorer)


JUDGE_RUBRIC = (
    "You are grading an answer to a task. Compare the candidate answer with the reference "
    "answer (when one is given) and judge whether the candidate answers the task correctly "
    "and completely. {criteria}Reply with only a JSON object: "
    '{{"score": S, "reason": "..."}} where S is a number from 0 (wrong) to 1 (fully '
    "correct).\n\n## Task\n{task}\n\n## Reference answer\n{reference}\n\n"
    "## Candidate answer\n{answer}\n"
)


def judge_messages(
    task: str, reference: Any, answer: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """The fixed rubric prompt the judge model is sent."""
    criteria = params.get("criteria")
    text = JUDGE_RUBRIC.format(
        criteria=f"Also consider: {criteria}. " if criteria else "",
        task=task,
        reference="(none)" if reference is None else reference,
        answer=answer,
    )
    return [{"role": "user", "content": text}]


_SCORE_FIELD = re.compile(r'"?score"?\s*[:=]\s*"?(-?\d+(?:\.\d+)?)\s*(/\s*\d+)?', re.IGNORECASE)


def parse_verdict(text: str) -> float | None:
    """The judge's score in [0, 1]: from its JSON object's ``score`` (also inside a code
    fence or amid prose), else a ``score: 0.8`` in the text; ``7/10`` and percentages are
    rescaled. None when there is none."""
    found = first_json_object(text)
    raw: Any = found.get("score") if isinstance(found, dict) else None
    if isinstance(raw, bool):
        raw = float(raw)
    if isinstance(raw, str):
        raw = _verdict_number(raw)
    if not isinstance(raw, int | float):
        match = _SCORE_FIELD.search(text)
        if match is None:
            return None
        raw = float(match.group(1))
        if match.group(2):
            raw /= float(match.group(2).lstrip("/ ").strip())
    value = float(raw)
    if 1 < value <= 100:
        value /= 10 if value <= 10 else 100
    if math.isnan(value) or not 0 <= value <= 1:
        return None
    return value


def _verdict_number(text: str) -> float | None:
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*(\d+)|(%))?\s*", text)
    if match is None:
        return None
    value = float(match.group(1))
    if match.group(2):
        return value / float(match.group(2))
    return value / 100 if match.group(3) else value
