"""The price book: costs of each kind of token, exact rounding, reservations, and lookups.

The lookups are real: genai-prices (the pinned version) answers in a
subprocess, as it does for the gateway; the expected prices are that
version's, and one cost is checked against the library's own calculator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ConfigError
from modelyard.governance.prices import (
    CACHE_FILE,
    Rates,
    cost_micros,
    max_cost_micros,
    resolve_prices,
)
from modelyard.settings import Prices, Settings
from modelyard.types import Usage
from modelyard.wire.openai import usage_from_dict, usage_to_dict

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ costs


def test_input_and_output_at_their_rates() -> None:
    prices = Prices(input=3, output=15)
    assert cost_micros(prices, Usage(input_tokens=1000, output_tokens=100)) == 3000 + 1500


def test_cached_input_at_its_rate_else_at_input() -> None:
    u = Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=0)
    assert cost_micros(Prices(input=3, output=15, cached_input=0.3), u) == 600 * 3 + 400 * 0.3
    assert cost_micros(Prices(input=3, output=15), u) == 3000


def test_cache_writes_at_their_rate_else_at_input() -> None:
    u = Usage(input_tokens=1000, cached_input_tokens=100, cache_write_tokens=500)
    priced = Prices(input=3, output=15, cached_input=0.3, cache_write=3.75)
    assert cost_micros(priced, u) == 400 * 3 + 100 * 0.3 + 500 * 3.75
    assert cost_micros(Prices(input=3, output=15, cached_input=0.3), u) == 900 * 3 + 30


def test_audio_at_the_audio_rates_else_at_input_and_output() -> None:
    u = Usage(input_tokens=1000, audio_input_tokens=200, output_tokens=300, audio_output_tokens=100)
    priced = Prices(input=2.5, output=10, audio_input=40, audio_output=80)
    assert cost_micros(priced, u) == 800 * 2.5 + 200 * 40 + 200 * 10 + 100 * 80
    assert cost_micros(Prices(input=2.5, output=10), u) == 1000 * 2.5 + 300 * 10


def test_reasoning_tokens_are_output_and_priced_once() -> None:
    u = Usage(input_tokens=0, output_tokens=500, reasoning_tokens=400)
    assert cost_micros(Prices(input=1, output=10), u) == 5000


def test_parts_beyond_their_total_are_not_priced_twice() -> None:
    u = Usage(input_tokens=100, cached_input_tokens=80, cache_write_tokens=80, audio_input_tokens=5)
    # 80 cached, then the 20 left are cache writes; nothing is left for audio or plain input
    assert cost_micros(Prices(input=1, output=1, cached_input=0.5, cache_write=2), u) == 40 + 40


def test_negative_counts_are_no_credit() -> None:
    u = Usage(input_tokens=-1000, output_tokens=10, cached_input_tokens=-5)
    assert cost_micros(Prices(input=1, output=1), u) == 10


def test_rounded_half_up_once_at_the_end() -> None:
    half = Prices(input=0.5, output=0.25)
    assert cost_micros(half, Usage(input_tokens=1)) == 1  # 0.5 -> 1
    assert cost_micros(half, Usage(output_tokens=1)) == 0  # 0.25 -> 0
    assert cost_micros(half, Usage(input_tokens=1, output_tokens=1)) == 1  # 0.75, not 1 + 0
    assert cost_micros(half, Usage(input_tokens=3)) == 2  # 1.5 -> 2


def test_exact_where_floats_are_not() -> None:
    # 0.1 + 0.2 != 0.3 in floats; ten tokens of each are exactly three micro-dollars
    assert cost_micros(Prices(input=0.1, output=0.2), Usage(10, 10)) == 3
    many = Usage(input_tokens=10**12, output_tokens=3 * 10**11)
    assert cost_micros(Prices(input=0.15, output=0.6), many) == 150_000_000_000 + 180_000_000_000


def test_nine_decimals_are_exact() -> None:
    rates = Rates.of(Prices(input=0.123456789, output=1e-9))
    assert rates.input == 123_456_789 and rates.output == 1


def test_max_cost_is_all_tokens_at_the_dearest_rate_rounded_up() -> None:
    prices = Prices(input=3, output=15, cached_input=0.3, cache_write=3.75, audio_output=20)
    assert max_cost_micros(prices, 1000, 100) == 1000 * 3.75 + 100 * 20
    assert max_cost_micros(Prices(input=0.1, output=0.1), 1, 0) == 1  # 0.1 up to 1
    assert max_cost_micros(Prices(input=1, output=1), 0, 0) == 0


_rate = st.decimals(min_value=0, max_value=200, places=4, allow_nan=False, allow_infinity=False)
_optional_rate = st.none() | _rate


@st.composite
def _priced_call(draw: st.DrawFn) -> tuple[Prices, int, int, Usage]:
    prices = Prices(
        input=float(draw(_rate)),
        output=float(draw(_rate)),
        cached_input=_float(draw(_optional_rate)),
        cache_write=_float(draw(_optional_rate)),
        audio_input=_float(draw(_optional_rate)),
        audio_output=_float(draw(_optional_rate)),
    )
    prompt = draw(st.integers(0, 2_000_000))
    limit = draw(st.integers(0, 200_000))
    part = st.integers(0, prompt)
    usage = Usage(
        input_tokens=draw(part),
        output_tokens=draw(st.integers(0, limit)),
        cached_input_tokens=draw(part),
        cache_write_tokens=draw(part),
        audio_input_tokens=draw(part),
        reasoning_tokens=draw(st.integers(0, limit)),
        audio_output_tokens=draw(st.integers(0, limit)),
    )
    return prices, prompt, limit, usage


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@given(_priced_call())
def test_max_cost_bounds_every_call_within_the_limits(
    call: tuple[Prices, int, int, Usage],
) -> None:
    prices, prompt, limit, usage = call
    assert 0 <= cost_micros(prices, usage) <= max_cost_micros(prices, prompt, limit)


@given(_priced_call())
def test_cost_is_the_exact_decimal_sum_rounded_half_up(
    call: tuple[Prices, int, int, Usage],
) -> None:
    prices, _, _, u = call
    d = {k: Decimal(repr(v)) for k, v in prices.model_dump().items() if v is not None}
    cached = min(u.cached_input_tokens, u.input_tokens)
    written = min(u.cache_write_tokens, u.input_tokens - cached)
    audio = min(u.audio_input_tokens, u.input_tokens - cached - written)
    audio_out = min(u.audio_output_tokens, u.output_tokens)
    exact = (
        (u.input_tokens - cached - written - audio) * d["input"]
        + cached * d.get("cached_input", d["input"])
        + written * d.get("cache_write", d["input"])
        + audio * d.get("audio_input", d["input"])
        + (u.output_tokens - audio_out) * d["output"]
        + audio_out * d.get("audio_output", d["output"])
    )
    assert cost_micros(prices, u) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_openai_audio_and_reasoning_usage_reaches_the_price_book() -> None:
    wire = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 300},
        "completion_tokens_details": {"reasoning_tokens": 50, "audio_tokens": 200},
    }
    u = usage_from_dict(wire)
    assert (u.audio_input_tokens, u.audio_output_tokens, u.reasoning_tokens) == (300, 200, 50)
    assert usage_to_dict(u) == wire
    prices = Prices(input=2.5, output=10, cached_input=1.25, audio_input=40, audio_output=80)
    assert cost_micros(prices, u) == 600 * 2.5 + 100 * 1.25 + 300 * 40 + 300 * 10 + 200 * 80


# ------------------------------------------------------------- resolution


def _settings(tmp_path: Path, *deployments: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path)},
            "embedded_models": False,
            "deployments": list(deployments),
        }
    )


GPT = {"name": "mini", "provider": "openai", "model": "gpt-4o-mini"}
CLAUDE = {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-20250514"}


def test_list_prices_from_genai_prices(tmp_path: Path) -> None:
    settings = _settings(tmp_path, GPT, CLAUDE)
    resolve_prices(settings)
    mini, sonnet = (d.prices for d in settings.deployments)
    assert mini == Prices(input=0.15, output=0.6, cached_input=0.075)
    assert sonnet == Prices(input=3, output=15, cached_input=0.3, cache_write=3.75)


def test_a_cost_agrees_with_genai_prices_own_calculator(tmp_path: Path) -> None:
    import genai_prices  # the test process may pay for it; the gateway never does

    settings = _settings(tmp_path, CLAUDE)
    resolve_prices(settings)
    prices = settings.deployments[0].prices
    assert prices is not None
    ours = Usage(
        input_tokens=10_000, cached_input_tokens=2_000, cache_write_tokens=3_000, output_tokens=777
    )
    theirs = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=10_000,
            cache_read_tokens=2_000,
            cache_write_tokens=3_000,
            output_tokens=777,
        ),
        "claude-sonnet-4-20250514",
        provider_id="anthropic",
    )
    expected = (theirs.total_price * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert cost_micros(prices, ours) == int(expected) == 5000 * 3 + 600 + 11_250 + 11_655


def test_the_lookup_is_cached_by_library_version_and_deployment(tmp_path: Path) -> None:
    resolve_prices(_settings(tmp_path, GPT, CLAUDE))
    cache = tmp_path / CACHE_FILE
    data = json.loads(cache.read_text())
    assert data["genai_prices"] == version("genai-prices")
    assert set(data["prices"]) == {
        json.dumps(["openai", "gpt-4o-mini", None]),
        json.dumps(["anthropic", "claude-sonnet-4-20250514", None]),
    }
    # a doctored cache proves that the next start reads it and asks the library nothing
    key = json.dumps(["openai", "gpt-4o-mini", None])
    data["prices"][key]["prices"]["input"] = "123"
    cache.write_text(json.dumps(data))
    mtime = cache.stat().st_mtime_ns
    again = _settings(tmp_path, GPT, CLAUDE)
    resolve_prices(again)
    assert again.deployments[0].prices == Prices(input=123, output=0.6, cached_input=0.075)
    assert cache.stat().st_mtime_ns == mtime


def test_another_library_version_or_a_passed_price_change_asks_again(tmp_path: Path) -> None:
    resolve_prices(_settings(tmp_path, GPT))
    cache = tmp_path / CACHE_FILE
    data = json.loads(cache.read_text())
    entry = next(iter(data["prices"].values()))
    entry["prices"]["input"] = "123"
    cache.write_text(json.dumps({**data, "genai_prices": "0.0.1"}))
    fresh = _settings(tmp_path, GPT)
    resolve_prices(fresh)
    assert fresh.deployments[0].prices == Prices(input=0.15, output=0.6, cached_input=0.075)

    entry["until"] = "2000-01-01"  # a scheduled price change the cached answer predates
    cache.write_text(json.dumps(data))
    stale = _settings(tmp_path, GPT)
    resolve_prices(stale)
    assert stale.deployments[0].prices == Prices(input=0.15, output=0.6, cached_input=0.075)


def test_the_cache_keeps_no_credentials_of_a_base_url(tmp_path: Path) -> None:
    url = "https://api.groq.com/openai/v1?key=sekrit#x"  # user:password@ is refused earlier
    dep = {"name": "g", "provider": "openai-compatible", "model": "llama-3.1-8b-instant"}
    settings = _settings(tmp_path, {**dep, "base_url": url})
    resolve_prices(settings)
    assert settings.deployments[0].prices == Prices(input=0.05, output=0.08)
    text = (tmp_path / CACHE_FILE).read_text()
    assert "sekrit" not in text
    public = ["openai-compatible", "llama-3.1-8b-instant", "https://api.groq.com/openai/v1"]
    assert list(json.loads(text)["prices"]) == [json.dumps(public)]


@pytest.mark.parametrize("junk", ["{not json", "[]", '{"genai_prices": "%s", "prices": 5}'])
def test_a_broken_cache_is_rebuilt(tmp_path: Path, junk: str) -> None:
    (tmp_path / CACHE_FILE).write_text(junk.replace("%s", version("genai-prices")))
    settings = _settings(tmp_path, GPT)
    resolve_prices(settings)
    assert settings.deployments[0].prices == Prices(input=0.15, output=0.6, cached_input=0.075)
    assert json.loads((tmp_path / CACHE_FILE).read_text())["prices"]


def test_an_unknown_model_is_a_config_error_naming_every_one(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        GPT,
        {"name": "mystery", "provider": "openai", "model": "gpt-made-up"},
        {"name": "in-house", "provider": "vllm", "model": "our-llama"},
    )
    with pytest.raises(ConfigError) as err:
        resolve_prices(settings)
    message = str(err.value)
    assert "'mystery' (provider openai, model gpt-made-up)" in message
    assert "'in-house' (provider vllm, model our-llama)" in message
    assert "'mini'" not in message
    assert "prices: {input: ..., output: ...} (USD per million tokens" in message


def test_config_prices_win_and_local_models_are_free(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        {**GPT, "prices": {"input": 1, "output": 2}},
        {"name": "tiny", "provider": "local", "model": "gemma-3-270m"},
    )
    resolve_prices(settings)
    assert [d.prices for d in settings.deployments] == [
        Prices(input=1, output=2),
        Prices(input=0, output=0),
    ]
    assert not (tmp_path / CACHE_FILE).exists()  # nothing was asked


def test_provider_names_hosts_and_kinds(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        {"name": "gemini", "provider": "gemini", "model": "gemini-2.5-flash"},
        {"name": "grok", "provider": "xai", "model": "grok-3"},
        {
            "name": "via-url",
            "provider": "openai-compatible",
            "base_url": "https://api.groq.com/openai/v1",
            "model": "llama-3.1-8b-instant",
        },
        {"name": "by-name", "provider": "vllm", "model": "gpt-4o"},
        {
            "name": "embed",
            "provider": "openai",
            "model": "text-embedding-3-small",
            "kind": "embeddings",
        },
        {"name": "deepseek", "provider": "deepseek", "model": "deepseek-chat"},
        {"name": "pro", "provider": "gemini", "model": "gemini-2.5-pro"},
    )
    resolve_prices(settings)
    got = {d.name: d.prices for d in settings.deployments}
    assert got["gemini"] == Prices(input=0.3, output=2.5, cached_input=0.03, audio_input=1)
    assert got["grok"] == Prices(input=3, output=15, cached_input=0.75)
    assert got["via-url"] == Prices(input=0.05, output=0.08)  # Groq's, found by its URL
    assert got["by-name"] == Prices(input=2.5, output=10, cached_input=1.25)
    assert got["embed"] == Prices(input=0.02, output=0)
    # time of day: the peak price, never the off-peak discount
    assert got["deepseek"] == Prices(input=0.27, output=1.1, cached_input=0.07)
    # tiers by prompt size: the base tier
    assert got["pro"] == Prices(input=1.25, output=10, cached_input=0.125)


def test_the_gateway_process_never_imports_genai_prices(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from modelyard.app import create_app\n"
        "from modelyard.settings import Settings\n"
        "s = Settings.model_validate({'server': {'data_dir': sys.argv[1]},"
        " 'embedded_models': False,"
        " 'deployments': [{'name': 'm', 'provider': 'openai', 'model': 'gpt-4o-mini'}]})\n"
        "create_app(s)\n"
        "assert s.deployments[0].prices.input == 0.15\n"
        "assert 'genai_prices' not in sys.modules, 'the gateway imported genai_prices'\n"
    )
    env = {**os.environ, "MODELYARD_ADMIN_KEY": "sk-admin-test-0123", "OPENAI_API_KEY": "sk-x"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr


def test_serve_refuses_an_unpriced_model(tmp_path: Path) -> None:
    config = tmp_path / "modelyard.yaml"
    config.write_text(
        "embedded_models: false\n"
        "deployments:\n"
        "  - {name: homebrew, provider: openai, model: homebrew-1, base_url: http://127.0.0.1:9/v1}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # its data dir is ./.modelyard
    )
    assert proc.returncode == 2
    assert "modelyard: configuration error: deployments: no price" in proc.stderr
    assert "'homebrew' (provider openai, model homebrew-1)" in proc.stderr
