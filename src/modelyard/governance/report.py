"""Spend summaries from the ledger: by key, team, route, model, deployment, vendor or tag.

Each row also has the response cache's hits, hit rate and the cost they saved.

Used by ``GET /admin/spend`` and ``modelyard report spend``. Costs are summed
as integer micro-dollars, so a summary adds up to the ledger exactly.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import Engine, case, func, select

from modelyard.storage.schema import requests_table

GROUPS = {
    "key": "key_id",
    "team": "team",
    "route": "route",
    "model": "model",
    "deployment": "deployment",
    "vendor": "provider",
}


def check_group(group: str) -> str:
    """A valid group name (``tag:NAME`` included), else ValueError naming the choices."""
    if group in GROUPS or (group.startswith("tag:") and len(group) > 4):
        return group
    raise ValueError(f"group by one of {', '.join(GROUPS)} or tag:NAME, not {group!r}")


def spend(engine: Engine, group: str, since: float, until: float) -> dict[str, Any]:
    """Requests, tokens and cost per value of ``group`` in [since, until), with the totals."""
    t = requests_table
    column = t.c.tags if group.startswith("tag:") else t.c[GROUPS[group]]
    query = (
        select(
            column,
            func.count(),
            func.coalesce(func.sum(t.c.input_tokens), 0),
            func.coalesce(func.sum(t.c.output_tokens), 0),
            func.coalesce(func.sum(t.c.cost_micros), 0),
            func.coalesce(func.sum(case((t.c.status >= 400, 1), else_=0)), 0),
            func.coalesce(func.sum(case((t.c.cache.is_not(None), 1), else_=0)), 0),
            func.coalesce(func.sum(t.c.saved_micros), 0),
        )
        .where(t.c.ts >= since, t.c.ts < until)
        .group_by(column)
    )
    with engine.connect() as conn:
        raw = conn.execute(query).all()
    cells: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0])
    for value, count, tokens_in, tokens_out, cost, errors, hits, saved in raw:
        if group.startswith("tag:"):
            tags = orjson.loads(value) if value else {}
            value = tags.get(group[4:]) if isinstance(tags, dict) else None
        cell = cells[value]
        for i, n in enumerate((count, tokens_in, tokens_out, cost, errors, hits, saved)):
            cell[i] += int(n)
    rows = [
        {
            group: value,
            "requests": c[0],
            "errors": c[4],
            "input_tokens": c[1],
            "output_tokens": c[2],
            "cost_micros": c[3],
            "cost_usd": c[3] / 1e6,
            "cache_hits": c[5],
            "cache_hit_rate": round(c[5] / c[0], 4) if c[0] else 0.0,
            "saved_micros": c[6],
        }
        for value, c in sorted(cells.items(), key=lambda kv: (-kv[1][3], str(kv[0])))
    ]
    total = sum(c[3] for c in cells.values())
    return {
        "group_by": group,
        "since": since,
        "until": until,
        "rows": rows,
        "total": {
            "requests": sum(c[0] for c in cells.values()),
            "cost_micros": total,
            "cost_usd": total / 1e6,
            "cache_hits": sum(c[5] for c in cells.values()),
            "saved_micros": sum(c[6] for c in cells.values()),
        },
    }
