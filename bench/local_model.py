"""What the local chat provider costs over llama-cpp-python called directly.

Loads Gemma 3 270M once (through ``LocalChatProvider``) and generates with the
same greedy sampling and ``--max-tokens`` (stop strings off, so every run makes
that many tokens) two ways, alternating rounds so machine noise hits both
sides alike:

* direct: ``Llama.create_completion(stream=True)`` on the provider's own model
  instance, called in the main thread as a plain script would;
* provider: ``LocalChatProvider.chat_stream`` on a chat whose prompt text is
  the one given to the direct call (worker thread, asyncio queue, one
  ``ChatChunk`` per token), and ``complete_stream`` on a raw prompt.

Tokens/s is generated tokens over the time from the call to its last token.
Other load on the machine only ever slows a run down, so the best run of each
side is the truest figure of what it costs; "pairwise" is the median of the
ratios of runs made back to back. CPU ms per token is the whole process's
(llama.cpp's threads spin while they wait, so it follows wall time); the CPU
the event loop's thread spends per token bounds what the provider adds. Then
four chat requests are sent at once and the time each finishes is printed:
they are served whole, in turn.

Usage: ``.venv/bin/python bench/local_model.py [--runs 7] [--max-tokens 128]
[--threads N] [--data-dir DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.providers import local_prompt
from modelyard.providers.local import (
    DEFAULT_TOP_P,
    MIN_P,
    REPEAT_PENALTY,
    TOP_K,
    LocalChatProvider,
)
from modelyard.settings import Deployment
from modelyard.types import ChatRequest, CompletionRequest

QUESTION = "Tell me a long story about a dragon who learns to bake bread."
RAW_PROMPT = "Once upon a time, in a village at the edge of a great forest,"
MODEL = "gemma-3-270m"


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    tokens: int
    seconds: float
    cpu: float
    loop_cpu: float = 0.0  # the event loop's thread only

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def direct(llama: Any, prompt: str, max_tokens: int) -> Run:
    """Stream from llama-cpp-python itself."""
    start, cpu = time.perf_counter(), time.process_time()
    stream: Iterator[dict[str, Any]] = llama.create_completion(
        prompt, max_tokens=max_tokens, temperature=0.0, top_p=DEFAULT_TOP_P, top_k=TOP_K,
        min_p=MIN_P, repeat_penalty=REPEAT_PENALTY, stop=[], stream=True,
    )
    choices = [chunk["choices"][0] for chunk in stream]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # one chunk a token, then one that only says why it finished
    tokens = sum(1 for c in choices if c["finish_reason"] is None)
    return Run("".join(c["text"] for c in choices), tokens, seconds, cpu)


async def via_provider(provider: LocalChatProvider, req: ChatRequest | CompletionRequest
                       ) -> Run:
    start, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    stream = (provider.chat_stream(req) if isinstance(req, ChatRequest)
              else provider.complete_stream(req))
    pieces, tokens = [], 0
    async for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.output_tokens
        pieces += [c.content for c in chunk.choices if c.content]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run("".join(pieces), tokens, seconds, cpu, time.thread_time() - loop_cpu)


def report(title: str, base: list[Run], ours: list[Run]) -> None:
    def line(name: str, runs: list[Run]) -> str:
        median = statistics.median(r.rate for r in runs)
        cpu = statistics.median(1000 * r.cpu / r.tokens for r in runs)
        return (f"  {name:<24} median {median:5.1f}  best {max(r.rate for r in runs):5.1f} "
                f"tokens/s  {cpu:5.1f} CPU ms/token  tokens/run "
                f"{sorted({r.tokens for r in runs})}")

    # greedy, yet a prompt re-read from a cached prefix can tip a near tie
    same = sum(a.text.strip() == b.text.strip() for a, b in zip(base, ours, strict=True))
    best = max(r.rate for r in ours) / max(r.rate for r in base)
    pairwise = statistics.median(b.rate / a.rate for a, b in zip(base, ours, strict=True))
    print(title)
    print(line("direct llama-cpp-python", base))
    print(line("through the provider", ours))
    loop_cpu = statistics.median(r.loop_cpu / r.tokens for r in ours)
    token_time = statistics.median(r.seconds / r.tokens for r in ours)
    print(f"  provider/direct: best {best:.3f}, pairwise median {pairwise:.3f}; "
          f"same text in {same} of {len(base)} runs")
    print(f"  the event loop's thread spent {1e6 * loop_cpu:.0f} µs CPU a token, "
          f"{100 * loop_cpu / token_time:.2f}% of a token's time")


async def fairness(provider: LocalChatProvider, max_tokens: int) -> None:
    questions = ["What is the capital of France?", "Write a haiku about the sea",
                 "2+2=?", "Name three fruits."]
    start = time.perf_counter()

    async def ask(i: int, question: str) -> None:
        req = ChatRequest(model=MODEL, temperature=0, max_tokens=max_tokens,
                          messages=[{"role": "user", "content": question}])
        resp = await provider.chat(req)
        print(f"  request {i} done at {time.perf_counter() - start:5.2f} s "
              f"({resp.usage.output_tokens:2d} tokens): {resp.choices[0].content!r}")

    tasks = []
    for i, question in enumerate(questions):
        tasks.append(asyncio.create_task(ask(i, question)))
        await asyncio.sleep(0)  # arrival order = i
    await asyncio.gather(*tasks)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "modelyard-bench")
    args = parser.parse_args()
    deployment = Deployment(name=MODEL, provider="local", model=MODEL)
    provider = LocalChatProvider(deployment, data_dir=args.data_dir, threads=args.threads,
                                 n_ctx=4096)
    print(f"{os.cpu_count()} CPUs, {args.threads or os.cpu_count()} threads, "
          f"max_tokens {args.max_tokens}, greedy, {args.runs} runs a side")

    # Stop strings off (the "ignore stop" setting): every run makes max_tokens tokens.
    turn_stops, local_prompt.STOPS = local_prompt.STOPS, ()
    chat = ChatRequest(model=MODEL, temperature=0, max_tokens=args.max_tokens,
                       messages=[{"role": "user", "content": QUESTION}])
    raw = CompletionRequest(model=MODEL, prompt=RAW_PROMPT, temperature=0,
                            max_tokens=args.max_tokens)
    chat_text = local_prompt.chat_prompt(chat).text
    await via_provider(provider, raw)  # loads the model
    llama = provider._llama

    async def plain(prompt: str) -> Run:
        return direct(llama, prompt, args.max_tokens)

    async def pairs(base: Callable[[], Awaitable[Run]], ours: Callable[[], Awaitable[Run]]
                    ) -> tuple[list[Run], list[Run]]:
        """Back-to-back runs, the order flipped every round; round 0 warms up."""
        runs: tuple[list[Run], list[Run]] = ([], [])
        for i in range(args.runs + 1):
            first, second = (base, ours) if i % 2 else (ours, base)
            a, b = await first(), await second()
            if i:
                runs[0].append(a if i % 2 else b)
                runs[1].append(b if i % 2 else a)
        return runs

    report("chat_stream vs create_completion(stream=True), same prompt text",
           *await pairs(lambda: plain(chat_text), lambda: via_provider(provider, chat)))
    report("complete_stream vs create_completion(stream=True), raw prompt",
           *await pairs(lambda: plain(RAW_PROMPT), lambda: via_provider(provider, raw)))

    local_prompt.STOPS = turn_stops
    print("4 chat requests at once, sent in order 0..3:")
    await fairness(provider, 48)
    await provider.close()


if __name__ == "__main__":
    asyncio.run(main())
