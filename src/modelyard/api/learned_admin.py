"""The admin API of learned routes: the outcome table their traffic sampling has grown.

``GET /admin/learned/{route}/outcomes?since=UNIX_TIME`` answers
``{"route", "outcomes": [outcome-table lines], "prices": {model: {input, output}}}``:
the rows ``routing.learned.live`` stored for the route, oldest first, and the
USD per million tokens of each router model's deployment, which is what
``modelyard router export`` writes for ``modelyard router fit``. A refitted
router file is put in service by ``PUT /admin/routes/{route}`` (the file is
read again) or a restart.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from modelyard.api.body import json_response
from modelyard.api.context import LEARNER, PRINCIPAL, ROUTER
from modelyard.errors import InvalidRequestError, NotFoundError, PermissionDeniedError


async def outcomes(request: web.Request) -> web.Response:
    if not request[PRINCIPAL].admin:
        raise PermissionDeniedError("This key is not an admin key")
    name = request.match_info["route"]
    router = request.app[ROUTER]
    serving = router.learned.get(name)
    if serving is None:
        raise NotFoundError(f"route {name!r} is not served by a learned router")
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        raise InvalidRequestError("since must be a Unix time in seconds", param="since") from None
    store = request.app[LEARNER].outcomes
    rows = await asyncio.to_thread(lambda: list(store.export(name, since)))
    prices = {}
    for model, deployment in serving.deployments.items():
        dep_prices = router.deployments[deployment].prices
        if dep_prices is not None:
            prices[model] = {"input": dep_prices.input, "output": dep_prices.output}
    return json_response({"route": name, "outcomes": rows, "prices": prices})


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/learned/{route}/outcomes", outcomes)]
