"""Keys and teams in the database: what the admin API and the CLI change, what the gateway reads.

Every change bumps the one-row ``governance_epoch`` in the same transaction;
a gateway compares the epoch before each request (``governance.auth``) and
reloads when it moved, so a revocation made by the CLI, the admin API or
another replica holds from the next request on. The methods are synchronous:
the gateway calls them in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import orjson
from sqlalchemy import Connection, Engine, func, insert, select, update

from modelyard.errors import InvalidRequestError, NotFoundError
from modelyard.governance.keys import (
    SHOWN_CHARS,
    KeyHasher,
    KeyRecord,
    Limits,
    Role,
    TeamRecord,
    new_key,
    new_key_id,
)
from modelyard.storage.request_log import begin_write
from modelyard.storage.schema import governance_epoch, keys_table, teams_table

TEAM_PATTERN = r"^[A-Za-z0-9_.\-]{1,100}$"


def _limits(text: str | None) -> Limits:
    return Limits.model_validate(orjson.loads(text)) if text else Limits()


def _dump(limits: Limits) -> str:
    return orjson.dumps(limits.model_dump(exclude_defaults=True)).decode()


class GovernanceStore:
    def __init__(self, engine: Engine, hasher: KeyHasher):
        self.engine = engine
        self.hasher = hasher

    # ------------------------------------------------------------ reading

    def epoch(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(governance_epoch.c.epoch)).scalar()
        return int(value or 0)

    def load(self) -> tuple[int, list[KeyRecord], list[TeamRecord]]:
        """The epoch, every key and every team, read in one transaction."""
        with self.engine.connect() as conn:
            epoch = int(conn.execute(select(governance_epoch.c.epoch)).scalar() or 0)
            keys = [self._key(row) for row in conn.execute(select(keys_table))]
            teams = [
                TeamRecord(name, _limits(limits), created)
                for name, created, limits in conn.execute(
                    select(teams_table.c.name, teams_table.c.created, teams_table.c.limits)
                )
            ]
        return epoch, keys, teams

    @staticmethod
    def _key(row: object) -> KeyRecord:
        r = row._mapping  # type: ignore[attr-defined]
        return KeyRecord(
            id=r["id"],
            prefix=r["prefix"],
            name=r["name"],
            team=r["team"],
            role=r["role"],
            models=frozenset(orjson.loads(r["models"])) if r["models"] else None,
            limits=_limits(r["limits"]),
            created=r["created"],
            expires=r["expires"],
            revoked=r["revoked"],
            digest=r["digest"],
        )

    def list_keys(self, team: str | None = None) -> list[KeyRecord]:
        query = select(keys_table).order_by(keys_table.c.created)
        if team is not None:
            query = query.where(keys_table.c.team == team)
        with self.engine.connect() as conn:
            return [self._key(row) for row in conn.execute(query)]

    def list_teams(self) -> list[TeamRecord]:
        return sorted(self.load()[2], key=lambda t: t.name)

    def has_admin_key(self) -> bool:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(keys_table)
            return bool(conn.execute(query.where(keys_table.c.role == "admin")).scalar())

    # ------------------------------------------------------------ changing

    @staticmethod
    def _bump(conn: Connection) -> None:
        conn.execute(update(governance_epoch).values(epoch=governance_epoch.c.epoch + 1))

    def put_team(self, name: str, limits: Limits) -> TeamRecord:
        """Create a team or replace its limits."""
        now = time.time()
        with begin_write(self.engine) as conn:
            exists = conn.execute(
                select(teams_table.c.created).where(teams_table.c.name == name)
            ).scalar()
            if exists is None:
                conn.execute(
                    insert(teams_table).values(name=name, created=now, limits=_dump(limits))
                )
            else:
                conn.execute(
                    update(teams_table)
                    .where(teams_table.c.name == name)
                    .values(limits=_dump(limits))
                )
                now = float(exists)
            self._bump(conn)
        return TeamRecord(name, limits, now)

    def delete_team(self, name: str) -> None:
        """Remove a team; its keys are revoked with it."""
        with begin_write(self.engine) as conn:
            gone = conn.execute(teams_table.delete().where(teams_table.c.name == name)).rowcount
            if not gone:
                raise NotFoundError(f"No team named {name!r}", param="team")
            conn.execute(
                update(keys_table)
                .where(keys_table.c.team == name, keys_table.c.revoked.is_(None))
                .values(revoked=time.time())
            )
            self._bump(conn)

    def create_key(
        self,
        *,
        name: str,
        team: str | None,
        role: Role = "user",
        models: Iterable[str] | None = None,
        limits: Limits | None = None,
        expires: float | None = None,
        plaintext: str | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key: (its plaintext, shown this once; its record)."""
        if role == "user" and not team:
            raise InvalidRequestError("A key belongs to a team: give team", param="team")
        key = plaintext or new_key()
        record = KeyRecord(
            id=new_key_id(),
            prefix=key[:SHOWN_CHARS],
            name=name,
            team=team,
            role=role,
            models=frozenset(models) if models is not None else None,
            limits=limits or Limits(),
            created=time.time(),
            expires=expires,
            digest=self.hasher.digest(key),
        )
        with begin_write(self.engine) as conn:
            if team is not None:
                found = conn.execute(
                    select(teams_table.c.name).where(teams_table.c.name == team)
                ).scalar()
                if found is None:
                    raise NotFoundError(f"No team named {team!r}: create it first", param="team")
            conn.execute(
                insert(keys_table).values(
                    id=record.id,
                    digest=record.digest,
                    prefix=record.prefix,
                    name=name,
                    team=team,
                    role=role,
                    models=orjson.dumps(sorted(record.models)).decode()
                    if record.models is not None
                    else None,
                    limits=_dump(record.limits),
                    created=record.created,
                    expires=expires,
                )
            )
            self._bump(conn)
        return key, record

    def revoke_key(self, key_id: str) -> None:
        with begin_write(self.engine) as conn:
            done = conn.execute(
                update(keys_table)
                .where(keys_table.c.id == key_id, keys_table.c.revoked.is_(None))
                .values(revoked=time.time())
            ).rowcount
            if not done:
                exists = conn.execute(
                    select(keys_table.c.id).where(keys_table.c.id == key_id)
                ).scalar()
                if exists is None:
                    raise NotFoundError(f"No key with id {key_id!r}", param="id")
                return  # revoked already
            self._bump(conn)

    def set_key_limits(self, key_id: str, limits: Limits) -> None:
        with begin_write(self.engine) as conn:
            done = conn.execute(
                update(keys_table).where(keys_table.c.id == key_id).values(limits=_dump(limits))
            ).rowcount
            if not done:
                raise NotFoundError(f"No key with id {key_id!r}", param="id")
            self._bump(conn)
