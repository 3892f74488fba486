"""What the governance end-to-end tests share: a priced config and admin calls over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

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


def make_key(gw: Gateway, team: str, **key: Any) -> str:
    limits = key.pop("team_limits", {})
    status, _ = admin(gw, "PUT", f"/admin/teams/{team}", {"limits": limits})
    assert status == 200
    status, made = admin(gw, "POST", "/admin/keys", {"name": "t", "team": team, **key})
    assert status == 201, made
    return str(made["key"])


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
