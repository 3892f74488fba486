"""The cache shared by two gateway processes through Redis, and the semantic cache.

Both gateways use the real Redis at 127.0.0.1:6379; every test sends content
no earlier run sent, so entries left by other runs never answer it. The
semantic tests embed with the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.e2e.governance.support import ENV, admin
from tests.e2e.test_cache import Upstream
from tests.fakes.harness import Recorder

REDIS = {"MODELYARD_REDIS_URL": "redis://127.0.0.1:6379/0"}

CONFIG = """
embedded_models: {embedded}
deployments:
  - name: dep
    provider: openai-compatible
    model: fake-model
    base_url: "{url}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
routes:
  - name: {route}
    deployments: [dep]
    cache: {cache}
"""


def _post(gw: Gateway, body: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    import urllib.request

    request = urllib.request.Request(
        gw.v1 + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())


def _ask(route: str, text: str, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"model": route, "messages": messages, "temperature": 0}


def _calls(recorder: Recorder) -> int:
    count = len(recorder.requests)
    recorder.requests.clear()
    return count


def test_two_gateways_share_answers_through_redis(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    server, recorder = openai_upstream
    route = f"shared-{uuid.uuid4().hex[:8]}"
    config = CONFIG.format(embedded="false", url=server.url, route=route, cache="{ttl: 60}")
    one = start_gateway(config, {**ENV, **REDIS})
    two = start_gateway(config, {**ENV, **REDIS})
    body = _ask(route, f"{uuid.uuid4().hex}: what is 2 plus 3?")
    headers, first = _post(one, body)
    assert "x-modelyard-cache" not in headers
    time.sleep(0.3)  # the entry is written after the answer
    headers, second = _post(two, body)
    assert headers["x-modelyard-cache"] == "exact" and second == first
    assert _calls(recorder) == 1


@pytest.mark.local_model
def test_a_question_that_means_the_same_gets_the_cached_answer(
    start_gateway: Callable[..., Gateway], openai_upstream: Upstream
) -> None:
    server, recorder = openai_upstream
    route = f"semantic-{uuid.uuid4().hex[:8]}"
    cache = "{semantic: {threshold: 0.9}}"
    gw = start_gateway(
        CONFIG.format(embedded="true", url=server.url, route=route, cache=cache), ENV
    )
    tag = uuid.uuid4().hex[:6]  # the same in both phrasings: fresh content, same meaning
    _, first = _post(gw, _ask(route, f"Project {tag}: what is the capital of France?"))
    assert _calls(recorder) == 1
    headers, second = _post(gw, _ask(route, f"Project {tag}: what's the capital city of France?"))
    assert headers["x-modelyard-cache"] == "semantic" and second == first
    assert _calls(recorder) == 0
    status, found = admin(gw, "GET", f"/v1/routing/decisions/{headers['x-request-id']}")
    assert status == 200, found
    assert found["cache"]["threshold"] == 0.9 and 0.9 <= found["cache"]["similarity"] <= 1

    headers, _ = _post(gw, _ask(route, f"Project {tag}: how do I bake sourdough bread?"))
    assert "x-modelyard-cache" not in headers  # another question
    system = "Answer in one word."
    headers, _ = _post(gw, _ask(route, f"Project {tag}: what is the capital of France?", system))
    assert "x-modelyard-cache" not in headers  # the same question in another context
    assert _calls(recorder) == 2
