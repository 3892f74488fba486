"""The configuration of routing: routes, their policies, health limits and contract terms.

These are sections of ``modelyard.settings.Settings`` (YAML keys ``routes``,
``health`` and a deployment's ``contract``), validated at start and again
when the admin API replaces a route. Behaviour lives in the sibling modules.

A route::

    routes:
      - name: assistant-chat
        deployments: [primary, backup]          # or {name, weight, tier} items
        policy: fallback                        # or weighted | latency | cost, or a list
        retries: 1                              # extra tries per deployment, jittered backoff
        timeout: 60                             # request deadline, seconds
        hedge: {after_ms: 800}                  # or {percentile: 95}
        learned:                                # optional: a fitted learned router
          router: routers/qa.npz                # written by ``modelyard router fit``
          target: {quality: 0.9}                # or cost_per_request | pay_per_quality (USD)
          models: {gpt-4o-mini: mini}           # router model -> deployment (default: same name)
          answer: number                        # or "json:FIELD" | "none"
          sample:                               # optional: learn from live traffic
            share: 0.02                         # of the route's answered requests
            reference: gpt-4o                   # deployment whose answer is taken as right
            judge: match                        # or a deployment: an LLM judge
            budget_per_day: 5.0                 # USD for the extra calls, per process
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelyard.cache.config import RouteCache

Interaction = Literal["stateless", "stateful"]
PolicyName = Literal["fallback", "weighted", "latency", "cost"]
POLICIES: tuple[PolicyName, ...] = ("fallback", "weighted", "latency", "cost")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Contract(_Section):
    """Contract terms of a deployment, enforced before any policy chooses.

    ``None`` means the term does not restrict. ``classifications`` are the data
    classes a request may carry to this deployment (request header
    ``X-Data-Classification``); ``region`` is where it runs, matched against a
    request's ``X-Data-Region`` allow-list; ``exclusive`` names interaction
    kinds that must go to this deployment while it is healthy;
    ``committed_monthly_spend`` (USD) makes it preferred until the month's
    spend reaches the commitment.
    """

    kinds: list[Interaction] | None = None
    classifications: list[str] | None = None
    region: str | None = None
    exclusive: list[Interaction] = Field(default_factory=list)
    committed_monthly_spend: float | None = Field(default=None, ge=0)


class RouteMember(_Section):
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    tier: int = Field(default=0, ge=0)  # lower tiers are tried first


class Hedge(_Section):
    """Start the next candidate when the first has not answered within a threshold."""

    after_ms: float | None = Field(default=None, gt=0)
    percentile: float | None = Field(default=None, gt=0, lt=100)

    @model_validator(mode="after")
    def _one_threshold(self) -> Hedge:
        if (self.after_ms is None) == (self.percentile is None):
            raise ValueError("hedge needs exactly one of after_ms or percentile")
        return self


class LearnedTarget(_Section):
    """The one knob of a learned route: which operating point of the router serves it."""

    quality: float | None = Field(default=None, ge=0, le=1)
    cost_per_request: float | None = Field(default=None, ge=0)
    pay_per_quality: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_knob(self) -> LearnedTarget:
        knobs = (self.quality, self.cost_per_request, self.pay_per_quality)
        if sum(v is not None for v in knobs) != 1:
            raise ValueError(
                "target needs exactly one of quality, cost_per_request, pay_per_quality"
            )
        return self


class LearnedSample(_Section):
    """Grow the route's outcome table from live traffic (``routing.learned.live``).

    A ``share`` of answered requests is also sent, in the background, to every
    router model the cascade did not call and to the ``reference`` deployment;
    each model's answer is scored against the reference's by ``judge``
    (``match``: the extracted answers are equal; else a judge deployment), and
    the row is stored for ``modelyard router export``. The extra calls are
    booked in the ledger and stop for the day once they cost ``budget_per_day``.
    """

    share: float = Field(gt=0, le=1)
    reference: str = Field(min_length=1)
    judge: str = Field(default="match", min_length=1)
    budget_per_day: float = Field(gt=0)
    max_pending: int = Field(default=8, ge=1, le=256)


class LearnedRoute(_Section):
    """Serve a route by a fitted learned router's cascade (``routing.learned.serving``)."""

    router: str = Field(min_length=1)
    target: LearnedTarget
    models: dict[str, str] = Field(default_factory=dict)
    answer: str = Field(default="number", pattern=r"^(number|none|json:.+)$")
    sample: LearnedSample | None = None


class RouteConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:/\-]+$")
    deployments: list[RouteMember] = Field(min_length=1)
    policy: list[PolicyName] = Field(default_factory=lambda: list[PolicyName](["fallback"]))
    retries: int = Field(default=1, ge=0, le=10)
    timeout: float | None = Field(default=None, gt=0)
    hedge: Hedge | None = None
    learned: LearnedRoute | None = None
    cache: RouteCache | None = None  # response caching (``modelyard.cache.config``)
    log_content: bool = False  # log prompts and answers (``observability.logs``); never by default

    @field_validator("deployments", mode="before")
    @classmethod
    def _names_as_members(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _distinct(self) -> RouteConfig:
        names = [m.name for m in self.deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"route {self.name!r} lists a deployment twice")
        return self


class HealthSettings(_Section):
    failure_threshold: int = Field(default=5, ge=1)  # consecutive failures that open a breaker
    open_seconds: float = Field(default=30.0, gt=0)  # before a half-open probe
    cooldown_seconds: float = Field(default=5.0, ge=0)  # after a 429 without Retry-After
    backoff_base_ms: float = Field(default=100.0, ge=0)
    backoff_max_ms: float = Field(default=4000.0, ge=0)
    latency_alpha: float = Field(default=0.2, gt=0, le=1)  # weight of a new latency sample
