"""Outcomes learned from live traffic: save one sampled prompt's row, export a route's table.

A row is one prompt of a learned route that was also answered by every router
model and the reference deployment, each answer scored (``routing.learned.live``).
``export`` yields the rows in the outcome-table format of
``routing.learned.table`` (``score`` in [0, 1] per model), oldest first, so that
``modelyard router fit`` reads them as they are. Synchronous SQLAlchemy Core:
call it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Engine, func, insert, select

from modelyard.storage.request_log import begin_write
from modelyard.storage.schema import outcomes_table


class OutcomeStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def save(
        self,
        request_id: str,
        route: str,
        prompt: str,
        reference: str | None,
        outcomes: dict[str, dict[str, Any]],
    ) -> None:
        with begin_write(self.engine) as conn:
            conn.execute(
                insert(outcomes_table).values(
                    id=request_id,
                    route=route,
                    created=time.time(),
                    prompt=prompt,
                    reference=reference,
                    outcomes=orjson.dumps(outcomes).decode(),
                )
            )

    def count(self, route: str) -> int:
        t = outcomes_table
        query = select(func.count()).select_from(t).where(t.c.route == route)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def export(self, route: str, since: float = 0.0) -> Iterator[dict[str, Any]]:
        """The route's rows as outcome-table lines, oldest first."""
        t = outcomes_table
        query = (
            select(t.c.id, t.c.prompt, t.c.reference, t.c.outcomes)
            .where(t.c.route == route, t.c.created >= since)
            .order_by(t.c.created, t.c.id)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield {
                    "id": row.id,
                    "task": route,
                    "prompt": row.prompt,
                    "reference": row.reference,
                    "outcomes": orjson.loads(row.outcomes),
                }
