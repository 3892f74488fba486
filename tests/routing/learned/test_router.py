"""Fit and replay on a synthetic table whose right routing is known (see ``synthetic``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.main import app
from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.fit import fit_router
from modelyard.routing.learned.model import LearnedRouter, OperatingPoint, pick_answer
from modelyard.routing.learned.policy import Call, CascadePolicy, Stop
from modelyard.routing.learned.replay import replay
from modelyard.routing.learned.store import load_router, save_router
from modelyard.routing.learned.table import (
    OutcomeTable,
    OutcomeTableError,
    load_prices,
    load_table,
    strip_labels,
)
from tests.routing.learned import synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("router")
    return {
        "train": synthetic.write(root / "train.jsonl", synthetic.rows(160, seed=1)),
        "test": synthetic.write(root / "test.jsonl", synthetic.rows(60, seed=2, prefix="q")),
        "prices": synthetic.write_prices(root / "prices.json"),
        "root": root,
    }


@pytest.fixture(scope="module")
def router(files: dict[str, Path]) -> LearnedRouter:
    return fit_router(load_table(files["train"]), load_prices(files["prices"]), seed=0)


def _cheapest_perfect(router: LearnedRouter) -> OperatingPoint:
    return min((p for p in router.frontier() if p.est_quality >= 0.99), key=lambda p: p.est_cost)


def _decide(table: OutcomeTable, router: LearnedRouter, points: int = 5) -> list[dict[str, object]]:
    return asyncio.run(replay(router, table, router.select_points(points)))


def test_the_router_escalates_exactly_when_the_cheap_model_is_wrong(
    router: LearnedRouter, files: dict[str, Path]
) -> None:
    point = _cheapest_perfect(router)
    assert point.chain == ("cheap", "strong")
    test = load_table(files["test"])
    decisions = asyncio.run(replay(router, test, [point]))
    for record, decision in zip(test.records, decisions, strict=True):
        if synthetic.MARKER in record.prompt.split():
            assert decision["called"] == ["cheap"]
            assert decision["answer_from"] == "cheap"
        else:
            assert decision["called"] == ["cheap", "strong"]
            assert decision["answer_from"] == "strong"


def test_points_run_from_cheapest_to_best(router: LearnedRouter) -> None:
    points = router.select_points(5)
    assert points[0].chain == ("cheap",)
    assert [p.est_cost for p in points] == sorted(p.est_cost for p in points)
    assert [p.est_quality for p in points] == sorted(p.est_quality for p in points)
    assert points[-1].est_quality == 1.0


def test_replay_never_reads_correctness(router: LearnedRouter, files: dict[str, Path]) -> None:
    test = load_table(files["test"])
    flipped = synthetic.rows(60, seed=2, prefix="q")
    for row in flipped:
        row.pop("reference")
        for outcome in row["outcomes"].values():
            outcome["correct"] = not outcome["correct"]
    unlabelled = synthetic.rows(60, seed=2, prefix="q")
    for row in unlabelled:
        for outcome in row["outcomes"].values():
            del outcome["correct"]
    expected = _decide(test, router)
    assert _decide(strip_labels(test), router) == expected
    root = files["root"]
    assert _decide(load_table(synthetic.write(root / "flip.jsonl", flipped)), router) == expected
    blind = load_table(synthetic.write(root / "blind.jsonl", unlabelled))
    assert not blind.labelled
    assert _decide(blind, router) == expected


def test_the_policy_decides_one_call_at_a_time(router: LearnedRouter) -> None:
    policy = CascadePolicy(router, _cheapest_perfect(router))
    prompt = "w1 w2 w3 w4 w5 w6"
    assert policy.decide(prompt, []) == Call("cheap")
    cheap = CalledAnswer("cheap", "123", 20, 50)
    assert policy.decide(prompt, [cheap]) == Call("strong")
    assert policy.decide(f"{prompt} {synthetic.MARKER}", [cheap]) == Stop("cheap")
    strong = CalledAnswer("strong", "124", 20, 50)
    assert policy.decide(prompt, [cheap, strong]) == Stop("strong")
    with pytest.raises(ValueError, match="prefix"):
        policy.decide(prompt, [strong])


def test_fitting_is_deterministic_and_the_file_round_trips(
    router: LearnedRouter, files: dict[str, Path]
) -> None:
    again = fit_router(load_table(files["train"]), load_prices(files["prices"]), seed=0)
    assert again.points == router.points and again.stages == router.stages
    path = files["root"] / "router.npz"
    save_router(router, path)
    loaded = load_router(path)
    test = load_table(files["test"])
    assert _decide(test, loaded) == _decide(test, router)


def test_fitting_needs_labels_and_prices(files: dict[str, Path]) -> None:
    table, prices = load_table(files["train"]), load_prices(files["prices"])
    with pytest.raises(OutcomeTableError, match="'correct' or 'score'"):
        fit_router(strip_labels(table), prices)
    with pytest.raises(OutcomeTableError, match="no price for: strong"):
        fit_router(table, {"cheap": prices["cheap"]})
    with pytest.raises(OutcomeTableError, match="nope"):
        fit_router(table, prices, ["cheap", "nope"])


def test_the_cli_fits_and_writes_one_decision_per_prompt_and_point(
    files: dict[str, Path],
) -> None:
    root, runner = files["root"], CliRunner()
    router_path, out = root / "cli.npz", root / "decisions.jsonl"
    common = ["--prices", str(files["prices"])]
    replay_args = [
        "router",
        "replay",
        str(router_path),
        str(files["test"]),
        *common,
        "-o",
        str(out),
    ]
    fitted = runner.invoke(
        app, ["router", "fit", str(files["train"]), *common, "-o", str(router_path), "--seed", "3"]
    )
    assert fitted.exit_code == 0, fitted.output
    replayed = runner.invoke(
        app,
        [*replay_args, "--points", "3", "--models", "cheap,strong"],
    )
    assert replayed.exit_code == 0, replayed.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    points = {line["point"] for line in lines}
    assert len(lines) == 60 * len(points) and points == set(range(len(points)))
    for line in lines:
        assert set(line) == {"id", "point", "called", "answer_from"}
        assert line["answer_from"] in line["called"]
    only_cheap = runner.invoke(
        app,
        [*replay_args, "--models", "cheap"],
    )
    assert only_cheap.exit_code == 0, only_cheap.output
    assert {tuple(json.loads(x)["called"]) for x in out.read_text().splitlines()} == {("cheap",)}
    unknown = runner.invoke(
        app,
        [*replay_args, "--models", "other"],
    )
    assert unknown.exit_code != 0


def test_scores_in_place_of_correctness_fit_the_same_routing(files: dict[str, Path]) -> None:
    scored = synthetic.rows(160, seed=1)
    for row in scored:
        for outcome in row["outcomes"].values():
            outcome["score"] = 0.9 if outcome.pop("correct") else 0.1
    table = load_table(synthetic.write(files["root"] / "scored.jsonl", scored))
    fitted = fit_router(table, load_prices(files["prices"]))
    point = max(
        (p for p in fitted.frontier() if p.chain == ("cheap", "strong")),
        key=lambda p: p.est_quality,
    )
    policy = CascadePolicy(fitted, point)
    cheap = CalledAnswer("cheap", "123", 20, 50)
    assert policy.decide("w1 w2 w3 w4 w5 w6", [cheap]) == Call("strong")
    assert policy.decide(f"w1 w2 w3 {synthetic.MARKER}", [cheap]) == Stop("cheap")


def test_models_giving_the_same_answer_vote_together() -> None:
    answers = {"a": "12", "b": "12.0", "c": "7", "d": None}
    confidence = {"a": 0.6, "b": 0.5, "c": 0.7, "d": 0.9}
    model, score = pick_answer(answers, confidence)
    assert model == "d" and score == pytest.approx(0.9)
    confidence["d"] = 0.75
    model, score = pick_answer(answers, confidence)
    assert model == "a" and score == pytest.approx(1 - 0.4 * 0.5)
