"""``modelyard report ...``: reports read from a running gateway's admin API."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelyard.governance.keys import ADMIN_KEY_ENV

report = typer.Typer(help="Reports from a running gateway.", no_args_is_help=True)


def _get(url: str, key: str) -> Any:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):  # never file:// or ftp://
        raise typer.BadParameter(f"the gateway's URL must be http:// or https://, not {url!r}")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310
    try:
        # the operator's URL, its scheme checked above
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310  # nosec B310
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", {}).get("message", exc.reason)
        raise typer.BadParameter(f"the gateway answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise typer.BadParameter(f"cannot reach {url}: {exc}") from None


@report.command()
def dependency(
    url: Annotated[str, typer.Option(help="the gateway")] = "http://127.0.0.1:4000",
    hours: Annotated[float, typer.Option(help="the window, in hours")] = 24.0,
) -> None:
    """Per route: the share of requests, tokens and spend by vendor, and single-vendor risk."""
    key = os.environ.get(ADMIN_KEY_ENV)
    if not key:
        raise typer.BadParameter(f"set {ADMIN_KEY_ENV} to the gateway's admin key")
    data = _get(f"{url.rstrip('/')}/admin/dependency?hours={hours}", key)
    table = Table(title=f"Vendor dependency, last {hours:g} h")
    for column in ("route", "vendor", "requests", "share", "tokens", "spend (USD)", "share"):
        table.add_column(column, justify="left" if column in ("route", "vendor") else "right")
    risks: list[str] = []
    for route in data["routes"]:
        for vendor, cell in sorted(route["vendors"].items()):
            table.add_row(
                route["route"],
                vendor,
                str(cell["requests"]),
                f"{cell['request_share']:.0%}",
                str(cell["tokens"]),
                f"{cell['spend_usd']:.4f}",
                f"{cell['spend_share']:.0%}",
            )
        risks += [
            f"{route['route']}: losing {vendor} leaves no healthy deployment"
            for vendor, ok in route["survives_loss_of"].items()
            if not ok
        ]
    console = Console()
    console.print(table)
    for risk in risks or ["every route survives the loss of any single vendor"]:
        console.print(f"- {risk}")


@report.command("spend")
def spend_report(
    url: Annotated[str, typer.Option(help="the gateway")] = "http://127.0.0.1:4000",
    by: Annotated[
        str, typer.Option(help="key, team, route, model, deployment, vendor or tag:NAME")
    ] = "team",
    hours: Annotated[float, typer.Option(help="the window, in hours")] = 24.0 * 30,
) -> None:
    """Spend from the ledger over a time window, grouped by key, team, route, model or vendor."""
    key = os.environ.get(ADMIN_KEY_ENV)
    if not key:
        raise typer.BadParameter(f"set {ADMIN_KEY_ENV} to the gateway's admin key")
    since = time.time() - hours * 3600
    query = urllib.parse.urlencode({"group_by": by, "since": since})
    data = _get(f"{url.rstrip('/')}/admin/spend?{query}", key)
    table = Table(title=f"Spend by {by}, last {hours:g} h")
    columns = (by, "requests", "errors", "input tokens", "output tokens", "cost (USD)")
    for column in (*columns, "cache hits", "saved (USD)"):
        table.add_column(column, justify="left" if column == by else "right")
    for row in data["rows"]:
        table.add_row(
            str(row[by]) if row[by] is not None else "-",
            str(row["requests"]),
            str(row["errors"]),
            str(row["input_tokens"]),
            str(row["output_tokens"]),
            f"{row['cost_micros'] / 1e6:.6f}",
            f"{row['cache_hits']} ({row['cache_hit_rate']:.0%})",
            f"{row['saved_micros'] / 1e6:.6f}",
        )
    total = data["total"]
    table.add_row(
        "total",
        str(total["requests"]),
        "",
        "",
        "",
        f"{total['cost_micros'] / 1e6:.6f}",
        str(total["cache_hits"]),
        f"{total['saved_micros'] / 1e6:.6f}",
    )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(report, name="report")
