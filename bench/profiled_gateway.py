"""Run ``modelyard`` under cProfile, timed by the main thread's CPU clock.

``python bench/profiled_gateway.py STATS_FILE serve --config ...`` behaves like
``modelyard serve ...`` and writes cProfile stats to STATS_FILE when it stops
(SIGINT/SIGTERM). Unlike ``python -m cProfile``, time waiting in the event loop
is not counted (the clock is ``time.thread_time``) and imports are done before
profiling starts, so the stats show where the CPU of serving requests goes.
The request log's writer thread is not in them. ``bench/overhead.py --profile``
uses this.
"""

from __future__ import annotations

import cProfile
import sys
import time


def main() -> None:
    stats, argv = sys.argv[1], sys.argv[2:]
    # import what serving needs first, so that import time stays out of the profile
    import modelyard.api.openai_api
    import modelyard.app
    import modelyard.cli.serve
    import modelyard.providers.openai_compat  # noqa: F401
    from modelyard.cli.main import app

    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        app(argv, prog_name="modelyard", standalone_mode=False)
    finally:
        profiler.disable()
        profiler.dump_stats(stats)


if __name__ == "__main__":
    main()
