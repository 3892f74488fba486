"""What modelyard adds to a call: latency, CPU and memory, measured against the upstream alone.

Starts ``bench/fake_upstream.py`` and the gateway (``python -m modelyard serve``)
as subprocesses on free loopback ports, then for each case of
{non-streaming, streaming (20 chunks)} x {concurrency 1, 16} sends the same
requests (a) to the fake upstream directly and (b) through the gateway, in
alternating rounds (direct, gateway, gateway, direct, ...) so that machine
noise hits both sides alike. It prints requests/s, p50/p99 latency (streams:
time to the last byte and to the first), the latency the gateway adds, the CPU
time each process spends per request (``/proc/PID/stat``), and the gateway's
resident memory idle and after the run. ``--json FILE`` writes the figures.

Usage: ``.venv/bin/python bench/overhead.py [--requests 2000] [--cache-hits] [--json F]``
(``make bench``); only talks to 127.0.0.1 and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from rich.console import Console
from rich.table import Table

import fake_upstream

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
GATEWAY_MODEL = "bench"
STREAM_EVENTS = len(fake_upstream.stream_events(True))  # role, 20 content, finish, usage, [DONE]
TARGETS = {  # the project's budgets on a 2-core machine
    "gateway_cpu_ms_per_nonstream_request": 0.6,
    "added_p50_ms_at_concurrency_1": 0.5,
    "idle_rss_mb": 100.0,
}
DEPLOYMENT = """\
  - name: {name}
    provider: openai-compatible
    model: {upstream_model}
    base_url: http://{host}:{port}/v1
    api_key_env: BENCH_KEY
    context_window: 128000
    prices: {{input: {price}, output: {price}}}
"""
# ``bench`` is one deployment; ``bench-route`` routes over ten (bench and nine more
# pointing at the same fake) with composed policies, to measure what routing costs.
ROUTE = """\
routes:
  - name: bench-route
    deployments: [{members}]
    policy: [cost, latency]
"""


def gateway_config(host: str, port: int, upstream_model: str) -> str:
    names = [GATEWAY_MODEL] + [f"{GATEWAY_MODEL}-{i}" for i in range(2, 11)]
    deps = "".join(
        DEPLOYMENT.format(name=n, upstream_model=upstream_model, host=host, port=port,
                          price=1.0 + i / 10)
        for i, n in enumerate(names)
    )
    return "embedded_models: false\ndeployments:\n" + deps + ROUTE.format(
        members=", ".join(names))

# piped output (make bench | tee) keeps its tables whole
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all its threads), in milliseconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS  # fields 14 and 15 of stat(5)


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MB (10^6 bytes)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024 / 1e6
    return out


def client_cpu_ms() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime) * 1000


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn(name: str, argv: list[str], port: int, workdir: Path,
          env: dict[str, str]) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # our Ctrl-C is ours to pass on
    return Process(name, proc, port, log)


def wait_listening(p: Process, timeout: float = 60.0) -> None:
    """Until the port accepts a connection (no HTTP request is sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{p.log_tail()}")
        try:
            with socket.create_connection((HOST, p.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{p.name} did not listen on {HOST}:{p.port} in {timeout:.0f}s:\n"
                       f"{p.log_tail()}")


def request_body(model: str, stream: bool, temperature: float = 0.2) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "In one sentence: why should an AI gateway add "
                                        "as little latency as possible to each call?"},
        ],
        "max_tokens": 64,
        "temperature": temperature,  # 0 (--cache-hits): all but the first are cache hits
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


@dataclass
class Target:
    name: str  # "direct" or "gateway"
    url: str
    session: aiohttp.ClientSession
    bodies: dict[bool, bytes]  # by stream flag
    headers: dict[str, str] = field(default_factory=lambda: dict(HEADERS))


HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
ADMIN_KEY = "bench-admin-key-0123456789"


@dataclass
class Samples:
    """What one side of one case measured, summed over its rounds."""

    requests: int = 0
    errors: int = 0
    wall_s: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    gateway_cpu_ms: float = 0.0
    upstream_cpu_ms: float = 0.0
    client_cpu_ms: float = 0.0
    round_p50_ms: list[float] = field(default_factory=list)  # one per round
    round_gateway_cpu_ms: list[float] = field(default_factory=list)  # per request, per round


async def one_request(t: Target, stream: bool, out: Samples) -> None:
    t0 = time.perf_counter()
    first = 0.0
    ok = False
    try:
        async with t.session.post(t.url, data=t.bodies[stream], headers=t.headers) as resp:
            if stream:
                last = b""
                async for chunk in resp.content.iter_any():
                    if not first:
                        first = time.perf_counter()
                    last = chunk
                ok = resp.status == 200 and last.endswith(b"data: [DONE]\n\n")
            else:
                body = await resp.read()
                ok = resp.status == 200 and body.endswith(b"}")
    except (TimeoutError, aiohttp.ClientError):
        ok = False
    end = time.perf_counter()
    if not ok:
        out.errors += 1
        return
    out.latency_ms.append((end - t0) * 1000)
    if stream:
        out.ttfb_ms.append((first - t0) * 1000)


async def run_phase(t: Target, stream: bool, concurrency: int, n: int, out: Samples,
                    pids: dict[str, int], settle: float) -> None:
    """``n`` requests with ``concurrency`` in flight; CPU read before and after a settle pause.

    The pause lets the gateway's batched request-log write (every 0.25 s) land
    inside the phase it belongs to.
    """
    remaining = n
    first_sample = len(out.latency_ms)

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_request(t, stream, out)

    gw0, up0, cl0 = cpu_ms(pids["gateway"]), cpu_ms(pids["upstream"]), client_cpu_ms()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.wall_s += time.perf_counter() - t0
    out.requests += n
    await asyncio.sleep(settle)
    gateway_cpu = cpu_ms(pids["gateway"]) - gw0
    out.gateway_cpu_ms += gateway_cpu
    out.round_gateway_cpu_ms.append(gateway_cpu / n)
    out.round_p50_ms.append(pct(out.latency_ms[first_sample:], 50))
    out.upstream_cpu_ms += cpu_ms(pids["upstream"]) - up0
    out.client_cpu_ms += client_cpu_ms() - cl0


async def sanity_check(t: Target) -> None:
    """One full answer of each kind through ``t``, checked in detail before timing anything."""
    async with t.session.post(t.url, data=t.bodies[False], headers=t.headers) as resp:
        data = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"{t.name}: non-streaming call answered {resp.status}: {data}")
    if data["choices"][0]["message"]["content"] != fake_upstream.TEXT or not data.get("usage"):
        raise RuntimeError(f"{t.name}: unexpected answer {data}")
    async with t.session.post(t.url, data=t.bodies[True], headers=t.headers) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{t.name}: streaming call answered {resp.status}: {raw[:300]!r}")
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    chunks = [orjson.loads(e[len(b"data: "):]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    if (len(events) != STREAM_EVENTS or events[-1] != b"data: [DONE]"
            or text != fake_upstream.TEXT or not chunks[-1].get("usage")):
        raise RuntimeError(f"{t.name}: unexpected stream ({len(events)} events): {raw[:300]!r}")


async def governed_key(session: aiohttp.ClientSession, base: str) -> str:
    """A key whose key and team both have a hard budget and rpm/tpm the run stays within."""
    limits = {"budget_usd": 1e6, "budget_period": "month", "rpm": 10**8, "tpm": 10**9}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with session.put(f"{base}/admin/teams/bench", json={"limits": limits},
                           headers=admin) as resp:
        if resp.status != 200:
            raise RuntimeError(f"PUT /admin/teams/bench answered {resp.status}")
    async with session.post(f"{base}/admin/keys", headers=admin,
                            json={"name": "bench", "team": "bench", "limits": limits}) as resp:
        made = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"POST /admin/keys answered {resp.status}: {made}")
    return str(made["key"])


async def probe(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET {url} answered {resp.status}")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile, linear between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(s: Samples) -> dict[str, Any]:
    ok = max(s.requests - s.errors, 1)
    out: dict[str, Any] = {
        "requests": s.requests,
        "errors": s.errors,
        "rps": s.requests / s.wall_s if s.wall_s else 0.0,
        "p50_ms": pct(s.latency_ms, 50),
        "p99_ms": pct(s.latency_ms, 99),
        "mean_ms": sum(s.latency_ms) / ok,
        "gateway_cpu_ms_per_req": s.gateway_cpu_ms / s.requests,
        "upstream_cpu_ms_per_req": s.upstream_cpu_ms / s.requests,
        "client_cpu_ms_per_req": s.client_cpu_ms / s.requests,
        "rounds_p50_ms": s.round_p50_ms,
        "rounds_gateway_cpu_ms_per_req": s.round_gateway_cpu_ms,
    }
    if s.ttfb_ms:
        out["ttfb_p50_ms"] = pct(s.ttfb_ms, 50)
        out["ttfb_p99_ms"] = pct(s.ttfb_ms, 99)
    return out


def added(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, Any]:
    keys = ["p50_ms", "p99_ms"] + (["ttfb_p50_ms", "ttfb_p99_ms"] if "ttfb_p50_ms" in direct
                                   else [])
    out: dict[str, Any] = {k: gateway[k] - direct[k] for k in keys}
    out["rounds_p50_ms"] = [g - d for d, g in zip(direct["rounds_p50_ms"],
                                                  gateway["rounds_p50_ms"], strict=True)]
    return out


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}–{max(values):.3f}" if values else "-"


def f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render(report: dict[str, Any]) -> None:
    meta = report["meta"]
    console.print(
        f"\n[bold]modelyard overhead[/bold]  {meta['requests_per_case']} requests per side per "
        f"case in {meta['rounds']} alternating rounds; {meta['cpus']} CPUs; "
        f"Python {meta['python']}; CPU clock tick {meta['tick_ms']:.0f} ms"
    )
    t = Table(title="Per side (latency in ms; CPU in ms per request)", title_justify="left")
    for col in ("case", "side", "req/s", "p50", "p99", "TTFB p50", "TTFB p99",
                "gateway CPU", "upstream CPU", "client CPU", "errors"):
        t.add_column(col, justify="left" if col in ("case", "side") else "right")
    for c in report["cases"]:
        for side in ("direct", "gateway"):
            r = c[side]
            t.add_row(
                c["case"] if side == "direct" else "", side, f(r["rps"], 0), f(r["p50_ms"]),
                f(r["p99_ms"]), f(r.get("ttfb_p50_ms")), f(r.get("ttfb_p99_ms")),
                f(r["gateway_cpu_ms_per_req"]) if side == "gateway" else "-",
                f(r["upstream_cpu_ms_per_req"]), f(r["client_cpu_ms_per_req"]),
                str(r["errors"]), end_section=side == "gateway",
            )
    console.print(t)

    t = Table(title="What the gateway adds (gateway minus direct, ms; by round: lowest–highest of "
                "the rounds)", title_justify="left")
    for col in ("case", "+p50", "+p50 by round", "+p99", "+TTFB p50", "+TTFB p99",
                "gateway CPU/req", "by round", "req/s vs direct"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for c in report["cases"]:
        a, g, d = c["added"], c["gateway"], c["direct"]
        t.add_row(c["case"], f(a["p50_ms"]), spread(a["rounds_p50_ms"]), f(a["p99_ms"]),
                  f(a.get("ttfb_p50_ms")), f(a.get("ttfb_p99_ms")),
                  f(g["gateway_cpu_ms_per_req"]), spread(g["rounds_gateway_cpu_ms_per_req"]),
                  f"{g['rps'] / d['rps'] * 100:.0f}%" if d["rps"] else "-")
    console.print(t)

    m = report["gateway_memory_mb"]
    console.print(f"Gateway RSS: idle after start {m['idle_rss']:.1f} MB, after the run "
                  f"{m['after_rss']:.1f} MB, peak {m['peak_rss']:.1f} MB (MB = 10^6 bytes)")
    t = Table(title="Targets", title_justify="left")
    for col in ("target", "limit", "measured", "result"):
        t.add_column(col)
    for row in report["targets"]:
        t.add_row(row["target"], f"{row['limit']:g}", f(row["measured"]),
                  "[green]met[/green]" if row["met"] else "[red]MISSED[/red]")
    console.print(t)


def check_targets(cases: list[dict[str, Any]], idle_rss: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for c in cases:
        if not c["stream"]:
            cpu = c["gateway"]["gateway_cpu_ms_per_req"]
            limit = TARGETS["gateway_cpu_ms_per_nonstream_request"]
            rows.append({"target": f"gateway CPU/request, {c['case']} (ms)", "limit": limit,
                         "measured": cpu, "met": cpu <= limit})
        if not c["stream"] and c["concurrency"] == 1:
            a = c["added"]["p50_ms"]
            limit = TARGETS["added_p50_ms_at_concurrency_1"]
            rows.append({"target": f"added p50, {c['case']} (ms)", "limit": limit,
                         "measured": a, "met": a <= limit})
    limit = TARGETS["idle_rss_mb"]
    rows.append({"target": "idle RSS without the local model (MB)", "limit": limit,
                 "measured": idle_rss, "met": idle_rss <= limit})
    return rows


async def bench(args: argparse.Namespace, upstream: Process, gateway: Process) -> dict[str, Any]:
    pids = {"gateway": gateway.pid, "upstream": upstream.pid}
    idle = memory_mb(gateway.pid)["VmRSS"]  # listening, no request served yet
    timeout = aiohttp.ClientTimeout(total=60)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout)

    async with session() as s_direct, session() as s_gateway:
        direct = Target("direct", f"http://{HOST}:{upstream.port}/v1/chat/completions",
                        s_direct, {b: request_body(fake_upstream.MODEL, b) for b in (False, True)})
        t = 0 if args.cache_hits else 0.2
        via = Target("gateway", f"http://{HOST}:{gateway.port}/v1/chat/completions",
                     s_gateway, {b: request_body(args.model, b, t) for b in (False, True)})
        await probe(s_direct, f"http://{HOST}:{upstream.port}/healthz")
        await probe(s_gateway, f"http://{HOST}:{gateway.port}/healthz")
        if args.governance:
            key = await governed_key(s_gateway, f"http://{HOST}:{gateway.port}")
            via.headers["Authorization"] = f"Bearer {key}"
        for t in (direct, via):
            await sanity_check(t)

        console.print(f"warm-up: {args.warmup} requests per side and kind ...")
        kinds = [k == "stream" for k in args.kind]
        for stream in kinds:
            for t in (direct, via):
                await run_phase(t, stream, 16, args.warmup, Samples(), pids, 0.0)

        cases: list[dict[str, Any]] = []
        for stream in kinds:
            for concurrency in args.concurrency:
                name = f"{'stream' if stream else 'non-stream'} c={concurrency}"
                sides = {"direct": Samples(), "gateway": Samples()}
                t0 = time.perf_counter()
                base, extra = divmod(args.requests, args.rounds)
                for r in range(args.rounds):
                    n = base + (1 if r < extra else 0)
                    order = (direct, via) if r % 2 == 0 else (via, direct)
                    for t in order:
                        await run_phase(t, stream, concurrency, n, sides[t.name], pids,
                                        args.settle)
                d, g = summarize(sides["direct"]), summarize(sides["gateway"])
                cases.append({"case": name, "stream": stream, "concurrency": concurrency,
                              "direct": d, "gateway": g, "added": added(d, g)})
                console.print(f"  {name}: done in {time.perf_counter() - t0:.1f}s "
                              f"(added p50 {g['p50_ms'] - d['p50_ms']:.3f} ms, gateway CPU "
                              f"{g['gateway_cpu_ms_per_req']:.3f} ms/req)")

    await asyncio.sleep(args.settle)
    mem = memory_mb(gateway.pid)
    return {
        "meta": {
            "requests_per_case": args.requests, "rounds": args.rounds, "warmup": args.warmup,
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "tick_ms": TICK_MS, "stream_events": STREAM_EVENTS,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "cases": cases,
        "gateway_memory_mb": {"idle_rss": idle, "after_rss": mem["VmRSS"],
                              "peak_rss": mem["VmHWM"]},
        "targets": check_targets(cases, idle),
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000,
                    help="requests per side per case (default 2000)")
    ap.add_argument("--warmup", type=int, default=200,
                    help="warm-up requests per side and kind (default 200)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="alternating direct/gateway rounds per case (default 4)")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of quiet after each phase before CPU is read (default 0.3)")
    ap.add_argument("--chunk-gap-ms", type=float, default=0.0,
                    help="the fake upstream's pause between stream events (default 0)")
    ap.add_argument("--kind", nargs="+", choices=("non-stream", "stream"),
                    default=["non-stream", "stream"], help="which kinds of call (default both)")
    ap.add_argument("--concurrency", nargs="+", type=int, default=[1, 16],
                    help="requests in flight (default 1 16)")
    ap.add_argument("--model", default=GATEWAY_MODEL,
                    help="what clients call through the gateway: 'bench' (one deployment) "
                         "or 'bench-route' (a route over ten)")
    ap.add_argument("--governance", action="store_true",
                    help="call the gateway with a key whose team and key have budgets and "
                         "rate limits (measures auth, reservation, rate limits and ledger)")
    ap.add_argument("--cache-hits", action="store_true", help="temperature 0: every gateway "
                    "request but the first is answered from the response cache")
    ap.add_argument("--json", type=Path, help="also write the figures here as JSON")
    ap.add_argument("--profile", type=Path,
                    help="run the gateway under cProfile and write its stats here "
                         "(inflates the gateway's figures; for finding where time goes)")
    args = ap.parse_args()
    if args.requests < args.rounds or args.rounds < 1:
        ap.error("--requests must be at least --rounds, which must be at least 1")
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def with_processes(
    name: str,
    chunk_gap_ms: float,
    body: Callable[[Process, Process], Awaitable[dict[str, Any]]],
    launcher: list[str] | None = None,
) -> dict[str, Any] | int:
    """Run ``body(upstream, gateway)`` against fresh processes: its report, or an exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")},
           "BENCH_KEY": "sk-bench", "MODELYARD_ADMIN_KEY": ADMIN_KEY}
    started: list[Process] = []
    with tempfile.TemporaryDirectory(prefix=f"modelyard-{name}-") as tmp:
        workdir = Path(tmp)
        try:
            up_port = free_port()
            upstream = spawn("upstream", [sys.executable, str(BENCH / "fake_upstream.py"),
                                          "--host", HOST, "--port", str(up_port),
                                          "--chunk-gap-ms", str(chunk_gap_ms)],
                             up_port, workdir, env)
            started.append(upstream)
            config, gw_port = workdir / "modelyard.yaml", free_port()
            config.write_text(gateway_config(HOST, up_port, fake_upstream.MODEL))
            gateway = spawn("gateway", [sys.executable, *(launcher or ["-m", "modelyard"]),
                                        "serve", "--config", str(config), "--host", HOST,
                                        "--port", str(gw_port),
                                        "--data-dir", str(workdir / "data")],
                            gw_port, workdir, env)
            started.append(gateway)
            wait_listening(upstream), wait_listening(gateway)
            time.sleep(0.5)  # let start-up finish before the idle RSS is read
            console.print(f"fake upstream pid {upstream.pid} on {HOST}:{up_port}; "
                          f"gateway pid {gateway.pid} on {HOST}:{gw_port}")
            try:
                import uvloop
            except ImportError:
                report = asyncio.run(body(upstream, gateway))
            else:
                report = uvloop.run(body(upstream, gateway))
            for p in started:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{p.name} died during the run:\n{p.log_tail()}")
        except KeyboardInterrupt:
            console.print("interrupted; stopping the fake upstream and the gateway")
            return 130
        except RuntimeError as exc:
            console.print(f"[red]{name} failed:[/red] {exc}")
            return 1
        finally:
            for p in reversed(started):
                p.stop()
    return report


def main() -> int:
    args = parse_args()
    launcher = [str(BENCH / "profiled_gateway.py"), str(args.profile.resolve())] \
        if args.profile else None
    report = with_processes("bench", args.chunk_gap_ms, lambda u, g: bench(args, u, g), launcher)
    if isinstance(report, int):  # the exit code of a failed run
        return report
    render(report)
    if args.profile:
        console.print(f"[yellow]the gateway ran under cProfile: its figures are inflated[/yellow]"
                      f"; stats in {args.profile} (python -m pstats {args.profile})")
    if args.json:
        args.json.write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        console.print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
