"""``modelyard config import-litellm``: LiteLLM proxy configs, as LiteLLM's docs write them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.cli.import_litellm import AZURE_API_VERSION, PLACEHOLDER_URL, convert
from modelyard.errors import ConfigError
from modelyard.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]

# LiteLLM's proxy quick start (docs/proxy/configs.md), as published
QUICK_START = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: https://my-endpoint-europe-berri-992.openai.azure.com/
      api_key: "os.environ/AZURE_API_KEY_EU"
      rpm: 6
  - model_name: bedrock-claude-v1
    litellm_params:
      model: bedrock/anthropic.claude-instant-v1
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-ca
      api_base: https://my-endpoint-canada-berri992.openai.azure.com/
      api_key: "os.environ/AZURE_API_KEY_CA"
      rpm: 6
  - model_name: vllm-models
    litellm_params:
      model: openai/facebook/opt-125m
      api_base: http://0.0.0.0:4000/v1
      api_key: none
      rpm: 1440
    model_info:
      version: 2
  - model_name: "*"
    litellm_params:
      model: "*"
litellm_settings:
  drop_params: True
  success_callback: ["langfuse"]
general_settings:
  master_key: sk-1234
  alerting: ["slack"]
"""

# LiteLLM's load-balancing and reliability examples (docs/proxy/configs.md, reliability.md)
RELIABILITY = """
model_list:
  - model_name: zephyr-beta
    litellm_params:
      model: hosted_vllm/HuggingFaceH4/zephyr-7b-beta
      api_base: http://0.0.0.0:8001/v1
      rpm: 60
  - model_name: zephyr-beta
    litellm_params:
      model: hosted_vllm/HuggingFaceH4/zephyr-7b-beta
      api_base: http://0.0.0.0:8002/v1
      rpm: 600
  - model_name: gpt-4o
    litellm_params:
      model: gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 200
  - model_name: gpt-3.5-turbo-16k
    litellm_params:
      model: gpt-3.5-turbo-16k
      api_key: os.environ/OPENAI_API_KEY
  - model_name: claude-sonnet
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_key: os.environ/ANTHROPIC_API_KEY
litellm_settings:
  num_retries: 3
  request_timeout: 10
  fallbacks: [{"zephyr-beta": ["gpt-4o"]}, {"gpt-4o": ["claude-sonnet"]}]
  context_window_fallbacks: [{"zephyr-beta": ["gpt-3.5-turbo-16k"]}]
  allowed_fails: 3
router_settings:
  routing_strategy: simple-shuffle
  model_group_alias: {"gpt-4": "gpt-4o"}
  num_retries: 2
  timeout: 30
  cooldown_time: 60
  redis_host: redis.internal
  redis_port: 1992
"""

# One entry per provider modelyard knows, as each LiteLLM provider page writes it
PROVIDERS = """
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20240620
      api_key: os.environ/ANTHROPIC_API_KEY
    model_info: {max_input_tokens: 200000, max_output_tokens: 8192}
  - model_name: gemini-flash
    litellm_params: {model: gemini/gemini-2.0-flash, api_key: os.environ/GEMINI_API_KEY}
  - model_name: grok
    litellm_params: {model: xai/grok-3, api_key: os.environ/XAI_API_KEY}
  - model_name: deepseek-chat
    litellm_params:
      model: deepseek/deepseek-chat
      api_key: os.environ/DEEPSEEK_API_KEY
      input_cost_per_token: 0.00000027
      output_cost_per_token: 0.0000011
  - model_name: mistral-small
    litellm_params: {model: mistral/mistral-small-latest, api_key: os.environ/MISTRAL_API_KEY}
  - model_name: llama-groq
    litellm_params: {model: groq/llama-3.3-70b-versatile, api_key: os.environ/GROQ_API_KEY}
  - model_name: llama-together
    litellm_params: {model: together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo}
  - model_name: llama-fireworks
    litellm_params: {model: fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct}
  - model_name: router-claude
    litellm_params:
      model: openrouter/anthropic/claude-3.5-sonnet
      api_key: os.environ/OPENROUTER_API_KEY
  - model_name: local-llama
    litellm_params: {model: ollama_chat/llama3.1, api_base: "http://localhost:11434"}
  - model_name: qwen
    litellm_params: {model: hosted_vllm/Qwen/Qwen2.5-7B-Instruct, api_base: "http://gpu-1:8000/v1"}
  - model_name: gemini-vertex
    litellm_params: {model: vertex_ai/gemini-1.5-pro, vertex_project: my-project}
  - model_name: text-embedding-3-small
    litellm_params: {model: openai/text-embedding-3-small, api_key: os.environ/OPENAI_API_KEY}
    model_info: {mode: embedding}
"""


def _convert(text: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    config, report = convert(yaml.safe_load(text), env=env or {})
    Settings.model_validate(config)  # every conversion must load as modelyard's config
    return config, report


def _deployments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in config["deployments"]}


def _routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in config["routes"]}


def _said(report: list[str], *words: str) -> bool:
    return any(all(w in line for w in words) for line in report)


def test_quick_start_azure_groups_become_a_route_over_two_deployments() -> None:
    config, report = _convert(QUICK_START)
    deps, routes = _deployments(config), _routes(config)
    assert config["embedded_models"] is False
    assert set(deps) == {"gpt-4o:azure", "gpt-4o:azure-2", "vllm-models:openai-compatible"}
    eu = deps["gpt-4o:azure"]
    assert eu["provider"] == "azure" and eu["model"] == "gpt-4o-eu"
    assert eu["base_url"] == "https://my-endpoint-europe-berri-992.openai.azure.com"
    assert eu["api_key_env"] == "AZURE_API_KEY_EU"
    assert deps["gpt-4o:azure-2"]["api_key_env"] == "AZURE_API_KEY_CA"
    assert eu["api_version"] == AZURE_API_VERSION and _said(
        report, "api_version set to", "check it"
    )
    # equal rpm: LiteLLM's shuffle is even, so no weights are written
    assert routes["gpt-4o"] == {
        "name": "gpt-4o",
        "deployments": ["gpt-4o:azure", "gpt-4o:azure-2"],
        "policy": "weighted",
    }
    vllm = deps["vllm-models:openai-compatible"]
    assert vllm["model"] == "facebook/opt-125m" and vllm["base_url"] == "http://0.0.0.0:4000/v1"
    assert "api_key_env" not in vllm  # "none" is LiteLLM's way to say no key
    assert routes["vllm-models"]["policy"] == "fallback"


def test_quick_start_reports_what_did_not_convert() -> None:
    _, report = _convert(QUICK_START)
    assert _said(report, "bedrock-claude-v1", "bedrock/anthropic.claude-instant-v1", "skipped")
    assert _said(report, "wildcard", "skipped")
    assert _said(report, "general_settings.master_key", "not converted")
    assert _said(report, "general_settings.alerting", "not converted")
    assert _said(report, "litellm_settings.success_callback", "not converted")
    assert _said(report, "litellm_settings.drop_params", "not converted")
    assert _said(report, "litellm_params.rpm", "gpt-4o, vllm-models", "rate limits")
    assert _said(report, "model_info.version", "vllm-models")


def test_fallbacks_become_later_tiers_followed_as_litellm_follows_them() -> None:
    config, report = _convert(RELIABILITY)
    deps, routes = _deployments(config), _routes(config)
    zephyr = routes["zephyr-beta"]
    # zephyr-beta -> gpt-4o -> (gpt-4o's own fallback) claude-sonnet
    assert zephyr["deployments"] == [
        {"name": "zephyr-beta:vllm", "weight": 60},
        {"name": "zephyr-beta:vllm-2", "weight": 600},
        {"name": "gpt-4o:openai", "tier": 1},
        {"name": "claude-sonnet:anthropic", "tier": 2},
    ]
    assert zephyr["policy"] == "weighted"
    assert routes["gpt-4o"]["deployments"] == [
        "gpt-4o:openai",
        {"name": "claude-sonnet:anthropic", "tier": 1},
    ]
    assert routes["gpt-4o"]["policy"] == "fallback"
    # router_settings wins over litellm_settings, as in LiteLLM
    assert {r["retries"] for r in routes.values()} == {2}
    assert {d["timeout"] for d in deps.values()} == {30}  # LiteLLM's timeout is per call
    assert not any("timeout" in r for r in routes.values())  # not a deadline on the whole
    # LiteLLM cools a deployment down after more than allowed_fails failures
    assert config["health"] == {"failure_threshold": 4, "open_seconds": 60, "cooldown_seconds": 60}
    assert routes["gpt-4"]["deployments"] == routes["gpt-4o"]["deployments"]  # the alias
    assert "&id" not in yaml.safe_dump(config)  # written out in full, not as YAML anchors
    assert deps["zephyr-beta:vllm"]["base_url"] == "http://0.0.0.0:8001/v1"
    assert deps["gpt-3.5-turbo-16k:openai"]["model"] == "gpt-3.5-turbo-16k"
    assert _said(report, "context_window_fallbacks", "not converted")
    assert _said(report, "router_settings.redis_host", "not converted")
    assert not _said(report, "router_settings.num_retries")


def test_every_known_provider_converts_and_vertex_is_reported() -> None:
    config, report = _convert(PROVIDERS)
    deps = {d["model"]: d for d in config["deployments"]}
    expect = {
        "claude-3-5-sonnet-20240620": ("anthropic", "ANTHROPIC_API_KEY"),
        "gemini-2.0-flash": ("gemini", "GEMINI_API_KEY"),
        "grok-3": ("xai", "XAI_API_KEY"),
        "deepseek-chat": ("deepseek", "DEEPSEEK_API_KEY"),
        "mistral-small-latest": ("mistral", "MISTRAL_API_KEY"),
        "llama-3.3-70b-versatile": ("groq", "GROQ_API_KEY"),
        # LiteLLM's own variable names, so the same environment keeps working
        "meta-llama/Llama-3.3-70B-Instruct-Turbo": ("together", "TOGETHERAI_API_KEY"),
        "accounts/fireworks/models/llama-v3p1-8b-instruct": ("fireworks", "FIREWORKS_AI_API_KEY"),
        "anthropic/claude-3.5-sonnet": ("openrouter", "OPENROUTER_API_KEY"),
        "llama3.1": ("ollama", None),
        "Qwen/Qwen2.5-7B-Instruct": ("vllm", None),
        "text-embedding-3-small": ("openai", "OPENAI_API_KEY"),
    }
    assert {m: (d["provider"], d.get("api_key_env")) for m, d in deps.items()} == expect
    assert deps["llama3.1"]["base_url"] == "http://localhost:11434/v1"  # Ollama's OpenAI API
    assert deps["Qwen/Qwen2.5-7B-Instruct"]["base_url"] == "http://gpu-1:8000/v1"
    assert deps["claude-3-5-sonnet-20240620"]["context_window"] == 200000
    assert deps["claude-3-5-sonnet-20240620"]["max_output_tokens"] == 8192
    assert deps["deepseek-chat"]["prices"] == {"input": 0.27, "output": 1.1}  # per million
    assert deps["text-embedding-3-small"]["kind"] == "embeddings"
    assert _said(report, "gemini-vertex", "vertex_ai/gemini-1.5-pro", "not supported", "skipped")
    assert "gemini-vertex" not in _routes(config)


def test_a_key_written_in_the_file_is_never_copied() -> None:
    secret = "sk-proj-abc123DEF456"
    text = f"""
model_list:
  - model_name: openai-gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: {secret}
      organization: org-ikDc4ex8NB
      temperature: 0.2
      extra_headers: {{"AI-Resource Group": ishaan-resource, "Authorization": "Bearer {secret}"}}
"""
    config, report = _convert(text)
    assert secret not in yaml.safe_dump(config) and not _said(report, secret)
    dep = config["deployments"][0]
    assert dep["api_key_env"] == "OPENAI_GPT_4O_OPENAI_API_KEY"
    assert _said(report, "api_key is written in the file", "set OPENAI_GPT_4O_OPENAI_API_KEY")
    assert _said(report, "litellm_params.temperature", "not converted")
    assert dep["headers"] == {"AI-Resource Group": "ishaan-resource"}
    assert _said(report, "header 'Authorization' may hold a credential; not copied")
    assert _said(report, "litellm_params.organization", "OpenAI-Organization header")


def test_azure_settings_from_the_environment_and_placeholders() -> None:
    text = """
model_list:
  - model_name: azure-embedding-model
    litellm_params:
      model: azure/azure-embedding-model
      api_base: "os.environ/AZURE_API_BASE"
      api_key: "os.environ/AZURE_API_KEY"
      api_version: "2023-07-01-preview"
    model_info: {mode: embedding}
  - model_name: team-gpt
    litellm_params:
      model: azure/chatgpt-v-2
      api_base: os.environ/TEAM_AZURE_BASE
"""
    env = {"AZURE_API_BASE": "https://eu.openai.azure.com/"}
    config, report = _convert(text, env=env)
    deps = _deployments(config)
    embed = deps["azure-embedding-model:azure"]
    assert embed["base_url"] == "https://eu.openai.azure.com"
    assert embed["api_version"] == "2023-07-01-preview" and embed["kind"] == "embeddings"
    assert _said(report, "$AZURE_API_BASE taken from it")
    # an unset variable leaves LiteLLM on AZURE_API_BASE, and so the conversion
    assert deps["team-gpt:azure"]["base_url"] == "https://eu.openai.azure.com"
    assert _said(report, "team-gpt", "$TEAM_AZURE_BASE not set")

    config, report = _convert(text, env={})  # converted where none of them is set
    team = _deployments(config)["team-gpt:azure"]
    assert team["base_url"] == PLACEHOLDER_URL and team["api_key_env"] == "AZURE_API_KEY"
    assert _said(report, "team-gpt", "replace base_url")
    assert _said(report, "azure-embedding-model", "$AZURE_API_BASE not set")


@pytest.mark.parametrize(
    ("strategy", "policy", "reported"),
    [
        ("simple-shuffle", "weighted", False),
        ("latency-based-routing", "latency", False),
        ("cost-based-routing", "cost", False),
        ("least-busy", "weighted", True),
        ("usage-based-routing", "weighted", True),
        ("usage-based-routing-v2", "weighted", True),
    ],
)
def test_routing_strategies(strategy: str, policy: str, reported: bool) -> None:
    text = f"""
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: azure/gpt-4o-eu, api_base: "https://eu.openai.azure.com",
                     api_version: "2024-10-21", weight: 3}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, weight: 1}}
router_settings:
  routing_strategy: {strategy}
"""
    config, report = _convert(text)
    route = _routes(config)["gpt-4o"]
    assert route["policy"] == policy
    assert _said(report, strategy, "converted to weighted") == reported
    if policy == "weighted":
        assert route["deployments"] == [
            {"name": "gpt-4o:azure", "weight": 3},
            {"name": "gpt-4o:openai", "weight": 1},
        ]
    else:
        assert route["deployments"] == ["gpt-4o:azure", "gpt-4o:openai"]


def test_order_becomes_tiers_and_default_fallbacks_apply_to_every_group() -> None:
    text = """
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, order: 2}
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o
      api_base: https://eu.openai.azure.com
      api_version: "2024-10-21"
      order: 1
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4-5}
    model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}
router_settings:
  default_fallbacks: [claude]
  fallbacks: [{"gpt-4o": ["claude", "no-such-group"]}]
"""
    config, report = _convert(text)
    routes = _routes(config)
    assert routes["gpt-4o"]["deployments"] == [
        {"name": "gpt-4o:openai", "tier": 1},
        "gpt-4o:azure",
        {"name": "claude:anthropic", "tier": 2},
    ]
    assert routes["claude"]["deployments"] == ["claude:anthropic"]  # not its own fallback
    assert _deployments(config)["claude:anthropic"]["prices"] == {"input": 3, "output": 15}
    assert _said(report, "no-such-group", "not a converted model group")


def test_names_that_are_not_route_names_are_renamed_and_said() -> None:
    text = """
model_list:
  - model_name: "my model@v2"
    litellm_params: {model: groq/llama-3.1-8b-instant}
"""
    config, report = _convert(text)
    assert [r["name"] for r in config["routes"]] == ["my-model-v2"]
    assert config["deployments"][0]["name"] == "my-model-v2:groq"
    assert _said(report, "my model@v2", "'my-model-v2'")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (["not", "a", "mapping"], "<top level>"),
        ({"model_list": {"gpt-4o": {}}}, "model_list"),
        ({"model_list": [{"litellm_params": {"model": "openai/gpt-4o"}}]}, "model_list[0]"),
        ({"model_list": [{"model_name": "x", "litellm_params": {}}]}, "model_list[0]"),
        (
            {"model_list": [{"model_name": "x", "litellm_params": "x"}]},
            "model_list[0].litellm_params",
        ),
        ({"model_list": [], "router_settings": ["x"]}, "router_settings"),
    ],
)
def test_input_that_is_not_a_litellm_config_is_an_error(data: Any, key: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        convert(data)
    assert caught.value.key == key


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "modelyard", "config", "import-litellm", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def test_the_command_writes_a_config_that_loads_and_prints_the_report(tmp_path: Path) -> None:
    (tmp_path / "litellm.yaml").write_text(QUICK_START)
    done = _cli("litellm.yaml", "-o", "modelyard.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    settings = load_settings(tmp_path / "modelyard.yaml", env={})
    assert {r.name for r in settings.routes} == {"gpt-4o", "vllm-models"}
    assert "3 deployments, 2 routes" in done.stdout
    assert "general_settings.master_key: not converted" in done.stdout
    assert "sk-1234" not in (tmp_path / "modelyard.yaml").read_text()

    (tmp_path / "broken.yaml").write_text("model_list: [\n")
    broken = _cli("broken.yaml", cwd=tmp_path)
    missing = _cli("missing.yaml", cwd=tmp_path)
    for done in (broken, missing):
        assert done.returncode == 2
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert "not valid YAML" in broken.stderr and "cannot read" in missing.stderr
