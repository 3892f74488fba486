"""Two gateway replicas sharing Redis: a breaker opened by one is open in the other.

Both replicas are real processes with their own data directories (SQLite
each), the same config and one Redis; no key is made, so on loopback they serve requests that
present none. Replica A alone sees the primary fail
and opens its breaker; replica B then skips the primary without having tried
it. After open_seconds A's half-open probe succeeds, and B uses the primary
again without a probe of its own. Redis is shared with other runs, so the
deployment names carry this run's id and their keys are deleted afterwards.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import yaml

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.e2e.routing.support import HI, KEY_ENV, attempts, decision, wait_for
from tests.fakes.faulty_upstream import FaultyUpstream

REDIS = "redis://127.0.0.1:6379/0"
RUN = uuid.uuid4().hex[:10]
PRIMARY, BACKUP = f"sb-{RUN}-primary", f"sb-{RUN}-backup"
ROUTE = f"r-shared-{RUN}"
ADMIN = "adm-" + uuid.uuid4().hex
OPEN_SECONDS = 2.0
HEALTH = {"failure_threshold": 3, "open_seconds": OPEN_SECONDS, "backoff_max_ms": 200}


def config(upstreams: dict[str, FaultyUpstream]) -> str:
    deployments = [
        {
            "name": name,
            "provider": "openai-compatible",
            "model": "gpt-4o-mini",
            "base_url": upstream.url,
            "api_key_env": KEY_ENV,
            "prices": {"input": 1, "output": 2},
        }
        for name, upstream in upstreams.items()
    ]
    route = {"name": ROUTE, "deployments": [PRIMARY, BACKUP], "retries": 0}
    return yaml.safe_dump(
        {"embedded_models": False, "health": HEALTH, "deployments": deployments, "routes": [route]}
    )


@pytest.fixture
def upstreams() -> Iterator[dict[str, FaultyUpstream]]:
    started: dict[str, FaultyUpstream] = {}
    try:
        for name in (PRIMARY, BACKUP):
            started[name] = FaultyUpstream(name).start()
        yield started
    finally:
        for upstream in started.values():
            upstream.stop()
        client = redis.Redis.from_url(REDIS)
        keys = [k for name in started for k in client.scan_iter(match=f"*health:*:{name}")]
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def replicas(
    start_gateway: Callable[..., Gateway], upstreams: dict[str, FaultyUpstream]
) -> tuple[Gateway, Gateway]:
    redis.Redis.from_url(REDIS).ping()  # Redis must answer: no skip
    env = {KEY_ENV: UPSTREAM_KEY, "MODELYARD_REDIS_URL": REDIS, "MODELYARD_ADMIN_KEY": ADMIN}
    cfg = config(upstreams)
    return start_gateway(cfg, env), start_gateway(cfg, env)


def chat(gw: Gateway) -> tuple[str, str]:
    """The deployment that answered a chat completion on the route, and the request id."""
    body = json.dumps({"model": ROUTE, "messages": HI}).encode()
    request = urllib.request.Request(
        gw.v1 + "/chat/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        deployment: str = resp.headers["x-modelyard-deployment"]
        answer = json.load(resp)
        assert answer["choices"][0]["message"]["content"] == f"answer from {deployment}"
        return deployment, resp.headers["x-request-id"]


def breaker(gw: Gateway) -> str:
    """The state of the primary's breaker in ``gw``, read without sending it a request."""
    request = urllib.request.Request(
        gw.url + "/admin/health", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        found: dict[str, Any] = json.load(resp)
    state: str = found["deployments"][PRIMARY]["state"]
    return state


def test_a_breaker_opened_by_one_replica_is_open_in_the_other_and_closes_there_too(
    replicas: tuple[Gateway, Gateway], upstreams: dict[str, FaultyUpstream]
) -> None:
    a, b = replicas
    up = upstreams
    up[PRIMARY].mode = "500"
    for _ in range(3):  # failure_threshold: 3, retries: 0
        assert chat(a)[0] == BACKUP
    opened = time.monotonic()
    assert attempts(up) == {PRIMARY: 3, BACKUP: 3}
    assert breaker(a) == "open"
    assert wait_for(lambda: breaker(b) == "open", 2.0)
    print(f"B knew of A's open breaker {(time.monotonic() - opened) * 1000:.1f} ms after")

    deployment, request_id = chat(b)  # B skips the primary, which it never tried
    assert deployment == BACKUP
    removed = decision(b, request_id)["removed"]
    assert removed == {PRIMARY: "health: circuit breaker open after 3 failures"}
    assert attempts(up) == {PRIMARY: 3, BACKUP: 4}

    up[PRIMARY].mode = "ok"
    time.sleep(max(0.0, opened + OPEN_SECONDS + 0.1 - time.monotonic()))
    assert chat(a)[0] == PRIMARY  # A's half-open probe closes it
    probe = time.monotonic()
    assert wait_for(lambda: breaker(b) == "closed", 2.0)
    print(f"B knew of A's closed breaker {(time.monotonic() - probe) * 1000:.1f} ms after")

    deployment, request_id = chat(b)
    assert deployment == PRIMARY
    assert decision(b, request_id)["removed"] == {}
    assert attempts(up) == {PRIMARY: 5, BACKUP: 4}
    for gw in (a, b):
        assert "breaker state is not shared" not in gw.log()
