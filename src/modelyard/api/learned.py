"""Serving an OpenAI chat completion on a route with a learned router: the cascade.

The route's ``CascadePolicy`` says which model to call next; each call is one
ordinary routed run on that model's deployment alone (``Router.run`` on a
one-provider plan: retries, breakers and the decision's attempts as usual).
The answer of the model the policy stops at is returned as it came; the usage
and cost of every call are summed for the ledger. Not here: fitting or
choosing the operating point (``routing.learned.serving``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from modelyard.errors import InvalidRequestError, UpstreamUnavailableError
from modelyard.governance.prices import cost_micros
from modelyard.providers.base import Provider
from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.serving import LearnedServing
from modelyard.routing.router import Plan, Router
from modelyard.types import ChatRequest, CompletionRequest, Usage

Once = Callable[[Provider], Awaitable[tuple[Usage, bytes]]]


def prompt_text(req: ChatRequest) -> str:
    """What the router reads as the prompt: the text of the user messages, in order."""
    texts: list[str] = []
    for m in req.messages:
        if m.role != "user":
            continue
        if isinstance(m.content, str):
            texts.append(m.content)
        elif isinstance(m.content, list):
            texts.extend(p.text for p in m.content if p.type == "text" and p.text)
    return "\n".join(texts)


def _content(data: bytes) -> str | None:
    """The first choice's text of an OpenAI chat answer, if there is one."""
    try:
        body: Any = orjson.loads(data)
        content = body["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


class Cascade:
    """One request's cascade: its calls, their summed usage and cost, the answer chosen."""

    def __init__(self, router: Router, plan: Plan, serving: LearnedServing, once: Once):
        self.router = router
        self.plan = plan
        self.serving = serving
        self.once = once
        self.usage = Usage()
        self.cost = 0  # micro-dollars, each call at its own deployment's prices
        self.answers: dict[str, tuple[Provider, bytes]] = {}

    async def run(self, prompt: str) -> tuple[Provider, bytes]:
        serving = self.serving
        routed = await serving.policy.run(prompt, self._call)
        provider, data = self.answers[routed.answer_from]
        router = serving.router
        estimates = router.prompt_estimates(prompt, (c.model for c in routed.called))
        confidence = router.confidences(prompt, routed.called, estimates)
        point = serving.point
        self.plan.decision.chosen = provider.name
        self.plan.decision.learned = {
            "point": {
                "chain": list(point.chain),
                "threshold": point.threshold,
                "est_cost": point.est_cost,
                "est_quality": point.est_quality,
            },
            "called": [
                {
                    "model": c.model,
                    "deployment": serving.deployments[c.model],
                    "answer": c.answer,
                    "prompt_estimate": round(estimates[c.model], 6),
                    "confidence": round(confidence[c.model], 6),
                }
                for c in routed.called
            ],
            "answer_from": routed.answer_from,
            "deployment": provider.name,
        }
        return provider, data

    async def _call(self, model: str) -> CalledAnswer:
        name = self.serving.deployments[model]
        provider = next((p for p in self.plan.providers if p.name == name), None)
        if provider is None:
            why = self.plan.decision.removed.get(name, "not available")
            raise UpstreamUnavailableError(
                f"route {self.plan.route.name!r}: its learned router calls {model!r} on "
                f"deployment {name!r}, which cannot serve this request ({why})"
            )
        one = Plan(self.plan.route, [provider], self.plan.decision)
        provider, (usage, data) = await self.router.run(one, self.once)
        self.usage.add(usage)
        prices = provider.deployment.prices
        if prices is not None:
            self.cost += cost_micros(prices, usage)
        self.answers[model] = (provider, data)
        return CalledAnswer(
            model, self.serving.extract(_content(data)), usage.input_tokens, usage.output_tokens
        )


def refuse_learned(route: str, path: str, req: ChatRequest | CompletionRequest) -> None:
    """A learned route serves whole OpenAI chat completions only; say so otherwise."""
    if path != "chat/completions" or not isinstance(req, ChatRequest):
        raise InvalidRequestError(
            f"route {route!r} is served by a learned router, which answers only "
            "POST /v1/chat/completions"
        )
    if req.stream:
        raise InvalidRequestError(
            f"route {route!r} is served by a learned router, which does not stream: "
            "send the request with stream=false",
            param="stream",
        )
