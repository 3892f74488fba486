"""Features the learned router reads: the prompt's words and the shape of answers.

Prompt features are hashed word unigrams and bigrams (crc32, so the same in every
process and on every machine), l2-normalised: a sparse vector featurised in tens
of microseconds, where a sentence embedding takes tens of milliseconds.
Answer features describe an answer without knowing whether it is right: missing,
non-numeric, how long the output was, whether it merely repeats a number of the
prompt, and how many other called models gave the same answer.
Nothing here depends on a task or on model names. Pure Python, no numpy.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

PROMPT_BUCKETS = 1 << 16
_WORD = re.compile(r"\w+")

ANSWER_FEATURES = (
    "prompt_estimate",
    "missing",
    "non_numeric",
    "non_integer",
    "negative",
    "log_magnitude",
    "log_answer_chars",
    "log_output_tokens",
    "log_input_tokens",
    "echoes_prompt",
    "agreement",
    "distinct_share",
)


def prompt_features(prompt: str) -> dict[int, float]:
    """Sparse l2-normalised hashed counts of lower-cased word unigrams and bigrams."""
    words = _WORD.findall(prompt.lower())
    counts: dict[int, float] = {}
    grams = words + [f"{a} {b}" for a, b in pairwise(words)]
    for gram in grams:
        bucket = zlib.crc32(gram.encode()) & (PROMPT_BUCKETS - 1)
        counts[bucket] = counts.get(bucket, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {k: v / norm for k, v in counts.items()}


def canonical_answer(answer: str | None) -> str | None:
    """The answer as compared for agreement: numbers by value, text case-folded."""
    if answer is None:
        return None
    text = answer.strip()
    number = _number(text)
    if number is not None:
        return repr(float(number))
    return text.casefold() or None


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class CalledAnswer:
    """What a called model returned, as the router may see it (never its correctness)."""

    model: str
    answer: str | None
    input_tokens: int
    output_tokens: int


def prompt_numbers(prompt: str) -> frozenset[str]:
    """The numbers written in a prompt, canonical, to spot an answer that only echoes one."""
    return frozenset(repr(v) for w in _WORD.findall(prompt) if (v := _number(w)) is not None)


def answer_features(
    numbers: frozenset[str],
    prompt_estimate: float,
    own: CalledAnswer,
    called: Sequence[CalledAnswer],
) -> list[float]:
    """The ``ANSWER_FEATURES`` of ``own`` among all ``called`` answers (own included).

    ``numbers`` is ``prompt_numbers(prompt)``, computed once per prompt by the caller.
    """
    text = (own.answer or "").strip()
    number = _number(text) if own.answer is not None else None
    mine = canonical_answer(own.answer)
    others = [canonical_answer(c.answer) for c in called if c.model != own.model]
    agreeing = sum(1 for o in others if mine is not None and o == mine)
    distinct = {canonical_answer(c.answer) for c in called} - {None}
    return [
        prompt_estimate,
        float(own.answer is None),
        float(own.answer is not None and number is None),
        float(number is not None and number != round(number)),
        float(number is not None and number < 0),
        math.log1p(abs(number)) if number is not None else 0.0,
        math.log1p(len(text)),
        math.log1p(own.output_tokens),
        math.log1p(own.input_tokens),
        float(number is not None and repr(number) in numbers),
        agreeing / len(others) if others else 0.0,
        len(distinct) / len(called) if called else 0.0,
    ]
