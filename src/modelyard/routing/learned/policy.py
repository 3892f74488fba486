"""The serving side of the learned router: decide the next call from the answers so far.

``CascadePolicy.decide(prompt, called)`` is the one decision function: given the
answers of the models called so far (answers and tokens only), it returns either
``Call(model)`` or ``Stop(answer_from)``. ``run`` drives it with any async
``call(model)``; replay answers from a recorded table, a gateway route from real
models. Not here: fitting, files, or how a model is actually called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from modelyard.routing.learned.features import CalledAnswer
from modelyard.routing.learned.model import LearnedRouter, OperatingPoint, pick_answer


@dataclass(frozen=True, slots=True)
class Call:
    model: str


@dataclass(frozen=True, slots=True)
class Stop:
    answer_from: str


@dataclass(frozen=True, slots=True)
class Routed:
    called: tuple[CalledAnswer, ...]
    answer_from: str

    @property
    def answer(self) -> CalledAnswer:
        return next(c for c in self.called if c.model == self.answer_from)


class CascadePolicy:
    """Call the point's models cheapest first; stop once the best answer looks right enough.

    Models giving the same answer vote together (``pick_answer``); their score,
    calibrated and weighed against the next call (``LearnedRouter.stop_score``), is
    compared with the operating point's threshold.
    """

    def __init__(self, router: LearnedRouter, point: OperatingPoint):
        self.router = router
        self.point = point

    def decide(
        self,
        prompt: str,
        called: Sequence[CalledAnswer],
        estimates: dict[str, float] | None = None,
    ) -> Call | Stop:
        chain = self.point.chain
        if not called:
            return Call(chain[0])
        if tuple(c.model for c in called) != chain[: len(called)]:
            raise ValueError("the answers given are not a prefix of this policy's cascade")
        if estimates is None:
            estimates = self.router.prompt_estimates(prompt, (c.model for c in called))
        confidence = self.router.confidences(prompt, called, estimates)
        best, score = pick_answer({c.model: c.answer for c in called}, confidence)
        if len(called) == len(chain):
            return Stop(best)
        following = chain[len(called)]
        if self.router.stop_score(chain[: len(called)], following, score) >= self.point.threshold:
            return Stop(best)
        return Call(following)

    async def run(self, prompt: str, call: Callable[[str], Awaitable[CalledAnswer]]) -> Routed:
        called: list[CalledAnswer] = []
        estimates = self.router.prompt_estimates(prompt, self.point.chain)
        while True:
            step = self.decide(prompt, called, estimates)
            if isinstance(step, Stop):
                return Routed(tuple(called), step.answer_from)
            called.append(await call(step.model))
