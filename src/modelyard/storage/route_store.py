"""Routes changed through the admin API, kept so that a restart does not undo them.

One row per route name: its configuration as JSON, or NULL when the admin
API deleted it. At start the rows are applied over the YAML file's routes.
"""

from __future__ import annotations

import time

import orjson
from sqlalchemy import Engine, delete, insert, select

from modelyard.routing.config import RouteConfig
from modelyard.storage.request_log import begin_write
from modelyard.storage.schema import route_overrides


class RouteStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def save(self, name: str, route: RouteConfig | None) -> None:
        body = orjson.dumps(route.model_dump(mode="json")).decode() if route else None
        with begin_write(self.engine) as conn:
            conn.execute(delete(route_overrides).where(route_overrides.c.name == name))
            conn.execute(insert(route_overrides).values(name=name, body=body, ts=time.time()))

    def load(self) -> list[tuple[str, RouteConfig | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(route_overrides.c.name, route_overrides.c.body)).all()
        return [
            (name, RouteConfig.model_validate(orjson.loads(body)) if body else None)
            for name, body in rows
        ]
