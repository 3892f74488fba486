"""Virtual keys and teams: the key format, the keyed hash, and the records the gateway keeps.

A key is ``sk-my-`` and 43 random URL-safe characters (256 bits). Only its
HMAC-SHA256 under the gateway's secret is stored, with the first characters
(``prefix``) so that people can tell keys apart; the plaintext is shown once,
when the key is made. The secret is ``MODELYARD_SECRET_KEY`` (replicas share
it) or, when unset, a file made once in the data directory.

Lookups go by digest in a dict, then ``hmac.compare_digest`` confirms the
match, so that timing says nothing about how much of a key was right.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.errors import ConfigError

KEY_PREFIX = "sk-my-"
SECRET_ENV = "MODELYARD_SECRET_KEY"  # noqa: S105 - a variable name, not a secret  # nosec B105
ADMIN_KEY_ENV = "MODELYARD_ADMIN_KEY"
SHOWN_CHARS = len(KEY_PREFIX) + 4  # the part of a key that may be shown: "sk-my-AbCd"

Role = Literal["user", "admin"]
Period = Literal["day", "month", "none"]


class Limits(BaseModel):
    """Budget and rate limits of a key or a team; None: no limit of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_micros: int | None = Field(default=None, ge=0)  # integer micro-dollars
    budget_period: Period = "month"
    budget_hard: bool = True  # hard: refuse; soft: alert only
    rpm: int | None = Field(default=None, ge=1)  # requests per minute
    tpm: int | None = Field(default=None, ge=1)  # tokens per minute


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    prefix: str
    name: str
    team: str | None
    role: Role
    models: frozenset[str] | None  # the routes and models it may call; None: any
    limits: Limits
    created: float
    expires: float | None = None
    revoked: float | None = None
    digest: str = ""

    def public(self) -> dict[str, object]:
        """What the admin API and the CLI show of a key: never its digest."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "team": self.team,
            "role": self.role,
            "models": sorted(self.models) if self.models is not None else None,
            "limits": self.limits.model_dump(),
            "created": self.created,
            "expires": self.expires,
            "revoked": self.revoked,
        }


@dataclass(frozen=True, slots=True)
class TeamRecord:
    name: str
    limits: Limits
    created: float

    def public(self) -> dict[str, object]:
        return {"name": self.name, "limits": self.limits.model_dump(), "created": self.created}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (and its team), or nobody in the open embedded mode."""

    key: KeyRecord | None
    team: TeamRecord | None

    @property
    def admin(self) -> bool:
        return self.key is not None and self.key.role == "admin"

    @property
    def team_name(self) -> str | None:
        return self.team.name if self.team is not None else None


ANONYMOUS = Principal(None, None)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


class KeyHasher:
    """The keyed hash of keys; the secret never leaves this object."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ConfigError(f"{SECRET_ENV} must be at least 16 characters long")
        self._secret = secret

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "KeyHasher(<secret>)"


def load_secret(data_dir: Path, env: dict[str, str] | None = None) -> bytes:
    """The HMAC secret: ``MODELYARD_SECRET_KEY``, else ``secret.key`` in the data directory."""
    environ = os.environ if env is None else env
    value = environ.get(SECRET_ENV)
    if value:
        return value.encode()
    path = data_dir / "secret.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer`` or Anthropic's ``x-api-key``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # present but unusable: refused, never taken for "no key"
    if api_key is not None:
        return api_key.strip()
    return None
