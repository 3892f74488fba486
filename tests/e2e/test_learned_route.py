"""A route served by a learned router, end to end: a gateway process, the fake OpenAI upstream.

The router is fitted (``modelyard router fit``, a subprocess) on a synthetic table
(``tests.routing.learned.echo_table``): at the cheapest setting only the cheap
deployment is called; at the quality setting a tricky prompt escalates to the
dear one, the ledger books both calls and the decision records the cascade.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Gateway
from tests.e2e.governance.support import ENV, admin
from tests.e2e.learned_support import big_fails
from tests.fakes.harness import LoopbackServer, Recorder
from tests.routing.learned.echo_table import fit_router, prompt

Upstream = tuple[LoopbackServer, Recorder]
CHEAP, DEAR = 25, 250  # micro-dollars of one fake answer (11 prompt, 7 completion tokens)

CONFIG = """
embedded_models: false
deployments:
  - name: cheap-dep
    provider: openai-compatible
    model: small-model
    base_url: "{url}/v1"
    api_key_env: K
    max_output_tokens: 100
    prices: {{input: 1, output: 2, cached_input: 1}}
  - name: dear-dep
    provider: openai-compatible
    model: big-model
    base_url: "{url}/v1"
    api_key_env: K
    max_output_tokens: 100
    prices: {{input: 10, output: 20, cached_input: 10}}
routes:
  - name: thrifty
    deployments: [cheap-dep, dear-dep]
    learned:
      router: "{router}"
      target: {{quality: 0}}
      models: {{small: cheap-dep, big: dear-dep}}
  - name: careful
    deployments: [cheap-dep, dear-dep]
    learned:
      router: "{router}"
      target: {{quality: 1}}
      models: {{small: cheap-dep, big: dear-dep}}
"""


def _ask(client: openai.OpenAI, route: str, text: str) -> tuple[str, str]:
    """(the answer's text, its request id)."""
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": text}]
    )
    answer = raw.parse().choices[0].message.content
    assert answer is not None
    return answer, raw.headers["x-request-id"]


def _models(recorder: Recorder) -> list[str]:
    models = [json.loads(r.body)["model"] for r in recorder.requests]
    recorder.requests.clear()
    return models


def _decision(gw: Gateway, request_id: str) -> dict[str, Any]:
    status, found = admin(gw, "GET", f"/v1/routing/decisions/{request_id}")
    assert status == 200, found
    learned: dict[str, Any] = found["learned"]
    return learned


def test_the_knob_picks_the_cascade_and_the_ledger_books_every_call(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream, tmp_path: Path
) -> None:
    server, recorder = openai_upstream
    router = fit_router(tmp_path)
    gw = start_gateway(CONFIG.format(url=server.url, router=router), ENV)
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)

    for i in (2, 3):  # simple, then tricky: the cheapest point calls only the cheap model
        text, rid = _ask(client, "thrifty", prompt(100 + i, tricky=i == 3))
        assert text.endswith(prompt(100 + i, tricky=i == 3))
        assert _models(recorder) == ["small-model"]
        learned = _decision(gw, rid)
        assert learned["point"]["chain"] == ["small"]
        assert [c["deployment"] for c in learned["called"]] == ["cheap-dep"]

    _, rid = _ask(client, "careful", prompt(102, tricky=False))
    assert _models(recorder) == ["small-model"]  # predicted right: no escalation
    simple = _decision(gw, rid)
    assert simple["point"]["chain"] == ["small", "big"]
    assert simple["answer_from"] == "small" and simple["deployment"] == "cheap-dep"

    _, rid = _ask(client, "careful", prompt(103, tricky=True))
    assert _models(recorder) == ["small-model", "big-model"]
    tricky = _decision(gw, rid)
    assert [c["model"] for c in tricky["called"]] == ["small", "big"]
    assert tricky["called"][0]["answer"] == "104"  # the last number of the fake's echo
    assert tricky["called"][0]["confidence"] < tricky["point"]["threshold"]
    assert tricky["answer_from"] in ("small", "big")

    time.sleep(1.2)  # the ledger is written in batches
    status, spend = admin(gw, "GET", "/admin/spend?group_by=route")
    assert status == 200
    costs = {r["route"]: r["cost_micros"] for r in spend["rows"]}
    assert costs["thrifty"] == 2 * CHEAP
    assert costs["careful"] == CHEAP + (CHEAP + DEAR)


def test_every_chat_format_streams_the_cascade_answer(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream, tmp_path: Path
) -> None:
    """OpenAI chat, Responses and Anthropic Messages clients, whole and streamed: the
    calls are whole answers, and the chosen one reaches each client in its own format."""
    server, recorder = openai_upstream
    router = fit_router(tmp_path)
    gw = start_gateway(CONFIG.format(url=server.url, router=router), ENV)
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    text = prompt(103, tricky=True)
    messages: Any = [{"role": "user", "content": text}]

    def calls() -> list[tuple[str, bool]]:
        found = [
            (json.loads(r.body)["model"], json.loads(r.body).get("stream", False))
            for r in recorder.requests
        ]
        recorder.requests.clear()
        return found

    pieces = list(client.chat.completions.create(model="careful", messages=messages, stream=True))
    assert calls() == [("small-model", False), ("big-model", False)]
    streamed = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert streamed.endswith(text)
    assert pieces[-1].choices[0].finish_reason == "stop"

    with client.responses.stream(model="careful", input=text) as events:
        final = events.get_final_response()
    assert calls() == [("small-model", False), ("big-model", False)]
    assert final.output_text.endswith(text) and final.status == "completed"
    whole = client.responses.create(model="careful", input=text)
    assert whole.output_text == final.output_text
    calls()

    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude:
        with claude.messages.stream(model="careful", max_tokens=50, messages=messages) as stream:
            message = stream.get_final_message()
        assert calls() == [("small-model", False), ("big-model", False)]
        block = message.content[0]
        assert block.type == "text" and block.text.endswith(text)
        assert message.usage.output_tokens == 7  # the answer's own; the ledger bills both
        plain = claude.messages.create(model="careful", max_tokens=50, messages=messages)
        assert plain.content[0].type == "text" and plain.content[0].text == block.text
        assert calls() == [("small-model", False), ("big-model", False)]

    with pytest.raises(openai.BadRequestError, match="chat requests only"):
        client.completions.create(model="careful", prompt="hi")
    with pytest.raises(openai.BadRequestError, match="one answer"):
        client.chat.completions.create(model="careful", messages=messages, n=2)
    assert recorder.requests == []


def test_a_cascade_cut_short_answers_with_the_best_so_far(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream, tmp_path: Path
) -> None:
    server, recorder = openai_upstream
    router = fit_router(tmp_path)
    gw = start_gateway(CONFIG.format(url=server.url, router=router), ENV)
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    recorder.script.extend([big_fails] * 6)  # the dear call fails, and its retry

    answer, rid = _ask(client, "careful", prompt(103, tricky=True))
    assert answer.endswith(prompt(103, tricky=True))
    assert _models(recorder)[:2] == ["small-model", "big-model"]
    learned = _decision(gw, rid)
    assert learned["answer_from"] == "small" and learned["deployment"] == "cheap-dep"
    assert "boom" in learned["cut_short"]
