"""Keys, budgets, rate limits and the ledger, through a real gateway process and the OpenAI SDK."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from tests.conftest import Gateway, start_gateway_process, stop_gateway
from tests.e2e.governance.support import (
    ADMIN,
    CONFIG,
    COST,
    ENV,
    admin,
    chat_body,
    make_key,
    post_chat,
)
from tests.fakes.harness import LoopbackServer, Recorder, openai_error

Upstream = tuple[LoopbackServer, Recorder]


def _cli(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ENV, "COLUMNS": "200"},
    )


def test_keys_are_required_once_one_exists_and_revocation_holds_at_once(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    assert post_chat(gw, None, chat_body())[0] == 200  # embedded quickstart: open on loopback
    key = make_key(gw, "acme")
    status, _, body = post_chat(gw, None, chat_body())
    assert status == 401 and "API key is needed" in body["error"]["message"]
    assert post_chat(gw, key + "x", chat_body())[0] == 401
    with openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        status, listed = admin(gw, "GET", "/admin/keys?team=acme")
        key_id = listed["keys"][0]["id"]
        assert key not in str(listed) and listed["keys"][0]["prefix"] == key[:10]
        assert admin(gw, "DELETE", f"/admin/keys/{key_id}")[0] == 204
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert admin(gw, "GET", "/admin/keys", key=key)[0] == 401
    assert key not in gw.log()


def test_a_cli_made_key_works_at_once_and_is_limited_to_its_models(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    assert _cli(gw, "teams", "set", "web", "--data-dir", str(gw.data_dir)).returncode == 0
    made = _cli(
        gw, "keys", "create", "--team", "web", "--model", "m", "--data-dir", str(gw.data_dir)
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert post_chat(gw, key, chat_body("m"))[0] == 200
    status, _, body = post_chat(gw, key, chat_body("other"))
    assert status == 403 and "may not call 'other'" in body["error"]["message"]
    listed = _cli(gw, "keys", "list", "--json", "--data-dir", str(gw.data_dir))
    assert key not in listed.stdout and '"team":"web"' in listed.stdout
    key_id = listed.stdout.split('"id":"')[1].split('"')[0]
    assert _cli(gw, "keys", "revoke", key_id, "--data-dir", str(gw.data_dir)).returncode == 0
    assert post_chat(gw, key, chat_body("m"))[0] == 401


def test_a_hard_budget_admits_exactly_what_it_covers_under_concurrency(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    server, recorder = openai_upstream
    gw = start_gateway(CONFIG.format(url=server.url), ENV)
    body = chat_body(max_tokens=50)
    # the reservation: every body byte and 8 per message as input, 50 output tokens at $2/M
    reservation = len(body) + 8 + 50 * 2
    key = make_key(gw, "tight", limits={"budget_usd": reservation / 1e6})
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: post_chat(gw, key, body)[0], range(20)))
    assert sorted(statuses) == [200] + [402] * 19
    assert len(recorder.requests) == 1
    status, _, err = post_chat(gw, key, body)
    assert status == 402 and err["error"]["code"] == "budget_exceeded"
    time.sleep(1.2)  # the ledger is written in batches
    _, spend = admin(gw, "GET", "/admin/spend?group_by=team")
    (row,) = [r for r in spend["rows"] if r["team"] == "tight"]
    assert row["cost_micros"] == COST and row["requests"] == 21 and row["errors"] == 20
    _, budgets = admin(gw, "GET", "/admin/budgets")
    (state,) = [b for b in budgets["budgets"] if b.get("key")]
    assert state["spent_micros"] == COST and state["reserved_micros"] == 0


def test_rate_limits_answer_429_with_retry_after(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    key = make_key(gw, "rl", limits={"rpm": 3})
    results = [post_chat(gw, key, chat_body()) for _ in range(4)]
    assert [r[0] for r in results] == [200, 200, 200, 429]
    assert int(results[3][1]["Retry-After"]) >= 1
    assert results[3][2]["error"]["type"] == "rate_limit_error"


def test_tags_and_spend_reports_by_every_dimension(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    key = make_key(gw, "shop")
    for feature in ("search", "search", "checkout"):
        status, _, _ = post_chat(gw, key, chat_body(), {"X-Modelyard-Tags": f"feature={feature}"})
        assert status == 200
    status, _, err = post_chat(gw, key, chat_body(), {"X-Modelyard-Tags": "no-equals-sign"})
    assert status == 400 and "X-Modelyard-Tags" in err["error"]["message"]
    time.sleep(1.2)
    _, by_tag = admin(gw, "GET", "/admin/spend?group_by=tag:feature")
    cells = {r["tag:feature"]: r["cost_micros"] for r in by_tag["rows"]}
    assert cells == {"search": 2 * COST, "checkout": COST, None: 0}
    for group, value in (("vendor", "openai-compatible"), ("model", "m"), ("route", "m")):
        _, out = admin(gw, "GET", f"/admin/spend?group_by={group}")
        assert {r[group]: r["cost_micros"] for r in out["rows"]}[value] == 3 * COST
    assert admin(gw, "GET", "/admin/spend?group_by=colour")[0] == 400
    printed = _cli(gw, "report", "spend", "--url", gw.url, "--by", "team")
    assert printed.returncode == 0, printed.stderr
    assert "shop" in printed.stdout and f"{3 * COST / 1e6:.6f}" in printed.stdout


def test_routing_decisions_are_visible_only_to_their_team(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    mine, theirs = make_key(gw, "a"), make_key(gw, "b")
    _, headers, _ = post_chat(gw, mine, chat_body())
    rid = headers["X-Request-Id"]
    time.sleep(0.1)
    with openai.OpenAI(base_url=gw.v1, api_key=mine, max_retries=0) as client:
        assert client.get(f"/routing/decisions/{rid}", cast_to=object)["chosen"] == "m"  # type: ignore[index]
    with (
        openai.OpenAI(base_url=gw.v1, api_key=theirs, max_retries=0) as client,
        pytest.raises(openai.NotFoundError),
    ):
        client.get(f"/routing/decisions/{rid}", cast_to=object)
    assert admin(gw, "GET", "/admin/keys")[0] == 200 and ADMIN not in gw.log()


def test_the_first_start_makes_an_admin_key_and_shows_it_once(
    tmp_path: Path, openai_upstream: Upstream
) -> None:
    config = CONFIG.format(url=openai_upstream[0].url)
    env = {k: v for k, v in ENV.items() if k != "MODELYARD_ADMIN_KEY"}
    gw = start_gateway_process(tmp_path, config, env)
    try:
        shown = re.findall(r"sk-my-[A-Za-z0-9_\-]{43}", gw.log())
        assert len(shown) == 1
        assert admin(gw, "GET", "/admin/keys", key=shown[0])[0] == 200
        assert admin(gw, "GET", "/admin/keys", key=shown[0][:-1])[0] == 401
    finally:
        stop_gateway(gw)
    again = start_gateway_process(tmp_path, config, env)  # same data directory
    try:
        assert "sk-my-" not in again.log()
        assert admin(again, "GET", "/admin/keys", key=shown[0])[0] == 200
    finally:
        stop_gateway(again)


def test_a_retried_request_is_one_ledger_row_billed_once(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    server, recorder = openai_upstream
    gw = start_gateway(CONFIG.format(url=server.url), ENV)
    key = make_key(gw, "retry")
    recorder.script.append(openai_error(500, "The server had an error"))
    status, _, _ = post_chat(gw, key, chat_body())
    assert status == 200 and len(recorder.requests) == 2  # failed once, retried
    time.sleep(1.2)
    _, spend = admin(gw, "GET", "/admin/spend?group_by=key")
    assert [(r["requests"], r["cost_micros"]) for r in spend["rows"]] == [(1, COST)]
