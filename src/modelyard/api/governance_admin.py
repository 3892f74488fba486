"""The admin API of governance: teams, keys, spend. Every call needs an admin key (``api.auth``).

- ``PUT /admin/teams/{name}`` creates a team or replaces its limits;
  ``GET /admin/teams``; ``DELETE /admin/teams/{name}`` (its keys are revoked).
- ``POST /admin/keys`` makes a key and answers its plaintext, this once;
  ``GET /admin/keys[?team=]``; ``DELETE /admin/keys/{id}`` revokes it.
- ``GET /admin/spend?group_by=team&since=&until=`` sums the ledger.
- ``GET /admin/budgets`` shows each budget's spent and reserved amounts.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.api.body import json_response, read_json
from modelyard.api.context import GOVERNANCE, GOVERNANCE_STORE, KEY_RING, PRINCIPAL
from modelyard.api.errors import validation_error
from modelyard.errors import InvalidRequestError, PermissionDeniedError
from modelyard.governance.keys import Limits, Period
from modelyard.governance.report import check_group, spend
from modelyard.governance.store import TEAM_PATTERN


class LimitsIn(BaseModel):
    """Limits as people write them: dollars, not micro-dollars."""

    model_config = ConfigDict(extra="forbid")

    budget_usd: float | None = Field(default=None, ge=0, le=1e9)
    budget_period: Period = "month"
    budget_kind: Literal["hard", "soft"] = "hard"
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)

    def limits(self) -> Limits:
        return Limits(
            budget_micros=None if self.budget_usd is None else round(self.budget_usd * 1e6),
            budget_period=self.budget_period,
            budget_hard=self.budget_kind == "hard",
            rpm=self.rpm,
            tpm=self.tpm,
        )


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limits: LimitsIn = Field(default_factory=LimitsIn)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    team: str = Field(pattern=TEAM_PATTERN)
    models: list[str] | None = Field(default=None, max_length=1000)
    limits: LimitsIn = Field(default_factory=LimitsIn)
    expires_in_days: float | None = Field(default=None, gt=0, le=36_600)


def _admin(request: web.Request) -> None:
    if not request[PRINCIPAL].admin:  # the middleware checked; this keeps it true here too
        raise PermissionDeniedError("This key is not an admin key")


def _parse(model: type[Any], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def _changed(request: web.Request) -> None:
    await request.app[KEY_RING].fresh()  # this replica sees its own change at once


async def put_team(request: web.Request) -> web.Response:
    _admin(request)
    name = request.match_info["name"]
    if not re.fullmatch(TEAM_PATTERN, name):
        raise InvalidRequestError(
            "A team name is 1-100 letters, digits, '_', '.' or '-'", param="name"
        )
    team_in: TeamIn = _parse(TeamIn, await read_json(request))
    store = request.app[GOVERNANCE_STORE]
    team = await asyncio.to_thread(store.put_team, name, team_in.limits.limits())
    await _changed(request)
    return json_response(team.public())


async def list_teams(request: web.Request) -> web.Response:
    _admin(request)
    teams = await asyncio.to_thread(request.app[GOVERNANCE_STORE].list_teams)
    return json_response({"teams": [t.public() for t in teams]})


async def delete_team(request: web.Request) -> web.Response:
    _admin(request)
    await asyncio.to_thread(request.app[GOVERNANCE_STORE].delete_team, request.match_info["name"])
    await _changed(request)
    return web.Response(status=204)


async def create_key(request: web.Request) -> web.Response:
    _admin(request)
    key_in: KeyIn = _parse(KeyIn, await read_json(request))
    expires = time.time() + key_in.expires_in_days * 86_400 if key_in.expires_in_days else None
    store = request.app[GOVERNANCE_STORE]
    plaintext, record = await asyncio.to_thread(
        lambda: store.create_key(
            name=key_in.name,
            team=key_in.team,
            models=key_in.models,
            limits=key_in.limits.limits(),
            expires=expires,
        )
    )
    await _changed(request)
    return json_response({**record.public(), "key": plaintext}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    _admin(request)
    team = request.query.get("team")
    keys = await asyncio.to_thread(request.app[GOVERNANCE_STORE].list_keys, team)
    return json_response({"keys": [k.public() for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    _admin(request)
    await asyncio.to_thread(request.app[GOVERNANCE_STORE].revoke_key, request.match_info["id"])
    await _changed(request)
    return web.Response(status=204)


def _window(request: web.Request) -> tuple[float, float]:
    now = time.time()
    try:
        since = float(request.query.get("since", now - 30 * 86_400))
        until = float(request.query.get("until", now + 1))
    except ValueError:
        raise InvalidRequestError("since and until are Unix times in seconds") from None
    if not since < until:
        raise InvalidRequestError("since must be before until", param="since")
    return since, until


async def get_spend(request: web.Request) -> web.Response:
    _admin(request)
    try:
        group = check_group(request.query.get("group_by", "team"))
    except ValueError as exc:
        raise InvalidRequestError(str(exc), param="group_by") from None
    since, until = _window(request)
    engine = request.app[GOVERNANCE_STORE].engine
    return json_response(await asyncio.to_thread(spend, engine, group, since, until))


async def get_budgets(request: web.Request) -> web.Response:
    _admin(request)
    ring, gov = request.app[KEY_RING], request.app[GOVERNANCE]
    now = time.time()
    out = []
    owners: list[tuple[str, str, Limits]] = [
        ("team", t.name, t.limits) for t in ring.teams.values()
    ]
    owners += [("key", k.id, k.limits) for k in ring.keys.values() if k.revoked is None]
    for kind, owner, limits in owners:
        if limits.budget_micros is None:
            continue
        scope = gov.scope(kind, owner, limits, now)
        state = await gov.counters.state(scope.counter) or (None, None)
        out.append(
            {
                kind: owner,
                "budget_micros": limits.budget_micros,
                "period": limits.budget_period,
                "hard": limits.budget_hard,
                "spent_micros": state[0],  # None: nothing booked in this process's view yet
                "reserved_micros": state[1],
            }
        )
    return json_response({"budgets": out})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/teams", list_teams),
        web.put("/admin/teams/{name}", put_team),
        web.delete("/admin/teams/{name}", delete_team),
        web.get("/admin/keys", list_keys),
        web.post("/admin/keys", create_key),
        web.delete("/admin/keys/{id}", revoke_key),
        web.get("/admin/spend", get_spend),
        web.get("/admin/budgets", get_budgets),
    ]
