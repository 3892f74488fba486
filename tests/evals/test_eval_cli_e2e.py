"""``modelyard eval run/report/export`` as subprocesses against a real gateway in front of
the fake OpenAI upstream, which answers ``Hello from fake openai: <prompt>`` (and
``{"answer": "ok"}`` when asked for JSON) with 11 prompt and 7 completion tokens."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiohttp import web

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.e2e.governance.support import ADMIN, make_key
from tests.fakes.harness import Handler, LoopbackServer, Recorded, Recorder

CONFIG = """
embedded_models: false
deployments:
  - name: m
    provider: openai-compatible
    model: m
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2, cached_input: 1}}
  - name: other
    provider: openai-compatible
    model: other
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 2, output: 4, cached_input: 2}}
"""
# per call: 9 + 2 cached input tokens and 7 output tokens, in USD
COST = {"m": 25e-6, "other": 50e-6}
SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"enum": ["ok"]}},
    "additionalProperties": False,
}
SUITE = [
    {"id": "sum", "prompt": "2+2 = 4", "reference": "4", "scorer": {"type": "numeric"}},
    {"id": "wrong", "prompt": "it is 5", "reference": "6", "scorer": {"type": "numeric"}},
    {
        "id": "exact",
        "prompt": "Ping",
        "reference": "hello from FAKE openai:  ping",
        "scorer": {"type": "exact"},
    },
    {"id": "re", "prompt": "x", "scorer": {"type": "regex", "pattern": r"fake (\w+)"}},
    {
        "id": "json",
        "prompt": "json please",
        "request": {"response_format": {"type": "json_object"}},
        "scorer": {"type": "json_schema", "schema": SCHEMA},
    },
    {"id": "bad", "prompt": "x", "reference": "x", "request": {"max_tokens": -1}},
    {"id": "dflt", "prompt": "zebra", "reference": "zebra"},  # the default scorer: contains
]
QUALITY = 5 / 7  # "wrong" scores 0 and "bad" is refused by the gateway


def _eval(gw: Gateway, *args: str, key: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_API_KEY": key, "MODELYARD_ADMIN_KEY": ADMIN, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "modelyard", "eval", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def _chat_calls(recorder: Recorder) -> list[tuple[str, str]]:
    return [(r.json["model"], r.json["messages"][-1]["content"]) for r in recorder.requests]


def _lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out


def test_run_resume_report_export(
    start_gateway: Callable[..., Gateway],
    openai_upstream: tuple[LoopbackServer, Recorder],
    tmp_path: Path,
) -> None:
    server, recorder = openai_upstream
    gw = start_gateway(
        CONFIG.format(url=server.url), {"K": UPSTREAM_KEY, "MODELYARD_ADMIN_KEY": ADMIN}
    )
    key = make_key(gw, "evals")
    suite = tmp_path / "suite.jsonl"
    suite.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in SUITE))
    run_dir = tmp_path / "run"
    command = [
        "run",
        str(suite),
        "--models",
        "m,other",
        "--gateway",
        gw.url,
        "--out",
        str(run_dir),
        "--concurrency",
        "3",
        "--scorer",
        "contains",
    ]

    first = _eval(gw, *command, key=key, cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # failed calls fail the command
    assert "sent 14 calls, 2 failed" in first.stderr
    assert "2 calls failed: run again with --retry-errors" in first.stderr
    assert len(recorder.requests) == 12  # the gateway refuses "bad" before any upstream call
    results = _lines(run_dir / "results.jsonl")
    assert len(results) == 14
    by_pair = {(r["item"], r["model"]): r for r in results}
    assert len(by_pair) == 14
    assert {k[0]: v["score"] for k, v in by_pair.items() if k[1] == "m"} == {
        "sum": 1.0,
        "wrong": 0.0,
        "exact": 1.0,
        "re": 1.0,
        "json": 1.0,
        "bad": None,
        "dflt": 1.0,
    }
    assert by_pair[("re", "m")]["extracted"] == "openai"
    assert by_pair[("json", "other")]["extracted"] == '{"answer": "ok"}'
    bad = by_pair[("bad", "m")]
    assert str(bad["error"]).startswith("HTTP 400") and bad["final"] is True
    ok = by_pair[("sum", "other")]
    assert (ok["input_tokens"], ok["output_tokens"], ok["error"]) == (11, 7, None)
    assert str(ok["request_id"]).startswith("req_")
    assert ok["latency_ms"] > 0
    ledger = orjson.loads((run_dir / "ledger.json").read_bytes())
    assert ledger[ok["call_tag"]] == COST["other"]
    assert all("x-modelyard-tags" not in r.headers for r in recorder.requests)

    # a crash: the last four results never written, the one before torn mid-line
    raw = (run_dir / "results.jsonl").read_bytes().splitlines(keepends=True)
    kept, torn = raw[:9], raw[9]
    (run_dir / "results.jsonl").write_bytes(b"".join(kept) + torn[: len(torn) // 2])
    lost = [orjson.loads(line) for line in raw[9:]]
    recorder.requests.clear()
    second = _eval(gw, *command, key=key, cwd=tmp_path)
    assert second.returncode == int(any(r["item"] == "bad" for r in lost)), second.stderr
    assert "9 pairs done, 5 to send" in second.stderr
    resent = {(r["item"], r["model"]) for r in lost if r["item"] != "bad"}
    prompts = {str(x["id"]): str(x["prompt"]) for x in SUITE}
    assert sorted(_chat_calls(recorder)) == sorted((m, prompts[i]) for i, m in resent)
    results = _lines(run_dir / "results.jsonl")
    assert len(results) == 14
    assert len({(r["item"], r["model"]) for r in results}) == 14

    recorder.requests.clear()
    third = _eval(gw, *command, key=key, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert recorder.requests == []
    assert "sent 0 calls" in third.stderr

    html = tmp_path / "report.html"
    report = _eval(gw, "report", str(run_dir), "--html", str(html), key=key, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    row = re.search(r"│ m\s+│\s+7 │\s+(\S+) │\s+(\S+) │", report.stdout)
    assert row is not None, report.stdout
    assert float(row.group(1)) == round(QUALITY, 3)
    assert float(row.group(2)) == round(6 * COST["m"], 6)  # six answered calls from the ledger
    page = html.read_text()
    assert "<svg" in page
    assert 'data-model="m" data-pareto="true"' in page
    assert 'data-model="other" data-pareto="false"' in page  # as good, and dearer
    assert '<polyline class="frontier"' in page

    table = tmp_path / "table.jsonl"
    export = _eval(gw, "export", str(run_dir), "-o", str(table), key=key, cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    rows = [orjson.loads(line) for line in table.read_bytes().splitlines()]
    assert [r["id"] for r in rows] == [x["id"] for x in SUITE]
    assert rows[0] == {
        "id": "sum",
        "task": "suite",
        "prompt": "2+2 = 4",
        "reference": "4",
        "outcomes": {
            "m": {"correct": True, "answer": "4", "input_tokens": 11, "output_tokens": 7},
            "other": {"correct": True, "answer": "4", "input_tokens": 11, "output_tokens": 7},
        },
    }
    assert rows[5]["outcomes"]["m"] == {
        "correct": False,
        "answer": None,
        "input_tokens": 0,
        "output_tokens": 0,
    }


def _answer(text: str, release: threading.Event | None = None) -> Handler:
    """A scripted upstream answer; with ``release``, held back until it is set."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        if release is not None:
            await asyncio.to_thread(release.wait, 30)
        message = {"role": "assistant", "content": text}
        return web.json_response(
            {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": 0,
                "model": rec.json["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    return handler


def test_a_killed_run_resumes_with_only_the_calls_in_flight_resent(
    start_gateway: Callable[..., Gateway],
    openai_upstream: tuple[LoopbackServer, Recorder],
    tmp_path: Path,
) -> None:
    server, recorder = openai_upstream
    gw = start_gateway(
        CONFIG.format(url=server.url), {"K": UPSTREAM_KEY, "MODELYARD_ADMIN_KEY": ADMIN}
    )
    key = make_key(gw, "evals")
    suite = tmp_path / "s.jsonl"
    suite.write_bytes(
        b"".join(orjson.dumps({"id": f"q{i}", "prompt": f"q{i}"}) + b"\n" for i in range(5))
    )
    run_dir = tmp_path / "run"
    command = [
        "run",
        str(suite),
        "--models",
        "m",
        "--gateway",
        gw.url,
        "--out",
        str(run_dir),
        "--concurrency",
        "1",
        "--scorer",
        "regex",
        "--prices",
        str(tmp_path / "p.json"),
    ]
    (tmp_path / "p.json").write_text('{"m": {"input": 1, "output": 2}}')
    release = threading.Event()
    recorder.script.extend([_answer("one"), _answer("two"), _answer("three", release)])
    env = {**os.environ, "MODELYARD_API_KEY": key}
    with subprocess.Popen(
        [sys.executable, "-m", "modelyard", "eval", *command],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        deadline = time.monotonic() + 30
        while len(recorder.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.kill()
    release.set()
    assert len(recorder.requests) == 3
    first = _lines(run_dir / "results.jsonl")
    assert [(r["item"], r["answer"]) for r in first] == [("q0", "one"), ("q1", "two")]
    assert first[0]["cost_usd"] == 7e-6 and first[0]["cost_source"] == "prices"

    recorder.requests.clear()
    again = _eval(gw, *command, key=key, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [r.json["messages"][0]["content"] for r in recorder.requests] == ["q2", "q3", "q4"]
    results = _lines(run_dir / "results.jsonl")
    assert [r["item"] for r in results] == ["q0", "q1", "q2", "q3", "q4"]
    # the killed session never read the ledger: the re-run (with an admin key) did, for all
    ledger = orjson.loads((run_dir / "ledger.json").read_bytes())
    assert {ledger[str(r["call_tag"])] for r in results} == {7e-6, 25e-6}


def test_judge_scores_through_the_gateway(
    start_gateway: Callable[..., Gateway],
    openai_upstream: tuple[LoopbackServer, Recorder],
    tmp_path: Path,
) -> None:
    server, recorder = openai_upstream
    gw = start_gateway(
        CONFIG.format(url=server.url), {"K": UPSTREAM_KEY, "MODELYARD_ADMIN_KEY": ADMIN}
    )
    key = make_key(gw, "evals")
    suite = tmp_path / "s.jsonl"
    item = {
        "id": "cap",
        "prompt": "Capital of France?",
        "reference": "Paris",
        "scorer": {"type": "judge", "criteria": "be strict"},
    }
    suite.write_bytes(orjson.dumps(item) + b"\n")
    recorder.script.extend(
        [_answer("It is Paris."), _answer('Verdict:\n```json\n{"score": 0.8, "reason": "ok"}\n```')]
    )
    run = _eval(
        gw,
        "run",
        str(suite),
        "--models",
        "m",
        "--gateway",
        gw.url,
        "--judge",
        "other",
        "--out",
        str(tmp_path / "run"),
        key=key,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    [result] = _lines(tmp_path / "run" / "results.jsonl")
    assert (result["score"], result["answer"]) == (0.8, "It is Paris.")
    answer_call, judge_call = recorder.requests
    assert (answer_call.json["model"], judge_call.json["model"]) == ("m", "other")
    rubric = judge_call.json["messages"][0]["content"]
    assert "It is Paris." in rubric and "be strict" in rubric and "Paris" in rubric
