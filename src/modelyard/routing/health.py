"""Health of each deployment: circuit breaker, 429 cooldown, moving latency estimates.

One ``DeploymentHealth`` per deployment, shared by every route that uses it,
kept in process memory (each replica learns on its own; the scale-out issue
may share it through Redis). Reading health never changes it: ``blocked()``
is pure, and only ``begin()`` turns an open breaker into a half-open probe.
"""

from __future__ import annotations

import time
from collections import deque

from modelyard.routing.config import HealthSettings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class DeploymentHealth:
    __slots__ = (
        "_samples",
        "cooldown_until",
        "failures",
        "latency_ms",
        "name",
        "opened_at",
        "probing",
        "settings",
        "state",
    )

    def __init__(self, name: str, settings: HealthSettings):
        self.name = name
        self.settings = settings
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False
        self.cooldown_until = 0.0
        self.latency_ms: float | None = None  # time to first token for streams
        self._samples: deque[float] = deque(maxlen=256)

    def blocked(self, now: float) -> str | None:
        """Why the deployment may not take a request now, or None."""
        if now < self.cooldown_until:
            return f"cooling down after a 429 for {self.cooldown_until - now:.1f}s more"
        if self.state == OPEN and now - self.opened_at < self.settings.open_seconds:
            return f"circuit breaker open after {self.failures} failures"
        if self.state != CLOSED and self.probing:
            return "circuit breaker half-open, a probe is in flight"
        return None

    def begin(self, now: float) -> None:
        """An attempt starts: an open breaker whose wait is over lets this one probe."""
        if self.state == OPEN:
            self.state = HALF_OPEN
        if self.state == HALF_OPEN:
            self.probing = True

    def succeeded(self, latency_ms: float) -> None:
        self.state = CLOSED
        self.failures = 0
        self.probing = False
        alpha = self.settings.latency_alpha
        prev = self.latency_ms
        self.latency_ms = latency_ms if prev is None else prev + alpha * (latency_ms - prev)
        self._samples.append(latency_ms)

    def failed(self, now: float) -> None:
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN or self.failures >= self.settings.failure_threshold:
            self.state = OPEN
            self.opened_at = now

    def rate_limited(self, now: float, retry_after: float | None) -> None:
        wait = retry_after if retry_after is not None else self.settings.cooldown_seconds
        self.cooldown_until = max(self.cooldown_until, now + wait)
        self.probing = False

    def abandoned(self) -> None:
        """An attempt ended without a verdict (cancelled): free the probe slot."""
        self.probing = False

    def percentile(self, p: float) -> float | None:
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class HealthBoard(dict[str, DeploymentHealth]):
    """Health by deployment name; a name not seen before gets a fresh record."""

    def __init__(self, settings: HealthSettings, names: list[str]):
        super().__init__((n, DeploymentHealth(n, settings)) for n in names)
        self.settings = settings

    def __missing__(self, name: str) -> DeploymentHealth:
        health = self[name] = DeploymentHealth(name, self.settings)
        return health

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = time.monotonic()
        return {
            n: {
                "state": h.state,
                "failures": h.failures,
                "blocked": h.blocked(now),
                "latency_ms": h.latency_ms,
            }
            for n, h in self.items()
        }
