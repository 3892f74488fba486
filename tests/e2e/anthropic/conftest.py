"""Fixtures of the Anthropic SDK tests: the three fake vendors and one gateway per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anthropic
import pytest

from tests.conftest import Gateway
from tests.e2e.anthropic.support import ENV, Fakes, config
from tests.fakes.anthropic_upstream import create_fake_anthropic
from tests.fakes.gemini_upstream import create_fake_gemini
from tests.fakes.harness import LoopbackServer, Recorder


@pytest.fixture(scope="module")
def fakes(fake_openai: tuple[LoopbackServer, Recorder]) -> Iterator[Fakes]:
    a_rec, g_rec = Recorder(), Recorder()
    with (
        LoopbackServer(create_fake_anthropic(a_rec)) as a,
        LoopbackServer(create_fake_gemini(g_rec)) as g,
    ):
        yield {"gpt": fake_openai, "claude": (a, a_rec), "gemini": (g, g_rec)}


@pytest.fixture(scope="module")
def gateway(start_module_gateway: Callable[..., Gateway], fakes: Fakes) -> Gateway:
    return start_module_gateway(config(fakes, embedded=False), ENV)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0) as c:
        yield c
