"""What the stop rule reads: calibrated scores, cost-aware weights, penalties chosen out of fold."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.errors import ConfigError
from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.fit import PROMPT_PENALTIES, _Fitter, fit_router
from modelyard.routing.learned.model import (
    OperatingPoint,
    calibrated,
    pick_answer,
    stop_score,
)
from modelyard.routing.learned.policy import Call, CascadePolicy, Stop
from modelyard.routing.learned.store import load_router, save_router
from modelyard.routing.learned.table import OutcomeTable, load_prices, load_table
from tests.routing.learned import synthetic


@pytest.fixture(scope="module")
def table_and_prices(tmp_path_factory: pytest.TempPathFactory) -> tuple[OutcomeTable, Path]:
    root = tmp_path_factory.mktemp("stopping")
    rows = synthetic.rows(160, seed=1)
    rng = random.Random(7)
    for row in rows:  # a third model, right at random: its prompt says nothing
        right = rng.random() < 0.5
        row["outcomes"]["coin"] = {
            "correct": right,
            "answer": row["reference"] if right else "1",
            "input_tokens": 20,
            "output_tokens": 50,
        }
    prices: dict[str, Any] = {**synthetic.PRICES, "coin": {"input": 1.0, "output": 1.0}}
    (root / "prices.json").write_text(json.dumps(prices))
    return load_table(synthetic.write(root / "train.jsonl", rows)), root / "prices.json"


def test_calibration_maps_log_odds_and_identity_leaves_scores_alone() -> None:
    assert calibrated(0.73) == 0.73
    assert calibrated(0.5, (0.4, 0.0)) == pytest.approx(0.5)
    # a slope under 1 pulls an overconfident score towards one half
    assert 0.5 < calibrated(0.99, (0.4, 0.0)) < 0.99
    assert calibrated(0.01, (0.4, 0.0)) > 0.01
    assert stop_score(0.9) == pytest.approx(0.9)
    assert stop_score(0.9, 0.1) == pytest.approx(0.99)
    assert stop_score(0.9, 20.0) == pytest.approx(-1.0)


def test_the_prompt_penalty_is_small_where_the_prompt_predicts_quality(
    table_and_prices: tuple[OutcomeTable, Path],
) -> None:
    table, prices = table_and_prices
    fitter = _Fitter(table, load_prices(prices), seed=0, folds=5)
    fitter.fit_prompt_models()
    assert fitter.prompt_penalty["cheap"] == min(PROMPT_PENALTIES)
    assert fitter.prompt_penalty["coin"] > fitter.prompt_penalty["cheap"]
    marked = fitter.quality[:, fitter.models.index("cheap")] == 1
    estimates = fitter.oof_estimates[:, fitter.models.index("cheap")]
    assert estimates[marked].mean() > estimates[~marked].mean() + 0.3


def test_calibrated_scores_match_the_share_of_right_answers(
    table_and_prices: tuple[OutcomeTable, Path],
) -> None:
    table, prices = table_and_prices
    fitter = _Fitter(table, load_prices(prices), seed=0, folds=5)
    fitter.fit_prompt_models()
    for prefix in (("cheap",), ("cheap", "coin"), ("cheap", "coin", "strong")):
        fitter.fit_stage(prefix)
        fitter.calibrate(prefix)
        score, chosen = fitter.picks[prefix]
        right = fitter.quality[np.arange(len(chosen)), chosen]
        # a logistic fit with a free intercept matches the mean exactly at its optimum
        assert score.mean() == pytest.approx(right.mean(), abs=0.005)


def test_a_call_that_pays_less_is_weighted_less(
    table_and_prices: tuple[OutcomeTable, Path],
) -> None:
    table, prices = table_and_prices
    fitter = _Fitter(table, load_prices(prices), seed=0, folds=5)
    fitter.fit_prompt_models()
    for prefix in (("cheap",), ("cheap", "coin"), ("cheap", "strong")):
        fitter.fit_stage(prefix)
        fitter.calibrate(prefix)
    per_dollar = {
        m: fitter.escalation_weight(("cheap",), m) * fitter.cost[:, fitter.models.index(m)].mean()
        for m in ("coin", "strong")
    }
    # after cheap, a coin toss fixes fewer answers per doubt than strong, always right
    assert per_dollar["coin"] < per_dollar["strong"]


def test_the_escalation_weight_moves_the_stop_decision(tmp_path: Path) -> None:
    router = fit_router(
        load_table(synthetic.write(tmp_path / "t.jsonl", synthetic.rows(80, seed=3))),
        load_prices(synthetic.write_prices(tmp_path / "p.json")),
    )
    prompt = "w1 w2 w3 w4 w5 w6"  # no marker: cheap is likely wrong
    cheap = CalledAnswer("cheap", "123", 20, 50)
    point = OperatingPoint(("cheap", "strong"), 0.9, 0.0, 0.0)

    def decide(weight: float) -> Call | Stop:
        weighted = replace(router, escalation={(("cheap",), "strong"): weight})
        return CascadePolicy(weighted, point).decide(prompt, [cheap])

    assert decide(1.0) == Call("strong")
    assert decide(0.0) == Stop("cheap")  # doubt weighed at nothing: never worth the call


def test_the_file_keeps_calibration_and_weights_and_reads_version_1(
    table_and_prices: tuple[OutcomeTable, Path], tmp_path: Path
) -> None:
    table, prices = table_and_prices
    router = fit_router(table, load_prices(prices))
    assert router.calibration and router.escalation
    path = tmp_path / "router.npz"
    save_router(router, path)
    loaded = load_router(path)
    assert loaded.calibration == router.calibration
    assert loaded.escalation == router.escalation
    assert loaded.meta["prompt_penalty"] == router.meta["prompt_penalty"]

    with np.load(path, allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes().decode())
        weights = data["prompt_weights"]
    header["format"] = "modelyard-learned-router/1"
    del header["calibration"], header["escalation"]
    old = tmp_path / "old.npz"
    encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(old, header=encoded, prompt_weights=weights)
    legacy = load_router(old)
    assert legacy.calibration == {} and legacy.escalation == {}
    # without calibration the stop score is pick_answer's own
    answers = {"cheap": "5", "strong": "5"}
    _, score = pick_answer(answers, {"cheap": 0.6, "strong": 0.7})
    assert legacy.stop_score(("cheap",), "strong", score) == score

    header["format"] = "modelyard-learned-router/0"
    encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(old, header=encoded, prompt_weights=weights)
    with pytest.raises(ConfigError, match="unknown router format"):
        load_router(old)
