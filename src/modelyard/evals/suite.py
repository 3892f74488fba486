"""The suite file: one JSON object a line, read into ``SuiteItem`` values (format in the
package docstring). Reading only: scoring is ``scorers``, sending is ``runner``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

SCORER_TYPES = ("exact", "numeric", "regex", "json_schema", "contains", "judge")


class SuiteError(ValueError):
    """A suite file that cannot be used, with the line that is wrong."""


@dataclass(frozen=True)
class SuiteItem:
    id: str
    messages: list[dict[str, Any]]
    reference: Any = None
    scorer: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The user text of the item, for tables that keep one prompt string."""
        parts = []
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        return "\n".join(parts)


def parse_scorer(spec: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A scorer spec from a mapping, a type name, or JSON text; checks the type."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        text = spec.strip()
        spec = orjson.loads(text) if text.startswith("{") else {"type": text}
    if not isinstance(spec, Mapping) or spec.get("type") not in SCORER_TYPES:
        raise SuiteError(f"a scorer needs a type among {', '.join(SCORER_TYPES)}: {spec!r}")
    return dict(spec)


def _item(data: Any, where: str, default: dict[str, Any]) -> SuiteItem:
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: an item is a JSON object")
    if not isinstance(data.get("id"), str | int):
        raise SuiteError(f'{where}: an item needs an "id" (string)')
    if "messages" in data:
        messages = data["messages"]
        if not isinstance(messages, list):
            raise SuiteError(f'{where}: "messages" is a list')
    elif isinstance(data.get("prompt"), str):
        messages = [{"role": "user", "content": data["prompt"]}]
    else:
        raise SuiteError(f'{where}: an item needs "prompt" (string) or "messages"')
    request = data.get("request") or {}
    if not isinstance(request, dict):
        raise SuiteError(f'{where}: "request" is a JSON object')
    try:
        scorer = parse_scorer(data.get("scorer")) or default
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if not scorer:
        raise SuiteError(f"{where}: no scorer, and no default scorer was given")
    return SuiteItem(str(data["id"]), messages, data.get("reference"), scorer, request)


def load_suite(path: Path, default_scorer: dict[str, Any] | None = None) -> list[SuiteItem]:
    """The items of a suite file; ids must be unique."""
    items: list[SuiteItem] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SuiteError(f"{where}: not JSON: {exc}") from None
        item = _item(data, where, default_scorer or {})
        if item.id in seen:
            raise SuiteError(f"{where}: the id {item.id!r} is used twice")
        seen.add(item.id)
        items.append(item)
    return items
