/* The overview views: spend over time, latency and errors per deployment, vendor dependency. */
(function () {
  "use strict";
  const { views, api, usd, ms, pct, h, table } = window.Dash;
  const charts = window.MyCharts;

  function bucketLabel(ts, bucket) {
    const iso = new Date(ts * 1000).toISOString();
    return bucket === "day" ? iso.slice(0, 10) : iso.slice(5, 16).replace("T", " ");
  }

  async function drawSpend() {
    const group = document.getElementById("spend-group").value;
    const [bucket, hours] = document.getElementById("spend-window").value.split(":");
    const until = Date.now() / 1000 + 1;
    const since = until - Number(hours) * 3600;
    const q = new URLSearchParams({ group_by: group, bucket, since: String(since), until: String(until) });
    const data = await api(`/ui/api/spend_series?${q}`);
    const total = document.getElementById("spend-total");
    total.textContent = usd(data.total_micros);
    total.dataset.costMicros = String(data.total_micros);
    document.getElementById("spend-requests").textContent = String(data.requests);
    const series = data.series.map((s, i) => ({
      name: s.name, label: s.label || s.name, values: s.cost_micros,
      color: charts.PALETTE[i % charts.PALETTE.length],
    }));
    charts.stackedBars(document.getElementById("spend-chart"), {
      title: `spend by ${group}`,
      labels: data.buckets.map((b) => bucketLabel(b, bucket)),
      series, format: usd,
    });
    const legend = document.getElementById("spend-legend");
    legend.textContent = "";
    data.series.forEach((s, i) => legend.appendChild(h("li", {
      dataset: { series: s.name, costMicros: String(s.total_micros) },
    }, h("span", { class: `swatch c${i % 9}` }), `${s.label || s.name}: ${usd(s.total_micros)} (${s.requests} requests)`)));
    if (!data.series.length) legend.appendChild(h("li", { class: "muted" }, "no requests in this window"));
  }

  views.spend = async function () {
    for (const id of ["spend-group", "spend-window"]) {
      const sel = document.getElementById(id);
      if (!sel.dataset.bound) {
        sel.dataset.bound = "1";
        sel.addEventListener("change", () => window.Dash.route());
      }
    }
    await drawSpend();
  };

  views.latency = async function () {
    const data = await api("/ui/api/latency");
    const rows = data.deployments;
    const cats = rows.map((r) => r.deployment);
    charts.groupedBars(document.getElementById("latency-chart"), {
      title: "latency percentiles", categories: cats, format: ms,
      measures: [
        { name: "p50", values: rows.map((r) => r.p50_ms) },
        { name: "p95", values: rows.map((r) => r.p95_ms) },
        { name: "p99", values: rows.map((r) => r.p99_ms) },
      ],
    });
    charts.groupedBars(document.getElementById("error-chart"), {
      title: "error rate", categories: cats, format: pct, max: 1, height: 200,
      measures: [{ name: "error rate", values: rows.map((r) => r.error_rate), color: "#c0392b" }],
    });
    table(document.getElementById("latency-table"), [
      { title: "deployment", cell: (r) => r.deployment },
      { title: "vendor", cell: (r) => r.vendor || "–" },
      { title: "answered", num: true, cell: (r) => r.answered },
      { title: "attempts", num: true, cell: (r) => r.attempts },
      { title: "failed", num: true, cell: (r) => r.failed_attempts },
      { title: "error rate", num: true, cell: (r) => pct(r.error_rate) },
      { title: "p50", num: true, cell: (r) => ms(r.p50_ms) },
      { title: "p95", num: true, cell: (r) => ms(r.p95_ms) },
      { title: "p99", num: true, cell: (r) => ms(r.p99_ms) },
      { title: "TTFT p50", num: true, cell: (r) => ms(r.ttft_p50_ms) },
      { title: "error types", cell: (r) => Object.entries(r.error_types).map(([k, v]) => `${k}: ${v}`).join(", ") || "–" },
    ], rows);
  };

  views.dependency = async function () {
    const data = await api("/ui/api/dependency?hours=24");
    const rows = data.routes.map((r) => ({
      name: r.route,
      parts: Object.entries(r.vendors).map(([v, c]) => ({ name: v, share: c.request_share })),
    }));
    charts.shareBars(document.getElementById("dependency-chart"), { title: "vendor share per route", rows });
    table(document.getElementById("dependency-table"), [
      { title: "route", cell: (r) => r.route },
      { title: "requests by vendor", cell: (r) => Object.entries(r.vendors).map(([v, c]) => `${v}: ${c.requests} (${pct(c.request_share)})`).join(", ") || "–" },
      { title: "spend by vendor", cell: (r) => Object.entries(r.vendors).map(([v, c]) => `${v}: $${c.spend_usd.toFixed(6)}`).join(", ") || "–" },
      { title: "survives the loss of", cell: (r) => h("span", {}, ...Object.entries(r.survives_loss_of).map(
        ([v, ok]) => h("span", { class: ok ? "badge ok" : "badge bad" }, `${v}: ${ok ? "yes" : "no"}`))) },
    ], data.routes);
  };
})();
