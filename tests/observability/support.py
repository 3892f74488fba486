"""Reading ``/metrics`` the way Prometheus does: parsed by prometheus-client's own parser."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Gateway


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(
            v
            for n, have, v in self.samples
            if n == name and all(have.get(k) == w for k, w in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {have[label] for n, have, _ in self.samples if n == name and label in have}

    def has(self, name: str, **labels: str) -> bool:
        return any(
            n == name and all(have.get(k) == w for k, w in labels.items())
            for n, have, _ in self.samples
        )


def parse(text: str) -> Scrape:
    samples = [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    return Scrape(text, samples)


def scrape(gw: Gateway) -> Scrape:
    """``GET /metrics``, without credentials, as a Prometheus server sends it."""
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return parse(resp.read().decode())
