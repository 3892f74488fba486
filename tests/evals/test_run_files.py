"""The suite reader, the run directory (torn lines, resumption), the summary, the Pareto
frontier, the HTML report and the outcome-table export, without servers."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from modelyard.evals.client import ChatReply
from modelyard.evals.export import outcome_rows
from modelyard.evals.html import render
from modelyard.evals.runner import Runner, RunPlan, check_prices
from modelyard.evals.store import Result, RunDir
from modelyard.evals.suite import SuiteError, load_suite, parse_scorer
from modelyard.evals.summary import pareto_frontier, summarize


def _suite(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "suite.jsonl"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


def test_suite_items_from_prompt_or_messages_with_default_scorer(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        {"id": "a", "prompt": "hi", "reference": "x"},
        {
            "id": 2,
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "scorer": {"type": "regex", "pattern": "u"},
            "request": {"max_tokens": 5},
        },
    )
    a, b = load_suite(path, parse_scorer("exact"))
    assert a.messages == [{"role": "user", "content": "hi"}]
    assert a.scorer == {"type": "exact"}
    assert (b.id, b.scorer["type"], b.request, b.prompt_text) == (
        "2",
        "regex",
        {"max_tokens": 5},
        "s\nu",
    )
    assert parse_scorer('{"type": "numeric", "rel_tol": 0.1}') == {
        "type": "numeric",
        "rel_tol": 0.1,
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"prompt": "x"}, 'needs an "id"'),
        ({"id": "a"}, 'needs "prompt"'),
        ({"id": "a", "prompt": "x", "scorer": {"type": "bleu"}}, "a scorer needs a type"),
        ({"id": "a", "prompt": "x"}, "no default scorer"),
    ],
)
def test_suite_errors_name_the_line(tmp_path: Path, line: object, message: str) -> None:
    path = _suite(tmp_path, line)
    with pytest.raises(SuiteError, match=re.escape(message)) as info:
        load_suite(path)
    assert f"{path}:1" in str(info.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = _suite(tmp_path, {"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"})
    with pytest.raises(SuiteError, match="used twice"):
        load_suite(path, {"type": "exact"})


def _result(item: str, model: str, **kw: object) -> Result:
    base: dict[str, object] = {
        "answer": "a",
        "extracted": "a",
        "score": 1.0,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": 1e-5,
        "cost_source": "prices",
        "latency_ms": 100.0,
        "error": None,
        "final": True,
        "call_tag": f"{item}-{model}",
    }
    return Result.from_dict({"item": item, "model": model, **base, **kw})


def test_run_dir_skips_torn_lines_keeps_the_latest_and_applies_ledger_costs(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path / "run")
    run.append(_result("1", "m", error="HTTP 503: busy", final=False, score=None))
    run.close()
    with run.results_path.open("ab") as f:
        f.write(b'{"item": "2", "model": "m", "ans')  # a crash mid-write
    run.append(_result("1", "m"))
    run.add_ledger({"1-m": 0.5})
    run.close()
    assert len(run.results_path.read_bytes().splitlines()) == 3
    results = run.results()
    assert list(results) == [("1", "m")]
    assert results[("1", "m")].error is None
    assert (results[("1", "m")].cost_usd, results[("1", "m")].cost_source) == (0.5, "ledger")


def test_plan_sends_missing_and_retryable_pairs(tmp_path: Path) -> None:
    path = _suite(tmp_path, *({"id": i, "prompt": "x"} for i in "abc"))
    items = load_suite(path, {"type": "exact"})
    done = {
        ("a", "m"): _result("a", "m"),
        ("b", "m"): _result("b", "m", error="HTTP 400: bad", final=True),
        ("c", "m"): _result("c", "m", error="HTTP 503: busy", final=False),
    }
    plan = RunPlan(items, ["m", "n"])
    assert [(i.id, m) for i, m in plan.pending(done)] == [
        ("a", "n"),
        ("b", "n"),
        ("c", "m"),
        ("c", "n"),
    ]
    plan.retry_errors = True
    assert ("b", "m") in [(i.id, m) for i, m in plan.pending(done)]


def test_summary_counts_errors_as_wrong_and_times_only_answers() -> None:
    results = [
        _result("1", "m", latency_ms=100.0),
        _result("2", "m", score=0.0, latency_ms=300.0, cost_usd=3e-5),
        _result("3", "m", error="boom", score=None, latency_ms=5.0, cost_usd=None),
    ]
    [s] = summarize(results)
    assert (s.items, s.errors, s.scored) == (3, 1, 2)
    assert s.quality == pytest.approx(1 / 3)
    assert s.cost_usd == pytest.approx(4e-5)
    assert s.cost_per_item == pytest.approx(2e-5)
    assert (s.p50_ms, s.p95_ms) == (200.0, pytest.approx(290.0))


def test_pareto_frontier() -> None:
    points = [
        ("big", 10.0, 0.9),
        ("mid", 2.0, 0.8),
        ("bad", 5.0, 0.5),
        ("tiny", 1.0, 0.3),
        ("same", 2.0, 0.8),
    ]
    assert pareto_frontier(points) == ["tiny", "mid", "big"]


def test_html_report_draws_a_point_per_model_and_the_frontier() -> None:
    results = [
        _result("1", "cheap", cost_usd=1e-6, score=0.5),
        _result("1", "dear", cost_usd=1e-4, score=1.0, latency_ms=900.0),
        _result("1", "worse", cost_usd=2e-4, score=0.2),
        _result("1", "<b>", cost_usd=None, error="x", score=None),
    ]
    page = render("t", summarize(results))
    assert page.count('<circle class="model"') == 3  # a model of unknown cost has no point
    assert 'data-model="dear" data-pareto="true"' in page
    assert 'data-model="worse" data-pareto="false"' in page
    assert '<polyline class="frontier"' in page
    assert page.count('<g class="box"') == 3
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch


def test_export_writes_the_outcome_table_format() -> None:
    items = [
        {"id": "1", "prompt": "p1", "reference": "4"},
        {"id": "2", "prompt": "p2", "reference": 5},
        {"id": "3", "prompt": "never run", "reference": "6"},
    ]
    results = {
        ("1", "m"): _result("1", "m", extracted="4"),
        ("1", "n"): _result("1", "n", error="HTTP 500", score=None, input_tokens=None),
        ("2", "m"): _result("2", "m", score=0.0, extracted=None),
    }
    rows = outcome_rows(items, results, "math")
    assert rows[0] == {
        "id": "1",
        "task": "math",
        "prompt": "p1",
        "reference": "4",
        "outcomes": {
            "m": {"correct": True, "answer": "4", "input_tokens": 10, "output_tokens": 5},
            "n": {"correct": False, "answer": None, "input_tokens": 0, "output_tokens": 5},
        },
    }
    assert list(rows[1]["outcomes"]) == ["m"]
    assert rows[1]["reference"] == "5"  # references are text in an outcome table
    assert len(rows) == 2  # a prompt without outcomes is left out
    graded = outcome_rows(items, {("1", "m"): _result("1", "m", score=0.5)}, "t")
    assert graded[0]["outcomes"]["m"]["score"] == 0.5


def test_prices_file_format() -> None:
    data = {"_about": "x", "m": {"input": 1, "output": 2.5, "host": "h"}}
    assert check_prices(data) == {"m": {"input": 1.0, "output": 2.5}}
    with pytest.raises(ValueError, match="m: a price is"):
        check_prices({"m": {"input": 1}})


async def test_a_failing_scorer_is_recorded_not_raised(tmp_path: Path) -> None:
    path = _suite(tmp_path, {"id": "a", "prompt": "x", "scorer": {"type": "regex", "pattern": "("}})
    items = load_suite(path)

    class Client:
        async def chat(self, *args: object) -> ChatReply:
            return ChatReply("text", 1, 1, 1.0, "req_1", "m", 200)

    run_dir = RunDir(tmp_path / "run")
    runner = Runner(Client(), run_dir, "r")  # type: ignore[arg-type]
    [result] = await runner.run(RunPlan(items, ["m"]), [(items[0], "m")])
    run_dir.close()
    assert result.score is None
    assert str(result.detail).startswith("the scorer failed: error: missing ), unterminated")


async def test_a_busy_judge_leaves_the_pair_to_a_re_run(tmp_path: Path) -> None:
    path = _suite(tmp_path, {"id": "a", "prompt": "x", "scorer": {"type": "judge"}})
    items = load_suite(path)
    replies = [
        ChatReply("answer", 1, 1, 1.0, "req_1", "m", 200),
        ChatReply(None, None, None, 1.0, "req_2", "j", 503, "HTTP 503: busy"),
    ]

    class Client:
        async def chat(self, *args: object) -> ChatReply:
            return replies.pop(0)

    run_dir = RunDir(tmp_path / "run")
    runner = Runner(Client(), run_dir, "r")  # type: ignore[arg-type]
    plan = RunPlan(items, ["m"], judge="j")
    [result] = await runner.run(plan, [(items[0], "m")])
    run_dir.close()
    assert (result.score, result.error, result.final) == (None, None, False)
    assert result.detail == "the judge failed: HTTP 503: busy"
    assert plan.pending(run_dir.results()) == [(items[0], "m")]
