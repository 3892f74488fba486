"""Run the gateway server: settings, logging, the event loop, the listening socket.

Logs go to stderr at ``INFO``; ``MODELYARD_LOG_LEVEL`` (``DEBUG``, ``INFO``,
``WARNING``, ``ERROR`` or ``CRITICAL``) sets another level, for the
libraries' loggers too. They are plain text lines for a terminal unless
``MODELYARD_LOG_FORMAT=json`` (or ``observability.log_format``) asks for one
JSON object a line, with the request id (``observability.logs``). No level
shows a credential (``tests/e2e/governance/test_canary.py`` checks it at
``DEBUG``, in both formats).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from modelyard.app import create_app
from modelyard.errors import ConfigError
from modelyard.observability.logs import configure_logging
from modelyard.settings import Limits, load_settings

LOG_LEVEL_ENV = "MODELYARD_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def run(config: Path | None, *, host: str | None, port: int | None, data_dir: Path | None) -> None:
    settings = load_settings(config, overrides={"host": host, "port": port, "data_dir": data_dir})
    level = log_level()
    configure_logging(level, settings.observability.log_format)
    if level != "DEBUG":  # seven lines about Alembic's plugins at every first start
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        app = create_app(settings)
    except SQLAlchemyError as exc:  # the driver's message names the host, never the password
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(f"cannot open the database: {reason}") from None
    server = settings.server
    names = ", ".join(d.name for d in settings.deployments)
    print(  # the one line an operator reads at start
        f"modelyard listening on http://{server.host}:{server.port} "
        f"(data dir {server.data_dir}; models: {names})",
        flush=True,
    )
    try:
        import uvloop

        uvloop.run(_serve(app, server.host, server.port, settings.limits))
    except ImportError:  # uvloop is a dependency; this only guards odd platforms
        asyncio.run(_serve(app, server.host, server.port, settings.limits))


def log_level(env: dict[str, str] | None = None) -> str:
    """The level of ``MODELYARD_LOG_LEVEL``, INFO when unset."""
    value = (os.environ if env is None else env).get(LOG_LEVEL_ENV, "").strip().upper()
    if not value:
        return "INFO"
    if value not in LOG_LEVELS:
        raise ConfigError(f"{LOG_LEVEL_ENV} must be one of {', '.join(LOG_LEVELS)}")
    return value


async def _serve(app: web.Application, host: str, port: int, limits: Limits) -> None:
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=5,
        # header limits: aiohttp answers a request past one with a 400 naming the size
        max_line_size=limits.max_request_line_bytes,
        max_field_size=limits.max_header_bytes,
        max_headers=limits.max_headers,
    )
    await runner.setup()
    # Everything built so far lives as long as the process: keep it out of the
    # collector's generations, so collections on the request path stay short.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        await stop.wait()
    finally:
        await runner.cleanup()
