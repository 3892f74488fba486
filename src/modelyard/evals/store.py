"""The run directory: what a run was asked to do, and its results as they arrive.

``run.json`` holds the run's settings and id; ``items.jsonl`` the suite's items (id,
prompt, reference) for the reports; ``results.jsonl`` one ``Result`` a line, appended and
flushed as each call ends, so a crash loses at most the calls in flight and a torn last
line is skipped; ``ledger.json`` the costs the gateway's ledger reported per call tag.
A later result for the same (item, model) replaces an earlier one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import orjson

from modelyard.evals.suite import SuiteItem


@dataclass
class Result:
    item: str
    model: str
    answer: str | None
    extracted: str | None
    score: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cost_source: str | None  # "ledger", "prices" or None when unknown
    latency_ms: float
    error: str | None
    final: bool  # False: a re-run sends the pair again (a network error, a 5xx, a 429)
    request_id: str | None = None
    deployment: str | None = None
    call_tag: str | None = None
    detail: str | None = None
    ts: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.results_path = path / "results.jsonl"
        self.meta_path = path / "run.json"
        self.items_path = path / "items.jsonl"
        self.ledger_path = path / "ledger.json"
        self._out: IO[bytes] | None = None

    def exists(self) -> bool:
        return self.results_path.exists() or self.meta_path.exists()

    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            return {}
        data = orjson.loads(self.meta_path.read_bytes())
        return data if isinstance(data, dict) else {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        _write_atomic(self.meta_path, orjson.dumps(meta, option=orjson.OPT_INDENT_2))

    def write_items(self, items: list[SuiteItem]) -> None:
        lines = [
            orjson.dumps({"id": i.id, "prompt": i.prompt_text, "reference": i.reference})
            for i in items
        ]
        _write_atomic(self.items_path, b"".join(line + b"\n" for line in lines))

    def read_items(self) -> list[dict[str, Any]]:
        if not self.items_path.exists():
            return []
        return [orjson.loads(x) for x in self.items_path.read_bytes().splitlines() if x.strip()]

    def results(self) -> dict[tuple[str, str], Result]:
        """The latest result per (item, model), with ledger costs applied."""
        out: dict[tuple[str, str], Result] = {}
        if self.results_path.exists():
            for line in self.results_path.read_bytes().splitlines():
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line torn by a crash
                if isinstance(data, dict) and "item" in data and "model" in data:
                    result = Result.from_dict(data)
                    out[(result.item, result.model)] = result
        ledger = self.ledger()
        for result in out.values():
            if result.call_tag in ledger:
                result.cost_usd, result.cost_source = ledger[result.call_tag], "ledger"
        return out

    def ledger(self) -> dict[str, float]:
        if not self.ledger_path.exists():
            return {}
        data = orjson.loads(self.ledger_path.read_bytes())
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def add_ledger(self, costs: dict[str, float]) -> None:
        _write_atomic(self.ledger_path, orjson.dumps({**self.ledger(), **costs}))

    def append(self, result: Result) -> None:
        if self._out is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._out = self.results_path.open("ab")
            if self._out.tell() > 0 and not _ends_with_newline(self.results_path):
                self._out.write(b"\n")  # end a line a crash tore, so this one stands alone
        self._out.write(orjson.dumps(asdict(result)) + b"\n")
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
