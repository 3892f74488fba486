"""Every request limit, exceeded through a real gateway process, in each wire format it applies to.

The limits are set low in the config (``limits:`` and ``server.max_body_bytes``)
so that each test sends a small request; each answer must be a 4xx (a 502 for
the upstream's answer) in the wire format's own error shape, naming the
setting and its value. The upstream bound is proved against a gzip bomb: a
small body that inflates far past it, answered with a 502 while the
gateway's peak memory stays flat.
"""

from __future__ import annotations

import http.client
import socket
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from modelyard.errors import ConfigError
from modelyard.settings import load_settings
from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.harness import LoopbackServer, Recorder

BOMB_INFLATED = 64 * 1024 * 1024
UPSTREAM_LIMIT = 1024 * 1024

CONFIG = """
embedded_models: false
server:
  max_body_bytes: 4096
limits:
  max_json_depth: 16
  max_messages: 8
  max_n: 4
  max_tokens: 1000
  max_header_bytes: 1024
  max_headers: 32
  max_request_line_bytes: 1024
  max_upstream_response_bytes: {upstream_limit}
deployments:
  - name: gpt
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {openai}/v1
    api_key_env: OPENAI_FAKE_KEY
    prices: {{input: 1, output: 2}}
  - name: bomb
    provider: openai-compatible
    model: bomb-model
    base_url: {bomb}/v1
    api_key_env: OPENAI_FAKE_KEY
    prices: {{input: 1, output: 2}}
"""

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
FORMATS = [CHAT, MESSAGES, RESPONSES]


def _gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    zeros = b"\0" * (1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(BOMB_INFLATED // len(zeros))]
    return b"".join(parts) + packer.flush()


def _bomb_upstream() -> web.Application:
    bomb = _gzip_bomb()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            body=bomb,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.fixture(scope="module")
def bomb_upstream() -> Iterator[LoopbackServer]:
    with LoopbackServer(_bomb_upstream()) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    start_module_gateway: Callable[..., Gateway],
    fake_openai: tuple[LoopbackServer, Recorder],
    bomb_upstream: LoopbackServer,
) -> Gateway:
    config = CONFIG.format(
        openai=fake_openai[0].url, bomb=bomb_upstream.url, upstream_limit=UPSTREAM_LIMIT
    )
    return start_module_gateway(config, {"OPENAI_FAKE_KEY": UPSTREAM_KEY})


@dataclass
class Answer:
    status_code: int
    text: str

    def json(self) -> Any:
        return orjson.loads(self.text)


class Client:
    """POST JSON to the gateway over a fresh connection; chunked when the body is an iterable."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)

    def post(
        self, path: str, *, json: Any = None, content: bytes | Iterable[bytes] | None = None
    ) -> Answer:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            body = orjson.dumps(json) if content is None else content
            headers = {"Content-Type": "application/json"}
            chunked = not isinstance(body, bytes)
            conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
            resp = conn.getresponse()
            return Answer(resp.status, resp.read().decode())
        finally:
            conn.close()


@pytest.fixture
def client(gateway: Gateway, openai_upstream: object) -> Client:
    # openai_upstream: the shared fake, with what other tests scripted on it cleared
    return Client(gateway.url)


def _body(path: str, *, count: int = 1, **extra: Any) -> dict[str, Any]:
    """A minimal valid request of the path's wire format, with ``count`` messages."""
    if path == RESPONSES:
        items = [{"role": "user", "content": "hi"} for _ in range(count)]
        return {"model": "gpt", "input": items, **extra}
    messages = [{"role": "user", "content": "hi"} for _ in range(count)]
    body: dict[str, Any] = {"model": "gpt", "messages": messages, **extra}
    if path == MESSAGES:
        body.setdefault("max_tokens", 10)
    return body


def _error(path: str, resp: Answer) -> str:
    """The message of an error, checking it has the wire format's own shape."""
    data = resp.json()
    if path.startswith(MESSAGES):
        assert data["type"] == "error", data
        assert set(data["error"]) >= {"type", "message"}, data
        return str(data["error"]["message"])
    assert set(data["error"]) == {"message", "type", "param", "code"}, data
    return str(data["error"]["message"])


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("path", FORMATS)
def test_within_every_limit_is_answered(client: Client, path: str) -> None:
    body = _body(path, count=8, metadata_like=_nested(10)) if path == CHAT else _body(path, count=8)
    resp = client.post(path, json=body)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("path", FORMATS)
def test_body_over_max_body_bytes_is_413(client: Client, path: str) -> None:
    body = _body(path, user="x" * 5000)
    resp = client.post(path, json=body)
    assert resp.status_code == 413
    assert "4096" in _error(path, resp)


def test_chunked_body_over_max_body_bytes_is_413(client: Client) -> None:
    raw = orjson.dumps(_body(CHAT, user="x" * 5000))
    resp = client.post(CHAT, content=iter([raw[:100], raw[100:]]))  # no Content-Length
    assert resp.status_code == 413
    assert "4096" in _error(CHAT, resp)


@pytest.mark.parametrize("path", FORMATS)
def test_json_deeper_than_max_json_depth_is_400(client: Client, path: str) -> None:
    resp = client.post(path, json=_body(path, deep=_nested(20)))
    assert resp.status_code == 400
    message = _error(path, resp)
    assert "limits.max_json_depth" in message and "16" in message


def test_json_too_deep_for_orjson_is_400_not_500(client: Client) -> None:
    raw = b'{"model": "gpt", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    resp = client.post(CHAT, content=raw)
    assert resp.status_code in (400, 413)


@pytest.mark.parametrize("path", FORMATS)
def test_more_than_max_messages_is_400(client: Client, path: str) -> None:
    resp = client.post(path, json=_body(path, count=9))
    assert resp.status_code == 400
    message = _error(path, resp)
    assert "limits.max_messages" in message and "8" in message


@pytest.mark.parametrize("path", [CHAT, "/v1/completions"])
def test_n_over_max_n_is_400(client: Client, path: str) -> None:
    body = _body(CHAT, n=5) if path == CHAT else {"model": "gpt", "prompt": "hi", "n": 5}
    resp = client.post(path, json=body)
    assert resp.status_code == 400
    message = _error(path, resp)
    assert "limits.max_n" in message and "4" in message
    assert resp.json()["error"]["param"] == "n"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (CHAT, "max_tokens"),
        (CHAT, "max_completion_tokens"),
        (MESSAGES, "max_tokens"),
        (RESPONSES, "max_output_tokens"),
    ],
)
def test_output_tokens_over_max_tokens_is_400(client: Client, path: str, field: str) -> None:
    resp = client.post(path, json=_body(path, **{field: 1001}))
    assert resp.status_code == 400
    message = _error(path, resp)
    assert "limits.max_tokens" in message and "1000" in message and field in message


def _raw_request(gateway: Gateway, head: bytes) -> bytes:
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_header_over_max_header_bytes_is_refused(gateway: Gateway) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    answer = _raw_request(gateway, head)
    assert _status(answer) in (400, 431), answer[:200]
    assert b"more than 1024 bytes" in answer  # aiohttp's own text names the limit
    ok = _raw_request(
        gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: aaa\r\nConnection: close\r\n\r\n"
    )
    assert _status(ok) == 200


def test_more_than_max_headers_is_refused(gateway: Gateway) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(40))
    answer = _raw_request(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert _status(answer) in (400, 431), answer[:200]
    assert b"Too many headers" in answer


def test_request_line_over_max_request_line_bytes_is_refused(gateway: Gateway) -> None:
    answer = _raw_request(gateway, b"GET /healthz?" + b"q" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) in (400, 414, 431), answer[:200]
    assert b"more than 1024 bytes" in answer


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_gzip_bomb_from_upstream_is_502_and_memory_stays_flat(
    gateway: Gateway, client: Client
) -> None:
    warm = client.post(CHAT, json=_body(CHAT))
    assert warm.status_code == 200
    before = _peak_rss_kib(gateway.process.pid)
    for path in FORMATS:
        resp = client.post(path, json={**_body(path), "model": "bomb"})
        assert resp.status_code == 502, resp.text
        message = _error(path, resp)
        assert "limits.max_upstream_response_bytes" in message and str(UPSTREAM_LIMIT) in message
    grown = _peak_rss_kib(gateway.process.pid) - before
    assert grown < 24 * 1024, f"peak memory grew {grown} KiB on a {BOMB_INFLATED} byte bomb"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_json_depth: 500", "limits.max_json_depth"),  # orjson writes 254 levels at most
        ("max_n: 17", "limits.max_n"),  # the request models allow 16
        ("max_messages: 0", "limits.max_messages"),
        ("max_header_bytes: 10", "limits.max_header_bytes"),
        ("max_upstream_response_bytes: 1", "limits.max_upstream_response_bytes"),
    ],
)
def test_limits_are_validated_at_start(tmp_path: Path, line: str, key: str) -> None:
    config = tmp_path / "modelyard.yaml"
    config.write_text(f"embedded_models: false\nlimits:\n  {line}\n")
    with pytest.raises(ConfigError, match=key):
        load_settings(config, env={})
