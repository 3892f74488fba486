"""A canary secret in every setting never shows in logs, answers, database rows, files or metrics.

A distinct canary (``canary.canary``) goes into each place an operator puts a
secret: every deployment's API key (through its ``api_key_env``), header
values, the database and Redis passwords, ``MODELYARD_ADMIN_KEY`` and
``MODELYARD_SECRET_KEY``; the virtual keys made through the admin API are
watched too, and clients present canaries that are not keys. A real gateway
process at DEBUG level (text logs with SQLite, JSON logs with PostgreSQL)
then serves streamed and whole answers, upstream failures (some upstreams
echo the credentials they were sent), client mistakes and the admin API, and
shuts down. Afterwards no canary may be in
its log, in any answer (but the one that makes a key, which holds that key),
in any row of its database, any file of its data directory, any Redis key or
``/metrics``. The upstreams must have received the real credentials.

Run with SQLite and in-process counters, and with PostgreSQL and Redis (a
database of its own, dropped afterwards; both servers on this machine accept
any password, so the canary passwords are sent and ignored).

A ``base_url`` with ``user:password@`` is refused at start: the gateway would
not send those credentials, and its error does not show the password. Nor do
the errors of a config file that is not YAML (they used to quote its lines)
or of a database that cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from aiohttp import web

from tests.conftest import Gateway, start_gateway_process, stop_gateway
from tests.e2e.governance.canary import (
    RECEIVED,
    Exchange,
    Secrets,
    call,
    canary_openai,
    files_under,
    redis_entries,
    table_rows,
)
from tests.fakes.anthropic_upstream import create_fake_anthropic
from tests.fakes.gemini_upstream import create_fake_gemini
from tests.fakes.harness import Handler, LoopbackServer, Recorded, Recorder, free_port

PRICES = {"input": 1, "output": 2}
# no breaker opens and backoff is short: the failures below are on purpose
HEALTH = {"failure_threshold": 1000, "backoff_base_ms": 1, "backoff_max_ms": 5}
POSTGRES = "127.0.0.1:5432"
REDIS = "127.0.0.1:6379/0"
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Upstreams:
    openai: tuple[LoopbackServer, Recorder]
    anthropic: tuple[LoopbackServer, Recorder]
    gemini: tuple[LoopbackServer, Recorder]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of its own on the local PostgreSQL, dropped afterwards: its name."""
    name = f"canary_{secrets.token_hex(6)}"
    with psycopg.connect(f"postgresql://postgres@{POSTGRES}/test", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(f"postgresql://postgres@{POSTGRES}/test", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _config(s: Secrets, up: Upstreams, env: dict[str, str]) -> str:
    openai_url = up.openai[0].url

    def dep(name: str, provider: str, model: str, base_url: str, **extra: Any) -> dict[str, Any]:
        if extra.pop("keyed", True):
            variable = "CANARY_KEY_" + name.upper().replace("-", "_")
            env[variable] = s.new(f"api-key-{name}")
            extra["api_key_env"] = variable
        return {
            "name": name,
            "provider": provider,
            "model": model,
            "base_url": base_url,
            "max_output_tokens": 100,
            "prices": PRICES,
            **extra,
        }

    oa = ("openai-compatible", "m", f"{openai_url}/v1")
    bearer = {"Authorization": f"Bearer {s.new('header-authorization')}"}
    deployments = [
        dep("oa", *oa, headers={"X-Org-Secret": s.new("header-oa")}),
        dep("oa-err", *oa, headers={"X-Org-Secret": s.new("header-oa-err")}),
        dep("oa-bearer", *oa, keyed=False, headers=bearer),
        dep("az", "azure", "gpt-4o", openai_url, api_version="2024-10-21"),
        dep(
            "claude",
            "anthropic",
            "claude-sonnet-4-5",
            up.anthropic[0].url,
            headers={"X-Extra-Token": s.new("header-claude")},
        ),
        dep(
            "gem",
            "gemini",
            "gemini-2.5-flash",
            up.gemini[0].url,
            headers={"X-Proxy-Token": s.new("header-gem")},
        ),
        dep("down", "openai-compatible", "m", f"http://127.0.0.1:{free_port()}/v1"),
    ]
    routes = [{"name": "r-fallback", "deployments": ["oa-err", "oa"], "retries": 0}]
    config = {
        "embedded_models": False,
        "health": HEALTH,
        "deployments": deployments,
        "routes": routes,
    }
    return yaml.safe_dump(config, sort_keys=False)


# ----------------------------------------------------- upstreams that echo


def _echo(
    status: int, template: str, *, json_body: bool = True, headers: dict[str, str] | None = None
) -> Handler:
    """A scripted upstream failure whose message repeats the credentials it received."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        received = rec.headers.get(RECEIVED) or " ".join(
            rec.headers.get(h, "") for h in ("x-api-key", "x-extra-token")
        )
        message = template.format(received=received)
        if not json_body:
            return web.Response(status=status, text=message, headers=headers)
        error = {"message": message, "type": "invalid_request_error", "code": None}
        return web.json_response({"error": error}, status=status, headers=headers)

    return handler


@contextlib.contextmanager
def _scripted(recorder: Recorder, handler: Handler, times: int = 5) -> Iterator[None]:
    """The upstream answers ``handler`` to its next calls (retries included) in the block."""
    recorder.script.extend([handler] * times)
    try:
        yield
    finally:
        recorder.script.clear()


# --------------------------------------------------------------- the run


class Session:
    """The calls of one run against one gateway; keeps every answer."""

    def __init__(self, gw: Gateway, admin_key: str):
        self.gw = gw
        self.admin_key = admin_key
        self.seen: list[Exchange] = []
        #: each key made, and the one answer allowed to hold it: the one that made it
        self.made: dict[str, Exchange] = {}

    def call(
        self,
        label: str,
        path: str,
        *,
        expect: int,
        method: str = "GET",
        body: Any = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Exchange:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        if data is not None and method == "GET":
            method = "POST"
        ex = call(self.gw.url + path, label, method=method, body=data, headers=all_headers)
        self.seen.append(ex)
        assert ex.status == expect, ex.text()
        return ex

    def admin(self, label: str, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        ex = self.call(label, path, method=method, body=body, key=self.admin_key, expect=expect)
        return json.loads(ex.body) if ex.body else None

    def make_key(self, team: str, **fields: Any) -> dict[str, Any]:
        """A key made through the admin API: its public record and ``key``, its plaintext."""
        made = self.admin("make key", "POST", "/admin/keys", {"team": team, **fields}, 201)
        self.made[made["key"]] = self.seen.pop()
        return dict(made)

    def chat(
        self, label: str, key: str, model: str, *, expect: int = 200, **extra: Any
    ) -> Exchange:
        body = {"model": model, "messages": HI, **extra}
        return self.call(label, "/v1/chat/completions", body=body, key=key, expect=expect)


def _exercise(session: Session, s: Secrets, up: Upstreams, team: str) -> None:
    """Everything a client and an operator do, each answer checked for its status."""
    oa_rec, claude_rec = up.openai[1], up.anthropic[1]
    limits = {"budget_usd": 100, "rpm": 10_000}
    session.admin("team", "PUT", f"/admin/teams/{team}", {"limits": limits})
    mine = session.make_key(team, name="canary", limits=limits)
    key = s.add("virtual-key", mine["key"])
    revoked = session.make_key(team, name="revoked")
    s.add("revoked-key", revoked["key"])

    # keys that are not keys
    bad = {"Authorization": f"Bearer {s.new('client-invalid-bearer')}"}
    session.call("invalid bearer", "/v1/chat/completions", body={}, headers=bad, expect=401)
    bad = {"x-api-key": s.new("client-invalid-x-api-key")}
    session.call("invalid x-api-key", "/v1/chat/completions", body={}, headers=bad, expect=401)
    bad = {"Authorization": f"Basic {s.new('client-malformed-authorization')}"}
    session.call("malformed authorization", "/v1/models", headers=bad, expect=401)
    bad = {"Authorization": f"Bearer {s.new('client-invalid-admin')}"}
    session.call("invalid admin key", "/admin/keys", headers=bad, expect=401)
    session.call("user key on admin", "/admin/keys", key=key, expect=403)

    # answers, whole and streamed, from every provider
    tags = {"X-Modelyard-Tags": "feature=canary", "X-Request-Id": "client-1"}
    for model in ("oa", "oa-bearer", "az", "claude", "gem"):
        session.call(
            f"chat {model}",
            "/v1/chat/completions",
            key=key,
            headers=tags,
            body={"model": model, "messages": HI},
            expect=200,
        )
        streamed = session.chat(
            f"stream {model}", key, model, stream=True, stream_options={"include_usage": True}
        )
        assert streamed.body.startswith(b"data: ") and b"[DONE]" in streamed.body
    for stream in (False, True):
        body = {"model": "oa", "prompt": "hi", "max_tokens": 5, "stream": stream}
        session.call(f"completion {stream}", "/v1/completions", body=body, key=key, expect=200)
    body = {"model": "oa", "input": ["a", "b"]}
    session.call("embeddings", "/v1/embeddings", body=body, key=key, expect=200)

    # upstream failures, each repeating the credentials it was sent
    with _scripted(oa_rec, _echo(503, "overloaded; you sent {received}"), 1):
        fell_back = session.chat("fallback", key, "r-fallback")
    rid = fell_back.headers["X-Request-Id"]
    session.call("decision", f"/v1/routing/decisions/{rid}", key=key, expect=200)
    with _scripted(oa_rec, _echo(401, "Incorrect API key provided: {received}")):
        session.chat("upstream 401", key, "oa-err", expect=401)
    with _scripted(oa_rec, _echo(500, "crashed; headers: {received}", json_body=False)):
        session.chat("upstream 500", key, "oa-err", expect=500)
    with _scripted(oa_rec, _echo(400, "bad header {received}")):
        session.chat("upstream 400 stream", key, "oa-err", stream=True, expect=400)
    with _scripted(claude_rec, _echo(401, "invalid x-api-key {received}")):
        session.chat("anthropic 401", key, "claude", expect=401)
        session.chat("anthropic 401 stream", key, "claude", stream=True, expect=401)
    session.chat("connection refused", key, "down", expect=503)
    session.chat("connection refused stream", key, "down", stream=True, expect=503)
    with _scripted(oa_rec, _echo(429, "slow down, {received}", headers={"Retry-After": "1"})):
        session.chat("upstream 429", key, "oa-err", expect=429)

    # a client's mistakes
    session.call("no messages", "/v1/chat/completions", body={"model": "oa"}, key=key, expect=400)
    session.call("not json", "/v1/chat/completions", raw=b"{nope", key=key, expect=400)
    session.chat("unknown model", key, "no-such-model", expect=404)
    session.call("unknown path", "/v1/nothing", key=key, expect=404)
    session.call("wrong method", "/v1/chat/completions", method="PUT", key=key, expect=405)

    # the operator's view
    listed = session.admin("keys", "GET", "/admin/keys")
    session.admin("team keys", "GET", f"/admin/keys?team={team}")
    assert {k["prefix"] for k in listed["keys"]} == {key[:10], revoked["key"][:10]}
    session.admin("teams", "GET", "/admin/teams")
    for group in ("team", "key", "deployment", "tag:feature"):
        session.admin(f"spend {group}", "GET", f"/admin/spend?group_by={group}")
    budgets = session.admin("budgets", "GET", "/admin/budgets")
    assert any(b.get("team") == team for b in budgets["budgets"])
    session.admin("routes", "GET", "/admin/routes")
    session.admin("put route", "PUT", "/admin/routes/r-canary", {"deployments": ["oa", "az"]})
    session.chat("via new route", key, "r-canary")
    session.admin("delete route", "DELETE", "/admin/routes/r-canary", expect=204)
    session.admin("health", "GET", "/admin/health")
    session.admin("dependency", "GET", "/admin/dependency")
    session.admin("revoke", "DELETE", f"/admin/keys/{revoked['id']}", expect=204)
    gone = session.chat("revoked key", s.values["revoked-key"], "oa", expect=401)
    assert revoked["prefix"] in gone.body.decode()  # the shown prefix, and no more

    # open paths
    session.call("healthz", "/healthz", expect=200)
    session.call("readyz", "/readyz", expect=503)  # "down" cannot be reached
    metrics = call(session.gw.url + "/metrics", "metrics")  # open, like the health probes
    session.seen.append(metrics)
    assert metrics.status == 200 and b"modelyard_requests_total" in metrics.body, metrics.text()
    session.call("models", "/v1/models", key=key, expect=200)
    session.call("model", "/v1/models/oa", key=key, expect=200)


def _received(s: Secrets, up: Upstreams) -> None:
    """The upstreams were sent the real credentials: the canaries were in use."""
    openai_seen = " ".join(r.headers.get(RECEIVED, "") for r in up.openai[1].requests)
    for name in ("api-key-oa", "api-key-oa-err", "api-key-az", "header-oa", "header-oa-err"):
        assert s.values[name] in openai_seen, name
    assert f"Bearer {s.values['header-authorization']}" in openai_seen
    claude = up.anthropic[1].requests[0].headers
    assert claude["x-api-key"] == s.values["api-key-claude"]
    assert claude["x-extra-token"] == s.values["header-claude"]
    gemini = up.gemini[1].requests[0].headers
    assert gemini["x-goog-api-key"] == s.values["api-key-gem"]
    assert gemini["x-proxy-token"] == s.values["header-gem"]


def _leaks(s: Secrets, where: str, data: str | bytes) -> list[str]:
    return [f"{name} in {where}" for name in s.found_in(data)]


def _leaks_in_answers(s: Secrets, session: Session) -> list[str]:
    found = []
    for ex in session.seen:
        found += _leaks(s, f"the answer to {ex.label!r}", ex.text())
    for key, ex in session.made.items():
        assert key in ex.text()
        found += _leaks(s, f"the answer that made {key[:10]}", ex.text().replace(key, ""))
    return found


def _leaks_in_database(s: Secrets, url: str) -> list[str]:
    rows = list(table_rows(url))
    assert sum(table == "requests" for table, _ in rows) >= 20, "the ledger is not complete"
    assert sum(table == "api_keys" for table, _ in rows) == 2
    found = []
    for table, row in rows:
        found += _leaks(s, f"a row of {table}", row)
    return found


def _leaks_in_redis(s: Secrets, url: str, owners: list[str]) -> list[str]:
    """Leaks in every key of the Redis database; the keys of ``owners`` are deleted after."""
    entries = list(redis_entries(url))
    ours = [key for key, _ in entries if any(owner in key for owner in owners)]
    client = redis.Redis.from_url(url)
    try:
        if ours:
            client.delete(*ours)
    finally:
        client.close()
    assert ours, "the gateway kept nothing in Redis"
    found = []
    for key, value in entries:
        found += _leaks(s, f"the Redis key {key}", f"{key} {value!r}")
    return found


@pytest.fixture
def upstreams() -> Iterator[Callable[[set[str]], Upstreams]]:
    """Start the OpenAI (taking the canary keys given), Anthropic and Gemini fakes."""
    started: list[LoopbackServer] = []

    def start(accepted: set[str]) -> Upstreams:
        recorders = Recorder(), Recorder(), Recorder()
        apps = (
            canary_openai(recorders[0], accepted),
            create_fake_anthropic(recorders[1]),
            create_fake_gemini(recorders[2]),
        )
        servers = [LoopbackServer(app).start() for app in apps]
        started.extend(servers)
        return Upstreams(*zip(servers, recorders, strict=True))

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("store", ["sqlite", "postgres+redis"])
def test_no_canary_leaks_anywhere(
    store: str,
    tmp_path: Path,
    upstreams: Callable[[set[str]], Upstreams],
    request: pytest.FixtureRequest,
) -> None:
    s = Secrets()
    env = {
        "MODELYARD_LOG_LEVEL": "DEBUG",
        "MODELYARD_ADMIN_KEY": s.new("admin-key"),
        "MODELYARD_SECRET_KEY": s.new("secret-key"),
    }
    database = f"sqlite:///{tmp_path / 'data' / 'modelyard.db'}"  # the data dir of the gateway
    redis_url = None
    if store == "postgres+redis":
        db = request.getfixturevalue("postgres_database")
        password = s.new("database-password")
        env["MODELYARD_DATABASE_URL"] = f"postgresql://postgres:{password}@{POSTGRES}/{db}"
        env["MODELYARD_REDIS_URL"] = f"redis://:{s.new('redis-password')}@{REDIS}"
        database, redis_url = f"postgresql+psycopg://postgres@{POSTGRES}/{db}", f"redis://{REDIS}"
        env["MODELYARD_LOG_FORMAT"] = "json"  # the other log format gets the same scrutiny
    # the config needs the fakes' URLs and makes the canary keys the OpenAI fake must take
    accepted: set[str] = set()
    up = upstreams(accepted)
    config = _config(s, up, env)
    accepted.update(v for n, v in s.values.items() if n.startswith(("api-key", "header-auth")))
    gw = start_gateway_process(tmp_path, config, env)
    try:
        session = Session(gw, s.values["admin-key"])
        team = f"canary-{secrets.token_hex(4)}"
        _exercise(session, s, up, team)
        during = list(files_under(gw.data_dir))  # spool segments live only until a batch is in
    finally:
        stop_gateway(gw)
    assert gw.process.returncode == 0, gw.log()  # a clean shutdown
    _received(s, up)
    log = gw.log()
    assert " DEBUG " in log or '"level":"DEBUG"' in log, "the gateway did not log at DEBUG"

    found = _leaks(s, "the log", log) + _leaks_in_answers(s, session)
    for path, data in [*during, *files_under(gw.data_dir)]:
        found += _leaks(s, f"the file {path.relative_to(gw.data_dir)}", data)
    found += _leaks_in_database(s, database)
    if redis_url is not None:
        owners = [team, *(json.loads(ex.body)["id"] for ex in session.made.values())]
        found += _leaks_in_redis(s, redis_url, owners)
    assert not found, "\n".join(found)


# --------------------------------------------------------- refused at start


def _serve(tmp_path: Path, config: str, env: dict[str, str]) -> str:
    """Start a gateway at DEBUG level that must refuse to start; its whole output."""
    cfg = tmp_path / "modelyard.yaml"
    cfg.write_text(config)
    args = ["serve", "--config", str(cfg), "--port", str(free_port())]
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard", *args, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODELYARD_LOG_LEVEL": "DEBUG", **env},
        cwd=tmp_path,
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_a_base_url_with_a_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    s = Secrets()
    url = f"http://user:{s.new('base-url-password')}@127.0.0.1:{free_port()}/v1"
    deployment = {"name": "oa", "provider": "openai-compatible", "model": "m", "base_url": url}
    config = yaml.safe_dump({"embedded_models": False, "deployments": [deployment]})
    out = _serve(tmp_path, config, {})
    assert "deployments[oa]: base_url must not hold a user or password" in out, out
    assert not s.found_in(out), out


def test_a_config_file_that_is_not_yaml_is_refused_without_showing_its_lines(
    tmp_path: Path,
) -> None:
    s = Secrets()
    broken = f"deployments:\n  - headers: {{Authorization: Bearer {s.new('header')}: x}}\n"
    out = _serve(tmp_path, broken, {})
    assert "not valid YAML: expected ',' or '}', but got ':' at line 2, column" in out, out
    assert not s.found_in(out), out


def test_an_unreachable_database_is_reported_without_its_password(tmp_path: Path) -> None:
    s = Secrets()
    url = f"postgresql://postgres:{s.new('database-password')}@127.0.0.1:{free_port()}/test"
    out = _serve(tmp_path, "embedded_models: false\n", {"MODELYARD_DATABASE_URL": url})
    assert "Connection refused" in out, out
    assert not s.found_in(out), out
