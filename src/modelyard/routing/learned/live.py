"""Learning from live traffic: a share of a learned route's requests answered by every model.

``LiveLearner.offer`` is called after a learned route answered a request. With
the route's ``sample.share`` as chance, and while the route has fewer than
``max_pending`` samples running and its sampling spend today is under
``budget_per_day``, it starts a background task that:

1. sends the request (whole, not streamed) to each router model the cascade
   did not call, and to the reference deployment unless a router model is it;
2. scores every model's answer against the reference's: ``match`` compares the
   extracted answers (numbers by value), a judge deployment grades each answer
   with the evaluation harness's rubric (``evals.scorers``); the reference's own
   model scores 1;
3. stores the row (``storage.outcome_store``), which ``modelyard router export``
   writes as an outcome table for ``modelyard router fit``.

Every extra call is one ledger row (endpoint ``learn:sample`` or ``learn:judge``,
the route, no key or team: the operator pays to learn, not the caller) with its
cost, and counts against the day's budget, which is seeded from the ledger so
that a restart does not spend it twice. A sample with any failed call or any
answer that cannot be scored is dropped whole: a partial row would teach the
router nothing about the model that is missing. Not here: the cascade itself
(``api.learned``), or fitting.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelyard.errors import GatewayError
from modelyard.governance.prices import cost_micros
from modelyard.providers.base import Provider
from modelyard.routing.health import HealthBoard
from modelyard.routing.learned.features import canonical_answer
from modelyard.routing.learned.serving import LearnedServing
from modelyard.storage.outcome_store import OutcomeStore
from modelyard.storage.request_log import RequestLog, RequestRecord
from modelyard.types import ChatRequest, ChatResponse, Message, Usage

log = logging.getLogger("modelyard.learn")

SAMPLE_DEADLINE = 600.0  # seconds for one sample's calls, judge included
DAY = 86400.0
JUDGE_OUTPUT_TOKENS = 256


@dataclass(frozen=True, slots=True)
class Sample:
    """What the cascade already has for one request: its answers by router model."""

    request_id: str
    prompt: str
    request: ChatRequest
    answers: dict[str, ChatResponse]


def answer_text(response: ChatResponse) -> str | None:
    return response.choices[0].content if response.choices else None


class SkipSample(Exception):
    """The sample cannot be completed; it is dropped, with the reason logged."""


class LiveLearner:
    """Runs the sampling of every learned route of one gateway process."""

    def __init__(
        self,
        providers: dict[str, Provider],
        health: HealthBoard,
        outcomes: OutcomeStore,
        ledger: RequestLog,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.providers = providers
        self.health = health  # a deployment it blocks is not sampled
        self._seq = itertools.count(1)  # ledger ids of the extra calls: REQUEST/learn/N
        self.outcomes = outcomes
        self.ledger = ledger
        self._rng = rng or random.Random()  # noqa: S311 - sampling traffic, not secrets  # nosec B311
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, int] = {}
        self._spent: dict[str, tuple[float, int]] = {}  # route -> (day start, micro-dollars)
        self._seeding: dict[str, asyncio.Lock] = {}

    def offer(self, serving: LearnedServing, sample: Sample) -> bool:
        """Maybe start sampling this request in the background; True when it started."""
        conf = serving.sample
        if conf is None or self._rng.random() >= conf.share:
            return False
        route = serving.route
        if self._pending.get(route, 0) >= conf.max_pending:
            return False
        spent = self._today(route)
        if spent is not None and spent >= conf.budget_per_day * 1_000_000:
            return False
        self._pending[route] = self._pending.get(route, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(serving, sample))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        """Wait for the samples running now (tests, and a graceful stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------ budget

    def _day(self) -> float:
        now = self._clock()
        return now - now % DAY

    def _today(self, route: str) -> int | None:
        """Micro-dollars sampling spent on the route today; None until read from the ledger."""
        found = self._spent.get(route)
        return found[1] if found is not None and found[0] == self._day() else None

    async def _spent_today(self, route: str) -> int:
        """Today's spend, read from the ledger once a day (so a restart does not spend twice)."""
        lock = self._seeding.setdefault(route, asyncio.Lock())
        async with lock:
            spent = self._today(route)
            if spent is None:
                day = self._day()
                spent = await asyncio.to_thread(self.ledger.learning_spent_since, route, day)
                self._spent[route] = (day, spent)
            return spent

    def _charge(self, route: str, micros: int) -> None:
        """Count a call's cost; a new day's count is read from the ledger, this call included."""
        found = self._spent.get(route)
        if found is not None and found[0] == self._day():
            self._spent[route] = (found[0], found[1] + micros)

    # ------------------------------------------------------------ sampling

    async def _run(self, serving: LearnedServing, sample: Sample) -> None:
        try:
            conf = serving.sample
            assert conf is not None
            if await self._spent_today(serving.route) >= conf.budget_per_day * 1_000_000:
                raise SkipSample("the day's sampling budget is spent")
            async with asyncio.timeout(SAMPLE_DEADLINE):
                row = await self._sample(serving, sample)
            await asyncio.to_thread(
                self.outcomes.save, sample.request_id, serving.route, sample.prompt, *row
            )
        except SkipSample as why:
            log.info("route %r: sample of %s dropped: %s", serving.route, sample.request_id, why)
        except TimeoutError:
            log.warning("route %r: sample of %s timed out", serving.route, sample.request_id)
        except Exception as err:  # a bug must not end the process's sampling
            log.exception("route %r: sample failed: %s", serving.route, type(err).__name__)
        finally:
            self._pending[serving.route] -= 1

    async def _sample(
        self, serving: LearnedServing, sample: Sample
    ) -> tuple[str | None, dict[str, dict[str, Any]]]:
        conf = serving.sample
        assert conf is not None
        req = sample.request.model_copy(update={"stream": False, "stream_options": None, "n": 1})
        answers = dict(sample.answers)
        missing = [m for m in serving.deployments if m not in answers]
        ref_model = next((m for m, d in serving.deployments.items() if d == conf.reference), None)
        calls = [serving.deployments[m] for m in missing]
        if ref_model is None:
            calls.append(conf.reference)
        got = await asyncio.gather(
            *(self._call(serving.route, d, req, sample.request_id, "learn:sample") for d in calls)
        )
        answers.update(zip(missing, got, strict=False))
        reference = got[-1] if ref_model is None else answers[ref_model]
        ref_text = answer_text(reference)
        ref_answer = serving.extract(ref_text)
        if ref_text is None or (conf.judge == "match" and ref_answer is None):
            raise SkipSample("the reference gave no answer")
        scores = await self._scores(serving, sample, answers, ref_model, ref_text, ref_answer)
        outcomes = {
            model: {
                "score": scores[model],
                "answer": serving.extract(answer_text(r)),
                "input_tokens": r.usage.input_tokens,
                "output_tokens": r.usage.output_tokens,
            }
            for model, r in answers.items()
        }
        return ref_answer if ref_answer is not None else ref_text, outcomes

    async def _scores(
        self,
        serving: LearnedServing,
        sample: Sample,
        answers: dict[str, ChatResponse],
        ref_model: str | None,
        ref_text: str,
        ref_answer: str | None,
    ) -> dict[str, float]:
        conf = serving.sample
        assert conf is not None
        if conf.judge == "match":
            want = canonical_answer(ref_answer)
            return {
                m: float(canonical_answer(serving.extract(answer_text(r))) == want)
                for m, r in answers.items()
            }
        from modelyard.evals.scorers import judge_messages, parse_verdict  # not at start

        judged = [m for m in answers if m != ref_model]

        async def grade(model: str) -> float:
            text = answer_text(answers[model])
            if text is None:
                return 0.0  # no answer at all is a wrong one
            messages = judge_messages(sample.prompt, ref_text, text, {})
            req = ChatRequest(
                model=conf.judge,
                messages=[Message.model_validate(m) for m in messages],
                temperature=0,
                max_tokens=JUDGE_OUTPUT_TOKENS,
            )
            reply = await self._call(
                serving.route, conf.judge, req, sample.request_id, "learn:judge"
            )
            verdict = parse_verdict(answer_text(reply) or "")
            if verdict is None:
                raise SkipSample(f"the judge gave no score for {model!r}")
            return verdict

        grades = await asyncio.gather(*(grade(m) for m in judged))
        scores = dict(zip(judged, grades, strict=True))
        if ref_model is not None:
            scores[ref_model] = 1.0
        return scores

    async def _call(
        self, route: str, deployment: str, req: ChatRequest, request_id: str, endpoint: str
    ) -> ChatResponse:
        """One extra call, booked in the ledger whatever its outcome."""
        provider = self.providers[deployment]
        if self.health[deployment].blocked(time.monotonic()):
            raise SkipSample(f"deployment {deployment!r} is not healthy")
        t0 = time.perf_counter()
        usage, error, status = Usage(), None, 200
        try:
            response: ChatResponse = await provider.chat(req)
            usage = response.usage
            return response
        except GatewayError as err:
            error, status = type(err).__name__, err.status
            raise SkipSample(f"{deployment!r} failed: {err.message}") from None
        finally:
            prices = provider.deployment.prices
            cost = cost_micros(prices, usage) if prices is not None else 0
            self._charge(route, cost)
            self.ledger.record(
                RequestRecord(
                    f"{request_id}/learn/{next(self._seq)}",
                    time.time(),
                    endpoint,
                    req.model,
                    deployment,
                    provider.deployment.provider,
                    status,
                    False,
                    (time.perf_counter() - t0) * 1000,
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cached_input_tokens,
                    usage.reasoning_tokens,
                    None,
                    error,
                    usage.cache_write_tokens,
                    usage.audio_input_tokens,
                    usage.audio_output_tokens,
                    None,
                    None,
                    route,
                    None,
                    cost,
                    request_id,
                )
            )
