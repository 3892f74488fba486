"""``modelyard eval ...``: run a suite against models through the gateway, compare them,
export the outcomes for the learned router. The work is ``modelyard.evals``; this module
parses options and draws progress and tables."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelyard.governance.keys import ADMIN_KEY_ENV

if TYPE_CHECKING:  # the evals import numpy: loaded by these commands only, not by ``serve``
    from modelyard.evals.runner import RunPlan
    from modelyard.evals.store import Result, RunDir
    from modelyard.evals.suite import SuiteItem
    from modelyard.evals.summary import ModelSummary

API_KEY_ENV = "MODELYARD_API_KEY"

evals = typer.Typer(help="Evaluate models on a suite, through the gateway.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"modelyard: {message}", err=True)
    return typer.Exit(2)


def _prices(path: Path | None) -> dict[str, dict[str, float]]:
    from modelyard.evals.runner import check_prices

    if path is None:
        return {}
    try:
        return check_prices(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        raise _fail(f"{path}: {exc}") from None


@evals.command("run")
def run(
    suite: Annotated[Path, typer.Argument(help="the suite, JSON Lines", exists=True)],
    models: Annotated[str, typer.Option(help="models to compare, comma-separated")],
    gateway: Annotated[str, typer.Option(help="the gateway's URL")] = "http://127.0.0.1:4000",
    api_key: Annotated[str | None, typer.Option(help="the gateway key", envvar=API_KEY_ENV)] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="calls in flight at once")] = 8,
    out: Annotated[Path | None, typer.Option(help="run directory [default: evals/SUITE]")] = None,
    judge: Annotated[str | None, typer.Option(help="model for judge scorers")] = None,
    scorer: Annotated[
        str | None, typer.Option(help='default scorer: a type, or JSON {"type": ...}')
    ] = None,
    prices: Annotated[
        Path | None, typer.Option(help='{MODEL: {"input", "output"}} USD/Mtok, when no ledger')
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(help="admin key to read costs from the ledger", envvar=ADMIN_KEY_ENV),
    ] = None,
    retry_errors: Annotated[bool, typer.Option(help="send again pairs that failed")] = False,
    timeout: Annotated[float, typer.Option(help="seconds per call")] = 300.0,
) -> None:
    """Send every item to every model; re-running the same command resumes the run."""
    from modelyard.evals.runner import RunPlan
    from modelyard.evals.store import RunDir
    from modelyard.evals.suite import SuiteError, load_suite, parse_scorer
    from modelyard.evals.summary import summarize

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise _fail("--models names no model")
    try:
        items = load_suite(suite, parse_scorer(scorer))
    except (SuiteError, orjson.JSONDecodeError) as exc:
        raise _fail(str(exc)) from None
    run_dir = RunDir(out or Path("evals") / suite.stem)
    meta = run_dir.read_meta()
    run_id = str(meta.get("run_id") or uuid.uuid4().hex[:12])
    run_dir.write_meta(
        {
            **meta,
            "run_id": run_id,
            "suite": str(suite),
            "task": meta.get("task", suite.stem),
            "models": list(dict.fromkeys([*meta.get("models", []), *names])),
            "gateway": gateway,
            "judge": judge,
        }
    )
    run_dir.write_items(items)
    plan = RunPlan(items, names, concurrency, judge, _prices(prices), retry_errors)
    pairs = plan.pending(run_dir.results())
    console = Console(stderr=True)
    skipped = len(items) * len(names) - len(pairs)
    if skipped:
        console.print(f"resuming {run_dir.path}: {skipped} pairs done, {len(pairs)} to send")
    results = asyncio.run(
        _run(plan, pairs, run_dir, run_id, gateway, api_key, admin_key, timeout, console)
    )
    errors = sum(r.error is not None for r in results)
    console.print(f"sent {len(results)} calls, {errors} failed; results in {run_dir.path}")
    _print_table(summarize(run_dir.results().values(), names), Console())
    if errors:  # scripts and CI must see it; --retry-errors sends them again
        console.print(f"{errors} calls failed: run again with --retry-errors to resend them")
        raise typer.Exit(1)


async def _run(
    plan: RunPlan,
    pairs: list[tuple[SuiteItem, str]],
    run_dir: RunDir,
    run_id: str,
    gateway: str,
    api_key: str | None,
    admin_key: str | None,
    timeout: float,
    console: Console,
) -> list[Result]:
    from modelyard.evals.client import GatewayClient
    from modelyard.evals.runner import Runner

    since = time.time() - 1
    progress = Progress(
        TextColumn("[bold]eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} errors"),
        TimeElapsedColumn(),
        console=console,
    )
    async with GatewayClient(gateway, api_key, timeout=timeout) as client:
        runner = Runner(client, run_dir, run_id)
        try:
            with progress:
                task = progress.add_task("eval", total=len(pairs), errors=0)
                failed = 0

                def done(result: Result) -> None:
                    nonlocal failed
                    failed += result.error is not None
                    progress.update(task, advance=1, errors=failed)

                results = await runner.run(plan, pairs, done)
        finally:
            run_dir.close()
        # also the calls of an earlier session that crashed before it read the ledger
        earlier = [
            r
            for r in run_dir.results().values()
            if r.call_tag and r.error is None and r.cost_source != "ledger"
        ]
        if admin_key and (runner.answered or earlier):
            since = min([since, *(r.ts - 1 for r in earlier)])
            tags = {str(r.call_tag) for r in earlier}
            try:
                run_dir.add_ledger(await runner.ledger_costs(admin_key, since, tags))
            except Exception as exc:  # costs then come from --prices
                console.print(f"could not read costs from the ledger: {exc}")
    return results


def _usd(x: float | None) -> str:
    return "-" if x is None else f"{x:.6f}"


def _print_table(summaries: list[ModelSummary], console: Console) -> None:
    table = Table(title="Evaluation")
    for column in (
        "model",
        "items",
        "quality",
        "cost (USD)",
        "per item",
        "p50 ms",
        "p95 ms",
        "errors",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in summaries:
        table.add_row(
            s.model,
            str(s.items),
            "-" if s.quality is None else f"{s.quality:.3f}",
            _usd(s.cost_usd),
            _usd(s.cost_per_item),
            "-" if s.p50_ms is None else f"{s.p50_ms:.0f}",
            "-" if s.p95_ms is None else f"{s.p95_ms:.0f}",
            str(s.errors),
        )
    console.print(table)


def _open(run_dir: Path) -> RunDir:
    from modelyard.evals.store import RunDir

    found = RunDir(run_dir)
    if not found.exists():
        raise _fail(f"{run_dir} holds no evaluation run")
    return found


@evals.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    html: Annotated[Path | None, typer.Option(help="write an HTML report there")] = None,
) -> None:
    """Compare the models of a run: quality, cost, latency, errors."""
    from modelyard.evals.html import render
    from modelyard.evals.summary import summarize

    found = _open(run_dir)
    summaries = summarize(found.results().values(), found.read_meta().get("models"))
    _print_table(summaries, Console())
    if html is not None:
        html.write_text(render(f"Evaluation: {run_dir.name}", summaries), encoding="utf-8")
        Console(stderr=True).print(f"wrote {html}")


@evals.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the outcome table (JSONL)")],
    task: Annotated[str | None, typer.Option(help="the task name [the suite's name]")] = None,
) -> None:
    """Write the run as an outcome table, the format the learned router is fitted on."""
    from modelyard.evals.export import outcome_rows

    found = _open(run_dir)
    name = task or str(found.read_meta().get("task", run_dir.name))
    rows = outcome_rows(found.read_items(), found.results(), name)
    output.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    Console(stderr=True).print(f"wrote {len(rows)} prompts to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(evals, name="eval")


__all__ = ["API_KEY_ENV", "register"]
