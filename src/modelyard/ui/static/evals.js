/* Evaluation runs side by side: the runs found, and the chosen ones' comparisons. */
(function () {
  "use strict";
  const { views, api, usd, ms, when, h, table } = window.Dash;

  function num(v, digits) { return v == null ? "–" : Number(v).toFixed(digits); }
  function dollars(v) { return v == null ? "–" : usd(Math.round(v * 1e6)); }

  function svgNode(markup) {
    const doc = new DOMParser().parseFromString(markup, "image/svg+xml");
    const root = doc.documentElement;
    return root && root.nodeName === "svg" ? document.importNode(root, true) : h("p", { class: "muted" }, "no chart");
  }

  function report(run) {
    const card = h("article", { class: "card eval-report", dataset: { run: run.id } });
    card.appendChild(h("h3", {}, run.name));
    card.appendChild(h("p", { class: "facts" }, `${run.task || ""} · ${run.path} · ${when(run.modified)}`));
    const t = h("table", { class: "grid" });
    table(t, [
      { title: "model", cell: (m) => run.frontier.includes(m.model) ? h("strong", {}, m.model, " ★") : m.model },
      { title: "items", num: true, cell: (m) => m.items },
      { title: "quality", num: true, cell: (m) => num(m.quality, 3) },
      { title: "cost", num: true, cell: (m) => dollars(m.cost_usd) },
      { title: "cost / item", num: true, cell: (m) => dollars(m.cost_per_item) },
      { title: "p50", num: true, cell: (m) => ms(m.p50_ms) },
      { title: "p95", num: true, cell: (m) => ms(m.p95_ms) },
      { title: "errors", num: true, cell: (m) => m.errors },
    ], run.models);
    card.appendChild(t);
    card.appendChild(h("p", { class: "muted" }, "★ on the Pareto frontier: no other model is both cheaper and better."));
    card.appendChild(svgNode(run.quality_cost_svg));
    card.appendChild(svgNode(run.latency_svg));
    return card;
  }

  async function compare(ids) {
    const out = document.getElementById("evals-reports");
    out.textContent = "";
    if (!ids.length) return;
    const q = new URLSearchParams();
    ids.forEach((id) => q.append("run", id));
    const data = await api(`/ui/api/evals/report?${q}`);
    data.runs.forEach((run) => out.appendChild(report(run)));
  }

  views.evals = async function () {
    const data = await api("/ui/api/evals");
    document.getElementById("evals-roots").textContent =
      `Runs are looked for in: ${data.roots.join(", ")} (more with MODELYARD_EVAL_DIRS).`;
    table(document.getElementById("evals-table"), [
      { title: "compare", cell: (r) => h("input", { type: "checkbox", name: "run", value: r.id, "aria-label": r.name }) },
      { title: "run", cell: (r) => r.name },
      { title: "task", cell: (r) => r.task || "–" },
      { title: "models", cell: (r) => r.models.join(", ") || "–" },
      { title: "updated (UTC)", cell: (r) => when(r.modified) },
      { title: "path", cell: (r) => r.path },
    ], data.runs);
    const boxes = Array.from(document.querySelectorAll("#evals-table input[name=run]"));
    boxes.slice(0, 2).forEach((b) => { b.checked = true; });
    const form = document.getElementById("evals-form");
    if (!form.dataset.bound) {
      form.dataset.bound = "1";
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const ids = Array.from(document.querySelectorAll("#evals-table input[name=run]:checked")).map((b) => b.value);
        compare(ids).catch(window.Dash.showError);
      });
    }
    await compare(boxes.filter((b) => b.checked).map((b) => b.value));
  };
})();
