"""The run's self-contained HTML report: a table, quality against cost with the Pareto
frontier, and latency box plots per model, drawn as inline SVG (no scripts, no network)."""

from __future__ import annotations

import html
import math
from collections.abc import Callable

import numpy as np

from modelyard.evals.summary import ModelSummary, pareto_frontier

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt_usd(x: float | None) -> str:
    return "–" if x is None else f"${x:.6g}"


def _fmt(x: float | None, pattern: str = "{:.3f}") -> str:
    return "–" if x is None else pattern.format(x)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _cost_axis(costs: list[float]) -> tuple[Callable[[float], float], list[float], str]:
    """The x scale for costs: logarithmic when they span more than a factor of 20 (cheap
    and dear models differ by orders of magnitude), else linear."""
    lo, hi = min(costs), max(costs)
    span = W - LEFT - RIGHT
    if lo > 0 and hi / lo > 20:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))

        def log_x(cost: float) -> float:
            return LEFT + (math.log10(max(cost, 10.0**a)) - a) / (b - a) * span

        return log_x, [10.0**e for e in range(a, b + 1)], "cost per item (USD, log scale)"
    pad = (hi - lo) * 0.1 or (hi * 0.1 or 1e-6)
    lo, hi = max(0.0, lo - pad), hi + pad

    def lin_x(cost: float) -> float:
        return LEFT + (cost - lo) / (hi - lo) * span

    return lin_x, _ticks(lo, hi), "cost per item (USD)"


def quality_cost_svg(summaries: list[ModelSummary]) -> str:
    points = [(s.model, s.cost_per_item, s.quality) for s in summaries]
    known = [(m, c, q) for m, c, q in points if c is not None and q is not None]
    if not known:
        return "<p>No model has both a cost and a quality yet.</p>"
    x, xticks, label = _cost_axis([c for _, c, _ in known])

    def y(quality: float) -> float:
        return H - BOTTOM - quality * (H - TOP - BOTTOM)

    parts = [
        _axes(label, "quality"),
        *(_xtick(x(t), f"{t:.3g}") for t in xticks),
        *(_ytick(y(q), f"{q:g}") for q in _ticks(0.0, 1.0)),
    ]
    on = pareto_frontier(known)
    where = {m: (x(c), y(q)) for m, c, q in known}
    line = " ".join(f"{where[m][0]:.1f},{where[m][1]:.1f}" for m in on)
    parts.append(
        f'<polyline class="frontier" points="{line}" fill="none" stroke="#444" '
        'stroke-dasharray="5,4" stroke-width="1.5"/>'
    )
    for i, (model, cost, quality) in enumerate(known):
        cx, cy = where[model]
        colour = COLOURS[i % len(COLOURS)]
        flag = "true" if model in on else "false"
        # a label near the right edge goes to the left of its point
        tx, anchor = (cx - 9, "end") if cx > W - 120 else (cx + 9, "start")
        parts.append(
            f'<circle class="model" data-model="{_e(model)}" data-pareto="{flag}" '
            f'cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{colour}">'
            f"<title>{_e(model)}: quality {quality:.3f}, {_fmt_usd(cost)} per item</title>"
            f'</circle><text x="{tx:.1f}" y="{cy + 4:.1f}" text-anchor="{anchor}" font-size="12">'
            f"{_e(model)}</text>"
        )
    return _svg("quality-cost", "".join(parts))


def latency_svg(summaries: list[ModelSummary]) -> str:
    rows = [s for s in summaries if s.latencies_ms]
    if not rows:
        return "<p>No successful call to time.</p>"
    top = max(max(s.latencies_ms) for s in rows) * 1.05 or 1.0

    def y(ms: float) -> float:
        return H - BOTTOM - ms / top * (H - TOP - BOTTOM)

    parts = [_axes("model", "latency (ms)"), *(_ytick(y(t), f"{t:.0f}") for t in _ticks(0, top))]
    band = (W - LEFT - RIGHT) / len(rows)
    for i, s in enumerate(rows):
        q0, q1, q2, q3, q4 = np.percentile(s.latencies_ms, [0, 25, 50, 75, 100]).tolist()
        cx, half = LEFT + band * (i + 0.5), min(30.0, band * 0.3)
        colour = COLOURS[i % len(COLOURS)]
        parts.append(
            f'<g class="box" data-model="{_e(s.model)}">'
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(q0):.1f}" y2="{y(q4):.1f}" stroke="#444"/>'
            f'<rect x="{cx - half:.1f}" y="{y(q3):.1f}" width="{2 * half:.1f}" '
            f'height="{max(1.0, y(q1) - y(q3)):.1f}" fill="{colour}" fill-opacity="0.6" '
            f'stroke="#444"/>'
            f'<line x1="{cx - half:.1f}" x2="{cx + half:.1f}" y1="{y(q2):.1f}" y2="{y(q2):.1f}" '
            f'stroke="#000" stroke-width="2"/>'
            f"<title>{_e(s.model)}: min {q0:.0f}, median {q2:.0f}, max {q4:.0f} ms</title></g>"
            + _xtick(cx, s.model)
        )
    return _svg("latency", "".join(parts))


def _svg(name: str, body: str) -> str:
    return (
        f'<svg class="{name}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif">{body}</svg>'
    )


def _axes(xlabel: str, ylabel: str) -> str:
    x0, y0 = LEFT, H - BOTTOM
    return (
        f'<line x1="{x0}" y1="{y0}" x2="{W - RIGHT}" y2="{y0}" stroke="#000"/>'
        f'<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{y0}" stroke="#000"/>'
        f'<text x="{(W + LEFT) / 2:.0f}" y="{H - 8}" text-anchor="middle" font-size="13">'
        f"{_e(xlabel)}</text>"
        f'<text x="16" y="{(H - BOTTOM + TOP) / 2:.0f}" text-anchor="middle" font-size="13" '
        f'transform="rotate(-90 16 {(H - BOTTOM + TOP) / 2:.0f})">{_e(ylabel)}</text>'
    )


def _xtick(x: float, label: str) -> str:
    y0 = H - BOTTOM
    return (
        f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 5}" stroke="#000"/>'
        f'<text x="{x:.1f}" y="{y0 + 18}" text-anchor="middle" font-size="11">'
        f"{_e(label)}</text>"
    )


def _ytick(y: float, label: str) -> str:
    return (
        f'<line x1="{LEFT - 5}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#000"/>'
        f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
        f"{_e(label)}</text>"
    )


def render(title: str, summaries: list[ModelSummary]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{_e(s.model)}</td><td>{s.items}</td><td>{_fmt(s.quality)}</td>"
        f"<td>{_fmt_usd(s.cost_usd)}</td><td>{_fmt_usd(s.cost_per_item)}</td>"
        f"<td>{_fmt(s.p50_ms, '{:.0f}')}</td><td>{_fmt(s.p95_ms, '{:.0f}')}</td>"
        f"<td>{s.errors}</td></tr>"
        for s in summaries
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("model", "items", "quality", "cost", "cost / item", "p50 ms", "p95 ms", "errors")
    )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{style}</style></head><body>"
        f"<h1>{_e(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        "<h2>Quality against cost</h2><p>The dashed line joins the Pareto frontier: no other "
        "model is both cheaper and better.</p>"
        f"{quality_cost_svg(summaries)}"
        f"<h2>Latency</h2><p>Successful calls; box from the 25th to the 75th percentile, "
        f"line at the median, whiskers at min and max.</p>{latency_svg(summaries)}"
        "</body></html>\n"
    )


__all__ = ["latency_svg", "quality_cost_svg", "render"]
