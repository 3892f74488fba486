"""Run a suite against models through the gateway: bounded concurrency, each result
stored as it arrives, pairs already done skipped, costs from the ledger or a prices file.

No printing here: the command line passes ``on_result`` to draw its progress bar.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelyard.evals.client import CALL_TAG, RUN_TAG, ChatReply, GatewayClient
from modelyard.evals.scorers import judge_messages, parse_verdict, score_answer
from modelyard.evals.store import Result, RunDir
from modelyard.evals.suite import SuiteItem

Prices = Mapping[str, Mapping[str, float]]  # model -> {"input", "output"} in USD per Mtok


@dataclass
class RunPlan:
    items: list[SuiteItem]
    models: list[str]
    concurrency: int = 8
    judge: str | None = None
    prices: Prices = field(default_factory=dict)
    retry_errors: bool = False  # also send again pairs whose error was final

    def pending(self, done: Mapping[tuple[str, str], Result]) -> list[tuple[SuiteItem, str]]:
        """The (item, model) pairs still to send, item by item."""
        out = []
        for item in self.items:
            for model in self.models:
                old = done.get((item.id, model))
                if old is None or not (old.final and (old.error is None or not self.retry_errors)):
                    out.append((item, model))
        return out


def cost_from_prices(prices: Prices, model: str, reply: ChatReply) -> float | None:
    price = prices.get(model)
    if price is None or reply.input_tokens is None or reply.output_tokens is None:
        return None
    return (
        reply.input_tokens * float(price["input"]) + reply.output_tokens * float(price["output"])
    ) / 1e6


class Runner:
    def __init__(self, client: GatewayClient, run_dir: RunDir, run_id: str) -> None:
        self.client = client
        self.run_dir = run_dir
        self.run_id = run_id
        self.tags: list[str] = []  # this session's call tags, for the ledger lookup
        self.answered: set[str] = set()  # those of calls answered: the ledger must have them

    async def run(
        self,
        plan: RunPlan,
        pairs: list[tuple[SuiteItem, str]],
        on_result: Callable[[Result], None] = lambda r: None,
    ) -> list[Result]:
        slots = asyncio.Semaphore(max(1, plan.concurrency))

        async def one(item: SuiteItem, model: str) -> Result:
            async with slots:
                result = await self._call(plan, item, model)
            self.run_dir.append(result)
            on_result(result)
            return result

        return list(await asyncio.gather(*(one(item, model) for item, model in pairs)))

    async def _chat(
        self, model: str, messages: list[dict[str, Any]], extra: dict[str, Any]
    ) -> tuple[str, ChatReply]:
        tag = uuid.uuid4().hex[:20]
        self.tags.append(tag)
        header = f"{RUN_TAG}={self.run_id}, {CALL_TAG}={tag}"
        reply = await self.client.chat(model, messages, extra, header)
        if reply.error is None:
            self.answered.add(tag)
        return tag, reply

    async def _call(self, plan: RunPlan, item: SuiteItem, model: str) -> Result:
        tag, reply = await self._chat(model, item.messages, item.request)
        result = Result(
            item=item.id,
            model=model,
            answer=reply.text,
            extracted=None,
            score=None,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=cost_from_prices(plan.prices, model, reply),
            cost_source=None,
            latency_ms=round(reply.latency_ms, 3),
            error=reply.error,
            final=reply.final,
            request_id=reply.request_id,
            deployment=reply.deployment,
            call_tag=tag,
            ts=time.time(),
        )
        if result.cost_usd is not None:
            result.cost_source = "prices"
        if reply.text is not None:
            await self._score(plan, item, result, reply.text)
        return result

    async def _score(self, plan: RunPlan, item: SuiteItem, result: Result, text: str) -> None:
        scorer = item.scorer
        if scorer["type"] != "judge":
            try:
                score = score_answer(text, item.reference, scorer)
            except Exception as exc:  # a suite's bad pattern or schema must not stop the run
                result.detail = f"the scorer failed: {type(exc).__name__}: {exc}"
                return
            result.score, result.extracted = score.score, score.extracted
            result.detail = score.detail
            return
        judge = scorer.get("model") or plan.judge
        if not judge:
            result.detail = "a judge scorer needs --judge or a model in the scorer"
            return
        messages = judge_messages(item.prompt_text, item.reference, text, scorer)
        _, verdict = await self._chat(str(judge), messages, {"temperature": 0})
        if verdict.text is None:
            result.detail = f"the judge failed: {verdict.error}"
            result.final = verdict.final  # a judge that was busy grades it on a re-run
            return
        result.score = parse_verdict(verdict.text)
        result.extracted = text.strip()
        if result.score is None:
            result.detail = f"no score in the judge's verdict: {verdict.text[:200]!r}"

    async def ledger_costs(
        self, admin_key: str, since: float, earlier: set[str], *, wait: float = 5.0
    ) -> dict[str, float]:
        """The ledger's cost of this session's calls and of ``earlier`` ones (answered in a
        session that crashed before it could ask). The ledger writes in batches, so poll
        until every call answered in this session is in it, or ``wait`` seconds pass."""
        wanted = set(self.tags) | earlier
        deadline = time.monotonic() + wait
        while True:
            costs = await self.client.spend_by_tag(admin_key, CALL_TAG, since)
            found = {t: c for t, c in costs.items() if t in wanted}
            if self.answered <= found.keys() or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.25)


def check_prices(data: Any) -> dict[str, dict[str, float]]:
    """A prices file's models (keys starting with ``_`` are comments); ValueError if not
    ``{MODEL: {"input": USD/Mtok, "output": USD/Mtok}}``."""
    if not isinstance(data, dict):
        raise ValueError('a prices file is {MODEL: {"input": ..., "output": ...}}')
    out = {}
    for model, price in data.items():
        if str(model).startswith("_"):
            continue
        try:
            out[str(model)] = {"input": float(price["input"]), "output": float(price["output"])}
        except (TypeError, KeyError, ValueError):
            raise ValueError(f'{model}: a price is {{"input": ..., "output": ...}}') from None
    return out
