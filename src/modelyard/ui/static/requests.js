/* The request list (searchable) and one request: its ledger row and routing explanation. */
(function () {
  "use strict";
  const { views, api, usd, ms, when, h, table } = window.Dash;
  const FIELDS = ["q", "route", "model", "team", "status"];

  function searchParams() {
    const form = document.getElementById("requests-search");
    const q = new URLSearchParams();
    for (const name of FIELDS) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    return q;
  }

  views.requests = async function () {
    const form = document.getElementById("requests-search");
    if (!form.dataset.bound) {
      form.dataset.bound = "1";
      form.addEventListener("submit", (ev) => { ev.preventDefault(); window.Dash.route(); });
    }
    const data = await api(`/ui/api/requests?${searchParams()}`);
    table(document.getElementById("requests-table"), [
      { title: "time (UTC)", cell: (r) => when(r.ts) },
      { title: "request id", cell: (r) => h("a", { href: `#request/${encodeURIComponent(r.id)}` }, r.id) },
      { title: "route / model", cell: (r) => r.model },
      { title: "deployment", cell: (r) => r.deployment || "–" },
      { title: "team", cell: (r) => r.team || "–" },
      { title: "status", cell: (r) => h("span", { class: r.status < 400 ? "status-ok" : "status-error" }, r.status) },
      { title: "latency", num: true, cell: (r) => ms(r.latency_ms) },
      { title: "tokens", num: true, cell: (r) => `${r.input_tokens} / ${r.output_tokens}` },
      { title: "cost", num: true, cell: (r) => usd(r.cost_micros) },
      { title: "cache", cell: (r) => r.cache || "–" },
    ], data.requests, (tr, r) => {
      tr.dataset.requestId = r.id;
      tr.addEventListener("click", (ev) => {
        if (ev.target.tagName !== "A") window.location.hash = `#request/${encodeURIComponent(r.id)}`;
      });
    });
  };

  function kv(pairs) {
    const dl = h("dl", { class: "kv" });
    for (const [k, v] of pairs) {
      if (v == null || v === "") continue;
      dl.appendChild(h("dt", {}, k));
      dl.appendChild(h("dd", {}, v));
    }
    return dl;
  }

  function ledger(row) {
    if (!row) return h("p", { class: "muted" }, "The ledger has no row for this request (rows are written within a second of the answer).");
    return kv([
      ["time (UTC)", when(row.ts)], ["endpoint", row.endpoint], ["model asked", row.model],
      ["route", row.route], ["deployment", row.deployment], ["vendor", row.provider],
      ["status", `${row.status}${row.error_type ? " " + row.error_type : ""}`],
      ["latency", ms(row.latency_ms)], ["time to first token", row.ttft_ms == null ? null : ms(row.ttft_ms)],
      ["tokens in / out", `${row.input_tokens} / ${row.output_tokens}`],
      ["cost", h("span", { id: "request-cost", "data-cost-micros": row.cost_micros }, usd(row.cost_micros))],
      ["team", row.team], ["key", row.key_name ? `${row.key_name} (${row.key_id})` : row.key_id],
      ["cache", row.cache], ["client request id", row.client_request_id],
    ]);
  }

  function explanation(d) {
    const box = h("div", { id: "decision", "data-chosen": d.chosen || "" });
    box.appendChild(kv([
      ["route", d.route], ["kind", d.kind], ["policy", (d.policy || []).join(" → ")],
      ["chosen", h("strong", { id: "decision-chosen" }, d.chosen || "none")],
      ["error", d.error],
    ]));
    box.appendChild(h("h3", {}, "Candidates"));
    const list = h("ol", { id: "decision-candidates" });
    const order = d.order || [];
    for (const name of d.candidates || []) {
      const removed = (d.removed || {})[name];
      const pos = order.indexOf(name);
      const tried = (d.attempts || []).some((a) => a.deployment === name);
      list.appendChild(h("li", { dataset: { deployment: name } }, h("code", {}, name), " ",
        removed ? h("span", { class: "badge bad" }, `removed: ${removed}`)
                : h("span", { class: "badge ok" }, pos >= 0 ? `kept, #${pos + 1} in order${tried ? ", tried" : ""}` : "kept"),
        name === d.chosen ? h("span", { class: "badge ok" }, "chosen") : null));
    }
    box.appendChild(list);
    box.appendChild(h("h3", {}, "Attempts"));
    const attempts = h("table", { class: "grid", id: "decision-attempts" });
    table(attempts, [
      { title: "#", num: true, cell: (a) => a.n },
      { title: "deployment", cell: (a) => a.deployment },
      { title: "retry", num: true, cell: (a) => a.retry },
      { title: "hedge", cell: (a) => (a.hedge ? "yes" : "no") },
      { title: "outcome", cell: (a) => h("span", { class: a.outcome === "ok" ? "status-ok" : "status-error" }, a.outcome) },
      { title: "status", num: true, cell: (a) => a.status == null ? "–" : a.status },
      { title: "latency", num: true, cell: (a) => ms(a.latency_ms) },
      { title: "error", cell: (a) => a.error || "–" },
    ], (d.attempts || []).map((a, i) => Object.assign({ n: i + 1 }, a)));
    box.appendChild(attempts);
    if (d.learned) {
      const l = d.learned, point = l.point || {};
      box.appendChild(h("h3", {}, "Learned cascade"));
      box.appendChild(kv([
        ["chain", (point.chain || []).join(" → ")], ["threshold", point.threshold],
        ["estimated cost", point.est_cost], ["estimated quality", point.est_quality],
        ["answer from", l.answer_from], ["deployment", l.deployment], ["cut short", l.cut_short],
      ].map(([k, v]) => [k, v == null ? null : String(v)])));
      const steps = h("table", { class: "grid", id: "decision-cascade" });
      table(steps, [
        { title: "step", num: true, cell: (c) => c.n },
        { title: "model", cell: (c) => c.model },
        { title: "deployment", cell: (c) => c.deployment },
        { title: "prompt estimate", num: true, cell: (c) => c.prompt_estimate },
        { title: "confidence", num: true, cell: (c) => c.confidence },
        { title: "answer", cell: (c) => String(c.answer == null ? "–" : c.answer).slice(0, 120) },
      ], (l.called || []).map((c, i) => Object.assign({ n: i + 1 }, c)));
      box.appendChild(steps);
    }
    box.appendChild(h("h3", {}, "Response cache"));
    box.appendChild(d.cache
      ? h("div", { id: "decision-cache", "data-result": d.cache.result || "" },
          kv(Object.entries(d.cache).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)])))
      : h("p", { class: "muted", id: "decision-cache" }, "not looked up (caching is off for the route, or the request was not deterministic: no temperature 0 or seed)"));
    box.appendChild(h("details", {}, h("summary", {}, "the decision as JSON"),
      h("pre", { class: "json" }, JSON.stringify(d, null, 2))));
    return box;
  }

  views.request = async function (id) {
    document.getElementById("request-id").textContent = id;
    const enc = encodeURIComponent(id);
    const [row, decision] = await Promise.all([
      api(`/ui/api/requests/${enc}`).catch((e) => { if (e.status === 404) return null; throw e; }),
      api(`/ui/api/decisions/${enc}`).catch((e) => { if (e.status === 404) return null; throw e; }),
    ]);
    const led = document.getElementById("request-ledger");
    led.textContent = "";
    led.appendChild(ledger(row));
    const ex = document.getElementById("explanation");
    ex.textContent = "";
    ex.appendChild(decision ? explanation(decision)
      : h("p", { class: "muted" }, "No routing decision is stored for this request."));
  };
})();
