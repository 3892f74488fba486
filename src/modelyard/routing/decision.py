"""The record of one routing decision: candidates, what removed each, the attempts, the choice.

Stored for every request (``storage.request_log``) and returned by
``GET /v1/routing/decisions/{request_id}``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import GatewayError


@dataclass(slots=True)
class Attempt:
    deployment: str
    retry: int  # 0 for the first try on this deployment
    hedge: bool = False
    outcome: str = "pending"  # ok, cancelled, or the error class
    status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0

    def fail(self, err: GatewayError, t0: float) -> None:
        self.outcome = type(err).__name__
        self.status = err.status
        self.error = err.message[:500]
        self.latency_ms = (time.perf_counter() - t0) * 1000

    def succeed(self, t0: float) -> None:
        self.outcome = "ok"
        self.status = 200
        self.latency_ms = (time.perf_counter() - t0) * 1000


@dataclass(slots=True)
class Decision:
    request_id: str
    route: str
    kind: str
    policy: Sequence[str]
    candidates: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)  # deployment -> the term or policy
    order: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    chosen: str | None = None
    error: str | None = None
    ts: float = field(default_factory=time.time)
    team: str | None = None  # whose request it was: only that team may read the decision
    learned: dict[str, Any] | None = None  # a learned route's point, cascade and scores
    cache: dict[str, Any] | None = None  # the response cache's lookup: hit or miss, and how

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "created": self.ts,
            "route": self.route,
            "kind": self.kind,
            "policy": list(self.policy),
            "candidates": self.candidates,
            "removed": self.removed,
            "order": self.order,
            "attempts": [
                {
                    "deployment": a.deployment,
                    "retry": a.retry,
                    "hedge": a.hedge,
                    "outcome": a.outcome,
                    "status": a.status,
                    "error": a.error,
                    "latency_ms": round(a.latency_ms, 3),
                }
                for a in self.attempts
            ],
            "chosen": self.chosen,
            "error": self.error,
            **({"learned": self.learned} if self.learned is not None else {}),
            **({"cache": self.cache} if self.cache is not None else {}),
        }
