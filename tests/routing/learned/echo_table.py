"""A synthetic outcome table that the fake OpenAI upstream answers the way it records.

The fake answers ``Hello from fake openai: PROMPT``, so with ``answer: number``
every model answers the prompt's last number, as recorded here. ``small`` is
right only on prompts without the words "tricky puzzle"; ``big`` is always
right and costs ten times as much. A router fitted on this table stops at
``small`` on simple prompts and calls ``big`` on tricky ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PRICES = {"small": {"input": 1, "output": 2}, "big": {"input": 10, "output": 20}}


def prompt(i: int, tricky: bool) -> str:
    words = "tricky puzzle riddle" if tricky else "simple sum"
    return f"{words} question {i}: what is {i} plus {i + 1}?"


def fit_router(folder: Path) -> Path:
    """Write the table and prices, fit with ``modelyard router fit``; the router file."""
    rows = []
    for i in range(60):
        tricky = i % 2 == 1
        answer = str(i + 1)
        rows.append(
            {
                "id": str(i),
                "task": "echo",
                "prompt": prompt(i, tricky),
                "reference": answer,
                "outcomes": {
                    "small": {
                        "correct": not tricky,
                        "answer": answer,
                        "input_tokens": 11,
                        "output_tokens": 7,
                    },
                    "big": {
                        "correct": True,
                        "answer": answer,
                        "input_tokens": 11,
                        "output_tokens": 7,
                    },
                },
            }
        )
    table, prices, router = folder / "table.jsonl", folder / "prices.json", folder / "router.npz"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prices.write_text(json.dumps(PRICES))
    fit = ["router", "fit", str(table), "--prices", str(prices), "-o", str(router)]
    subprocess.run(
        [sys.executable, "-m", "modelyard", *fit],
        check=True,
        capture_output=True,
    )
    return router
