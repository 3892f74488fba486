"""Shared by the Anthropic SDK end-to-end tests: a gateway over every upstream wire format."""

from __future__ import annotations

from typing import Any

import anthropic

from tests.conftest import UPSTREAM_KEY
from tests.fakes.harness import LoopbackServer, Recorded, Recorder

CONFIG = """
embedded_models: {embedded}
deployments:
  - name: gpt
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {openai}/v1
    api_key_env: OPENAI_FAKE_KEY
    prices: {{input: 1, output: 2}}
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: {anthropic}
    prices: {{input: 1, output: 2}}
  - name: gemini
    provider: gemini
    model: gemini-2.5-flash
    base_url: {gemini}
    prices: {{input: 1, output: 2}}
"""
REMOTE = ["gpt", "claude", "gemini"]
LOCAL = "gemma-3-270m"
PREFIX = {"gpt": "openai", "claude": "anthropic", "gemini": "gemini"}

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

Fakes = dict[str, tuple[LoopbackServer, Recorder]]


def config(fakes: Fakes, embedded: bool) -> str:
    return CONFIG.format(
        embedded="true" if embedded else "false",
        openai=fakes["gpt"][0].url,
        anthropic=fakes["claude"][0].url,
        gemini=fakes["gemini"][0].url,
    )


ENV = {
    "OPENAI_FAKE_KEY": UPSTREAM_KEY,
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_API_KEY": "gem-test",
}


def last_sent(fakes: Fakes, model: str) -> Recorded:
    return fakes[model][1].last


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")
