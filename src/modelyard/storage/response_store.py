"""The Responses API's stored turns: save, read and delete one response, per team.

A row holds the turn's whole context (every earlier turn's items, then this
turn's input) and its output, so continuing a conversation reads one row,
whatever vendor served the turns before, and deleting one response leaves the
conversations built on it whole. Rows belong to the team of the key that made
them (None in the open embedded mode); another team reads nothing, exactly as
if the id did not exist. Synchronous SQLAlchemy Core: call it with
``asyncio.to_thread``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select

from modelyard.storage.request_log import begin_write
from modelyard.storage.schema import responses_table


@dataclass(slots=True)
class StoredResponse:
    id: str
    team: str | None
    input_items: list[dict[str, Any]]
    output_items: list[dict[str, Any]]
    body: dict[str, Any]


class ResponseStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def save(
        self,
        team: str | None,
        body: dict[str, Any],
        input_items: list[dict[str, Any]],
    ) -> None:
        with begin_write(self.engine) as conn:
            conn.execute(
                insert(responses_table).values(
                    id=body["id"],
                    team=team,
                    created=time.time(),
                    model=body["model"],
                    previous_response_id=body.get("previous_response_id"),
                    input_items=orjson.dumps(input_items).decode(),
                    output_items=orjson.dumps(body["output"]).decode(),
                    body=orjson.dumps(body).decode(),
                )
            )

    def get(self, response_id: str, team: str | None) -> StoredResponse | None:
        """The response, or None when it is missing or another team's."""
        t = responses_table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.team, t.c.input_items, t.c.output_items, t.c.body).where(
                    t.c.id == response_id
                )
            ).first()
        if row is None or row.team != team:
            return None
        return StoredResponse(
            response_id,
            row.team,
            orjson.loads(row.input_items),
            orjson.loads(row.output_items),
            orjson.loads(row.body),
        )

    def delete(self, response_id: str, team: str | None) -> bool:
        """Delete the team's response; False when it is missing or another team's."""
        t = responses_table
        owner = t.c.team.is_(None) if team is None else t.c.team == team
        with begin_write(self.engine) as conn:
            done = conn.execute(delete(t).where(t.c.id == response_id, owner))
        return bool(done.rowcount)
