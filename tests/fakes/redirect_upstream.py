"""An upstream that answers every call with a redirect to a URL of the test's choosing.

A gateway that followed it would carry the request, and with it the vendor
key, to wherever ``Location`` points; the SSRF tests aim it at a canary.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tests.fakes.harness import Recorder


@dataclass
class Redirect:
    """What the fake answers now; tests change it between calls."""

    location: str
    status: int = 302


def create_redirect_upstream(recorder: Recorder, redirect: Redirect) -> web.Application:
    """Every request, on any path, answers ``redirect.status`` with its ``Location``."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await recorder.record(request)
        return web.Response(
            status=redirect.status,
            headers={"Location": redirect.location},
            body=b'{"moved": true}',
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app
