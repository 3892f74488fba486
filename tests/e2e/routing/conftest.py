"""The routing tests' gateway and upstreams (defined in support.py)."""

from tests.e2e.routing.support import client, gateway, up, upstreams

__all__ = ["client", "gateway", "up", "upstreams"]
