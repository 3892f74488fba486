"""The fuzz targets in CI: every corpus file replayed, then hypothesis mutating the corpus.

Replaying pins each input a fuzzer ever found (a crash fixed keeps its input
in ``corpus/TARGET/``). The hypothesis runs are bounded (``EXAMPLES`` per
target, ``MODELYARD_FUZZ_EXAMPLES`` for a longer hunt) and derandomized, so CI
is repeatable; a longer, coverage-guided run
is ``python -m tests.fuzz.atheris_main TARGET`` (the ``fuzz`` extra).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = int(os.environ.get("MODELYARD_FUZZ_EXAMPLES", "150"))  # more for a local hunt
DERANDOMIZE = "MODELYARD_FUZZ_EXAMPLES" not in os.environ  # a hunt explores new inputs
FILES = sorted(p for p in CORPUS.glob("*/*") if p.is_file())


def test_every_target_has_a_corpus() -> None:
    assert {p.parent.name for p in FILES} == set(TARGETS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_replays(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())


# ------------------------------------------------------------ mutating the corpus


def _docs(target: str) -> list[Any]:
    docs = []
    for path in sorted((CORPUS / target).iterdir()):
        try:
            docs.append(orjson.loads(path.read_bytes()))
        except orjson.JSONDecodeError:
            continue
    return docs


def _walk(node: Any, keys: set[str], strings: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(key)
            _walk(value, keys, strings)
    elif isinstance(node, list):
        for value in node:
            _walk(value, keys, strings)
    elif isinstance(node, str) and len(node) < 40:
        strings.add(node)


def _vocabulary() -> tuple[list[str], list[str]]:
    keys: set[str] = set()
    strings: set[str] = set()
    for target in TARGETS:
        for doc in _docs(target):
            _walk(doc, keys, strings)
    return sorted(keys), sorted(strings)


KEYS, STRINGS = _vocabulary()
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(STRINGS)
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a document, where a mutation may land."""
    out: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            out += _slots(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((node, i))
            out += _slots(value)
    return out


@st.composite
def mutated(draw: st.DrawFn, docs: list[Any]) -> bytes:
    """A corpus document with one to four parts replaced, deleted or added."""
    doc = copy.deepcopy(draw(st.sampled_from(docs)))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if op == "replace":
            container[key] = draw(VALUES)
        elif op == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.sampled_from(KEYS))] = draw(VALUES)
        else:
            container.insert(key, draw(VALUES))
    return orjson.dumps(doc)


def _fuzz(target: str) -> Any:
    docs = _docs(target)
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(mutated(docs) | st.binary(max_size=64))(_run(target)))


def _run(target: str) -> Any:
    def run(data: bytes) -> None:
        TARGETS[target](data)

    run.__name__ = f"fuzz_{target}"
    return run


test_fuzz_chat_request = _fuzz("chat_request")
test_fuzz_anthropic_inbound = _fuzz("anthropic_inbound")
test_fuzz_responses_inbound = _fuzz("responses_inbound")
test_fuzz_openai_upstream = _fuzz("openai_upstream")
test_fuzz_anthropic_upstream = _fuzz("anthropic_upstream")
test_fuzz_gemini_upstream = _fuzz("gemini_upstream")

SSE_BYTES = st.lists(
    st.sampled_from([b"data:", b"data: ", b"event: ", b":", b"\n", b"\r", b"\r\n", b"x", b"{}"])
    | st.binary(max_size=8)
    | st.sampled_from(["é", "中", "😀"]).map(str.encode),
    max_size=30,
).map(b"".join)


@settings(max_examples=EXAMPLES * 2, deadline=None, derandomize=DERANDOMIZE, database=None)
@given(SSE_BYTES)
def test_fuzz_sse(data: bytes) -> None:
    TARGETS["sse"](data)
