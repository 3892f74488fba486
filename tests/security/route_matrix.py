"""The role-by-route matrix: every route the gateway registers, who may call it, how to call it.

``MATRIX`` is keyed by ``(method, canonical path)`` exactly as
``app.router.routes()`` lists them (HEAD rides on its GET). A route added to
the gateway without a row here fails ``test_route_inventory``: whoever adds
one must decide who may call it. ``OPEN`` is the allow-list of routes that
answer without any key; nothing else may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["open", "client", "admin", "dashboard", "dashboard_page"]
Role = Literal["none", "invalid", "revoked", "revoked_admin", "team", "admin"]
ROLES: tuple[Role, ...] = ("none", "invalid", "revoked", "revoked_admin", "team", "admin")

# what each kind of route answers each role: a status, "login" (the auth layer's redirect to
# the bare login page, setting no cookie), or "allowed" (neither 401 nor 403 nor "login" nor
# 5xx: the handler ran and judged the request itself)
Expect = int | Literal["allowed", "login"]
EXPECT: dict[Kind, dict[Role, Expect]] = {
    "open": dict.fromkeys(ROLES, "allowed"),
    "client": {
        "none": 401,
        "invalid": 401,
        "revoked": 401,
        "revoked_admin": 401,
        "team": "allowed",
        "admin": "allowed",
    },
    "admin": {
        "none": 401,
        "invalid": 401,
        "revoked": 401,
        "revoked_admin": 401,
        "team": 403,
        "admin": "allowed",
    },
    "dashboard": {
        "none": 401,
        "invalid": 401,
        "revoked": 401,
        "revoked_admin": 401,
        "team": 403,
        "admin": "allowed",
    },
    # a browser without a session is sent to the login page instead of a bare 401
    "dashboard_page": {
        "none": "login",
        "invalid": 401,
        "revoked": 401,
        "revoked_admin": 401,
        "team": 403,
        "admin": "allowed",
    },
}

# The routes that answer without a key, and why each may.
OPEN = {
    ("GET", "/healthz"): "liveness probe: says only that the process answers",
    ("GET", "/readyz"): "readiness probe: storage and provider reachability, no secrets",
    ("GET", "/metrics"): "Prometheus scrape: counters and latencies, no label holds a secret",
    ("GET", "/ui/login"): "the dashboard's login form",
    ("POST", "/ui/login"): "the login form's submission: it checks the admin key it is sent",
    ("GET", "/ui/static"): "the dashboard's scripts and styles, the same for everyone",
}

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@dataclass(frozen=True)
class Call:
    """How the matrix calls a route: its kind, a concrete path and a body that would succeed."""

    kind: Kind
    path: str
    body: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


MATRIX: dict[tuple[str, str], Call] = {
    # health and metrics
    ("GET", "/healthz"): Call("open", "/healthz"),
    ("GET", "/readyz"): Call("open", "/readyz"),
    ("GET", "/metrics"): Call("open", "/metrics"),
    # the OpenAI wire format
    ("POST", "/v1/chat/completions"): Call("client", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions"): Call(
        "client", "/v1/completions", {"model": "gpt", "prompt": "hi", "max_tokens": 8}
    ),
    ("POST", "/v1/embeddings"): Call("client", "/v1/embeddings", {"model": "gpt", "input": "hi"}),
    ("GET", "/v1/models"): Call("client", "/v1/models"),
    ("GET", "/v1/models/{model}"): Call("client", "/v1/models/gpt"),
    ("GET", "/v1/routing/decisions/{request_id}"): Call("client", "/v1/routing/decisions/req_x"),
    # the OpenAPI document of /v1 (api.openapi): behind a client key like the API it describes
    ("GET", "/openapi.json"): Call("client", "/openapi.json"),
    # Responses
    ("POST", "/v1/responses"): Call(
        "client", "/v1/responses", {"model": "gpt", "input": "hi", "max_output_tokens": 16}
    ),
    ("GET", "/v1/responses/{response_id}"): Call("client", "/v1/responses/resp_x"),
    ("DELETE", "/v1/responses/{response_id}"): Call("client", "/v1/responses/resp_x"),
    ("GET", "/v1/responses/{response_id}/input_items"): Call(
        "client", "/v1/responses/resp_x/input_items"
    ),
    # Anthropic Messages
    ("POST", "/v1/messages"): Call(
        "client",
        "/v1/messages",
        {**CHAT, "model": "claude"},
        headers={"anthropic-version": "2023-06-01"},
    ),
    ("POST", "/v1/messages/count_tokens"): Call(
        "client", "/v1/messages/count_tokens", {"model": "claude", "messages": CHAT["messages"]}
    ),
    # the admin API
    ("GET", "/admin/routes"): Call("admin", "/admin/routes"),
    ("PUT", "/admin/routes/{name}"): Call("admin", "/admin/routes/inv", {"deployments": ["gpt"]}),
    ("DELETE", "/admin/routes/{name}"): Call("admin", "/admin/routes/chat"),
    ("GET", "/admin/health"): Call("admin", "/admin/health"),
    ("GET", "/admin/dependency"): Call("admin", "/admin/dependency"),
    ("GET", "/admin/teams"): Call("admin", "/admin/teams"),
    ("PUT", "/admin/teams/{name}"): Call("admin", "/admin/teams/other", {"limits": {}}),
    ("DELETE", "/admin/teams/{name}"): Call("admin", "/admin/teams/other"),
    ("GET", "/admin/keys"): Call("admin", "/admin/keys"),
    ("POST", "/admin/keys"): Call("admin", "/admin/keys", {"name": "k", "team": "inv"}),
    ("DELETE", "/admin/keys/{id}"): Call("admin", "/admin/keys/key_x"),
    ("GET", "/admin/spend"): Call("admin", "/admin/spend"),
    ("GET", "/admin/budgets"): Call("admin", "/admin/budgets"),
    ("GET", "/admin/learned/{route}/outcomes"): Call("admin", "/admin/learned/chat/outcomes"),
    ("GET", "/admin/debug/runtime"): Call("admin", "/admin/debug/runtime"),
    # the dashboard
    ("GET", "/ui"): Call("dashboard_page", "/ui"),
    ("GET", "/ui/"): Call("dashboard_page", "/ui/"),
    ("GET", "/ui/login"): Call("open", "/ui/login"),
    ("POST", "/ui/login"): Call("open", "/ui/login", form={"key": "not-a-key"}),
    ("POST", "/ui/logout"): Call("dashboard_page", "/ui/logout"),
    ("GET", "/ui/static"): Call("open", "/ui/static/app.css"),
    ("GET", "/ui/api/me"): Call("dashboard", "/ui/api/me"),
    ("GET", "/ui/api/spend_series"): Call("dashboard", "/ui/api/spend_series"),
    ("GET", "/ui/api/latency"): Call("dashboard", "/ui/api/latency"),
    ("GET", "/ui/api/requests"): Call("dashboard", "/ui/api/requests"),
    ("GET", "/ui/api/requests/{request_id}"): Call("dashboard", "/ui/api/requests/req_x"),
    ("GET", "/ui/api/decisions/{request_id}"): Call("dashboard", "/ui/api/decisions/req_x"),
    ("GET", "/ui/api/evals"): Call("dashboard", "/ui/api/evals"),
    ("GET", "/ui/api/evals/report"): Call("dashboard", "/ui/api/evals/report?run=x"),
    ("GET", "/ui/api/dependency"): Call("dashboard", "/ui/api/dependency"),
    ("GET", "/ui/api/health"): Call("dashboard", "/ui/api/health"),
    ("GET", "/ui/api/routes"): Call("dashboard", "/ui/api/routes"),
    ("GET", "/ui/api/models"): Call("dashboard", "/ui/api/models"),
    ("POST", "/ui/api/chat/completions"): Call("dashboard", "/ui/api/chat/completions", CHAT),
}

# POST and PUT routes whose body is not JSON validated by the handler, and why.
BODY_EXEMPT = {
    ("POST", "/ui/logout"): "takes no body: it ends the session its cookie names",
}
# routes whose every body field has a default: ``{}`` is a valid body there, and why
EMPTY_BODY_OK = {
    ("PUT", "/admin/teams/{name}"): "a team's limits all default: {} makes a team without limits",
}
# routes that refuse a bad body with a redirect naming the problem rather than a 4xx
FORM_ROUTES = {("POST", "/ui/login"): "/ui/login?error="}
