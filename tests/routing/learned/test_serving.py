"""The ``learned`` block of a route: validated at start; the knob; answer extraction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.errors import ConfigError
from modelyard.routing.config import LearnedTarget
from modelyard.routing.learned.model import OperatingPoint
from modelyard.routing.learned.serving import LearnedServing, choose_point, extract_answer
from modelyard.settings import load_settings
from tests.routing.learned.echo_table import fit_router


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_router(tmp_path_factory.mktemp("router"))


def _config(tmp_path: Path, learned: dict[str, Any], members: list[str] | None = None) -> Path:
    deployments = [
        {"name": n, "provider": "openai-compatible", "model": n, "base_url": "http://x/v1"}
        for n in ("cheap", "dear", "other")
    ]
    route = {"name": "r", "deployments": members or ["cheap", "dear"], "learned": learned}
    path = tmp_path / "modelyard.yaml"
    path.write_text(yaml.safe_dump({"deployments": deployments, "routes": [route]}))
    return path


def _error(tmp_path: Path, learned: dict[str, Any], members: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(_config(tmp_path, learned, members), env={})
    return str(info.value)


MAPPED = {"small": "cheap", "big": "dear"}


def test_a_valid_block_loads_and_picks_its_point(tmp_path: Path, router: Path) -> None:
    learned = {"router": str(router), "target": {"quality": 0}, "models": MAPPED}
    settings = load_settings(_config(tmp_path, learned), env={})
    (route,) = settings.routes
    serving = LearnedServing.load(route, {"cheap", "dear"})
    assert serving.point.chain == ("small",)
    assert serving.deployments == MAPPED and serving.answer == "number"


def test_config_errors_name_the_route_and_the_problem(tmp_path: Path, router: Path) -> None:
    base = {"router": str(router), "models": MAPPED}
    assert "exactly one of" in _error(
        tmp_path, {**base, "target": {"quality": 0.5, "cost_per_request": 1}}
    )
    assert "exactly one of" in _error(tmp_path, {**base, "target": {}})
    missing = _error(
        tmp_path, {**base, "router": str(tmp_path / "no.npz"), "target": {"quality": 1}}
    )
    assert "'r'" in missing and "no such file" in missing
    (tmp_path / "junk.npz").write_bytes(b"not a router")
    junk = _error(
        tmp_path, {**base, "router": str(tmp_path / "junk.npz"), "target": {"quality": 1}}
    )
    assert "'r'" in junk and "not a router file" in junk
    unmapped = _error(tmp_path, {"router": str(router), "target": {"quality": 1}})
    assert "'r'" in unmapped and "big, small are not mapped" in unmapped
    outside = _error(tmp_path, {**base, "target": {"quality": 1}}, members=["cheap", "other"])
    assert "big are not mapped" in outside
    stranger = {**base, "models": {**MAPPED, "huge": "other"}, "target": {"quality": 1}}
    assert "not fitted on: huge" in _error(tmp_path, stranger)
    assert "answer" in _error(tmp_path, {**base, "target": {"quality": 1}, "answer": "last"})
    ghost = _error(tmp_path, {**base, "target": {"quality": 1}}, members=["cheap", "ghost"])
    assert "unknown deployment 'ghost'" in ghost


POINTS = [
    OperatingPoint(("a",), 0.0, 1.0, 0.5),
    OperatingPoint(("a", "b"), 0.3, 2.0, 0.8),
    OperatingPoint(("b",), 0.0, 5.0, 0.9),
]


@pytest.mark.parametrize(
    ("knob", "chosen"),
    [
        ({"quality": 0.7}, 1),
        ({"quality": 0.95}, 2),  # unreachable: the best there is
        ({"quality": 0}, 0),
        ({"cost_per_request": 3.0}, 1),
        ({"cost_per_request": 0.5}, 0),  # nothing within it: the cheapest
        ({"pay_per_quality": 1.0}, 0),
        ({"pay_per_quality": 10.0}, 1),
        ({"pay_per_quality": 100.0}, 2),
    ],
)
def test_the_knob_chooses_a_frontier_point(knob: dict[str, float], chosen: int) -> None:
    assert choose_point(POINTS, LearnedTarget.model_validate(knob)) is POINTS[chosen]


def test_answers_are_extracted_as_configured() -> None:
    assert extract_answer("so 3 + 4 = 1,234.5 dollars", "number") == "1234.5"
    assert extract_answer("no digits", "number") is None
    assert extract_answer('{"answer": 42}', "json:answer") == "42"
    assert extract_answer("not json", "json:answer") is None
    assert extract_answer("  Paris \n", "none") == "Paris"
    assert extract_answer(None, "none") is None
