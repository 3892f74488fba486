"""``modelyard config import-litellm``: a LiteLLM proxy config in, modelyard's config out.

``convert`` is pure (the parsed LiteLLM YAML in; modelyard's config and a report
of what did not convert out); ``register`` adds the command, which reads the
file, converts, validates with ``Settings`` before writing, and prints the report.

How LiteLLM's config maps:

- a ``model_name`` (a LiteLLM model group) becomes a route of that name, so clients
  keep calling the names they call; the group's ``model_list`` entries become its
  deployments, named ``<model_name>:<provider>`` (``-2``, ``-3`` for a second and
  third entry of one provider), since a route may not share a deployment's name;
- ``routing_strategy``: simple-shuffle -> weighted (weights from ``weight``, else
  ``rpm``, else ``tpm``, as LiteLLM draws), latency-based-routing -> latency,
  cost-based-routing -> cost, the rest -> weighted (reported); ``order`` -> tiers;
- ``fallbacks`` -> the fallback groups' deployments as later tiers, followed the
  way LiteLLM follows them: depth first, each group once, ``max_fallbacks`` deep;
- ``num_retries`` -> retries; ``timeout`` / ``request_timeout`` (LiteLLM's limit on each
  call) -> the timeout of each deployment that has none of its own;
  ``allowed_fails`` n -> ``health.failure_threshold`` n+1 (LiteLLM cools a deployment
  down after more than n failures); ``cooldown_time`` -> ``health.open_seconds`` and
  ``cooldown_seconds``; ``model_group_alias`` -> a route of the alias's name;
- ``api_key: os.environ/VAR`` -> ``api_key_env: VAR``. A key written in the file is
  never copied: the deployment names a variable for it and the report says which.
"""

from __future__ import annotations

import copy
import os
import re
import sys
from collections.abc import Mapping
from itertools import count
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from modelyard.errors import ConfigError

# fmt: off
_PROVIDERS = {  # LiteLLM's model prefix -> modelyard provider
    "openai": "openai", "azure": "azure", "anthropic": "anthropic", "gemini": "gemini",
    "xai": "xai", "deepseek": "deepseek", "mistral": "mistral", "groq": "groq",
    "together_ai": "together", "fireworks_ai": "fireworks", "openrouter": "openrouter",
    "hosted_vllm": "vllm", "vllm": "vllm", "ollama": "ollama", "ollama_chat": "ollama",
    "custom_openai": "openai-compatible",
}
_UNPREFIXED = {"openai": ("gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-"),
               "anthropic": ("claude-",)}  # a model without a prefix: LiteLLM knows its name
_KEY_ENV = {"azure": "AZURE_API_KEY", "together": "TOGETHERAI_API_KEY",  # LiteLLM's names
            "fireworks": "FIREWORKS_AI_API_KEY"}
_POLICIES = {"simple-shuffle": "weighted", "latency-based-routing": "latency",
             "cost-based-routing": "cost"}
_HANDLED = {  # router_settings / litellm_settings keys that routes and health take
    "routing_strategy", "num_retries", "timeout", "request_timeout", "fallbacks",
    "default_fallbacks", "max_fallbacks", "allowed_fails", "cooldown_time", "model_group_alias",
}
_NO_KEY = {"", "none", "null", "empty", "fake", "fake-key", "dummy", "not-needed", "no-key"}
_SAMPLING = "default request parameters are not set by modelyard's config"
_CREDENTIALS = "credentials come from environment variables (api_key_env)"
_AZURE_AD = "modelyard authenticates to Azure OpenAI with an api-key"
_CAPABILITIES = "modelyard assumes the provider's capabilities unless `capabilities` is set"
_REASONS = {  # why a LiteLLM setting has no place in modelyard's config
    "master_key": "client keys are not part of modelyard's config file",
    "database_url": "modelyard keeps its own state under server.data_dir",
    "rpm": "rate limits are not part of modelyard's config (used as weights, see routes)",
    "tpm": "rate limits are not part of modelyard's config (used as weights, see routes)",
    "stream_timeout": "modelyard has one timeout per deployment",
    "max_retries": "retries are set per route", "num_retries": "retries are set per route",
    "temperature": _SAMPLING, "top_p": _SAMPLING, "seed": _SAMPLING, "stop": _SAMPLING,
    "context_window_fallbacks": "modelyard skips deployments whose context_window is too "
    "small before trying them; list larger-context deployments in the route instead",
    "content_policy_fallbacks": "modelyard has no content-policy fallbacks",
    "drop_params": "modelyard passes request parameters through",
    "litellm_credential_name": _CREDENTIALS, "credential_list": _CREDENTIALS,
    "supports_vision": _CAPABILITIES, "supports_function_calling": _CAPABILITIES,
    "id": "modelyard names deployments itself",
    "max_tokens": "LiteLLM's legacy limit, the output limit for most models: set context_window",
    "organization": "set it as the OpenAI-Organization header of the deployment",
    "azure_ad_token": _AZURE_AD,
    "include": "included files were not read: convert each of them too",
    "environment_variables": "not copied: set them in the environment modelyard runs in",
}
# fmt: on
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie", re.IGNORECASE)
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:/\-]")
PLACEHOLDER_URL = "https://replace-me.invalid"  # .invalid never resolves (RFC 6761)
AZURE_API_VERSION = "2024-10-21"
_NO_EQUIVALENT = "no modelyard equivalent"
Report = list[str]
Group = list[tuple[dict[str, Any], dict[str, Any]]]  # (deployment, LiteLLM routing facts)


def convert(
    litellm: dict[str, Any], *, env: Mapping[str, str] | None = None, embedded_models: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """modelyard's config for a LiteLLM config, and the report lines.

    ``env`` resolves ``os.environ/VAR`` in ``api_base`` and ``api_version``; keys
    are never resolved. Raises ``ConfigError`` when the input is not a LiteLLM config.
    """
    litellm = _mapping(litellm, None)
    router, module = (_mapping(litellm.get(k), k) for k in ("router_settings", "litellm_settings"))

    def setting(key: str) -> Any:  # router_settings win, as they do in LiteLLM
        return router[key] if key in router else module.get(key)

    entries = litellm.get("model_list") or []
    if not isinstance(entries, list):
        raise ConfigError("must be a list", key="model_list")
    report: Report = [] if entries else ["model_list is empty: there is nothing to convert"]
    groups: dict[str, Group] = {}
    renamed: dict[str, str] = {}  # model_name -> route name
    leftovers: dict[str, list[str]] = {}  # a key not converted -> the groups that had it
    for i, entry in enumerate(entries):
        group, params, info = _entry(entry, f"model_list[{i}]")
        where = f"model_list[{i}] ({group})"
        if "*" in group or "*" in params["model"]:
            report.append(f"{where}: wildcard models are not supported; entry skipped")
            continue
        if group not in renamed:
            renamed[group] = _free(_BAD_NAME_CHARS.sub("-", group), set(renamed.values()))
            if renamed[group] != group:
                report.append(f"{where}: not a valid route name; the route is {renamed[group]!r}")
        found = _deployment(params, info, where, env or {}, report)
        for key in [f"litellm_params.{k}" for k in params] + [f"model_info.{k}" for k in info]:
            leftovers.setdefault(key, []).append(group)
        if found is not None:
            groups.setdefault(renamed[group], []).append(found)
    _name_deployments(groups, report)

    strategy = str(setting("routing_strategy") or "simple-shuffle")
    policy = _POLICIES.get(strategy, "weighted")
    if strategy not in _POLICIES:
        report.append(f"routing_strategy: {strategy!r} is not supported, converted to weighted")
    common: dict[str, Any] = {}
    retries = _number(setting("num_retries"))
    if retries is not None:
        common["retries"] = min(max(int(retries), 0), 10)
        if common["retries"] != retries:
            report.append(
                f"num_retries: {retries} is not a whole number in 0..10; set to {common['retries']}"
            )
    fallbacks, default = setting("fallbacks"), setting("default_fallbacks")
    table = _fallbacks(fallbacks, default, renamed, set(groups), report)
    depth = _number(setting("max_fallbacks"))
    depth = 5 if depth is None else int(depth)
    routes = {group: _route(group, groups, table, depth, policy) | common for group in groups}
    deployments = [dep for group in groups.values() for dep, _ in group]
    timeout = _number(setting("timeout")) or _number(setting("request_timeout"))
    for dep in deployments if timeout and timeout > 0 else []:  # LiteLLM's is per call too
        dep.setdefault("timeout", timeout)
    aliases = setting("model_group_alias")
    for alias, target in aliases.items() if isinstance(aliases, dict) else []:
        target = str(target.get("model") if isinstance(target, dict) else target)
        route, name = routes.get(renamed.get(target, target)), _BAD_NAME_CHARS.sub("-", str(alias))
        if route is None or name in routes or name in {d["name"] for d in deployments}:
            report.append(f"model_group_alias {alias!r}: target unknown or name taken; skipped")
        else:
            routes[name] = {**copy.deepcopy(route), "name": name}

    config: dict[str, Any] = {"embedded_models": embedded_models}
    config["deployments"] = deployments
    config["routes"] = list(routes.values())
    allowed_fails, cooldown = _number(setting("allowed_fails")), _number(setting("cooldown_time"))
    health: dict[str, float] = {}
    if allowed_fails is not None:
        health["failure_threshold"] = max(int(allowed_fails), 0) + 1
    if cooldown and cooldown > 0:
        health["open_seconds"] = health["cooldown_seconds"] = cooldown
    if health:
        config["health"] = health
    for key, owners in leftovers.items():
        reason = _REASONS.get(key.split(".", 1)[1], _NO_EQUIVALENT)
        report.append(f"{key} (in {', '.join(dict.fromkeys(owners))}): not converted: {reason}")
    for section, value in litellm.items():  # everything outside model_list
        if section == "model_list":
            continue
        if not isinstance(value, dict) or section == "environment_variables":
            report.append(f"{section}: not converted: {_REASONS.get(section, _NO_EQUIVALENT)}")
            continue
        for key in value:
            if key not in _HANDLED or section not in ("router_settings", "litellm_settings"):
                report.append(
                    f"{section}.{key}: not converted: {_REASONS.get(key, _NO_EQUIVALENT)}"
                )
    return config, list(dict.fromkeys(report))


def _mapping(value: Any, key: str | None) -> dict[str, Any]:
    if value is not None and not isinstance(value, dict):
        raise ConfigError("must be a mapping", key=key or "<top level>")
    return dict(value or {})


def _entry(entry: Any, key: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """model_name, and copies of litellm_params and model_info for the converter to consume."""
    entry = _mapping(entry, key)
    params = _mapping(entry.get("litellm_params"), f"{key}.litellm_params")
    info = _mapping(entry.get("model_info"), f"{key}.model_info")
    if not isinstance(entry.get("model_name"), str | int | float) or entry["model_name"] == "":
        raise ConfigError("needs a model_name", key=key)
    if not isinstance(params.get("model"), str):
        raise ConfigError("needs litellm_params.model", key=key)
    return str(entry["model_name"]), params, info


def _free(name: str, taken: set[str]) -> str:
    """``name``, else the first of ``name-2``, ``name-3``... that is not taken."""
    return next(c for n in count(1) if (c := name if n == 1 else f"{name}-{n}") not in taken)


def _env_ref(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("os.environ/"):
        return value.removeprefix("os.environ/")
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
        return int(number) if number.is_integer() else number
    except (ValueError, OverflowError):
        return None


def _resolve(value: Any, env: Mapping[str, str], what: str, report: Report) -> str | None:
    """A non-secret string; ``os.environ/VAR`` is read from ``env`` (None if unset there)."""
    variable = _env_ref(value)
    if variable is None:
        return None if value is None else str(value)
    found = env.get(variable) or None
    state = "taken from it as it was set at conversion" if found else "not set at conversion"
    report.append(f"{what}: ${variable} {state}")
    return found


def _provider(model: str, params: dict[str, Any], custom_base: bool) -> tuple[str, str] | None:
    prefix, _, rest = model.partition("/")
    custom = params.pop("custom_llm_provider", None)
    if isinstance(custom, str):
        prefix, rest = custom, model
    elif not rest:  # no prefix: LiteLLM knows the model by its name
        prefix, rest = next((p for p, s in _UNPREFIXED.items() if model.startswith(s)), ""), model
    provider = _PROVIDERS.get(prefix)
    if provider == "openai" and custom_base:
        provider = "openai-compatible"
    return (provider, rest) if provider else None


def _deployment(
    params: dict[str, Any], info: dict[str, Any], where: str, env: Mapping[str, str], report: Report
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A deployment (named later) and its routing facts; consumes what it converts."""
    raw_model, raw_base = params.pop("model"), params.pop("api_base", None)
    base_url = _resolve(raw_base, env, f"{where} api_base", report)
    found = _provider(
        raw_model, params, raw_base is not None and "api.openai.com" not in str(base_url)
    )
    mode = info.pop("mode", None) or "chat"
    if found is None or mode not in ("chat", "completion", "embedding"):
        what = f"provider of {raw_model!r}" if found is None else f"mode {mode!r}"
        report.append(f"{where}: {what} is not supported; entry skipped")
        params.clear()
        info.clear()
        return None
    provider, model = found
    dep: dict[str, Any] = {"name": "", "provider": provider, "model": model}
    if mode == "embedding":
        dep["kind"] = "embeddings"
    if provider == "azure":  # LiteLLM falls back to AZURE_API_BASE and AZURE_API_VERSION
        base_url = base_url or _resolve("os.environ/AZURE_API_BASE", env, where, report)
        version = params.pop("api_version", None) or "os.environ/AZURE_API_VERSION"
        dep["api_version"] = _resolve(version, env, f"{where} api_version", report)
        if dep["api_version"] is None:
            dep["api_version"] = AZURE_API_VERSION
            report.append(f"{where}: api_version set to {AZURE_API_VERSION}; check it")
    if base_url is None and provider in ("azure", "openai-compatible"):
        report.append(f"{where}: api_base unknown; replace base_url {PLACEHOLDER_URL}")
        base_url = PLACEHOLDER_URL
    if raw_model.startswith("vllm/") and base_url is None:
        report.append(f"{where}: LiteLLM ran vllm/ in-process; set base_url to a vLLM server")
    if base_url is not None:
        dep["base_url"] = _base_url(provider, base_url.rstrip("/"))
    key = params.pop("api_key", None)
    if _env_ref(key):
        dep["api_key_env"] = _env_ref(key)
    elif key is None and provider in _KEY_ENV:
        dep["api_key_env"] = _KEY_ENV[provider]
    headers = params.pop("extra_headers", None)
    for name, value in headers.items() if isinstance(headers, dict) else []:
        if _SECRET_HEADER.search(str(name)) or _env_ref(value):
            report.append(f"{where}: header {name!r} may hold a credential; not copied")
        else:
            dep.setdefault("headers", {})[str(name)] = str(value)
    window = _number(info.pop("max_input_tokens", None))
    out = _number(info.pop("max_output_tokens", None)) or _number(params.pop("max_tokens", None))
    timeout = _number(params.pop("timeout", None))
    for field, value in (("context_window", window), ("max_output_tokens", out)):
        if value and value >= 1:
            dep[field] = int(value)
    if timeout and timeout > 0:
        dep["timeout"] = timeout
    prices = {}
    for field, cost in (("input", "input_cost_per_token"), ("output", "output_cost_per_token"),
                        ("cached_input", "cache_read_input_token_cost")):  # fmt: skip
        per_token = _number(params.pop(cost) if cost in params else info.pop(cost, None))
        if per_token is not None and per_token >= 0:
            prices[field] = round(per_token * 1e6, 6)  # modelyard prices per million tokens
    if "input" in prices and "output" in prices:
        dep["prices"] = prices
    elif prices:
        report.append(f"{where}: prices need both input and output cost; not converted")
    if isinstance(params.get("region_name"), str):
        dep["contract"] = {"region": params.pop("region_name")}
    literal_key = key is not None and not _env_ref(key) and str(key).lower() not in _NO_KEY
    facts = {"where": where, "literal_key": literal_key, "weight": params.pop("weight", None)}
    facts |= {"rpm": params.get("rpm"), "tpm": params.get("tpm")}  # left in: reported as limits
    facts["order"] = _number(params.pop("order", None) or info.pop("order", None))
    return dep, facts


def _base_url(provider: str, url: str) -> str:
    if provider == "ollama" and not url.endswith("/v1"):
        return url + "/v1"  # LiteLLM speaks Ollama's own API; modelyard its OpenAI one
    if provider == "anthropic":
        return url.removesuffix("/v1/messages").removesuffix("/v1")
    return url


def _name_deployments(groups: dict[str, Group], report: Report) -> None:
    taken = set(groups)
    for group, deps in groups.items():
        for dep, facts in deps:
            dep["name"] = _free(f"{group}:{dep['provider']}", taken)
            taken.add(dep["name"])
            if facts["literal_key"]:
                var = re.sub(r"[^A-Z0-9]+", "_", dep["name"].upper()).strip("_") + "_API_KEY"
                dep["api_key_env"] = var
                report.append(
                    f"{facts['where']}: api_key is written in the file and was not copied "
                    f"(keys never go in modelyard's config); set {var} to it"
                )


def _route(
    group: str, groups: dict[str, Group], table: dict[str, list[str]], depth: int, policy: str
) -> dict[str, Any]:
    tried = [group]
    _walk(group, table, depth, tried)
    members: list[dict[str, Any]] = []
    for name in tried:
        members += _members(groups[name], policy, max((m["tier"] for m in members), default=-1) + 1)
    tiers = [m["tier"] for m in members]
    shared = any(tiers.count(t) > 1 for t in tiers)  # a tier with members for a policy to order
    listed = [{k: v for k, v in m.items() if v} for m in members]
    return {
        "name": group,
        "deployments": [m if len(m) > 1 else m["name"] for m in listed],
        "policy": policy if shared else "fallback",
    }


def _members(group: Group, policy: str, first_tier: int) -> list[dict[str, Any]]:
    """Route members of one group: ``order`` as tiers, LiteLLM's shuffle weights as weights."""
    orders = sorted({f["order"] for _, f in group if f["order"] is not None})
    basis = next((k for k in ("weight", "rpm", "tpm") if group[0][1][k] is not None), None)
    members = []
    for dep, facts in group:
        rank = orders.index(facts["order"]) if facts["order"] is not None else len(orders)
        weight = _number(facts[basis]) if basis else None
        usable = policy == "weighted" and len(group) > 1 and weight is not None and weight > 0
        members.append(
            {"name": dep["name"], "tier": first_tier + rank, "weight": weight if usable else None}
        )
    if len({m["weight"] for m in members}) == 1:  # all equal: the default says it
        for member in members:
            member["weight"] = None
    return members


def _fallbacks(
    value: Any, default: Any, renamed: dict[str, str], known: set[str], report: Report
) -> dict[str, list[str]]:
    """LiteLLM's ``[{group: [fallback, ...]}]`` by route name; ``"*"`` holds the default."""
    table: dict[str, list[Any]] = {"*": list(default) if isinstance(default, list) else []}
    for item in value if isinstance(value, list) else []:
        for group, targets in item.items() if isinstance(item, dict) else []:
            table[str(group)] = targets if isinstance(targets, list) else [targets]
    for group, targets in table.items():
        names = [renamed.get(t, t) for t in targets if isinstance(t, str)]
        if len(names) != len(targets):
            report.append(f"fallbacks of {group!r}: request-rewriting entries not converted")
        for target in [t for t in names if t not in known]:
            report.append(f"fallbacks of {group!r}: {target!r} is not a converted model group")
        targets[:] = [t for t in names if t in known]
    return {renamed.get(group, group): targets for group, targets in table.items()}


def _walk(group: str, table: dict[str, list[str]], depth: int, tried: list[str]) -> None:
    """Append ``group``'s fallback groups to ``tried`` in the order LiteLLM tries them."""
    for target in table.get(group, table["*"]) if depth > 0 else []:
        if target not in tried:
            tried.append(target)
            _walk(target, table, depth - 1, tried)


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group, with ``import-litellm``, to the CLI."""
    config_app = typer.Typer(help="Work with modelyard config files.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("import-litellm")
    def import_litellm(
        file: Annotated[Path, typer.Argument(help="LiteLLM proxy config (YAML)")],
        output: Annotated[Path | None, typer.Option("-o", "--output", help="not stdout")] = None,
        embedded_models: Annotated[bool, typer.Option(help="keep the embedded models")] = False,
    ) -> None:
        """Convert a LiteLLM proxy config into modelyard's; report what did not convert."""
        from modelyard.settings import Settings

        try:
            try:
                data = yaml.safe_load(file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"cannot read: {exc.strerror}") from None
            except yaml.YAMLError as exc:
                raise ConfigError(f"not valid YAML: {exc}") from None
            config, report = convert(data or {}, env=os.environ, embedded_models=embedded_models)
        except ConfigError as exc:
            typer.echo(f"modelyard: {file}: {exc}", err=True)
            raise typer.Exit(2) from None
        try:
            Settings.model_validate(config)
        except ValueError as exc:  # a converter bug, not the input's fault
            typer.echo(f"modelyard: the converted config does not validate: {exc}", err=True)
            raise typer.Exit(1) from None
        text = f"# converted from {file.name} by `modelyard config import-litellm`\n"
        text += yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        try:
            if output is None:
                sys.stdout.write(text)
            else:
                output.write_text(text, encoding="utf-8")
        except OSError as exc:
            typer.echo(f"modelyard: cannot write {output}: {exc.strerror}", err=True)
            raise typer.Exit(1) from None
        counts = f"{len(config['deployments'])} deployments, {len(config['routes'])} routes"
        lines = [f"converted {file}: {counts}" + (f" -> {output}" if output else "")]
        if report:
            lines.append(f"not converted, or converted with a change ({len(report)}):")
            lines += [f"  - {line}" for line in report]
        typer.echo("\n".join(lines), err=output is None)
