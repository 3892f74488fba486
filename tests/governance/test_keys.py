"""Keys and teams: hashing, the store, and the key ring's checks and freshness."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from modelyard.errors import AuthenticationError, InvalidRequestError, NotFoundError
from modelyard.governance.auth import KeyRing
from modelyard.governance.keys import (
    ANONYMOUS,
    KEY_PREFIX,
    KeyHasher,
    Limits,
    load_secret,
    presented_key,
)
from modelyard.governance.store import GovernanceStore
from modelyard.storage.request_log import create_db_engine, sqlite_url
from modelyard.storage.schema import keys_table

SECRET = b"s" * 32


def _store(path: Path) -> GovernanceStore:
    return GovernanceStore(create_db_engine(sqlite_url(path)), KeyHasher(SECRET))


def _ring(store: GovernanceStore, path: Path, **kwargs: object) -> KeyRing:
    ring = KeyRing(store, sqlite_path=path / "modelyard.db", **kwargs)  # type: ignore[arg-type]
    ring.load()
    return ring


def test_the_hash_is_keyed_and_the_secret_stays_hidden() -> None:
    a, b = KeyHasher(SECRET), KeyHasher(b"t" * 32)
    assert a.digest("sk-my-x") == a.digest("sk-my-x") != b.digest("sk-my-x")
    assert "s" * 16 not in repr(a)
    with pytest.raises(Exception, match="at least 16"):
        KeyHasher(b"short")


def test_the_secret_is_made_once_with_owner_only_access(tmp_path: Path) -> None:
    first = load_secret(tmp_path, env={})
    assert load_secret(tmp_path, env={}) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert load_secret(tmp_path, env={"MODELYARD_SECRET_KEY": "x" * 20}) == b"x" * 20


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    [
        (None, None, None),
        ("Bearer sk-my-a", None, "sk-my-a"),
        ("bearer  sk-my-a ", None, "sk-my-a"),
        (None, "sk-my-b", "sk-my-b"),
        ("Basic abc", None, ""),  # present but unusable: refused, never "no key"
        ("Bearer ", None, ""),
    ],
)
def test_presented_key(authorization: str | None, api_key: str | None, expected: str) -> None:
    assert presented_key(authorization, api_key) == expected


def test_the_database_holds_only_a_digest_and_a_short_prefix(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put_team("acme", Limits())
    key, record = store.create_key(name="ci", team="acme")
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    with store.engine.connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(select(keys_table))]
    dump = repr(rows)
    assert key not in dump and key[len(KEY_PREFIX) : len(KEY_PREFIX) + 8] not in dump
    assert record.prefix == key[: len(KEY_PREFIX) + 4] and record.prefix in dump
    assert "digest" not in record.public()


def test_a_key_needs_an_existing_team(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(NotFoundError, match="No team named 'ghost'"):
        store.create_key(name="k", team="ghost")
    with pytest.raises(InvalidRequestError):
        store.create_key(name="k", team=None)


async def test_open_mode_only_on_loopback_and_only_until_a_key_exists(tmp_path: Path) -> None:
    store = _store(tmp_path)
    open_ring = _ring(store, tmp_path, loopback_only=True)
    assert open_ring.authenticate(None) is ANONYMOUS
    exposed = _ring(store, tmp_path, loopback_only=False)
    with pytest.raises(AuthenticationError, match="An API key is needed"):
        exposed.authenticate(None)
    store.put_team("acme", Limits())
    key, record = store.create_key(name="k", team="acme")
    await open_ring.fresh()
    with pytest.raises(AuthenticationError):
        open_ring.authenticate(None)
    principal = open_ring.authenticate(key)
    assert principal.key is not None and principal.key.id == record.id
    assert principal.team_name == "acme" and not principal.admin


async def test_revocation_by_another_process_holds_from_the_next_request(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put_team("acme", Limits())
    key, record = store.create_key(name="k", team="acme")
    ring = _ring(store, tmp_path, loopback_only=True)
    await ring.fresh()
    assert ring.authenticate(key).key is not None
    other = _store(tmp_path)  # another engine: as the CLI would, in its own process
    other.revoke_key(record.id)
    await ring.fresh()
    with pytest.raises(AuthenticationError, match=r"was revoked") as err:
        ring.authenticate(key)
    assert key not in err.value.message
    with pytest.raises(AuthenticationError, match="Invalid API key") as err:
        ring.authenticate(key + "x")
    assert key not in err.value.message


async def test_expired_keys_fail_and_the_env_admin_key_is_admin(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put_team("acme", Limits())
    key, _ = store.create_key(name="k", team="acme", expires=time.time() - 1)
    ring = _ring(store, tmp_path, loopback_only=True, env_admin_key="adm-key-123")
    with pytest.raises(AuthenticationError, match="expired"):
        ring.authenticate(key)
    assert ring.authenticate("adm-key-123").admin


async def test_deleting_a_team_revokes_its_keys(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put_team("acme", Limits(rpm=5))
    key, _ = store.create_key(name="k", team="acme")
    ring = _ring(store, tmp_path, loopback_only=True)
    team = ring.authenticate(key).team
    assert team is not None and team.limits.rpm == 5
    store.delete_team("acme")
    await ring.fresh()
    with pytest.raises(AuthenticationError, match="revoked"):
        ring.authenticate(key)
    with pytest.raises(NotFoundError):
        store.delete_team("acme")
