"""Progress of long work on a terminal: a rich progress bar on stderr, and nothing elsewhere.

``progress_bar`` shows a bar while a block runs when stderr is a terminal
(a log file or a pipe gets no bar, and no escape codes); the block gets a
function that sets how much is done, and the finished bar, with its elapsed
time, stays as the summary. A ``total`` of None draws a pulsing bar for work
that cannot count its steps. ``file_progress`` follows a file that
another function writes, by its size. ``rich`` is imported only when a bar is
drawn.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Advance = Callable[[float], None]


def _ignore(done: float) -> None:
    return None


@contextmanager
def progress_bar(
    description: str, total: float | None, *, bytes_: bool = False, enabled: bool | None = None
) -> Iterator[Advance]:
    """A bar on stderr while the block runs; the block sets the amount done through the yield."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn()]
    if total is not None:
        columns.append(DownloadColumn() if bytes_ else TaskProgressColumn())
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total)

        def advance(done: float) -> None:
            progress.update(task, completed=done)

        yield advance
        if total is not None:
            progress.update(task, completed=total)


@contextmanager
def file_progress(
    description: str, path: Path, total: int, *, enabled: bool | None = None
) -> Iterator[None]:
    """A bar of ``path``'s size against ``total`` bytes (none if 0) while the block writes it."""
    on = enabled if total > 0 else False
    with progress_bar(description, total, bytes_=True, enabled=on) as advance:
        if advance is _ignore:
            yield
            return
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(0.1):
                with contextlib.suppress(OSError):  # not made yet
                    advance(path.stat().st_size)

        watcher = threading.Thread(target=follow, name="modelyard-progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
