"""``modelyard router fit|replay|export``: learn a router, replay it, export live outcomes.

Thin: parses options, reads files, calls ``modelyard.routing.learned``, writes files.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from modelyard.errors import ConfigError

router = typer.Typer(help="Learned routing from recorded outcomes.", no_args_is_help=True)

ModelsOption = Annotated[
    str | None, typer.Option("--models", help="comma-separated pool (default: all in the table)")
]
PricesOption = Annotated[Path, typer.Option("--prices", help="USD per 1M tokens per model")]


def _models(value: str | None) -> list[str] | None:
    return [m.strip() for m in value.split(",") if m.strip()] if value else None


@router.command()
def fit(
    table: Annotated[Path, typer.Argument(help="outcome table (JSON Lines)")],
    prices: PricesOption,
    output: Annotated[Path, typer.Option("-o", "--output", help="router file to write")],
    models: ModelsOption = None,
    seed: Annotated[int, typer.Option(help="seed of the cross-fitting folds")] = 0,
) -> None:
    """Learn each model's likely outcome on a new prompt, and the cascades worth running."""
    import time

    from modelyard.observability.progress import progress_bar
    from modelyard.routing.learned.fit import fit_router
    from modelyard.routing.learned.store import save_router
    from modelyard.routing.learned.table import load_prices, load_table

    started = time.monotonic()
    try:
        outcomes, priced = load_table(table), load_prices(prices)
        with progress_bar(f"fitting on {len(outcomes.records)} prompts", None):  # a terminal's
            fitted = fit_router(outcomes, priced, _models(models), seed=seed)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    save_router(fitted, output)
    front = fitted.frontier()
    typer.echo(
        f"fitted on {fitted.meta['prompts']} prompts, {len(fitted.models)} models; "
        f"{len(front)} operating points from ${front[0].est_cost:.2e} to "
        f"${front[-1].est_cost:.2e} a prompt in {time.monotonic() - started:.1f} s; "
        f"wrote {output}"
    )


@router.command()
def replay(
    router_file: Annotated[Path, typer.Argument(metavar="ROUTER", help="fitted router file")],
    table: Annotated[Path, typer.Argument(help="outcome table; correctness is ignored")],
    prices: PricesOption,
    output: Annotated[Path, typer.Option("-o", "--output", help="decisions (JSON Lines)")],
    models: Annotated[
        str | None, typer.Option("--models", help="use only these of the router's models")
    ] = None,
    points: Annotated[
        int, typer.Option(help="at most this many operating points, cheapest first")
    ] = 11,
) -> None:
    """Route every prompt of TABLE at each operating point, answering calls from the record."""
    from modelyard.routing.learned.replay import replay as run_replay
    from modelyard.routing.learned.store import load_router
    from modelyard.routing.learned.table import load_prices, load_table, require_prices

    try:
        fitted = load_router(router_file)
        pool = _models(models)
        chosen = fitted.select_points(points, pool)
        outcomes = load_table(table)
        require_prices(load_prices(prices), {m for p in chosen for m in p.chain})
        decisions = asyncio.run(run_replay(fitted, outcomes, chosen))
    except (ConfigError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    with output.open("w", encoding="utf-8") as out:
        for line in decisions:
            out.write(json.dumps(line) + "\n")
    typer.echo(f"{len(decisions)} decisions at {len(chosen)} operating points; wrote {output}")


@router.command()
def export(
    route: Annotated[str, typer.Argument(help="a learned route that samples its traffic")],
    output: Annotated[Path, typer.Option("-o", "--output", help="outcome table to write")],
    prices_out: Annotated[
        Path, typer.Option("--prices-out", help="prices file to write (USD per 1M tokens)")
    ],
    url: Annotated[str, typer.Option(help="the gateway")] = "http://127.0.0.1:4000",
    since_hours: Annotated[
        float | None, typer.Option(help="only the last this many hours (default: all)")
    ] = None,
) -> None:
    """Write the outcome table a route's traffic sampling has grown, ready for ``router fit``."""
    import os
    import time

    from modelyard.cli.report import _get
    from modelyard.governance.keys import ADMIN_KEY_ENV

    key = os.environ.get(ADMIN_KEY_ENV)
    if not key:
        raise typer.BadParameter(f"set {ADMIN_KEY_ENV} to the gateway's admin key")
    since = 0.0 if since_hours is None else time.time() - since_hours * 3600
    data = _get(f"{url.rstrip('/')}/admin/learned/{route}/outcomes?since={since}", key)
    with output.open("w", encoding="utf-8") as out:
        for line in data["outcomes"]:
            out.write(json.dumps(line) + "\n")
    prices_out.write_text(json.dumps(data["prices"], indent=1) + "\n", encoding="utf-8")
    typer.echo(
        f"{len(data['outcomes'])} prompts of route {route!r}, "
        f"{len(data['prices'])} models; wrote {output} and {prices_out}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(router, name="router")
