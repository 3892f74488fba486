"""The gateway on PostgreSQL (the scale-out store): migrations, the request log, decisions.

Uses the PostgreSQL this machine runs (127.0.0.1:5432, database ``test``);
it fails, rather than skips, when that server is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import openai
import pytest
from sqlalchemy import create_engine, select

from modelyard.settings import database_url
from modelyard.storage.migrate import HEAD, current
from modelyard.storage.schema import decisions_table, requests_table
from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.harness import LoopbackServer, Recorder

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
CONFIG = """
embedded_models: false
deployments:
  - {{name: pg-a, provider: openai-compatible, model: m, base_url: "{url}/v1", api_key_env: K,
      prices: {{input: 1, output: 2}}}}
routes:
  - {{name: pg-route, deployments: [pg-a]}}
"""


def test_database_url_forms() -> None:
    assert database_url(POSTGRES).startswith("postgresql+psycopg://")
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ValueError, match="postgresql"):
        database_url("mysql://h/db")


def test_gateway_keeps_its_log_and_decisions_in_postgres(
    start_gateway: Callable[..., Gateway], openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    env = {"K": UPSTREAM_KEY, "MODELYARD_DATABASE_URL": POSTGRES}
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), env)
    with openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="pg-route", messages=[{"role": "user", "content": "hi"}]
        )
    rid = raw.headers["x-request-id"]
    engine = create_engine(database_url(POSTGRES))
    assert current(engine) == HEAD
    deadline = time.monotonic() + 5
    rows: list[tuple[str, int, int]] = []
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        with engine.connect() as conn:
            rows = [
                (r.deployment, r.status, r.input_tokens)
                for r in conn.execute(select(requests_table).where(requests_table.c.id == rid))
            ]
    assert rows == [("pg-a", 200, 11)]
    with engine.connect() as conn:
        chosen = conn.execute(
            select(decisions_table.c.chosen).where(decisions_table.c.request_id == rid)
        ).scalar()
    assert chosen == "pg-a"
    # nothing under the data directory: the state is in PostgreSQL
    assert not (gw.data_dir / "modelyard.db").exists()
    engine.dispose()
