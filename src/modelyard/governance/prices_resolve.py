"""List prices from genai-prices, looked up in a short-lived process of its own.

Run as ``python -m modelyard.governance.prices_resolve``: a JSON list of
queries on stdin, ``{"provider_id": str | null, "model": str, "api_url": str |
null}``, and a JSON list on stdout with, for each, null (no price known) or::

    {"provider": "openai", "model": "gpt-4o-mini", "until": "2027-01-01" | null,
     "prices": {"input": "0.15", "output": "0.6", "cached_input": "0.075", ...}}

Prices are decimal strings in USD per million tokens under the field names of
``modelyard.settings.Prices`` (null where the library has none). ``until`` is
the day a scheduled price change starts, after which the answer is stale.

The gateway never imports this module or genai_prices (its bundled data costs
25-30 MB of RSS); ``modelyard.governance.prices`` runs it and keeps the numbers.

Which of the library's prices are kept, for one figure per kind of token:

- tiered prices (a higher rate for every token once the prompt passes a
  threshold, as Gemini 2.5 Pro has): the base tier;
- time-of-day prices (DeepSeek's peak and off-peak hours): the highest rate of
  those in force today, so that a cost is never understated;
- service-tier variants (flex, priority): the standard price;
- prices by request, search, image, character or second: left out.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from genai_prices import data_snapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

#: our field (modelyard.settings.Prices) -> genai-prices price key
FIELDS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok",  # Anthropic's 5-minute cache; the 1-hour one costs more
    "audio_input": "input_audio_mtok",
    "audio_output": "output_audio_mtok",
}


def find_model(
    provider_id: str | None, model: str, api_url: str | None
) -> tuple[Provider, ModelInfo] | None:
    """(provider, model) of genai-prices, or None: by provider id; else by URL, then by name."""
    snapshot = data_snapshot.get_snapshot()
    attempts: list[tuple[str | None, str | None]] = [(provider_id, None)]
    if provider_id is None:
        attempts = [(None, api_url), (None, None)] if api_url else [(None, None)]
    for pid, url in attempts:
        try:
            return snapshot.find_provider_model(model, None, pid, url)
        except LookupError:
            continue
    return None


def prices_in_force(model: ModelInfo, now: datetime) -> tuple[list[ModelPrice], date | None]:
    """The prices genai-prices may apply today, and the day the next scheduled one starts."""
    if isinstance(model.prices, ModelPrice):
        return [model.prices], None
    found: list[ModelPrice] = []
    upcoming = [
        c.constraint.start_date
        for c in model.prices
        if isinstance(c.constraint, StartDateConstraint) and not c.constraint.active(now)
    ]
    for conditional in reversed(model.prices):  # genai-prices: the last active one wins
        constraint = conditional.constraint
        if isinstance(constraint, TimeOfDateConstraint):
            found.append(conditional.prices)
        elif constraint is None or constraint.active(now):
            found.append(conditional.prices)
            break
    else:
        found.append(model.prices[0].prices)
    return found, min(upcoming, default=None)


def highest(prices: list[ModelPrice], key: str) -> Decimal | None:
    rates: list[Decimal] = []
    for price in prices:
        value = getattr(price, key, None)
        if isinstance(value, TieredPrices):
            value = value.base
        if isinstance(value, Decimal):
            rates.append(value)
    return max(rates, default=None)


def resolve(query: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    match = find_model(query.get("provider_id"), str(query["model"]), query.get("api_url"))
    if match is None:
        return None
    provider, model = match
    prices, until = prices_in_force(model, now)
    rates = {field: highest(prices, key) for field, key in FIELDS.items()}
    return {
        "provider": provider.id,
        "model": model.id,
        "until": until.isoformat() if until else None,
        "prices": {field: None if r is None else str(r) for field, r in rates.items()},
    }


def main() -> None:
    queries = json.load(sys.stdin)
    now = datetime.now(tz=UTC)
    json.dump([resolve(q, now) for q in queries], sys.stdout)


if __name__ == "__main__":
    main()
