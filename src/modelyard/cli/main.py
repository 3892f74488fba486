"""The ``modelyard`` command line: serve, keys, teams, reports, config import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli import eval as eval_cli
from modelyard.cli import governance, import_litellm, report
from modelyard.cli import router as router_cli
from modelyard.errors import ConfigError

app = typer.Typer(
    name="modelyard",
    help="A model-agnostic AI gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
import_litellm.register(app)
report.register(app)
governance.register(app)
router_cli.register(app)
eval_cli.register(app)


@app.callback()
def _root() -> None:
    """A model-agnostic AI gateway."""


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="YAML config file")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on [4000]")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="state directory [./.modelyard]")
    ] = None,
) -> None:
    """Start the gateway. With no configuration it serves the embedded local models."""
    from modelyard.cli.serve import run

    try:
        run(config, host=host, port=port, data_dir=data_dir)
    except ConfigError as exc:
        typer.echo(f"modelyard: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
