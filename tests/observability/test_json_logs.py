"""JSON logs of a real gateway process: one object a line, request ids, and no prompt text.

The gateway runs at DEBUG with ``MODELYARD_LOG_FORMAT=json``. Requests go to a
route that keeps its content private (the default) and to one that opts in
(``log_content: true``); a team's soft budget is crossed, which is logged
while the request is served. Every log line must be a JSON object with
``ts``, ``level``, ``logger`` and ``message``; lines logged for a request carry
its id (the ``X-Request-Id`` the client got); the private prompts are nowhere
in the log, the opted-in one is, with its answer, and no key is.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

from modelyard.observability.logs import REQUEST_ID, JsonFormatter
from tests.conftest import Gateway, stop_gateway
from tests.e2e.governance.support import ADMIN, CONFIG, ENV, create_key
from tests.e2e.governance.support import post_chat as chat
from tests.fakes.harness import LoopbackServer, Recorder

ROUTES = """
routes:
  - name: private
    deployments: [m]
  - name: open-book
    deployments: [m]
    log_content: true
"""


def _body(model: str, text: str, **extra: Any) -> bytes:
    messages = [{"role": "user", "content": text}]
    return json.dumps({"model": model, "messages": messages, **extra}).encode()


def _stream(gw: Gateway, key: str, body: bytes) -> str:
    request = urllib.request.Request(
        gw.v1 + "/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()
        return str(resp.headers["X-Request-Id"])


def _lines(log: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        if not line.strip() or line.startswith("modelyard listening on "):  # the start banner
            continue
        record = json.loads(line)  # every other line is one JSON object
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "message"} <= record.keys(), line
        out.append(record)
    return out


def test_json_logs_carry_request_ids_and_no_prompt_text(
    openai_upstream: tuple[LoopbackServer, Recorder],
    start_gateway: Callable[..., Gateway],
) -> None:
    server, _ = openai_upstream
    env = {**ENV, "MODELYARD_LOG_FORMAT": "json", "MODELYARD_LOG_LEVEL": "DEBUG"}
    gw = start_gateway(CONFIG.format(url=server.url) + ROUTES, env)
    key, _ = create_key(gw, "thrifty", team_limits={"budget_usd": 0.00001, "budget_kind": "soft"})
    private = [f"private-prompt-{secrets.token_hex(6)}" for _ in range(3)]
    shared = f"shared-prompt-{secrets.token_hex(6)}"
    status, headers, _ = chat(gw, key, _body("private", private[0]))
    assert status == 200
    first = headers["X-Request-Id"]
    streamed = _stream(gw, key, _body("private", private[1], stream=True))
    status, _, _ = chat(gw, key, _body("m", private[2]))
    assert status == 200
    status, headers, _ = chat(gw, key, _body("open-book", shared))
    assert status == 200
    opened = headers["X-Request-Id"]
    opened_stream = _stream(gw, key, _body("open-book", shared + "-s", stream=True))
    stop_gateway(gw)
    log = gw.log()
    records = _lines(log)

    assert any(r["level"] == "DEBUG" for r in records)
    by_request: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if "request_id" in r:
            by_request.setdefault(r["request_id"], []).append(r)
    # the first request crossed the soft budget: its warning names the request
    assert any("soft budget reached" in r["message"] for r in by_request[first])
    for rid in (first, streamed, opened, opened_stream):
        assert any(r["logger"] == "modelyard.requests" for r in by_request[rid]), rid
    for text in private:
        assert text not in log
    content = [r for r in by_request[opened] if r["logger"] == "modelyard.content"]
    assert len(content) == 1 and content[0]["route"] == "open-book"
    assert shared in content[0]["message"] and "Hello from fake openai" in content[0]["message"]
    content = [r for r in by_request[opened_stream] if r["logger"] == "modelyard.content"]
    assert len(content) == 1 and shared + "-s" in content[0]["message"]
    assert key not in log and ADMIN not in log


def test_the_formatter_writes_exceptions_and_extra_fields() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("modelyard.x", logging.ERROR, __file__, 1, "a %s", ("b",), exc_info)
    record.fields = {"route": "r"}
    token = REQUEST_ID.set("req_1")
    try:
        out = json.loads(formatter.format(record))
    finally:
        REQUEST_ID.reset(token)
    assert out["message"] == "a b" and out["level"] == "ERROR" and out["logger"] == "modelyard.x"
    assert out["request_id"] == "req_1" and out["route"] == "r"
    assert "ValueError: boom" in out["exc"] and out["ts"].endswith("Z")
    assert "request_id" not in json.loads(formatter.format(record))  # outside a request
