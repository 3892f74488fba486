"""Serving a chat request on a route with a learned router: the cascade.

The route's ``CascadePolicy`` says which model to call next; each call is one
ordinary routed run on that model's deployment alone (``Router.run`` on a
one-provider plan: retries, breakers and the decision's attempts as usual),
answered whole. The answer of the model the policy stops at is returned; a
client that asked for a stream gets it as a stream in its own wire format
(``send_as_stream``). The usage and cost of every call are summed for the
ledger, and each call counts toward its deployment's committed spend. The
route's ``timeout`` bounds the whole cascade; when a later call fails or the
deadline passes, the best answer so far is returned and the decision says why
the cascade was cut short. Not here: fitting or choosing the operating point
(``routing.learned.serving``), sampling traffic to learn from
(``routing.learned.live``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from modelyard.api.context import DEPLOYMENT_HEADER, REQUEST_ID, SSE_HEADERS
from modelyard.errors import GatewayError, InvalidRequestError, UpstreamUnavailableError
from modelyard.governance.prices import cost_micros
from modelyard.providers.base import Provider
from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.live import LiveLearner, Sample, answer_text
from modelyard.routing.learned.model import pick_answer
from modelyard.routing.learned.serving import LearnedServing
from modelyard.routing.router import Plan, Router
from modelyard.types import ChatRequest, ChatResponse, CompletionRequest, Usage
from modelyard.wire.chunks import response_chunks

if TYPE_CHECKING:
    from modelyard.api.generation import ChunkEncoder

Answer = Callable[[Provider], Awaitable[ChatResponse]]


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


class Cascade:
    """One request's cascade: its calls, their summed usage and cost, the answer chosen."""

    def __init__(self, router: Router, plan: Plan, serving: LearnedServing, answer: Answer):
        self.router = router
        self.plan = plan
        self.serving = serving
        self.answer = answer
        self.usage = Usage()
        self.cost = 0  # micro-dollars, each call at its own deployment's prices
        self.answers: dict[str, tuple[Provider, ChatResponse]] = {}
        self.called: list[CalledAnswer] = []

    async def run(self, prompt: str) -> tuple[Provider, ChatResponse]:
        serving = self.serving
        timeout = self.plan.route.timeout
        cut: str | None = None
        try:
            async with asyncio.timeout(timeout):
                answer_from = (await serving.policy.run(prompt, self._call)).answer_from
        except (GatewayError, TimeoutError) as err:
            if not self.called:
                if isinstance(err, TimeoutError):
                    raise UpstreamUnavailableError(
                        f"route {self.plan.route.name!r}: no answer within its deadline "
                        f"of {timeout}s"
                    ) from None
                raise
            cut = err.message if isinstance(err, GatewayError) else f"deadline of {timeout}s"
            answer_from = ""
        router = serving.router
        called = tuple(self.called)
        estimates = router.prompt_estimates(prompt, (c.model for c in called))
        confidence = router.confidences(prompt, called, estimates)
        if cut is not None:  # the best answer so far
            answer_from, _ = pick_answer({c.model: c.answer for c in called}, confidence)
        provider, response = self.answers[answer_from]
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
                for c in called
            ],
            "answer_from": answer_from,
            "deployment": provider.name,
            **({"cut_short": cut} if cut is not None else {}),
        }
        return provider, response

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
        provider, response = await self.router.run(one, self.answer)
        usage = response.usage
        self.usage.add(usage)
        dep = provider.deployment
        if dep.prices is not None:
            self.cost += cost_micros(dep.prices, usage)
        if dep.contract is not None:
            self.router.spent(dep.name, usage.input_tokens, usage.output_tokens)
        self.answers[model] = (provider, response)
        answer = CalledAnswer(
            model,
            self.serving.extract(answer_text(response)),
            usage.input_tokens,
            usage.output_tokens,
        )
        self.called.append(answer)
        return answer

    def offer(self, learner: LiveLearner, request_id: str, req: ChatRequest, prompt: str) -> None:
        """Hand the answers to traffic sampling, when the route samples."""
        if self.serving.sample is not None:
            answers = {m: r for m, (_, r) in self.answers.items()}
            learner.offer(self.serving, Sample(request_id, prompt, req, answers))


def learned_request(route: str, req: ChatRequest | CompletionRequest) -> ChatRequest:
    """A learned route answers chat requests (any chat wire format); say so otherwise."""
    if not isinstance(req, ChatRequest):
        raise InvalidRequestError(
            f"route {route!r} is served by a learned router, which answers chat requests only "
            "(/v1/chat/completions, /v1/responses, /v1/messages)"
        )
    if req.n != 1:
        raise InvalidRequestError(
            f"route {route!r} is served by a learned router, which gives one answer: send n=1",
            param="n",
        )
    return req


async def send_as_stream(
    request: web.Request, deployment: str, response: ChatResponse, encoder: ChunkEncoder
) -> tuple[web.StreamResponse, bytes]:
    """A whole answer sent as the stream the client asked for, in its wire format; the bytes."""
    reply = web.StreamResponse(headers=SSE_HEADERS)
    reply.headers["X-Request-Id"] = request[REQUEST_ID]
    reply.headers[DEPLOYMENT_HEADER] = deployment
    await reply.prepare(request)
    out = b"".join(encoder.feed(c) for c in response_chunks(response)) + encoder.close()
    await reply.write(out)
    return reply, out
