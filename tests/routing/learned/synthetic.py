"""A synthetic outcome table whose right routing is known.

``cheap`` costs a hundredth of ``strong`` and is right exactly on prompts that
contain the marker word; ``strong`` is always right. Wrong answers look like
right ones (same format, same length), so only the prompt tells them apart.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

MARKER = "zebra"
WORDS = [f"w{i}" for i in range(40)]
PRICES = {
    "_about": "synthetic",
    "cheap": {"input": 0.1, "output": 0.1},
    "strong": {"input": 10.0, "output": 10.0},
}


def rows(count: int, seed: int, prefix: str = "p") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        marked = i % 2 == 0
        words = rng.sample(WORDS, 12) + ([MARKER] if marked else [])
        rng.shuffle(words)
        right = str(rng.randint(100, 999))
        wrong = str(int(right) + rng.randint(1, 50))
        out.append(
            {
                "id": f"{prefix}{i}",
                "task": "synthetic",
                "prompt": " ".join(words),
                "reference": right,
                "outcomes": {
                    "cheap": {
                        "correct": marked,
                        "answer": right if marked else wrong,
                        "input_tokens": 20,
                        "output_tokens": rng.randint(40, 60),
                    },
                    "strong": {
                        "correct": True,
                        "answer": right,
                        "input_tokens": 20,
                        "output_tokens": rng.randint(40, 60),
                    },
                },
            }
        )
    return out


def write(path: Path, table: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in table))
    return path


def write_prices(path: Path) -> Path:
    path.write_text(json.dumps(PRICES))
    return path
