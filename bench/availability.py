"""Availability when one of three vendors fails every request.

Three fake OpenAI upstreams (bench/fake_upstream.py), one answering every chat
request with 503, behind one gateway route over all three (weighted split, so
the failing one keeps being chosen until its circuit breaker opens). Sends
--requests requests (default 10,000) at --concurrency 16 and prints the share
that succeeded, and how many attempts reached the failing vendor: its
breaker's threshold, then no more than one probe per open period.

    .venv/bin/python bench/availability.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import HOST, Process, free_port, spawn, wait_listening

BENCH = Path(__file__).resolve().parent
OPEN_SECONDS = 1.0
THRESHOLD = 5
CONFIG = """\
embedded_models: false
health: {{failure_threshold: {threshold}, open_seconds: {open_seconds}}}
deployments:
{deployments}
routes:
  - name: spread
    deployments: [vendor-a, vendor-b, vendor-failing]
    policy: weighted
    retries: 1
"""
DEPLOYMENT = """\
  - {{name: {name}, provider: openai-compatible, model: m, base_url: "http://{host}:{port}/v1",
      api_key_env: BENCH_KEY, prices: {{input: 1, output: 2}}}}
"""
BODY = orjson.dumps({"model": "spread", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "hello"}]})


async def drive(url: str, n: int, concurrency: int) -> tuple[int, dict[int, int], float]:
    remaining = n
    ok = 0
    failures: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal remaining, ok
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=BODY, headers={
                        "Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status == 200:
                        ok += 1
                    else:
                        failures[resp.status] = failures.get(resp.status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, failures, time.perf_counter() - t0


async def stats(port: int) -> int:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://{HOST}:{port}/stats") as resp:
        return int((await resp.json())["chat_requests"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["BENCH_KEY"] = "sk-bench"
    started: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-avail-") as tmp:
        work = Path(tmp)
        try:
            ports = {}
            for name in ("vendor-a", "vendor-b", "vendor-failing"):
                port = ports[name] = free_port()
                argv = [sys.executable, str(BENCH / "fake_upstream.py"), "--host", HOST,
                        "--port", str(port)]
                if name == "vendor-failing":
                    argv += ["--fail-status", "503 Service Unavailable"]
                started.append(spawn(name, argv, port, work, env))
            deployments = "".join(DEPLOYMENT.format(name=n, host=HOST, port=p)
                                  for n, p in ports.items())
            (work / "cfg.yaml").write_text(CONFIG.format(
                threshold=THRESHOLD, open_seconds=OPEN_SECONDS, deployments=deployments))
            gw_port = free_port()
            started.append(spawn("gateway", [sys.executable, "-m", "modelyard", "serve",
                                             "--config", str(work / "cfg.yaml"), "--host", HOST,
                                             "--port", str(gw_port), "--data-dir",
                                             str(work / "data")], gw_port, work, env))
            for p in started:
                wait_listening(p)
            url = f"http://{HOST}:{gw_port}/v1/chat/completions"
            ok, failures, wall = asyncio.run(drive(url, args.requests, args.concurrency))
            failing = asyncio.run(stats(ports["vendor-failing"]))
            served = {n: asyncio.run(stats(ports[n])) for n in ("vendor-a", "vendor-b")}
        finally:
            for p in started:
                p.proc.terminate()
            for p in started:
                p.proc.wait(10)
    periods = wall / OPEN_SECONDS
    print(f"{args.requests} requests at concurrency {args.concurrency} in {wall:.1f}s "
          f"through a weighted route over 3 vendors, one failing every request")
    print(f"  succeeded: {ok} ({ok / args.requests:.3%}); failed: {failures or 'none'}")
    print(f"  attempts that reached the failing vendor: {failing} "
          f"(breaker threshold {THRESHOLD}, then at most one probe per {OPEN_SECONDS:g}s open "
          f"period: {THRESHOLD} + {int(periods)} = {THRESHOLD + int(periods)} at most, "
          f"plus requests already in flight when it opened)")
    print(f"  served by the healthy vendors: {served}")
    target = ok / args.requests >= 0.999
    print(f"  target >= 99.9% succeeded: {'met' if target else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
