"""Traces of a real gateway process, exported over OTLP/HTTP to a loopback receiver.

A route's first deployment cannot be reached, so one request makes three
attempts (the first deployment, its retry, then the fallback). The receiver
must get, in one trace: the request's server span (with the route, the
serving deployment and vendor, the status), and under it the routing
decision and one span per attempt with its deployment, retry number and
outcome. The ledger's batched writes come as storage spans. No span holds the
prompt's text or a key. Without an endpoint the gateway never loads the SDK.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Gateway
from tests.e2e.governance.support import ADMIN, CONFIG, ENV, create_key
from tests.e2e.governance.support import post_chat as chat
from tests.fakes.harness import LoopbackServer, Recorder, free_port
from tests.fakes.otlp_receiver import OtlpReceiver, ReceivedSpan

ROUTES = """
  - name: down
    provider: openai-compatible
    model: m
    base_url: "http://127.0.0.1:{port}/v1"
    api_key_env: K
    prices: {{input: 1, output: 2}}
health: {{failure_threshold: 5, backoff_base_ms: 1, backoff_max_ms: 5}}
observability: {{service_name: gw-under-test}}
routes:
  - name: fallback
    deployments: [down, m]
    retries: 1
"""


@pytest.fixture
def receiver() -> Iterator[tuple[OtlpReceiver, LoopbackServer]]:
    otlp = OtlpReceiver()
    with LoopbackServer(otlp.app()) as server:
        yield otlp, server


def _wait_for(otlp: OtlpReceiver, test: Callable[[list[ReceivedSpan]], bool]) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        spans = otlp.snapshot()
        if test(spans):
            return spans
        time.sleep(0.1)
    raise AssertionError(f"spans never arrived: {[s.name for s in otlp.snapshot()]}")


def _body(model: str, text: str, **extra: object) -> bytes:
    messages = [{"role": "user", "content": text}]
    return json.dumps({"model": model, "messages": messages, **extra}).encode()


def _root(spans: list[ReceivedSpan], rid: str) -> ReceivedSpan | None:
    found = [s for s in spans if s.attributes.get("modelyard.request_id") == rid]
    return found[0] if found else None


def test_a_request_is_one_trace_of_route_and_attempt_spans(
    receiver: tuple[OtlpReceiver, LoopbackServer],
    openai_upstream: tuple[LoopbackServer, Recorder],
    start_gateway: Callable[..., Gateway],
) -> None:
    otlp, collector = receiver
    config = CONFIG.format(url=openai_upstream[0].url) + ROUTES.format(port=free_port())
    gw = start_gateway(config, {**ENV, "MODELYARD_OTLP_ENDPOINT": collector.url})
    key, key_id = create_key(gw, "tracers")
    prompt = f"do-not-trace-{secrets.token_hex(6)}"
    status, headers, answer = chat(gw, key, _body("fallback", prompt))
    assert status == 200, answer
    rid = headers["X-Request-Id"]
    request = urllib.request.Request(
        gw.v1 + "/chat/completions",
        data=_body("m", prompt, stream=True),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()
        streamed = resp.headers["X-Request-Id"]

    spans = _wait_for(
        otlp,
        lambda got: (
            _root(got, rid) is not None
            and _root(got, streamed) is not None
            and any(s.name == "modelyard.storage.write" for s in got)
        ),
    )
    root = _root(spans, rid)
    assert root is not None
    assert root.name == "POST /v1/chat/completions" and root.kind == "SERVER"
    assert root.parent_id == "" and root.service == "gw-under-test"
    a = root.attributes
    assert a["modelyard.route"] == "fallback" and a["modelyard.deployment"] == "m"
    assert a["modelyard.vendor"] == "openai-compatible" and a["modelyard.team"] == "tracers"
    assert a["http.response.status_code"] == 200 and a["modelyard.status"] == 200
    assert a["modelyard.input_tokens"] == 11 and a["modelyard.output_tokens"] == 7

    children = [s for s in spans if s.parent_id == root.span_id]
    assert all(s.trace_id == root.trace_id for s in children)
    routing = [s for s in children if s.name == "modelyard.route"]
    assert len(routing) == 1
    assert routing[0].attributes["modelyard.candidates"] == ["down", "m"]
    assert routing[0].attributes["modelyard.order"] == ["down", "m"]
    attempts = sorted(
        (s for s in children if s.name == "modelyard.attempt"), key=lambda s: s.start_ns
    )
    seen = [
        (
            s.attributes["modelyard.deployment"],
            s.attributes["modelyard.retry"],
            s.attributes["modelyard.outcome"],
            s.error,
        )
        for s in attempts
    ]
    assert seen == [
        ("down", 0, "UpstreamUnavailableError", True),
        ("down", 1, "UpstreamUnavailableError", True),
        ("m", 0, "ok", False),
    ]
    assert all(s.kind == "CLIENT" and s.attributes["modelyard.hedge"] is False for s in attempts)
    assert all(root.start_ns <= s.start_ns <= s.end_ns <= root.end_ns for s in children)

    stream_root = _root(spans, streamed)
    assert stream_root is not None and stream_root.attributes["modelyard.stream"] is True
    assert "modelyard.ttft_ms" in stream_root.attributes
    writes = [s for s in spans if s.name == "modelyard.storage.write"]
    assert sum(s.attributes["modelyard.rows"] for s in writes) >= 1

    text = repr(spans)
    for secret in (prompt, key, key[:10], key_id, ADMIN):
        assert secret not in text, secret
    assert otlp.content_types == {"application/x-protobuf"}


def test_without_an_endpoint_no_span_is_made_and_the_sdk_is_not_loaded(
    receiver: tuple[OtlpReceiver, LoopbackServer],
    openai_upstream: tuple[LoopbackServer, Recorder],
    start_gateway: Callable[..., Gateway],
) -> None:
    otlp, _ = receiver
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), ENV)
    key, _ = create_key(gw, "quiet")
    status, _, _ = chat(gw, key, _body("m", "hi"))
    assert status == 200
    time.sleep(1)
    assert otlp.snapshot() == []
    code = (
        "import sys; from modelyard.app import create_app; "
        "from modelyard.settings import load_settings; import tempfile, pathlib; "
        "d = pathlib.Path(tempfile.mkdtemp()); "
        "create_app(load_settings(overrides={'data_dir': d}, env={}).model_copy("
        "update={'embedded_models': False, 'deployments': []})); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MODELYARD_ADMIN_KEY": ADMIN, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
