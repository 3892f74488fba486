"""schemathesis against the gateway's own ``/openapi.json``: no 5xx, invalid input gets a 4xx.

A real gateway process in front of the loopback OpenAI fake. Half the
generated requests that name a model name ``gpt``, a configured one, so that
valid requests reach routing, the upstream and the answer's translation
instead of stopping at a 404. Bounded (``EXAMPLES`` per operation and mode)
to keep CI near 10 s; ``MODELYARD_FUZZ_EXAMPLES=500`` hunts longer, with fresh inputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.harness import LoopbackServer, Recorder

EXAMPLES = int(os.environ.get("MODELYARD_FUZZ_EXAMPLES", "20"))  # more for a local hunt
CONFIG = """
embedded_models: false
deployments:
  - name: gpt
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {openai}/v1
    api_key_env: OPENAI_FAKE_KEY
    prices: {{input: 1, output: 2}}
"""


OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{response_id}"),
    ("DELETE", "/v1/responses/{response_id}"),
    ("GET", "/v1/responses/{response_id}/input_items"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/v1/routing/decisions/{request_id}"),
]


@pytest.fixture(scope="module")
def api(
    start_module_gateway: Callable[..., Gateway], fake_openai: tuple[LoopbackServer, Recorder]
) -> Any:
    gw = start_module_gateway(
        CONFIG.format(openai=fake_openai[0].url), {"OPENAI_FAKE_KEY": UPSTREAM_KEY}
    )
    return schemathesis.openapi.from_url(gw.url + "/openapi.json")


def test_document_lists_every_public_operation(api: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api.get_all_operations()}
    assert found == set(OPERATIONS)


# a GET or DELETE has only string path parameters: nothing about it can be invalid
CASES = [
    (f"{method} {path}", mode)
    for method, path in OPERATIONS
    for mode in GenerationMode
    if method == "POST" or mode is GenerationMode.POSITIVE
]


@pytest.mark.parametrize(("operation_id", "mode"), CASES, ids=lambda v: str(getattr(v, "value", v)))
def test_api(api: Any, operation_id: str, mode: GenerationMode, openai_upstream: object) -> None:
    # openai_upstream: the shared fake, with answers other tests scripted on it cleared
    method, path = operation_id.split(" ")
    operation = api[path][method]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize="MODELYARD_FUZZ_EXAMPLES" not in os.environ,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        body = case.body
        named = isinstance(body, dict) and isinstance(body.get("model"), str)
        if mode is GenerationMode.POSITIVE and named and len(body["model"]) % 2:
            body["model"] = "gpt"  # a configured model: the request goes all the way
        checks = [not_a_server_error, negative_data_rejection]
        case.call_and_validate(checks=checks, timeout=30)

    run()
