/* Small SVG charts for the dashboard: stacked bars over time, grouped bars, share bars.
   No library: every element is built with the DOM API (text via textContent), so
   labels from the ledger can never become markup. Each mark carries data-*
   attributes with its raw value, which the tests and the tooltips read. */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#3b6fd8", "#e07b39", "#3aa676", "#c44e8a", "#8a6fd1",
                   "#d4b13b", "#4bb2c4", "#9c5b3b", "#7f8c8d"];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const t = el("text", Object.assign({ x: x, y: y, "font-size": 11, fill: "#444" }, attrs), parent);
    t.textContent = content;
    return t;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function frame(container, height, label) {
    container.textContent = "";
    const width = Math.max(container.clientWidth || 0, 480);
    const svg = el("svg", { width: width, height: height, viewBox: `0 0 ${width} ${height}`,
                            role: "img", "aria-label": label, class: "chart" }, container);
    return { svg: svg, width: width, height: height };
  }

  function yAxis(svg, left, top, plotH, plotW, max, fmt) {
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const y = top + plotH - (plotH * i) / 4;
      el("line", { x1: left, x2: left + plotW, y1: y, y2: y, stroke: i ? "#e3e6ea" : "#999" }, svg);
      text(svg, left - 6, y + 4, fmt(v), { "text-anchor": "end" });
    }
  }

  /* Stacked bars: one bar per x label, one segment per series.
     opts: {labels: [..], series: [{name, values: [..]}], format: v => str} */
  function stackedBars(container, opts) {
    const f = frame(container, opts.height || 280, opts.title || "stacked bars");
    const left = 78, right = 12, top = 12, bottom = 34;
    const plotW = f.width - left - right, plotH = f.height - top - bottom;
    const n = opts.labels.length;
    const totals = opts.labels.map((_, i) => opts.series.reduce((s, x) => s + x.values[i], 0));
    const max = niceMax(Math.max(0, ...totals));
    yAxis(f.svg, left, top, plotH, plotW, max, opts.format);
    const slot = plotW / Math.max(n, 1);
    const barW = Math.max(1, Math.min(40, slot * 0.8));
    const every = Math.max(1, Math.ceil(n / 10));
    opts.labels.forEach((label, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      let y = top + plotH;
      opts.series.forEach((s, k) => {
        const v = s.values[i];
        if (!v) return;
        const h = (plotH * v) / max;
        y -= h;
        const r = el("rect", { x: x, y: y, width: barW, height: Math.max(h, 0.5),
                               fill: s.color || PALETTE[k % PALETTE.length], class: "mark",
                               "data-series": s.name, "data-x": label, "data-value": v }, f.svg);
        el("title", {}, r).textContent = `${s.label || s.name} · ${label}: ${opts.format(v)}`;
      });
      if (i % every === 0) text(f.svg, x + barW / 2, top + plotH + 16, label, { "text-anchor": "middle" });
    });
    return f.svg;
  }

  /* Grouped bars: one group per category, one bar per measure.
     opts: {categories: [..], measures: [{name, values: [..]}], format} */
  function groupedBars(container, opts) {
    const f = frame(container, opts.height || 260, opts.title || "grouped bars");
    const left = 78, right = 12, top = 18, bottom = 40;
    const plotW = f.width - left - right, plotH = f.height - top - bottom;
    const all = opts.measures.flatMap((m) => m.values.filter((v) => v != null));
    const max = opts.max || niceMax(Math.max(0, ...all));
    yAxis(f.svg, left, top, plotH, plotW, max, opts.format);
    const slot = plotW / Math.max(opts.categories.length, 1);
    const barW = Math.max(2, Math.min(36, (slot * 0.8) / opts.measures.length));
    opts.categories.forEach((cat, i) => {
      const x0 = left + i * slot + (slot - barW * opts.measures.length) / 2;
      opts.measures.forEach((m, k) => {
        const v = m.values[i];
        if (v == null) return;
        const h = (plotH * Math.min(v, max)) / max;
        const r = el("rect", { x: x0 + k * barW, y: top + plotH - h, width: barW - 1,
                               height: Math.max(h, 0.5), class: "mark",
                               fill: m.color || PALETTE[k % PALETTE.length],
                               "data-category": cat, "data-measure": m.name, "data-value": v }, f.svg);
        el("title", {}, r).textContent = `${cat} · ${m.name}: ${opts.format(v)}`;
      });
      text(f.svg, left + i * slot + slot / 2, top + plotH + 16, cat, { "text-anchor": "middle" });
    });
    if (opts.measures.length > 1) {  // a key to the colours, top right
      opts.measures.forEach((m, k) => {
        const x = f.width - right - 70 * (opts.measures.length - k);
        el("rect", { x: x, y: 2, width: 10, height: 10, fill: m.color || PALETTE[k % PALETTE.length] }, f.svg);
        text(f.svg, x + 14, 11, m.name);
      });
    }
    return f.svg;
  }

  /* Horizontal 100% bars: one row per category, segments by share (0..1).
     opts: {rows: [{name, parts: [{name, share, value}]}]} */
  function shareBars(container, opts) {
    const rowH = 30;
    const f = frame(container, 16 + rowH * Math.max(opts.rows.length, 1), opts.title || "shares");
    const left = 150, right = 12, plotW = f.width - left - right;
    const colors = {};
    opts.rows.forEach((row, i) => {
      const y = 8 + i * rowH;
      text(f.svg, left - 8, y + 16, row.name, { "text-anchor": "end" });
      let x = left;
      row.parts.forEach((p) => {
        if (!(p.name in colors)) colors[p.name] = PALETTE[Object.keys(colors).length % PALETTE.length];
        const w = plotW * p.share;
        const r = el("rect", { x: x, y: y, width: Math.max(w, 0.5), height: rowH - 8,
                               fill: colors[p.name], class: "mark", "data-category": row.name,
                               "data-part": p.name, "data-share": p.share }, f.svg);
        el("title", {}, r).textContent = `${row.name} · ${p.name}: ${(p.share * 100).toFixed(1)}%`;
        if (w > 60) text(f.svg, x + 6, y + 15, `${p.name} ${(p.share * 100).toFixed(0)}%`, { fill: "#fff" });
        x += w;
      });
    });
    return colors;
  }

  window.MyCharts = { stackedBars, groupedBars, shareBars, PALETTE };
})();
