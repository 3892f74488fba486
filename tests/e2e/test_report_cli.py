"""``modelyard report dependency`` against a running gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import openai

from tests.conftest import UPSTREAM_KEY, Gateway
from tests.fakes.harness import LoopbackServer, Recorder

CONFIG = """
embedded_models: false
deployments:
  - {{name: a, provider: openai-compatible, model: m, base_url: "{url}/v1", api_key_env: K,
      prices: {{input: 1, output: 2}}}}
  - {{name: b, provider: vllm, model: m, base_url: "{url}/v1", api_key_env: K,
      prices: {{input: 1, output: 2}}}}
routes:
  - {{name: solo, deployments: [a]}}
  - {{name: pair, deployments: [a, b]}}
"""


def test_dependency_report_names_single_vendor_routes(
    start_gateway: Callable[..., Gateway], openai_upstream: tuple[LoopbackServer, Recorder]
) -> None:
    env = {"K": UPSTREAM_KEY, "MODELYARD_ADMIN_KEY": "adm"}
    gw = start_gateway(CONFIG.format(url=openai_upstream[0].url), env)
    with openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client:
        for model in ("solo", "pair", "pair"):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    time.sleep(1.0)  # the request log is written in batches
    out = subprocess.run(
        [sys.executable, "-m", "modelyard", "report", "dependency", "--url", gw.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODELYARD_ADMIN_KEY": "adm", "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr
    assert "solo: losing openai-compatible leaves no healthy deployment" in out.stdout
    assert "pair: losing" not in out.stdout
    assert "openai-compatible" in out.stdout and "100%" in out.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "modelyard", "report", "dependency", "--url", gw.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODELYARD_ADMIN_KEY": "wrong", "COLUMNS": "200"},
    )
    assert wrong.returncode != 0 and "401" in wrong.stderr
