"""Health of each deployment: circuit breaker, 429 cooldown, moving latency estimates.

One ``DeploymentHealth`` per deployment, shared by every route that uses it,
kept in process memory. Reading health never changes it: ``blocked()`` is
pure, and only ``begin()`` turns an open breaker into a half-open probe.

Replicas share what they learn through ``on_change``, a hook called on
transitions only (the breaker opened, it closed again, a 429 cooldown was set
or extended), never on every request; ``routing.shared_health`` sets it when
Redis is configured and tells the others' records through the ``adopt_*``
methods, which never call the hook (the news is not ours to spread again).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from modelyard.routing.config import HealthSettings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
OPENED, CLOSED_AGAIN, COOLING = "opened", "closed", "cooling"  # what on_change is told

#: called with the record and what happened to it, e.g. ``(health, OPENED)``
HealthHook = Callable[["DeploymentHealth", str], None]


class DeploymentHealth:
    __slots__ = (
        "_samples",
        "cooldown_until",
        "failures",
        "latency_ms",
        "name",
        "on_change",
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
        self.on_change: HealthHook | None = None

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
        was = self.state
        self.state = CLOSED
        self.failures = 0
        self.probing = False
        alpha = self.settings.latency_alpha
        prev = self.latency_ms
        self.latency_ms = latency_ms if prev is None else prev + alpha * (latency_ms - prev)
        self._samples.append(latency_ms)
        if was != CLOSED and self.on_change is not None:
            self.on_change(self, CLOSED_AGAIN)

    def failed(self, now: float) -> None:
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN or self.failures >= self.settings.failure_threshold:
            was = self.state
            self.state = OPEN
            self.opened_at = now
            if was != OPEN and self.on_change is not None:
                self.on_change(self, OPENED)

    def rate_limited(self, now: float, retry_after: float | None) -> None:
        wait = retry_after if retry_after is not None else self.settings.cooldown_seconds
        self.probing = False
        if now + wait > self.cooldown_until:
            self.cooldown_until = now + wait
            if self.on_change is not None:
                self.on_change(self, COOLING)

    def abandoned(self) -> None:
        """An attempt ended without a verdict (cancelled): free the probe slot."""
        self.probing = False

    # Told by another replica: times are on this process's monotonic clock already.

    def adopt_open(self, opened_at: float, failures: int) -> None:
        """Another replica opened the breaker at ``opened_at``; a later local opening stands."""
        if self.state == OPEN and self.opened_at >= opened_at:
            return
        self.state = OPEN  # a local probe in flight still reports when it ends
        self.opened_at = opened_at
        self.failures = failures

    def adopt_closed(self, closed_at: float) -> None:
        """Another replica's probe succeeded; a breaker opened here since then stays open."""
        if self.state != CLOSED and self.opened_at <= closed_at:
            self.state = CLOSED
            self.failures = 0

    def adopt_cooldown(self, until: float) -> None:
        self.cooldown_until = max(self.cooldown_until, until)

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
        self.on_change: HealthHook | None = None

    def __missing__(self, name: str) -> DeploymentHealth:
        health = self[name] = DeploymentHealth(name, self.settings)
        health.on_change = self.on_change
        return health

    def watch(self, hook: HealthHook | None) -> None:
        """Call ``hook`` on the transitions of every record, present and future."""
        self.on_change = hook
        for health in self.values():
            health.on_change = hook

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
