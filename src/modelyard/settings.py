"""One typed settings object, read from YAML and the environment, validated at start.

Precedence, highest first: command-line flags, ``MODELYARD_*`` environment
variables, the YAML file, defaults. Credentials are never in the file: a
deployment names the environment variable that holds its key
(``api_key_env``), and ``credential()`` is the one place that reads it.

What a provider *is* (its default base URL, auth style, quirks) lives in
``modelyard.providers.registry``; this module only checks that the names used
exist there.

``limits`` bounds what one request may ask of the gateway; exceeding one is a
4xx whose message names the setting and its value (``api.body`` checks the
body, ``cli.serve`` the headers, ``providers.http1`` the upstream's answer)::

    server.max_body_bytes            8 MiB      413  request body, before it is read
    limits.max_json_depth            64         400  nesting of arrays and objects
    limits.max_messages              4096       400  messages (Responses: input items)
    limits.max_n                     16         400  choices per request (n)
    limits.max_tokens                1000000    400  max_tokens / max_completion_tokens /
                                                     max_output_tokens of one request
    limits.max_request_line_bytes    8190       400  method, path and query line
    limits.max_header_bytes          8190       400  one header's name or value
    limits.max_headers               128        400  number of request headers
    limits.max_upstream_response_bytes  64 MiB  502  an upstream answer, after gzip/deflate
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from modelyard.cache.config import CacheSettings
from modelyard.errors import ConfigError, MissingCredentialError
from modelyard.observability.config import ObservabilitySettings
from modelyard.providers.registry import HOSTS, NATIVE_PROVIDERS
from modelyard.routing.config import Contract, HealthSettings, RouteConfig

Capability = Literal["tools", "json_schema", "images"]

LOCAL_CHAT = "gemma-3-270m"
LOCAL_EMBEDDINGS = "all-minilm-l6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prices(_Section):
    """USD per million tokens of each kind; an unset optional rate falls back to input or output.

    A deployment without ``prices`` gets the list prices of genai-prices at
    start (``modelyard.governance.prices``); prices given here always win.
    """

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    audio_input: float | None = Field(default=None, ge=0)
    audio_output: float | None = Field(default=None, ge=0)


class Deployment(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:/\-]+$")
    provider: str
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None  # Azure OpenAI
    headers: dict[str, str] = Field(default_factory=dict)
    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    timeout: float = Field(default=600.0, gt=0)
    prices: Prices | None = None
    kind: Literal["chat", "embeddings"] = "chat"
    contract: Contract | None = None
    #: what the model can do: tools, json_schema, images; None: what its provider can
    capabilities: list[Capability] | None = None

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        known = set(HOSTS) | NATIVE_PROVIDERS
        if value not in known:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _provider_needs(self) -> Deployment:
        host = HOSTS.get(self.provider)
        if self.base_url is None and host is not None and host.base_url is None:
            raise ValueError(f"provider {self.provider!r} needs base_url")
        if self.provider == "azure" and not self.api_version:
            raise ValueError("provider 'azure' needs api_version (for example 2024-10-21)")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if self.base_url is not None and "@" in urlsplit(self.base_url).netloc:
            # never sent (the transport takes the host alone), and a URL ends up in messages
            raise ValueError(
                "base_url must not hold a user or password (user:password@); "
                "give credentials in api_key_env or headers"
            )
        return self


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    data_dir: Path = Path(".modelyard")
    #: PostgreSQL for many replicas (postgresql://...); None: SQLite in data_dir
    database_url: str | None = None
    #: Redis shared by replicas (redis://...): budgets, rate limits, breaker state; None: in memory
    redis_url: str | None = None
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    local_model_threads: int | None = Field(default=None, ge=1)
    local_context: int = Field(default=4096, ge=256)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return None if value is None else database_url(value)


class Limits(_Section):
    """Bounds on one request and on one upstream answer (see the module docstring)."""

    # orjson writes at most 254 levels: a deeper body could be read but not forwarded
    max_json_depth: int = Field(default=64, ge=2, le=200)
    max_messages: int = Field(default=4096, ge=1)
    # the request models allow 16 choices at most (``types._Sampling.n``): lower only
    max_n: int = Field(default=16, ge=1, le=16)
    max_tokens: int = Field(default=1_000_000, ge=1)
    max_request_line_bytes: int = Field(default=8190, ge=256, le=1024 * 1024)
    max_header_bytes: int = Field(default=8190, ge=256, le=1024 * 1024)
    max_headers: int = Field(default=128, ge=16, le=4096)
    max_upstream_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)


def database_url(value: str) -> str:
    """A PostgreSQL or SQLite URL in SQLAlchemy's form (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    if value.startswith(("postgresql+psycopg://", "sqlite:///")):
        return value
    raise ValueError("database_url must be a postgresql:// or sqlite:/// URL")


class Settings(_Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: Limits = Field(default_factory=Limits)
    embedded_models: bool = True
    deployments: list[Deployment] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    health: HealthSettings = Field(default_factory=HealthSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.embedded_models:
            names = {d.name for d in self.deployments}
            if LOCAL_CHAT not in names:
                self.deployments.append(
                    Deployment(
                        name=LOCAL_CHAT,
                        provider="local",
                        model=LOCAL_CHAT,
                        context_window=self.server.local_context,
                        prices=Prices(input=0, output=0),
                    )
                )
            if LOCAL_EMBEDDINGS not in names:
                self.deployments.append(
                    Deployment(
                        name=LOCAL_EMBEDDINGS,
                        provider="local",
                        model=LOCAL_EMBEDDINGS,
                        kind="embeddings",
                        context_window=256,
                        prices=Prices(input=0, output=0),
                    )
                )
        seen: set[str] = set()
        for dep in self.deployments:
            if dep.name in seen:
                raise ValueError(f"deployment name {dep.name!r} is used twice")
            seen.add(dep.name)
        for alias, target in self.aliases.items():
            if target not in seen:
                raise ValueError(f"alias {alias!r} points at unknown deployment {target!r}")
            if alias in seen:
                raise ValueError(f"alias {alias!r} has the name of a deployment")
        routes: set[str] = set()
        for route in self.routes:
            check_route(route, seen)
            if route.name in routes or route.name in self.aliases:
                raise ValueError(f"route name {route.name!r} is used twice")
            routes.add(route.name)
        return self

    def all_routes(self) -> list[RouteConfig]:
        """Declared routes, and each alias as a one-deployment route."""
        aliases = [
            RouteConfig.model_validate({"name": alias, "deployments": [target]})
            for alias, target in self.aliases.items()
        ]
        return [*self.routes, *aliases]

    def deployment(self, name: str) -> Deployment | None:
        target = self.aliases.get(name, name)
        for dep in self.deployments:
            if dep.name == target:
                return dep
        return None


def check_route(route: RouteConfig, deployments: set[str]) -> None:
    """A route may only name deployments that exist, and not share a deployment's name."""
    if route.name in deployments:
        raise ValueError(f"route {route.name!r} has the name of a deployment")
    for member in route.deployments:
        if member.name not in deployments:
            raise ValueError(f"route {route.name!r} names unknown deployment {member.name!r}")
    semantic = route.cache.semantic if route.cache is not None else None
    if semantic is not None and semantic.embedding not in deployments:
        raise ValueError(
            f"route {route.name!r}: cache.semantic.embedding {semantic.embedding!r} "
            "is not a deployment"
        )
    if route.learned is not None:
        from modelyard.routing.learned.serving import LearnedServing

        LearnedServing.load(route, deployments)  # the file must load and fit the route


def credential(dep: Deployment, env: dict[str, str] | None = None) -> str | None:
    """The API key of a deployment: its ``api_key_env``, else the host's default variable."""
    environ = os.environ if env is None else env
    variable = dep.api_key_env
    host = HOSTS.get(dep.provider)
    if variable is None and host is not None:
        variable = host.key_env
    if variable is None and dep.provider in ("anthropic", "gemini"):
        variable = {"anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}[dep.provider]
    if variable is None:
        return None
    value = environ.get(variable)
    if not value:
        raise MissingCredentialError(variable, dep.name)
    return value


def _format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = (
                node[item].get("name")
                if isinstance(node, list) and isinstance(node[item], dict)
                else None
            )
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name or item}]"]
            node = node[item] if isinstance(node, list) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without quoting the file: its lines may hold header secrets."""
    if isinstance(exc, yaml.reader.ReaderError):  # a byte that is not text
        return f"{exc.reason} at position {exc.position}"
    if not isinstance(exc, yaml.MarkedYAMLError):
        return type(exc).__name__
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{exc.problem or exc.context or 'a syntax error'}{where}"


def _routers_beside(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A route's relative ``learned.router`` path is read beside the config file."""
    routes = data.get("routes")
    if not isinstance(routes, list):
        return data
    fixed: list[Any] = []
    for route in routes:
        learned = route.get("learned") if isinstance(route, dict) else None
        path = learned.get("router") if isinstance(learned, dict) else None
        if isinstance(learned, dict) and isinstance(path, str) and not Path(path).is_absolute():
            route = {**route, "learned": {**learned, "router": str(folder / path)}}
        fixed.append(route)
    return {**data, "routes": fixed}


def load_settings(
    config: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Read the YAML file (if any), apply environment and flag overrides, validate."""
    environ = os.environ if env is None else env
    source = str(config) if config else "<defaults>"
    data: dict[str, Any] = {}
    if config is None and environ.get("MODELYARD_CONFIG"):
        config = Path(environ["MODELYARD_CONFIG"])
        source = str(config)
    if config is not None:
        try:
            loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file: {exc.strerror}", source=source) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}", source=source) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("the top level must be a mapping", source=source)
        data = _routers_beside(loaded, config.parent)
    server = dict(data.get("server") or {})
    for key, var in (
        ("host", "MODELYARD_HOST"),
        ("port", "MODELYARD_PORT"),
        ("data_dir", "MODELYARD_DATA_DIR"),
        ("max_body_bytes", "MODELYARD_MAX_BODY_BYTES"),
        ("database_url", "MODELYARD_DATABASE_URL"),
        ("redis_url", "MODELYARD_REDIS_URL"),
    ):
        if environ.get(var):
            server[key] = environ[var]
    for key, value in (overrides or {}).items():
        if value is not None:
            server[key] = value
    observability = data.get("observability") or {}
    for key, var in (
        ("otlp_endpoint", "MODELYARD_OTLP_ENDPOINT"),
        ("log_format", "MODELYARD_LOG_FORMAT"),
    ):
        if environ.get(var) and isinstance(observability, dict):  # else validation says why
            observability = {**observability, key: environ[var].strip()}
    data = {**data, "server": server, "observability": observability}
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _format_loc(tuple(err["loc"]), data) or "<top level>"
        message = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(message + more, source=source, key=key) from None
