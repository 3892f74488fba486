"""Stored Responses turns on SQLite and PostgreSQL: saved whole, read and deleted by the team."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from modelyard.settings import database_url
from modelyard.storage.request_log import create_db_engine, sqlite_url
from modelyard.storage.response_store import ResponseStore
from tests.storage.test_postgres import POSTGRES


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = sqlite_url(tmp_path) if request.param == "sqlite" else database_url(POSTGRES)
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def _body(previous: str | None = None) -> dict[str, object]:
    return {
        "id": "resp_" + secrets.token_hex(24),
        "object": "response",
        "model": "m",
        "previous_response_id": previous,
        "output": [{"id": "msg_1", "type": "message", "role": "assistant", "content": []}],
    }


def test_a_turn_is_read_back_whole_by_its_team_only(engine: Engine) -> None:
    store = ResponseStore(engine)
    body = _body()
    items = [{"id": "msg_0", "type": "message", "role": "user", "content": [], "x": "漢字"}]
    store.save("team-a", body, items)
    found = store.get(str(body["id"]), "team-a")
    assert found is not None
    assert found.body == body and found.input_items == items
    assert found.output_items == body["output"]
    assert store.get(str(body["id"]), "team-b") is None
    assert store.get(str(body["id"]), None) is None  # the open mode is not a team of all teams
    assert not store.delete(str(body["id"]), "team-b")
    assert store.delete(str(body["id"]), "team-a")
    assert store.get(str(body["id"]), "team-a") is None
    assert not store.delete(str(body["id"]), "team-a")


def test_the_open_mode_owns_its_own_turns(engine: Engine) -> None:
    store = ResponseStore(engine)
    body = _body()
    store.save(None, body, [])
    assert store.get(str(body["id"]), "team-a") is None
    assert not store.delete(str(body["id"]), "team-a")
    found = store.get(str(body["id"]), None)
    assert found is not None and found.body == body
    assert store.delete(str(body["id"]), None)
