"""What the governance end-to-end tests share: a priced config, admin calls, request volleys."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from tests.conftest import UPSTREAM_KEY, Gateway

ADMIN = "adm-" + "k" * 24
ENV = {"K": UPSTREAM_KEY, "MODELYARD_ADMIN_KEY": ADMIN}
# the fake upstream answers 11 prompt tokens (2 cached) and 7 completion tokens: 25 micro-dollars
COST = 25

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
    provider: openai-compatible
    model: other
    base_url: "{url}/v1"
    api_key_env: K
    max_output_tokens: 100
    prices: {{input: 1, output: 2, cached_input: 1}}
"""


def admin(gw: Gateway, method: str, path: str, body: Any = None, key: str = ADMIN) -> Any:
    """An admin API call; answers (status, decoded JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        gw.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def create_key(gw: Gateway, team: str, **key: Any) -> tuple[str, str]:
    """Make (or update) the team with ``team_limits``, then a key in it: (the key, its id)."""
    status, _ = admin(gw, "PUT", f"/admin/teams/{team}", {"limits": key.pop("team_limits", {})})
    assert status == 200
    status, made = admin(gw, "POST", "/admin/keys", {"name": "t", "team": team, **key})
    assert status == 201, made
    return str(made["key"]), str(made["id"])


def make_key(gw: Gateway, team: str, **key: Any) -> str:
    return create_key(gw, team, **key)[0]


def chat_body(model: str = "m", **extra: Any) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    ).encode()


def post_chat(
    gw: Gateway, key: str | None, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        gw.v1 + "/chat/completions", data=body, method="POST", headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def reservation(body: bytes, messages: int, max_tokens: int) -> int:
    """What the gateway reserves for a request to ``m`` of CONFIG, in micro-dollars: every
    body byte and 8 per message as input at $1/M, the output limit at $2/M."""
    return len(body) + 8 * messages + 2 * max_tokens


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def request_id(self) -> str:
        return self.headers["X-Request-Id"]

    @property
    def code(self) -> str | None:
        return self.body["error"]["code"] if self.status >= 400 else None


class Volley:
    """``size`` chat requests released together by a barrier, spread in turn over gateways.

    Each worker thread keeps one keep-alive connection per gateway across volleys:
    opening a connection per request would cost more than the request.
    """

    def __init__(self, gateways: Sequence[Gateway], size: int) -> None:
        self.gateways = gateways
        self.size = size
        self._pool = ThreadPoolExecutor(size)
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []

    def fire(self, key: str, body: bytes) -> list[Reply]:
        barrier = threading.Barrier(self.size, timeout=30)
        jobs = [
            self._pool.submit(self._send, barrier, self.gateways[i % len(self.gateways)], key, body)
            for i in range(self.size)
        ]
        return [job.result() for job in jobs]

    def _send(self, barrier: threading.Barrier, gw: Gateway, key: str, body: bytes) -> Reply:
        conns: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(gw.url)
        if conn is None:
            conn = conns[gw.url] = http.client.HTTPConnection(gw.url[len("http://") :], timeout=30)
            self._opened.append(conn)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        barrier.wait()
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        return Reply(resp.status, dict(resp.headers), json.loads(resp.read()))

    def close(self) -> None:
        self._pool.shutdown()
        for conn in self._opened:
            conn.close()

    def __enter__(self) -> Volley:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
