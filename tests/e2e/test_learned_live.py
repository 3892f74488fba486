"""Learning from live traffic, end to end: sample, judge, export, refit, serve the new router.

A gateway process serves a learned route whose router (fitted on the echo
table, where ``small`` is always right) never escalates. Every answered
request is sampled: the reference ``big`` answers it too, and each answer is
scored. Against the solver upstream ``small`` is wrong on tricky prompts, so
the exported table says so, and a router refitted on it escalates exactly the
tricky ones. The extra calls are in the ledger and stop at the day's budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import Gateway, start_gateway_process, stop_gateway
from tests.e2e.governance.support import ADMIN, ENV, admin
from tests.e2e.learned_support import play_solver, upstream_models, wait_for_outcomes
from tests.fakes.harness import LoopbackServer, Recorder
from tests.routing.learned.echo_table import fit_router, prompt

Upstream = tuple[LoopbackServer, Recorder]
CHEAP, DEAR, JUDGE = 25, 250, 25  # micro-dollars of one solver answer (11 in, 7 out)

CONFIG = """
embedded_models: false
deployments:
  - name: cheap-dep
    provider: openai-compatible
    model: small-model
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
  - name: dear-dep
    provider: openai-compatible
    model: big-model
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 10, output: 20}}
  - name: judge-dep
    provider: openai-compatible
    model: judge-model
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
routes:
  - name: learning
    deployments: [cheap-dep, dear-dep]
    learned:
      router: "{router}"
      target: {{quality: 0}}
      models: {{small: cheap-dep, big: dear-dep}}
      sample: {sample}
"""


def _ask(client: openai.OpenAI, text: str, route: str = "learning") -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": text}]
    )
    return raw.headers["x-request-id"]


def _spend(gw: Gateway) -> dict[str, Any]:
    time.sleep(1.2)  # the ledger is written in batches
    status, spend = admin(gw, "GET", "/admin/spend?group_by=route")
    assert status == 200, spend
    return {r["route"]: r for r in spend["rows"]}


def test_sampled_traffic_grows_a_table_that_refits_the_router(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream, tmp_path: Path
) -> None:
    server, recorder = openai_upstream
    router = fit_router(tmp_path)
    sample = "{share: 1.0, reference: dear-dep, judge: match, budget_per_day: 1.0}"
    gw = start_gateway(CONFIG.format(url=server.url, router=router, sample=sample), ENV)
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    play_solver(recorder)

    ids = {_ask(client, prompt(200 + i, tricky=i % 2 == 1)): i % 2 == 1 for i in range(16)}
    rows = wait_for_outcomes(gw, "learning", 16)
    assert {r["id"] for r in rows} == set(ids)
    models = upstream_models(recorder)
    assert models.count("small-model") == 16  # the cascade: the cheap model only
    assert models.count("big-model") == 16  # the sample: the reference, once a request
    for row in rows:
        tricky = ids[row["id"]]
        small, big = row["outcomes"]["small"], row["outcomes"]["big"]
        assert big["score"] == 1.0 and small["score"] == (0.0 if tricky else 1.0)
        assert row["reference"] == big["answer"] != (small["answer"] if tricky else None)
        assert small["input_tokens"] == 11 and big["output_tokens"] == 7

    spend = _spend(gw)["learning"]
    assert spend["requests"] >= 16
    assert spend["cost_micros"] == 16 * CHEAP + 16 * DEAR  # the samples are booked too

    table, prices, refit = tmp_path / "live.jsonl", tmp_path / "live-prices.json", tmp_path / "r2"
    env = {**os.environ, "MODELYARD_ADMIN_KEY": ADMIN}
    cli = [sys.executable, "-m", "modelyard", "router"]
    export = [*cli, "export", "learning", "-o", str(table), "--prices-out", str(prices)]
    done = subprocess.run([*export, "--url", gw.url], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "16 prompts" in done.stdout
    assert json.loads(prices.read_text()) == {
        "small": {"input": 1.0, "output": 2.0},
        "big": {"input": 10.0, "output": 20.0},
    }
    fit = [*cli, "fit", str(table), "--prices", str(prices), "-o", str(refit) + ".npz"]
    done = subprocess.run(fit, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    route = {
        "deployments": ["cheap-dep", "dear-dep"],
        "learned": {
            "router": str(refit) + ".npz",
            "target": {"quality": 1},
            "models": {"small": "cheap-dep", "big": "dear-dep"},
        },
    }
    status, found = admin(gw, "PUT", "/admin/routes/learning", route)
    assert status == 200, found
    _ask(client, prompt(300, tricky=False))
    assert upstream_models(recorder) == ["small-model"]
    _ask(client, prompt(301, tricky=True))
    assert upstream_models(recorder) == ["small-model", "big-model"]


def test_a_judge_deployment_scores_and_the_budget_stops_sampling(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream, tmp_path: Path
) -> None:
    server, recorder = openai_upstream
    router = fit_router(tmp_path)
    # a sample costs DEAR (the reference) + JUDGE (grading small): two fit under 0.0006 USD
    sample = "{share: 1.0, reference: dear-dep, judge: judge-dep, budget_per_day: 0.0006}"
    gw = start_gateway(CONFIG.format(url=server.url, router=router, sample=sample), ENV)
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    play_solver(recorder)

    for i in range(5):
        _ask(client, prompt(400 + i, tricky=True))
        wait_for_outcomes(gw, "learning", min(i + 1, 3), timeout=3)
    time.sleep(0.5)
    rows = wait_for_outcomes(gw, "learning", 3, timeout=0)
    assert len(rows) == 3  # 2 × 275 < 600 µ$ allowed a third; then the budget was spent
    for row in rows:
        assert row["outcomes"]["small"]["score"] == 0.0  # graded by the judge model
        assert row["outcomes"]["big"]["score"] == 1.0  # the reference itself
    models = upstream_models(recorder)
    assert models.count("judge-model") == 3 and models.count("big-model") == 3
    assert models.count("small-model") == 5
    assert _spend(gw)["learning"]["cost_micros"] == 5 * CHEAP + 3 * (DEAR + JUDGE)

    stop_gateway(gw)  # a restart reads the day's sampling spend back from the ledger
    again = start_gateway_process(
        gw.data_dir.parent, CONFIG.format(url=server.url, router=router, sample=sample), ENV
    )
    try:
        _ask(openai.OpenAI(base_url=again.v1, api_key="unused", max_retries=0), prompt(9, True))
        time.sleep(0.5)
        assert upstream_models(recorder) == ["small-model"]
    finally:
        stop_gateway(again)


@pytest.mark.parametrize(
    ("sample", "problem"),
    [
        ("{share: 1.0, reference: nowhere, budget_per_day: 1}", "sample.reference 'nowhere'"),
        ("{share: 0, reference: dear-dep, budget_per_day: 1}", "share"),
        ("{share: 0.5, reference: dear-dep}", "budget_per_day"),
    ],
)
def test_a_bad_sample_block_is_refused_at_start(
    tmp_path: Path, openai_upstream: Upstream, sample: str, problem: str
) -> None:
    server, _ = openai_upstream
    router = fit_router(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=server.url, router=router, sample=sample))
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "serve", "--config", str(config), "--port", "1"],
        env={**os.environ, **ENV, "MODELYARD_DATA_DIR": str(tmp_path / "d")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert problem in done.stderr
