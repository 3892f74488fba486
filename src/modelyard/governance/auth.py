"""Who is calling: the gateway's view of keys and teams, kept current, and the check of a key.

``KeyRing`` holds every key by digest and every team by name. Before each
request ``fresh()`` asks whether anything changed since it loaded (SQLite:
``PRAGMA data_version`` on a connection of its own, a few microseconds, then
the epoch row only when some other connection wrote; PostgreSQL: the epoch
row, read in a thread, one read shared by the requests that arrive while it is
in flight) and reloads when the epoch moved, so a revoked key fails from the
next request on, whichever process revoked it.

Secure by default: without keys, only a gateway that listens on loopback alone
serves callers that present none (the embedded quickstart). Once any client
key exists, or the gateway listens elsewhere, every request needs a valid key.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from modelyard.errors import AuthenticationError
from modelyard.governance.keys import (
    ANONYMOUS,
    NO_LIMITS,
    KeyHasher,
    KeyRecord,
    Principal,
    TeamRecord,
)
from modelyard.governance.store import GovernanceStore

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
ENV_ADMIN_ID = "admin-env"


def _key_needed() -> AuthenticationError:
    return AuthenticationError(
        "An API key is needed: send Authorization: Bearer <key> (or x-api-key)",
        code="missing_api_key",
    )


class KeyRing:
    def __init__(
        self,
        store: GovernanceStore,
        *,
        loopback_only: bool,
        env_admin_key: str | None = None,
        sqlite_path: Path | None = None,
    ):
        self.store = store
        self.hasher: KeyHasher = store.hasher
        self.loopback_only = loopback_only
        self._env_admin: KeyRecord | None = None
        if env_admin_key:
            self._env_admin = KeyRecord(
                id=ENV_ADMIN_ID,
                prefix="",
                name="MODELYARD_ADMIN_KEY",
                team=None,
                role="admin",
                models=None,
                limits=NO_LIMITS,
                created=0.0,
                digest=self.hasher.digest(env_admin_key),
            )
        self.epoch = -1
        self.keys: dict[str, KeyRecord] = {}
        self.teams: dict[str, TeamRecord] = {}
        self.open = False
        self._principals: dict[str, Principal] = {}
        self._watch: sqlite3.Connection | None = None
        self._data_version = -1
        if sqlite_path is not None:
            self._watch = sqlite3.connect(sqlite_path, isolation_level=None)
        self._inflight: asyncio.Future[int] | None = None
        self._reloading: asyncio.Future[None] | None = None
        self.on_reload: Callable[[], None] | None = None

    # ----------------------------------------------------------- keeping current

    def load(self) -> None:
        epoch, keys, teams = self.store.load()
        self._apply(epoch, keys, teams)

    def _apply(self, epoch: int, keys: list[KeyRecord], teams: list[TeamRecord]) -> None:
        by_digest = {k.digest: k for k in keys}
        if self._env_admin is not None:
            by_digest[self._env_admin.digest] = self._env_admin
        self.keys = by_digest
        self.teams = {t.name: t for t in teams}
        self._principals = {}
        self.open = self.loopback_only and not any(k.role == "user" for k in keys)
        self.epoch = epoch
        if self.on_reload is not None:
            self.on_reload()

    async def fresh(self) -> None:
        """Reload when keys or teams changed anywhere since the last load."""
        if self._watch is not None:
            version = self._watch.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return
            self._data_version = version
            row = self._watch.execute("SELECT epoch FROM governance_epoch").fetchone()
            epoch = int(row[0]) if row else 0
        else:
            epoch = await self._shared_epoch_read()
        if epoch != self.epoch:
            await self._reload()

    async def _reload(self) -> None:
        """One load shared by every request that finds the ring out of date at once.

        The shared task applies what it loaded before it completes, so that no
        request that waited on it can check a key against the old ring.
        """
        if self._reloading is None:
            self._reloading = asyncio.ensure_future(self._load_and_apply())
        await asyncio.shield(self._reloading)

    async def _load_and_apply(self) -> None:
        try:
            self._apply(*await asyncio.to_thread(self.store.load))
        finally:
            self._reloading = None

    async def _shared_epoch_read(self) -> int:
        if self._inflight is None:
            future = self._inflight = asyncio.ensure_future(asyncio.to_thread(self.store.epoch))
            try:
                return await future
            finally:
                self._inflight = None
        return await asyncio.shield(self._inflight)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    # ----------------------------------------------------------- checking a key

    def authenticate(self, presented: str | None, *, strict: bool = False) -> Principal:
        """The principal behind a presented key (None: no key sent); 401 when it is not valid.

        In the open mode a caller needs no key, and one that is not known is ignored
        (SDKs insist on sending something), unless ``strict`` (the admin API).
        """
        lenient = self.open and not strict
        if presented is None:
            if lenient:
                return ANONYMOUS
            raise _key_needed()
        if not presented:
            if lenient:
                return ANONYMOUS
            raise AuthenticationError(
                "The Authorization header must be 'Bearer <key>'", code="invalid_api_key"
            )
        digest = self.hasher.digest(presented)
        record = self.keys.get(digest)
        if record is None or not hmac.compare_digest(record.digest, digest):
            if lenient:
                return ANONYMOUS
            raise AuthenticationError("Invalid API key", code="invalid_api_key")
        if record.revoked is not None:
            raise AuthenticationError(
                f"The API key {record.prefix}... was revoked", code="revoked_api_key"
            )
        if record.expires is not None and record.expires <= time.time():
            raise AuthenticationError(
                f"The API key {record.prefix}... has expired", code="expired_api_key"
            )
        principal = self._principals.get(record.id)
        if principal is None:
            team = self.teams.get(record.team) if record.team is not None else None
            principal = self._principals[record.id] = Principal(record, team)
        return principal
