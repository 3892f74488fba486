"""The price book: what each deployment's tokens cost, and the cost of one call.

Prices come from the config (``prices:`` on a deployment, USD per million
tokens), else from the list prices of genai-prices, else start-up fails with
a ``ConfigError`` naming each unpriced deployment: a cost is never a silent
zero. Embedded (``provider: local``) models are free unless priced.

The gateway does not import genai_prices (25-30 MB of RSS): ``resolve_prices``
runs ``modelyard.governance.prices_resolve`` in a subprocess and keeps the
rates in ``<data_dir>/prices.json``, keyed by the library's version and each
(provider, model, base_url) asked, so a later start with the same deployments
spawns nothing. That module says which of the library's prices are kept
(tiered prices: the base tier; time-of-day prices: the highest in force).

Costs are integer micro-dollars, computed exactly: 1 token at 1 USD per
million tokens is 1 micro-dollar. Rates are held as integer femto-dollars per
token (prices with up to nine decimals are exact); a cost is rounded half up
once, at the end. Token counts follow the convention of ``Usage``: each token
is priced once, at the rate of its kind.

What lives elsewhere: budgets and reservations (``governance.budgets``), the
ledger that records each cost.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess  # only _run_resolver: our own module, a fixed argv  # nosec B404
import sys
import time
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from modelyard.errors import ConfigError
from modelyard.settings import Deployment, Prices, Settings
from modelyard.types import Usage

log = logging.getLogger("modelyard.prices")

#: our provider name -> genai-prices provider id; a host not here is matched by URL, then model
PROVIDER_IDS = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "xai": "x-ai",
    "groq": "groq",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
}

CACHE_FILE = "prices.json"
RESOLVE_TIMEOUT = 120.0  # seconds; a cold import of the library takes well under one

_SCALE = 1_000_000_000  # femto-dollars per token at 1 USD per million tokens, per micro-dollar
_HALF = _SCALE // 2


# ------------------------------------------------------------------ costs


class Rates(NamedTuple):
    """A deployment's prices as integer femto-dollars per token, each kind resolved.

    Build it once per deployment where costs are hot; ``cost_micros`` builds
    one per call (about a microsecond).
    """

    input: int
    output: int
    cached_input: int
    cache_write: int
    audio_input: int
    audio_output: int

    @classmethod
    def of(cls, prices: Prices) -> Rates:
        # exact for any price with up to nine decimals below about a million USD per Mtok
        i, o = round(prices.input * _SCALE), round(prices.output * _SCALE)
        c, w = prices.cached_input, prices.cache_write
        ai, ao = prices.audio_input, prices.audio_output
        return cls(
            i,
            o,
            i if c is None else round(c * _SCALE),
            i if w is None else round(w * _SCALE),
            i if ai is None else round(ai * _SCALE),
            o if ao is None else round(ao * _SCALE),
        )

    def cost_femto(self, u: Usage) -> int:
        """Each token once: the parts of a total, clamped to what is left of it, then the rest."""
        counts: tuple[int, ...] = (
            u.input_tokens,
            u.cached_input_tokens,
            u.cache_write_tokens,
            u.audio_input_tokens,
            u.output_tokens,
            u.audio_output_tokens,
        )
        if min(counts) < 0:  # an upstream's nonsense is not a credit
            counts = tuple(max(n, 0) for n in counts)
        rest, cached, written, audio_in, out, audio_out = counts
        cached = min(cached, rest)
        rest -= cached
        written = min(written, rest)
        rest -= written
        audio_in = min(audio_in, rest)
        rest -= audio_in
        audio_out = min(audio_out, out)  # reasoning tokens are output, priced as output
        return (
            rest * self.input
            + cached * self.cached_input
            + written * self.cache_write
            + audio_in * self.audio_input
            + (out - audio_out) * self.output
            + audio_out * self.audio_output
        )

    def max_cost_femto(self, prompt_tokens: int, output_tokens: int) -> int:
        """All input at the dearest input-side rate, all output at the dearest output-side one."""
        high_in = max(self.input, self.cached_input, self.cache_write, self.audio_input)
        high_out = max(self.output, self.audio_output)
        return max(prompt_tokens, 0) * high_in + max(output_tokens, 0) * high_out


def cost_micros(prices: Prices, usage: Usage) -> int:
    """What a call cost, in micro-dollars, rounded half up."""
    return (Rates.of(prices).cost_femto(usage) + _HALF) // _SCALE


def max_cost_micros(prices: Prices, prompt_tokens: int, output_tokens: int) -> int:
    """The most a call of this size can cost, in micro-dollars, rounded up (for reservations)."""
    return -(-Rates.of(prices).max_cost_femto(prompt_tokens, output_tokens) // _SCALE)


# ------------------------------------------------------------- resolution


def resolve_prices(settings: Settings) -> None:
    """Fill ``prices`` of every deployment that has none; ConfigError if any stays unpriced."""
    asked: dict[str, list[Deployment]] = {}
    for dep in settings.deployments:
        if dep.prices is not None:
            continue
        if dep.provider == "local":
            dep.prices = Prices(input=0, output=0)
        else:
            asked.setdefault(_key(dep), []).append(dep)
    if not asked:
        return
    found = _lookup(settings.server.data_dir / CACHE_FILE, asked)
    for key, deps in asked.items():
        for dep in deps:
            dep.prices = _prices(found.get(key), dep)
    unpriced = [d for d in settings.deployments if d.prices is None]
    if unpriced:
        names = ", ".join(f"{d.name!r} (provider {d.provider}, model {d.model})" for d in unpriced)
        which = "this deployment" if len(unpriced) == 1 else "each of these deployments"
        raise ConfigError(
            f"no price is known for {names}: genai-prices {_library_version()} has no token "
            "prices for it. Add prices: {input: ..., output: ...} (USD per million tokens; "
            f"0 for a free model) to {which}",
            key="deployments",
        )


def _key(dep: Deployment) -> str:
    url = dep.base_url
    if url is not None:  # the cache file is no place for a password or a key in a query
        parts = urlsplit(url)
        url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    return json.dumps([dep.provider, dep.model, url])


def _query(key: str) -> dict[str, str | None]:
    provider, model, base_url = json.loads(key)
    pid = PROVIDER_IDS.get(provider)
    return {"provider_id": pid, "model": model, "api_url": None if pid else base_url}


def _prices(found: dict[str, Any] | None, dep: Deployment) -> Prices | None:
    rates = (found or {}).get("prices") or {}
    if rates.get("input") is None:
        return None
    if rates.get("output") is None:
        if dep.kind != "embeddings":
            return None
        rates = {**rates, "output": "0"}
    return Prices(**{k: float(v) for k, v in rates.items() if v is not None})


def _library_version() -> str:
    try:
        return version("genai-prices")
    except PackageNotFoundError:
        raise ConfigError(
            "the package genai-prices is not installed; it prices deployments without prices"
        ) from None


def _lookup(path: Path, asked: dict[str, list[Deployment]]) -> dict[str, Any]:
    """The library's answer for each key: from the cache file, else from a subprocess."""
    current = _library_version()
    cached: dict[str, Any] = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("genai_prices") == current:
            cached = dict(data.get("prices") or {})
    except (OSError, ValueError, TypeError):
        pass  # no cache yet, or a broken one: it is rebuilt
    today = date.today().isoformat()
    missing = [k for k in asked if k not in cached or not _fresh(cached[k], today)]
    if not missing:
        return cached
    started = time.perf_counter()
    answers = _run_resolver([_query(k) for k in missing])
    log.info(
        "looked up %d price(s) in genai-prices %s in %.2f s",
        len(missing),
        current,
        time.perf_counter() - started,
    )
    cached = {**cached, **dict(zip(missing, answers, strict=True))}
    _write(path, {"genai_prices": current, "prices": cached})
    return cached


def _fresh(entry: Any, today: str) -> bool:
    """An answer as ``prices_resolve`` gives it (None: no price), and no price change since."""
    if entry is None:
        return True
    if not isinstance(entry, dict) or not isinstance(entry.get("prices"), dict):
        return False
    until = entry.get("until")
    return until is None or str(until) > today


def _run_resolver(queries: list[dict[str, str | None]]) -> list[dict[str, Any] | None]:
    try:
        # this interpreter and our own module: a fixed argv, no shell, no request data in it
        proc = subprocess.run(  # nosec B603
            [sys.executable, "-m", "modelyard.governance.prices_resolve"],
            input=json.dumps(queries).encode(),
            capture_output=True,
            timeout=RESOLVE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not look up prices in genai-prices: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"could not look up prices in genai-prices: {detail[0]}")
    answers = json.loads(proc.stdout)
    if not isinstance(answers, list) or len(answers) != len(queries):
        raise ConfigError("could not look up prices in genai-prices: a malformed answer")
    return answers


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, so that gateways starting together never read half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only data dir only costs the next start a lookup
        log.warning("cannot write the price cache %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
