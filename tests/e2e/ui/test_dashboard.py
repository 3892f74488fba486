"""The dashboard end to end: a gateway process, the fake OpenAI upstream, the openai SDK,
and headless Chromium.

A client sends a request with the SDK; an operator logs in with the admin key,
sees its cost on the spend chart, finds it in the request list, opens its routing
explanation, compares two models in the playground, looks at latency, vendors and
evaluations, and logs out. Screenshots of each page land in test-output/screenshots/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Gateway
from tests.e2e.governance.support import ADMIN, COST, ENV, admin, make_key
from tests.e2e.ui.support import write_eval_run
from tests.fakes.harness import LoopbackServer, Recorder, openai_error

CONFIG = """
embedded_models: false
deployments:
  - name: m
    provider: openai-compatible
    model: m
    base_url: "{url}/v1"
    api_key_env: K
    max_output_tokens: 100
    prices: {{input: 1, output: 2, cached_input: 1}}
  - name: other
    provider: vllm
    model: other
    base_url: "{url}/v1"
    api_key_env: K
    max_output_tokens: 100
    prices: {{input: 1, output: 2, cached_input: 1}}
routes:
  - name: chat
    deployments: [m, other]
"""
TIMEOUT_MS = 15_000


def _wait_for_ledger(gw: Gateway, request_ids: list[str]) -> None:
    """The ledger writes its batch every half second: wait until it holds these rows."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [admin(gw, "GET", f"/ui/api/requests/{rid}")[0] == 200 for rid in request_ids]
        if all(found):
            return
        time.sleep(0.1)
    raise AssertionError(f"the ledger never showed {request_ids}")


def _send(gw: Gateway, key: str, recorder: Recorder) -> tuple[str, str]:
    """With the openai SDK: a request to the route ``chat``, and one that ``other``'s
    upstream refuses. Answers their request ids."""
    with openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "where did I go?"}]
        )
        answer = raw.parse().choices[0].message.content
        assert answer == "Hello from fake openai: where did I go?"
        recorder.script.append(openai_error(400, "Invalid value for 'messages': bad"))
        with pytest.raises(openai.BadRequestError) as failed:
            client.chat.completions.create(
                model="other", messages=[{"role": "user", "content": "x"}]
            )
    return raw.headers["x-request-id"], failed.value.response.headers["x-request-id"]


def _ready(page: Page, view: str) -> None:
    page.wait_for_selector(f"body[data-ready='{view}']", timeout=TIMEOUT_MS)


def _shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_operator_finds_a_request_and_its_cost(
    start_gateway: Callable[..., Gateway],
    openai_upstream: tuple[LoopbackServer, Recorder],
    browser: Browser,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    server, recorder = openai_upstream
    elsewhere = tmp_path / "more-evals"
    gw = start_gateway(
        CONFIG.format(url=server.url), {**ENV, "MODELYARD_EVAL_DIRS": str(elsewhere)}
    )
    key = make_key(gw, "search")
    request_id, failed_id = _send(gw, key, recorder)
    _wait_for_ledger(gw, [request_id, failed_id])
    dear = {"m": 0.0001, "other": 0.0004}
    write_eval_run(
        gw.data_dir / "evals" / "arithmetic", ["m", "other"], quality={"m": 0.75}, cost_usd=dear
    )
    write_eval_run(elsewhere / "extraction", ["m", "other"], quality={"other": 0.5}, cost_usd=dear)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # not logged in: the dashboard sends us to the login page
    page.goto(gw.url + "/ui")
    expect(page).to_have_url(gw.url + "/ui/login")
    page.fill("#key", "sk-my-not-a-key")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("That key is not valid.")
    _shot(page, screenshots, "login")
    page.fill("#key", ADMIN)
    page.click("#login-submit")
    expect(page).to_have_url(gw.url + "/ui")
    cookie = next(c for c in context.cookies() if c["name"] == "modelyard_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ADMIN not in cookie["value"]

    # spend: the request's cost is the total, on the team's bar and in the legend
    _ready(page, "spend")
    expect(page.locator("#spend-total")).to_have_attribute("data-cost-micros", str(COST))
    expect(page.locator("#spend-total")).to_have_text("$0.000025")
    legend = page.locator("#spend-legend li[data-series='search']")
    expect(legend).to_have_attribute("data-cost-micros", str(COST))
    bars = page.locator("#spend-chart rect.mark[data-series='search']")
    assert sum(int(v) for v in bars.evaluate_all("rs => rs.map(r => r.dataset.value)")) == COST
    _shot(page, screenshots, "spend")
    page.select_option("#spend-group", "route")
    expect(page.locator("#spend-legend li[data-series='chat']")).to_have_attribute(
        "data-cost-micros", str(COST)
    )

    # the request list: search by its id, open its routing explanation
    page.goto(gw.url + "/ui#requests")
    _ready(page, "requests")
    page.fill("#search-id", request_id)
    page.click("#search-submit")
    row = page.locator(f"#requests-table tr[data-request-id='{request_id}']")
    expect(row).to_have_count(1)
    expect(page.locator("#requests-table tbody tr")).to_have_count(1)
    expect(row).to_contain_text("search")
    _shot(page, screenshots, "requests")
    row.locator("td").first.click()
    _ready(page, "request")
    expect(page.locator("#request-id")).to_have_text(request_id)
    expect(page.locator("#decision-chosen")).to_have_text("m")
    expect(page.locator("#decision-candidates li")).to_have_count(2)
    expect(page.locator("#decision-attempts tbody tr")).to_have_count(1)
    expect(page.locator("#decision-attempts tbody tr")).to_contain_text("ok")
    expect(page.locator("#request-cost")).to_have_attribute("data-cost-micros", str(COST))
    _shot(page, screenshots, "explanation")

    # the playground: one prompt, two models, answers side by side with latency and cost
    page.goto(gw.url + "/ui#playground")
    _ready(page, "playground")
    page.check("#pg-models input[value='m']")
    page.check("#pg-models input[value='other']")
    page.fill("#pg-prompt", "compare us")
    page.click("#pg-send")
    page.wait_for_selector("#pg-results[data-done='1']")
    for model in ("m", "other"):
        card = page.locator(f".pg-card[data-model='{model}']")
        expect(card.locator(".answer")).to_have_text("Hello from fake openai: compare us")
        expect(card).to_have_attribute("data-cost-micros", str(COST))
        assert float(card.get_attribute("data-latency-ms") or "nan") >= 0
        expect(card.locator(".facts")).to_contain_text("$0.000025")
    _shot(page, screenshots, "playground")

    # latency and errors per deployment, with the playground's calls counted
    page.goto(gw.url + "/ui#latency")
    _ready(page, "latency")
    expect(page.locator("#latency-chart rect.mark[data-category='m']")).to_have_count(3)
    expect(page.locator("#latency-table tbody tr")).to_have_count(2)
    # the failed call to ``other`` and its playground call: half of its requests failed
    expect(page.locator("#error-chart rect.mark[data-category='other']")).to_have_attribute(
        "data-value", "0.5"
    )
    _shot(page, screenshots, "latency")

    page.goto(gw.url + "/ui#dependency")
    _ready(page, "dependency")
    expect(page.locator("#dependency-chart rect.mark[data-category='chat']")).to_have_count(1)
    # the route's other deployment is another vendor's: losing either one is survivable
    expect(page.locator("#dependency-table")).to_contain_text("openai-compatible: yes")
    expect(page.locator("#dependency-table")).to_contain_text("vllm: yes")
    _shot(page, screenshots, "dependency")

    # two evaluation runs, one from the data directory and one from MODELYARD_EVAL_DIRS
    page.goto(gw.url + "/ui#evals")
    _ready(page, "evals")
    reports = page.locator("#evals-reports .eval-report")
    expect(reports).to_have_count(2)
    expect(page.locator("#evals-reports")).to_contain_text("arithmetic")
    expect(page.locator("#evals-reports")).to_contain_text("extraction")
    expect(page.locator("#evals-reports svg")).to_have_count(4)
    _shot(page, screenshots, "evals")

    # the spend chart now also holds the playground's two calls
    page.goto(gw.url + "/ui#spend")
    _ready(page, "spend")
    expect(page.locator("#spend-total")).to_have_attribute("data-cost-micros", str(3 * COST))

    page.click("#logout")
    expect(page).to_have_url(gw.url + "/ui/login")
    assert page.request.get(gw.url + "/ui/api/me").status == 401
    page.goto(gw.url + "/ui")
    expect(page).to_have_url(gw.url + "/ui/login")
    assert errors == [], errors
    context.close()


LEARNED_DECISION = {
    "request_id": "req_learned",
    "created": 1.0,
    "route": "thrifty",
    "kind": "stateless",
    "policy": ["learned"],
    "candidates": ["cheap-dep", "dear-dep", "<img src=x onerror=alert(1)>"],
    "removed": {"<img src=x onerror=alert(1)>": "contract: data_residency"},
    "order": ["cheap-dep", "dear-dep"],
    "attempts": [
        {
            "deployment": "cheap-dep",
            "retry": 0,
            "hedge": False,
            "outcome": "ok",
            "status": 200,
            "error": None,
            "latency_ms": 3.0,
        },
        {
            "deployment": "dear-dep",
            "retry": 0,
            "hedge": False,
            "outcome": "ok",
            "status": 200,
            "error": None,
            "latency_ms": 9.0,
        },
    ],
    "chosen": "dear-dep",
    "error": None,
    "learned": {
        "point": {
            "chain": ["small", "big"],
            "threshold": 0.7,
            "est_cost": 1e-4,
            "est_quality": 0.9,
        },
        "called": [
            {
                "model": "small",
                "deployment": "cheap-dep",
                "answer": "41",
                "prompt_estimate": 0.4,
                "confidence": 0.3,
            },
            {
                "model": "big",
                "deployment": "dear-dep",
                "answer": "42",
                "prompt_estimate": 0.8,
                "confidence": 0.95,
            },
        ],
        "answer_from": "big",
        "deployment": "dear-dep",
    },
    "cache": {"key": "0123456789abcdef", "result": "miss"},
}


def test_explanation_shows_a_learned_cascade_and_the_cache_lookup(
    start_gateway: Callable[..., Gateway],
    openai_upstream: tuple[LoopbackServer, Recorder],
    browser: Browser,
    screenshots: Path,
) -> None:
    """The explanation of a learned route's request, its decision served by a stand-in
    (a learned route needs a fitted router: ``tests/e2e/test_learned_route.py``)."""
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route("**/ui/api/decisions/req_learned", lambda r: r.fulfill(json=LEARNED_DECISION))
    page.goto(gw.url + "/ui/login")
    page.fill("#key", ADMIN)
    page.click("#login-submit")
    page.goto(gw.url + "/ui#request/req_learned")
    _ready(page, "request")
    expect(page.locator("#decision-chosen")).to_have_text("dear-dep")
    cascade = page.locator("#decision-cascade tbody tr")
    expect(cascade).to_have_count(2)
    expect(cascade.nth(1)).to_contain_text("big")
    expect(cascade.nth(1)).to_contain_text("0.95")
    expect(page.locator("#decision-cache")).to_have_attribute("data-result", "miss")
    removed = page.locator("#decision-candidates li").nth(2)
    expect(removed).to_contain_text("<img src=x onerror=alert(1)>")  # shown as text
    expect(removed).to_contain_text("removed: contract: data_residency")
    expect(page.locator("#explanation img")).to_have_count(0)
    _shot(page, screenshots, "explanation-learned")
    assert dialogs == []
    context.close()
