"""Canary secrets: made, planted in a gateway's settings, and looked for wherever they could leak.

A canary is ``CANARY-<12 random hex>-<field>-<12 random hex>``. A secret has
leaked where its first or its last eleven characters show: each end holds
random digits, so it says which secret leaked even when a message shows only
the start or the end of it. Virtual keys (``sk-my-...``) are watched the same
way; their first ten characters are the prefix people are shown on purpose.

The places looked in: text and bytes (the log, answers), every row of every
table of a database, every file under a directory, every key of Redis.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from aiohttp import web
from aiohttp.typedefs import Handler as WebHandler
from sqlalchemy import MetaData, create_engine, select

from tests.fakes.harness import Recorder
from tests.fakes.openai_upstream import EXPECTED_KEY, create_fake_openai

#: the characters of a secret that may be shown: more than this is a leak
SHOWN = 10
#: a header the canary-aware fake adds with the credentials it really received
RECEIVED = "x-canary-received"


def canary(name: str) -> str:
    return f"CANARY-{secrets.token_hex(6)}-{name}-{secrets.token_hex(6)}"


@dataclass
class Secrets:
    """Every secret of one run, by a name that says where it was planted."""

    values: dict[str, str] = field(default_factory=dict)

    def new(self, name: str) -> str:
        self.values[name] = value = canary(name)
        return value

    def add(self, name: str, value: str) -> str:
        self.values[name] = value
        return value

    def found_in(self, data: str | bytes) -> list[str]:
        """The secrets ``data`` shows: whole, or more than ``SHOWN`` characters of either end."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return [
            name
            for name, value in self.values.items()
            if value[: SHOWN + 1] in text or value[-(SHOWN + 1) :] in text
        ]


# --------------------------------------------------------------- the upstream


def canary_openai(recorder: Recorder, accepted: set[str]) -> web.Application:
    """The OpenAI fake, taking the canary credentials in ``accepted`` for its own key.

    The fake checks one fixed key; this puts it in place of a canary that
    arrived as ``Authorization: Bearer`` or Azure's ``api-key``, and keeps
    what arrived in ``RECEIVED`` for the scripted answers that echo it.
    """

    @web.middleware
    async def swap(request: web.Request, handler: WebHandler) -> web.StreamResponse:
        headers = dict(request.headers)
        received = []
        for name in ("Authorization", "api-key"):
            value = headers.get(name)
            if value is None:
                continue
            received.append(value)
            token = value.removeprefix("Bearer ")
            if token in accepted:
                headers[name] = (
                    f"Bearer {EXPECTED_KEY}" if name == "Authorization" else EXPECTED_KEY
                )
        headers[RECEIVED] = " ".join([*received, headers.get("X-Org-Secret", "")])
        return await handler(request.clone(headers=headers))

    app = create_fake_openai(recorder)
    app.middlewares.append(swap)
    return app


# ------------------------------------------------------------ where to look


@dataclass
class Exchange:
    """One HTTP call to the gateway, as the client saw it."""

    label: str
    status: int
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.status}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


def call(
    url: str,
    label: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Exchange:
    """An HTTP call whose whole answer (streamed or not, error or not) is kept."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return Exchange(label, resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return Exchange(label, exc.code, dict(exc.headers), exc.read())


def table_rows(url: str) -> Iterator[tuple[str, str]]:
    """(table, row as text) for every row of every table of the database at ``url``."""
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    yield table.name, repr(tuple(row))
    finally:
        engine.dispose()


def files_under(directory: Path) -> Iterator[tuple[Path, bytes]]:
    """(path, content) of every file under ``directory``, while a gateway may delete some."""
    for path in sorted(directory.rglob("*")):
        try:
            yield path, path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue


def redis_entries(url: str) -> Iterator[tuple[str, object]]:
    """(key, value) of every key in the Redis database at ``url``."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            value: object = kind
            if kind == b"string":
                value = client.get(key)
            elif kind == b"hash":
                value = client.hgetall(key)
            elif kind == b"zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == b"list":
                value = client.lrange(key, 0, -1)
            elif kind == b"set":
                value = client.smembers(key)
            yield key.decode("utf-8", "replace"), value
    finally:
        client.close()
