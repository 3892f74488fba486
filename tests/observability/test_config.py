"""The ``observability`` settings: environment over file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import ConfigError
from modelyard.settings import Settings, load_settings


def _load(tmp_path: Path, yaml: str, env: dict[str, str]) -> Settings:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("embedded_models: false\n" + yaml)
    return load_settings(cfg, env=env)


def test_defaults_trace_nothing_and_log_text(tmp_path: Path) -> None:
    conf = load_settings(env={}).observability
    assert conf.otlp_endpoint is None and conf.traces_url() is None
    assert conf.log_format == "text" and conf.metrics_max_label_values == 100


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    yaml = "observability: {otlp_endpoint: 'http://file:4318', log_format: text}\n"
    env = {"MODELYARD_OTLP_ENDPOINT": "https://env:4318/", "MODELYARD_LOG_FORMAT": "json"}
    settings = _load(tmp_path, yaml, env)
    conf = settings.observability
    assert conf.traces_url() == "https://env:4318/v1/traces" and conf.log_format == "json"
    settings = _load(tmp_path, "observability: {otlp_endpoint: 'http://c/v1/traces'}\n", {})
    assert settings.observability.traces_url() == "http://c/v1/traces"


@pytest.mark.parametrize(
    ("yaml", "env", "key", "says"),
    [
        ("", {"MODELYARD_LOG_FORMAT": "xml"}, "observability.log_format", "'text' or 'json'"),
        ("", {"MODELYARD_OTLP_ENDPOINT": "collector:4318"}, "observability.otlp_endpoint", "http"),
        (
            "observability: {otlp_endpoint: 'http://u:hunter2@c:4318'}\n",
            {},
            "observability.otlp_endpoint",
            "must not hold a user or password",
        ),
        ("observability: {metrics_max_label_values: 0}\n", {}, "observability.metrics_max", ""),
        ("observability: {tracing: true}\n", {}, "observability.tracing", "Extra inputs"),
    ],
)
def test_mistakes_name_the_key(
    tmp_path: Path, yaml: str, env: dict[str, str], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, yaml, env)
    assert info.value.key is not None and info.value.key.startswith(key), str(info.value)
    assert says in str(info.value) and "hunter2" not in str(info.value)


def test_a_route_may_opt_in_to_content_logging(tmp_path: Path) -> None:
    yaml = (
        "deployments: [{name: d, provider: openai-compatible, model: m, base_url: 'http://x/v1',"
        " prices: {input: 1, output: 1}}]\n"
        "routes: [{name: r, deployments: [d], log_content: true}, {name: q, deployments: [d]}]\n"
    )
    settings = _load(tmp_path, yaml, {})
    routes = {r.name: r.log_content for r in settings.routes}
    assert routes == {"r": True, "q": False}
