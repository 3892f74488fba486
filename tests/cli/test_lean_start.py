"""The gateway's process stays lean: the CLI and the app load no heavy library they do not need.

Idle memory has a budget (100 MB without the local model); numpy, the
evaluation harness, genai-prices and redis each cost megabytes, so they are
imported only by the commands, or the configuration, that use them.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "numpy",
    "scipy",
    "genai_prices",
    "redis",
    "modelyard.evals",
    "openai",
    "torch",
    "opentelemetry",  # imported only when an OTLP endpoint is configured
)


def test_the_cli_and_the_app_import_no_heavy_library() -> None:
    code = (
        "import sys, modelyard.cli.main, modelyard.app; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
