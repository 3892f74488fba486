"""Shared fixtures: loopback fakes of the vendors, and the gateway as a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.harness import LoopbackServer, Recorder, free_port
from tests.fakes.openai_upstream import EXPECTED_KEY, create_fake_openai

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gateway_process(
    tmp: Path,
    config: str | None,
    env: dict[str, str] | None = None,
    *,
    ready_timeout: float = 30.0,
) -> Gateway:
    port = free_port()
    data_dir = tmp / "data"
    args = [
        sys.executable,
        "-m",
        "modelyard",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if config is not None:
        cfg = tmp / "modelyard.yaml"
        cfg.write_text(config)
        args += ["--config", str(cfg)]
    log_path = tmp / f"gateway-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=tmp)
    gw = Gateway(f"http://127.0.0.1:{port}", proc, log_path, data_dir)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gw.log()}")
        try:
            with urllib.request.urlopen(gw.url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return gw
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"gateway did not start:\n{gw.log()}")


def stop_gateway(gw: Gateway) -> None:
    gw.process.terminate()
    try:
        gw.process.wait(10)
    except subprocess.TimeoutExpired:
        gw.process.kill()
        gw.process.wait(5)


def _starter(tmp: Callable[[], Path]) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(config: str | None, env: dict[str, str] | None = None) -> Gateway:
        gw = start_gateway_process(tmp(), config, env)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        stop_gateway(gw)


@pytest.fixture
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gateway]]:
    """Start gateway processes that live for one test."""
    yield from _starter(lambda: tmp_path_factory.mktemp("gw"))


@pytest.fixture(scope="module")
def start_module_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Gateway]]:
    """Start gateway processes shared by the tests of one module."""
    yield from _starter(lambda: tmp_path_factory.mktemp("gw"))


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[tuple[LoopbackServer, Recorder]]:
    recorder = Recorder()
    with LoopbackServer(create_fake_openai(recorder)) as server:
        yield server, recorder


@pytest.fixture
def openai_upstream(
    fake_openai: tuple[LoopbackServer, Recorder],
) -> tuple[LoopbackServer, Recorder]:
    server, recorder = fake_openai
    recorder.requests.clear()
    recorder.script.clear()
    return server, recorder


UPSTREAM_KEY = EXPECTED_KEY
