from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.errors import ConfigError, MissingCredentialError
from modelyard.settings import LOCAL_CHAT, credential, load_settings
from tests.routing.learned.echo_table import fit_router

GOOD = """
deployments:
  - name: bench
    provider: openai-compatible
    model: bench-model
    base_url: http://127.0.0.1:9100/v1
    api_key_env: BENCH_KEY
    prices: {input: 1, output: 2}
aliases:
  fast: bench
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_serve_the_embedded_models(tmp_path: Path) -> None:
    s = load_settings(None, env={})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 4000)
    assert s.server.data_dir == Path(".modelyard")
    assert {d.name for d in s.deployments} == {"gemma-3-270m", "all-minilm-l6-v2"}
    assert s.deployment(LOCAL_CHAT) is not None


def test_the_documented_example_loads(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, GOOD), env={})
    dep = s.deployment("fast")
    assert dep is not None and dep.model == "bench-model"


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    cfg = _write(tmp_path, GOOD + "server:\n  port: 5000\n")
    assert load_settings(cfg, env={}).server.port == 5000
    assert load_settings(cfg, env={"MODELYARD_PORT": "5001"}).server.port == 5001
    assert (
        load_settings(cfg, env={"MODELYARD_PORT": "5001"}, overrides={"port": 5002}).server.port
        == 5002
    )


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            GOOD.replace("openai-compatible", "opena1"),
            "deployments[bench].provider",
            "unknown provider 'opena1'",
        ),
        (
            GOOD.replace("    base_url: http://127.0.0.1:9100/v1\n", ""),
            "deployments[bench]",
            "needs base_url",
        ),
        (GOOD.replace("fast: bench", "fast: nowhere"), "<top level>", "unknown deployment"),
        (GOOD + "server:\n  port: 99999\n", "server.port", "less than or equal"),
        (GOOD + "servre: {}\n", "servre", "Extra inputs"),
        ("deployments: [\n", "", "not valid YAML"),
    ],
)
def test_invalid_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    cfg = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    message = str(info.value)
    assert str(cfg) in message and key in message and words in message


def test_missing_credential_names_the_variable(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, GOOD), env={})
    dep = s.deployment("bench")
    assert dep is not None
    with pytest.raises(MissingCredentialError, match="BENCH_KEY"):
        credential(dep, env={})
    assert credential(dep, env={"BENCH_KEY": "k"}) == "k"


def test_serve_refuses_a_bad_config_at_start(tmp_path: Path) -> None:
    cfg = _write(tmp_path, GOOD)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelyard",
            "serve",
            "--config",
            str(cfg),
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "BENCH_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_a_learned_router_path_is_read_beside_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    (folder / "routers").mkdir(parents=True)
    absolute = fit_router(folder / "routers")  # routers/router.npz
    config = folder / "modelyard.yaml"
    config.write_text(
        "embedded_models: false\n"
        "deployments: [{name: a, provider: openai, model: gpt-4o, api_key_env: K,"
        " prices: {input: 1, output: 1}}]\n"
        "routes:\n"
        "  - {name: r, deployments: [a], learned: {router: routers/router.npz,"
        " target: {quality: 1}, models: {small: a, big: a}}}\n"
        f"  - {{name: s, deployments: [a], learned: {{router: {absolute},"
        " target: {quality: 1}, models: {small: a, big: a}}}\n"
    )
    settings = load_settings(config, env={"K": "x"})
    routers = [r.learned.router for r in settings.routes if r.learned is not None]
    assert routers == [str(absolute), str(absolute)]
