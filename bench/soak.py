"""Soak: many concurrent streaming clients for minutes, and what the gateway keeps afterwards.

Starts ``bench/fake_upstream.py`` (its streams paced by ``--chunk-gap-ms``) and the
gateway as subprocesses on free loopback ports (``overhead.py``'s helpers), then:

1. **baseline**: ``--clients`` streaming clients straight to the fake upstream for
   ``--baseline`` seconds: the time to first token and the gaps between chunks that
   the machine itself gives at that concurrency;
2. **soak**: the same clients through the gateway for ``--duration`` seconds, each
   opening a new stream as soon as its last one ends;
3. **settle**: no load, until the gateway's asyncio tasks and open file descriptors are
   back to what they were before the load (or ``--settle`` seconds pass).

It reports errors (target 0); the p99 time to first token and p99 gap between chunks,
through the gateway and direct, and their difference; whether every stream said exactly
what the direct stream says; the gateway's resident memory sampled every minute, and
its growth from minute 2 to the end (target under 5%); tasks and file descriptors
before, at the peak of and after the load (``GET /admin/debug/runtime``, from
``/proc`` as well). ``--json FILE`` writes the figures.

"Said exactly the same": the gateway relays OpenAI-compatible streams with minimal
edits, so each event is compared as parsed JSON with ``id``, ``created`` and ``model``
set aside (the gateway answers with its own request id, its clock and the name the
client called, ``bench``, where the upstream says ``bench-model``); every other field,
the content deltas, finish reason and usage chunk included, and the event count and
the closing ``data: [DONE]`` must equal the direct stream's. The content text is also
compared byte for byte.

Usage: ``.venv/bin/python bench/soak.py [--clients 200] [--duration 600] [--json F]``.
Only talks to 127.0.0.1 and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from rich.table import Table

import fake_upstream
from overhead import (
    ADMIN_KEY,
    GATEWAY_MODEL,
    HEADERS,
    HOST,
    Process,
    console,
    memory_mb,
    pct,
    request_body,
    with_processes,
)

IGNORED_FIELDS = ("id", "created", "model")
TARGETS = {"errors": 0, "rss_growth_pct": 5.0}


def normalise(event: bytes) -> Any:
    """An SSE event as compared: parsed, with the fields that may differ set aside."""
    payload = event.removeprefix(b"data: ")
    if payload == b"[DONE]":
        return "[DONE]"
    data = orjson.loads(payload)
    for key in IGNORED_FIELDS:
        data.pop(key, None)
    return data


def content_of(events: list[Any]) -> bytes:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in events if isinstance(c, dict) and c.get("choices")
    ).encode()


@dataclass
class Side:
    """What the clients of one phase measured."""

    streams: int = 0
    errors: int = 0
    mismatches: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    ttft_ms: array[float] = field(default_factory=lambda: array("d"))
    gap_ms: array[float] = field(default_factory=lambda: array("d"))

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def summary(self, wall_s: float) -> dict[str, Any]:
        return {
            "streams": self.streams, "errors": self.errors, "error_kinds": self.error_kinds,
            "mismatches": self.mismatches,
            "streams_per_s": self.streams / wall_s if wall_s else 0.0,
            "ttft_p50_ms": pct(list(self.ttft_ms), 50), "ttft_p99_ms": pct(list(self.ttft_ms), 99),
            "gap_p50_ms": pct(list(self.gap_ms), 50), "gap_p99_ms": pct(list(self.gap_ms), 99),
        }


async def one_stream(session: aiohttp.ClientSession, url: str, body: bytes,
                     headers: dict[str, str], reference: list[Any] | None, out: Side) -> None:
    t0 = time.perf_counter()
    events: list[bytes] = []
    times: list[float] = []
    buf = b""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                await resp.read()
                out.error(f"status {resp.status}")
                return
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                buf += chunk
                while (end := buf.find(b"\n\n")) >= 0:
                    events.append(buf[:end])
                    times.append(now)
                    buf = buf[end + 2:]
    except (TimeoutError, aiohttp.ClientError) as exc:
        out.error(type(exc).__name__)
        return
    if not events or events[-1] != b"data: [DONE]" or buf.strip():
        out.error("stream not closed by [DONE]")
        return
    out.streams += 1
    out.ttft_ms.append((times[0] - t0) * 1000)
    out.gap_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
    if reference is not None:
        got = [normalise(e) for e in events]
        if got != reference or content_of(got) != content_of(reference):
            out.mismatches += 1


async def load(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               reference: list[Any] | None, clients: int, seconds: float, out: Side,
               tick: Any = None) -> float:
    """``clients`` loops of back-to-back streams until ``seconds`` pass; the wall time."""
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            await one_stream(session, url, body, headers, reference, out)

    workers = [asyncio.create_task(client()) for _ in range(clients)]
    ticker = asyncio.create_task(tick(t0)) if tick else None
    await asyncio.gather(*workers)
    if ticker is not None:
        ticker.cancel()
    return time.perf_counter() - t0


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def upstream_sockets(pid: int, port: int) -> int:
    """The process's TCP sockets connected to ``port``: its pool's upstream connections."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[2].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                count += 1
    return count


async def runtime(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/admin/debug/runtime",
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET /admin/debug/runtime answered {resp.status}")
        data: dict[str, Any] = await resp.json()
        return data


async def reference_stream(session: aiohttp.ClientSession, url: str, body: bytes) -> list[Any]:
    async with session.post(url, data=body, headers=HEADERS) as resp:
        raw = await resp.read()
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    if events[-1] != b"data: [DONE]" or content_of([normalise(e) for e in events]) != \
            fake_upstream.TEXT.encode():
        raise RuntimeError(f"the direct stream is not what the fake sends: {raw[:300]!r}")
    return [normalise(e) for e in events]


async def soak(args: argparse.Namespace, upstream: Process, gateway: Process) -> dict[str, Any]:
    direct_url = f"http://{HOST}:{upstream.port}/v1/chat/completions"
    base = f"http://{HOST}:{gateway.port}"
    direct_body = request_body(fake_upstream.MODEL, True)
    gateway_body = request_body(GATEWAY_MODEL, True)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        reference = await reference_stream(session, direct_url, direct_body)
        via = Side()
        for _ in range(20):  # warm: connections to the upstream, imports, the first rows
            await one_stream(session, f"{base}/v1/chat/completions", gateway_body, HEADERS,
                             reference, via)
        if via.errors or via.mismatches:
            raise RuntimeError(f"the gateway's warm-up streams failed: {via.summary(1.0)}")
        await asyncio.sleep(2)
        before = await runtime(session, base)
        before["proc_fds"] = proc_fds(gateway.pid)
        before["upstream_sockets"] = upstream_sockets(gateway.pid, upstream.port)
        console.print(f"gateway before the load: {before}")

        console.print(f"baseline: {args.clients} clients direct to the upstream for "
                      f"{args.baseline:g}s ...")
        direct = Side()
        direct_wall = await load(session, direct_url, direct_body, HEADERS, reference,
                                 args.clients, args.baseline, direct)
        console.print(f"  {direct.summary(direct_wall)}")

        console.print(f"soak: {args.clients} clients through the gateway for "
                      f"{args.duration:g}s ...")
        via = Side()
        rss: list[dict[str, float]] = []
        peak: dict[str, int] = {"tasks": 0, "fds": 0}

        async def tick(t0: float) -> None:
            while True:
                await asyncio.sleep(args.sample)
                elapsed = time.perf_counter() - t0
                mem = memory_mb(gateway.pid)["VmRSS"]
                now = await runtime(session, base)
                peak["tasks"] = max(peak["tasks"], int(now["tasks"]))
                peak["fds"] = max(peak["fds"], proc_fds(gateway.pid))
                rss.append({"t_s": round(elapsed, 1), "rss_mb": mem})
                console.print(f"  t={elapsed:5.0f}s rss {mem:7.1f} MB  tasks {now['tasks']:4d}"
                              f"  fds {now['fds']:4d}  streams {via.streams:7d}"
                              f"  errors {via.errors}  mismatches {via.mismatches}")

        via_wall = await load(session, f"{base}/v1/chat/completions", gateway_body, HEADERS,
                              reference, args.clients, args.duration, via, tick)
        mem_end = memory_mb(gateway.pid)["VmRSS"]
        rss.append({"t_s": round(via_wall, 1), "rss_mb": mem_end})

        await connector.close()  # the client's idle keep-alive connections count as the
        # gateway's fds until closed: a real client would close them too
        t_end = time.perf_counter()
        after = await _settled(args, base, gateway, upstream.port, before)
        settle_s = time.perf_counter() - t_end

    d, g = direct.summary(direct_wall), via.summary(via_wall)
    window = [s for s in rss if s["t_s"] >= args.steady_from]
    growth = ((window[-1]["rss_mb"] - window[0]["rss_mb"]) / window[0]["rss_mb"] * 100
              if len(window) >= 2 else float("nan"))
    report = {
        "meta": {"clients": args.clients, "duration_s": args.duration,
                 "baseline_s": args.baseline, "chunk_gap_ms": args.chunk_gap_ms,
                 "steady_from_s": args.steady_from, "cpus": os.cpu_count(),
                 "python": platform.python_version(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "compared_without": list(IGNORED_FIELDS)},
        "direct": d, "gateway": g,
        "added": {"ttft_p99_ms": g["ttft_p99_ms"] - d["ttft_p99_ms"],
                  "gap_p99_ms": g["gap_p99_ms"] - d["gap_p99_ms"],
                  "ttft_p50_ms": g["ttft_p50_ms"] - d["ttft_p50_ms"],
                  "gap_p50_ms": g["gap_p50_ms"] - d["gap_p50_ms"]},
        "rss_mb": rss,
        "rss_per_minute_mb": [s for s in rss if s["t_s"] % 60 < args.sample or s is rss[-1]],
        "rss_growth_pct": growth,
        "runtime": {"before": before, "peak": peak, "after": after,
                    "settle_s": round(settle_s, 1)},
    }
    report["targets"] = targets(report)
    return report


async def _settled(args: argparse.Namespace, base: str, gateway: Process, upstream_port: int,
                   before: dict[str, Any]) -> dict[str, Any]:
    """Poll without load until tasks and fds are back to ``before`` or ``--settle`` passes."""
    deadline = time.perf_counter() + args.settle
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        while True:
            now = await runtime(s, base)
            now["proc_fds"] = proc_fds(gateway.pid)
            now["upstream_sockets"] = upstream_sockets(gateway.pid, upstream_port)
            # idle upstream connections count too: the pool closes them once too old to reuse
            back = now["tasks"] <= before["tasks"] and now["proc_fds"] <= before["proc_fds"]
            if back or time.perf_counter() > deadline:
                return now
            await asyncio.sleep(1)


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    g, rt = r["gateway"], r["runtime"]
    return [
        {"target": "errors through the gateway", "limit": "0", "measured": str(g["errors"]),
         "met": g["errors"] == 0},
        {"target": "streams not identical to the direct one", "limit": "0",
         "measured": str(g["mismatches"]), "met": g["mismatches"] == 0},
        {"target": f"RSS growth from {r['meta']['steady_from_s']:g}s to the end (%)",
         "limit": f"{TARGETS['rss_growth_pct']:g}", "measured": f"{r['rss_growth_pct']:.2f}",
         "met": r["rss_growth_pct"] < TARGETS["rss_growth_pct"]},
        {"target": "asyncio tasks back to baseline", "limit": str(rt["before"]["tasks"]),
         "measured": str(rt["after"]["tasks"]),
         "met": rt["after"]["tasks"] <= rt["before"]["tasks"]},
        {"target": "open fds back to baseline (idle upstream connections included)",
         "limit": str(rt["before"]["proc_fds"]), "measured": str(rt["after"]["proc_fds"]),
         "met": rt["after"]["proc_fds"] <= rt["before"]["proc_fds"]},
    ]


def render(r: dict[str, Any]) -> None:
    m = r["meta"]
    console.print(f"\n[bold]modelyard soak[/bold]  {m['clients']} streaming clients, "
                  f"{m['duration_s']:g}s through the gateway after {m['baseline_s']:g}s direct; "
                  f"upstream chunk gap {m['chunk_gap_ms']:g} ms; {m['cpus']} CPUs; "
                  f"Python {m['python']}")
    t = Table(title="Streams (ms)", title_justify="left")
    for col in ("side", "streams", "streams/s", "errors", "mismatches", "TTFT p50", "TTFT p99",
                "gap p50", "gap p99"):
        t.add_column(col, justify="left" if col == "side" else "right")
    for side in ("direct", "gateway"):
        s = r[side]
        t.add_row(side, str(s["streams"]), f"{s['streams_per_s']:.0f}", str(s["errors"]),
                  str(s["mismatches"]), f"{s['ttft_p50_ms']:.2f}", f"{s['ttft_p99_ms']:.2f}",
                  f"{s['gap_p50_ms']:.2f}", f"{s['gap_p99_ms']:.2f}")
    a = r["added"]
    t.add_row("added", "", "", "", "", f"{a['ttft_p50_ms']:.2f}", f"{a['ttft_p99_ms']:.2f}",
              f"{a['gap_p50_ms']:.2f}", f"{a['gap_p99_ms']:.2f}", style="bold")
    console.print(t)
    if r["gateway"]["error_kinds"]:
        console.print(f"gateway errors by kind: {r['gateway']['error_kinds']}")
    console.print("gateway RSS by minute (MB): " + ", ".join(
        f"{s['t_s']:.0f}s {s['rss_mb']:.1f}" for s in r["rss_per_minute_mb"]))
    rt = r["runtime"]
    t = Table(title="Gateway runtime (GET /admin/debug/runtime)", title_justify="left")
    for col in ("", "tasks", "fds", "fds (/proc)", "of which upstream pool", "RSS MB"):
        t.add_column(col, justify="left" if not col else "right")
    for name in ("before", "after"):
        v = rt[name]
        t.add_row(name, str(v["tasks"]), str(v["fds"]), str(v["proc_fds"]),
                  str(v["upstream_sockets"]), f"{(v['rss_bytes'] or 0) / 1e6:.1f}")
    t.add_row("peak (sampled)", str(rt["peak"]["tasks"]), "", str(rt["peak"]["fds"]), "", "")
    console.print(t)
    console.print(f"settled {rt['settle_s']:g}s after the load")
    t = Table(title="Targets", title_justify="left")
    for col in ("target", "limit", "measured", "result"):
        t.add_column(col)
    for row in r["targets"]:
        t.add_row(row["target"], row["limit"], row["measured"],
                  "[green]met[/green]" if row["met"] else "[red]MISSED[/red]")
    console.print(t)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200, help="concurrent streams (200)")
    ap.add_argument("--duration", type=float, default=600, help="soak seconds (600)")
    ap.add_argument("--baseline", type=float, default=30,
                    help="seconds of the same load direct to the upstream first (30)")
    ap.add_argument("--chunk-gap-ms", type=float, default=20.0,
                    help="the fake upstream's pause between events (20: a 24-event stream "
                         "lasts about half a second, as a fast model's would)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples (10)")
    ap.add_argument("--steady-from", type=float, default=120.0,
                    help="RSS growth is measured from this second of the soak to its end (120)")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds to wait for tasks and fds to come back after the load (30)")
    ap.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    if args.steady_from >= args.duration:
        ap.error("--steady-from must be less than --duration")
    return args


def main() -> int:
    args = parse_args()
    report = with_processes("soak", args.chunk_gap_ms, lambda up, gw: soak(args, up, gw))
    if isinstance(report, int):
        return report
    render(report)
    if args.json:
        args.json.write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        console.print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
