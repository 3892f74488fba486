"""``modelyard keys ...`` and ``modelyard teams ...``: keys and teams, changed in the database.

They work on the gateway's own store (the SQLite file in the data directory, or
``MODELYARD_DATABASE_URL``) with the gateway's secret, whether or not a gateway
runs; a running gateway sees each change from its next request on. A new key's
plaintext is printed once, on standard output, and never again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from modelyard.errors import ConfigError, GatewayError
from modelyard.governance.keys import KeyHasher, Limits, load_secret
from modelyard.governance.store import GovernanceStore

keys = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
teams = typer.Typer(help="Teams and their budgets and rate limits.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config file")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory")]
BudgetOpt = Annotated[float | None, typer.Option(help="budget in USD")]
PeriodOpt = Annotated[str, typer.Option(help="budget period: day, month or none")]
SoftOpt = Annotated[bool, typer.Option("--soft", help="alert only, never refuse")]
RpmOpt = Annotated[int | None, typer.Option(help="requests per minute")]
TpmOpt = Annotated[int | None, typer.Option(help="tokens per minute")]


def _store(config: Path | None, data_dir: Path | None) -> GovernanceStore:
    from modelyard.settings import load_settings
    from modelyard.storage.request_log import create_db_engine, sqlite_url

    try:
        settings = load_settings(config, overrides={"data_dir": data_dir})
    except ConfigError as exc:
        typer.echo(f"modelyard: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    server = settings.server
    engine = create_db_engine(server.database_url or sqlite_url(server.data_dir))
    return GovernanceStore(engine, KeyHasher(load_secret(server.data_dir)))


def _limits(
    budget: float | None, period: str, soft: bool, rpm: int | None, tpm: int | None
) -> Limits:
    if period not in ("day", "month", "none"):
        raise typer.BadParameter("the period is day, month or none")
    return Limits.model_validate(
        {
            "budget_micros": None if budget is None else round(budget * 1e6),
            "budget_period": period,
            "budget_hard": not soft,
            "rpm": rpm,
            "tpm": tpm,
        }
    )


def _fail(exc: GatewayError) -> typer.Exit:
    typer.echo(f"modelyard: {exc.message}", err=True)
    return typer.Exit(1)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "-"


def _budget(limits: Limits) -> str:
    if limits.budget_micros is None:
        return "-"
    kind = "hard" if limits.budget_hard else "soft"
    return f"${limits.budget_micros / 1e6:g}/{limits.budget_period} ({kind})"


@keys.command("create")
def create_key(
    team: Annotated[str, typer.Option(help="the team the key belongs to")],
    name: Annotated[str, typer.Option(help="what the key is for")] = "key",
    model: Annotated[
        list[str] | None, typer.Option("--model", help="a route or model it may call (repeat)")
    ] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="expiry, in days")] = None,
    budget: BudgetOpt = None,
    period: PeriodOpt = "month",
    soft: SoftOpt = False,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Make a key; its plaintext is printed this once."""
    store = _store(config, data_dir)
    expires = time.time() + expires_in_days * 86_400 if expires_in_days else None
    try:
        plaintext, record = store.create_key(
            name=name,
            team=team,
            models=model or None,
            limits=_limits(budget, period, soft, rpm, tpm),
            expires=expires,
        )
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(plaintext)
    typer.echo(f"created {record.id} for team {team}; the key above is not shown again", err=True)


@keys.command("list")
def list_keys(
    team: Annotated[str | None, typer.Option(help="only this team's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The keys: id, prefix, team, limits, state. Never a key itself."""
    found = _store(config, data_dir).list_keys(team)
    if as_json:
        for record in found:
            typer.echo(orjson.dumps(record.public()).decode())
        return
    table = Table(title="API keys")
    for column in ("id", "prefix", "name", "team", "role", "budget", "rpm", "tpm", "state"):
        table.add_column(column)
    now = time.time()
    for k in found:
        state = "active"
        if k.revoked:
            state = f"revoked {_when(k.revoked)}"
        elif k.expires and k.expires <= now:
            state = f"expired {_when(k.expires)}"
        table.add_row(
            k.id,
            k.prefix + "...",
            k.name,
            k.team or "-",
            k.role,
            _budget(k.limits),
            str(k.limits.rpm or "-"),
            str(k.limits.tpm or "-"),
            state,
        )
    Console().print(table)


@keys.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="the key's id (key_...)")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a key; it fails from the gateway's next request on."""
    try:
        _store(config, data_dir).revoke_key(key_id)
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(f"revoked {key_id}")


@teams.command("set")
def set_team(
    name: Annotated[str, typer.Argument(help="the team")],
    budget: BudgetOpt = None,
    period: PeriodOpt = "month",
    soft: SoftOpt = False,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a team, or replace its budget and rate limits."""
    import re

    from modelyard.governance.store import TEAM_PATTERN

    if not re.fullmatch(TEAM_PATTERN, name):
        raise typer.BadParameter("a team name is 1-100 letters, digits, '_', '.' or '-'")
    team = _store(config, data_dir).put_team(name, _limits(budget, period, soft, rpm, tpm))
    typer.echo(f"team {team.name}: budget {_budget(team.limits)}")


@teams.command("list")
def list_teams(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """The teams and their limits."""
    table = Table(title="Teams")
    for column in ("team", "budget", "rpm", "tpm", "created"):
        table.add_column(column)
    for t in _store(config, data_dir).list_teams():
        limits = t.limits
        table.add_row(
            t.name,
            _budget(limits),
            str(limits.rpm or "-"),
            str(limits.tpm or "-"),
            _when(t.created),
        )
    Console().print(table)


@teams.command("delete")
def delete_team(
    name: Annotated[str, typer.Argument(help="the team")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a team and revoke its keys."""
    try:
        _store(config, data_dir).delete_team(name)
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(f"deleted team {name}; its keys are revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")
    app.add_typer(teams, name="teams")
