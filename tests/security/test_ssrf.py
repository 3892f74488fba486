"""No server-side request forgery: the gateway connects only to the operator's configured URLs.

A canary listener (``tests.fakes.canary_listener``) waits on loopback; every
request field and header that could hold a URL is pointed at it, in every
spelling of loopback (names, 0.0.0.0, IPv6 and IPv4-mapped IPv6, decimal,
octal and hexadecimal IPv4). The canary must see no connection, and where a
URL is content (an image the vendor fetches) the configured fake vendor must
receive it unchanged, as data. Upstream redirects are never followed, and the
admin API cannot introduce a base URL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from modelyard.api.context import ROUTER
from modelyard.app import create_app
from modelyard.providers.http1 import Pool
from tests.fakes.canary_listener import CanaryListener
from tests.fakes.harness import LoopbackServer, Recorder
from tests.fakes.redirect_upstream import Redirect, create_redirect_upstream
from tests.security import ssrf_payloads as payloads
from tests.security.conftest import ADMIN, gateway_settings

Client = TestClient[web.Request, web.Application]
HOST_FORMS = 11  # CanaryListener.hosts()
IMAGE_LABELS = ("chat: image part", "responses: input_image", "messages: image source.url")


async def _quiet(canary: CanaryListener) -> None:
    """Let anything started in the background connect, then check that nothing did."""
    await asyncio.sleep(0.2)
    assert canary.hits() == [], f"the gateway connected to the canary: {canary.hits()}"


def _urls(canary: CanaryListener, form: int) -> list[str]:
    host = canary.hosts()[form]
    return [f"http://{host}/v1/x.png", f"https://{host}"]


async def _send(client: Client, path: str, body: dict[str, Any], **kw: Any) -> tuple[int, bytes]:
    resp = await client.post(path, json=body, **kw)
    return resp.status, await resp.read()


@pytest.mark.parametrize("form", range(HOST_FORMS))
async def test_no_request_field_makes_the_gateway_connect(
    gateway: Client,
    canary: CanaryListener,
    openai_upstream: tuple[LoopbackServer, Recorder],
    anthropic_upstream: tuple[LoopbackServer, Recorder],
    form: int,
) -> None:
    forwarded = 0
    for url in _urls(canary, form):
        cases = payloads.chat(url) + payloads.responses(url)
        cases += payloads.anthropic(url, "claude") + payloads.anthropic(url, "gpt")
        for label, path, body in cases:
            status, raw = await _send(gateway, path, body)
            assert status < 500, (label, url, status, raw[:300])
            if status != 200 or not label.startswith(IMAGE_LABELS):
                continue
            # an image URL is content for the vendor to fetch: forwarded as data, unchanged
            vendor = anthropic_upstream if body["model"] == "claude" else openai_upstream
            assert url in json.dumps(vendor[1].last.json), (label, url)
            forwarded += 1
    assert forwarded >= 2 * 4, "the image cases must reach the vendors, not stop at validation"
    await _quiet(canary)


@pytest.mark.parametrize("form", range(HOST_FORMS))
async def test_forwarding_headers_do_not_choose_the_upstream(
    gateway: Client,
    canary: CanaryListener,
    openai_upstream: tuple[LoopbackServer, Recorder],
    form: int,
) -> None:
    headers = payloads.forwarding_headers(canary.hosts()[form])
    body = {"model": "gpt", "messages": [payloads.USER]}
    for path, stream in (("/v1/chat/completions", False), ("/v1/chat/completions", True)):
        before = len(openai_upstream[1].requests)
        status, raw = await _send(gateway, path, {**body, "stream": stream}, headers=headers)
        assert status == 200, raw[:300]
        assert len(openai_upstream[1].requests) == before + 1  # the configured upstream, alone
        sent = openai_upstream[1].last
        assert sent.headers["host"] == f"127.0.0.1:{openai_upstream[0].port}"
        assert not {"x-forwarded-host", "forwarded", "x-original-url"} & set(sent.headers)
    await _quiet(canary)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_the_client_never_follows_a_redirect(canary: CanaryListener, status: int) -> None:
    recorder = Recorder()
    target = f"http://127.0.0.1:{canary.port}/stolen"
    with LoopbackServer(create_redirect_upstream(recorder, Redirect(target, status))) as up:
        pool = Pool(max_response_bytes=1 << 20)
        try:
            resp = await pool.request("POST", up.url + "/v1/chat/completions", {}, b"{}")
            await resp.read()
            resp.close()
        finally:
            pool.close()
    assert resp.status == status and resp.headers["location"] == target
    assert len(recorder.requests) == 1
    await _quiet(canary)


@pytest.fixture
def redirect_upstream(canary: CanaryListener) -> Any:
    recorder = Recorder()
    redirect = Redirect(f"http://127.0.0.1:{canary.port}/v1/chat/completions")
    with LoopbackServer(create_redirect_upstream(recorder, redirect)) as server:
        yield server, recorder, redirect


async def test_the_gateway_does_not_follow_an_upstream_redirect(
    tmp_path: Path, gateway_env: None, canary: CanaryListener, redirect_upstream: Any
) -> None:
    server, recorder, redirect = redirect_upstream
    settings = gateway_settings(tmp_path, server.url, server.url)
    chat = {"messages": [payloads.USER], "max_tokens": 8}
    async with TestClient(TestServer(create_app(settings))) as client:
        for status in (301, 302, 307, 308):
            for host in canary.hosts():
                redirect.status, redirect.location = status, f"http://{host}/v1/chat/completions"
                for model in ("gpt", "claude"):
                    for stream in (False, True):
                        body = {"model": model, "stream": stream, **chat}
                        got, raw = await _send(client, "/v1/chat/completions", body)
                        assert got >= 400, raw[:300]  # an upstream error, never the canary's
                got, _ = await _send(client, "/v1/messages", {"model": "claude", **chat})
                assert got >= 400
        ready = await client.get("/readyz")  # the readiness probe's GET is not followed either
        assert ready.status in (200, 503)  # a 3xx proves the host answers HTTP: reachable
    assert recorder.requests and all(r.path != "/stolen" for r in recorder.requests)
    await _quiet(canary)


ROUTE_BODIES = [
    ("base_url", {"deployments": ["gpt"], "base_url": "{u}"}),
    ("api_base", {"deployments": ["gpt"], "api_base": "{u}"}),
    ("deployments.0.base_url", {"deployments": [{"name": "gpt", "base_url": "{u}"}]}),
    ("deployments.0.url", {"deployments": [{"name": "gpt", "url": "{u}"}]}),
    ("deployments", {"deployments": ["{u}"]}),
    ("provider", {"deployments": ["gpt"], "provider": "openai-compatible"}),
    ("learned", {"deployments": ["gpt"], "learned": {"router": "{u}", "target": {"quality": 1}}}),
    ("hedge.url", {"deployments": ["gpt"], "hedge": {"after_ms": 5, "url": "{u}"}}),
    ("cache.url", {"deployments": ["gpt"], "cache": {"url": "{u}"}}),
]


@pytest.mark.parametrize(("field", "template"), ROUTE_BODIES, ids=[f for f, _ in ROUTE_BODIES])
async def test_admin_route_updates_cannot_introduce_a_base_url(
    gateway: Client, canary: CanaryListener, field: str, template: dict[str, Any]
) -> None:
    url = f"http://127.0.0.1:{canary.port}/v1"
    body = json.loads(json.dumps(template).replace("{u}", url))
    before = {n: d.base_url for n, d in gateway.app[ROUTER].deployments.items()}
    resp = await gateway.put("/admin/routes/chat", json=body, headers=ADMIN)
    text = await resp.text()
    assert 400 <= resp.status < 500, text
    assert field.split(".")[0] in text  # the refusal names the field at fault
    after = {n: d.base_url for n, d in gateway.app[ROUTER].deployments.items()}
    assert after == before
    listed = await (await gateway.get("/admin/routes", headers=ADMIN)).text()
    assert str(canary.port) not in listed
    await _quiet(canary)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/admin/teams/t", {"limits": {}, "base_url": "{u}"}),
        ("PUT", "/admin/teams/t", {"limits": {"api_base": "{u}"}}),
        ("POST", "/admin/keys", {"name": "k", "team": "t", "base_url": "{u}"}),
        ("POST", "/admin/keys", {"name": "k", "team": "t", "limits": {"url": "{u}"}}),
    ],
)
async def test_other_admin_bodies_refuse_url_fields(
    gateway: Client, canary: CanaryListener, method: str, path: str, body: dict[str, Any]
) -> None:
    url = f"http://127.0.0.1:{canary.port}"
    data = json.loads(json.dumps(body).replace("{u}", url))
    resp = await gateway.request(method, path, json=data, headers=ADMIN)
    assert resp.status == 400, await resp.text()
    await _quiet(canary)


@pytest.mark.parametrize("form", range(HOST_FORMS))
async def test_the_canary_hears_every_spelling_of_loopback(
    canary: CanaryListener, form: int
) -> None:
    """Without this the tests above could pass because a spelling never reached the canary."""
    netloc = canary.hosts()[form].rpartition("@")[2]
    host = netloc.rpartition(":")[0].strip("[]")
    if ":" in host and not canary.ipv6:
        pytest.skip("no IPv6 loopback here")
    _, writer = await asyncio.open_connection(host, canary.port)
    writer.write(b"ping")
    await writer.drain()
    writer.close()
    for _ in range(50):
        if canary.hits():
            break
        await asyncio.sleep(0.02)
    assert len(canary.hits()) == 1
