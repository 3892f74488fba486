/* The playground: one prompt to several models at once, answers side by side with
   latency and cost. Each call is the gateway's chat completions handler, reached
   at /ui/api/chat/completions with the session; the cost is read from the ledger. */
(function () {
  "use strict";
  const { views, api, usd, ms, h } = window.Dash;
  const charts = window.MyCharts;

  async function ledgerRow(id) {
    const q = new URLSearchParams({ q: id, limit: "1" });
    for (let i = 0; i < 40; i++) {  // the ledger writes its batch every half second
      const found = (await api(`/ui/api/requests?${q}`)).requests.find((r) => r.id === id);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 250));
    }
    return null;
  }

  async function ask(model, prompt, maxTokens, card) {
    const started = performance.now();
    const resp = await fetch("/ui/api/chat/completions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model, max_tokens: maxTokens, messages: [{ role: "user", content: prompt }] }),
    });
    const elapsed = performance.now() - started;
    const body = await resp.json().catch(() => null);
    const id = resp.headers.get("X-Request-Id");
    const answer = card.querySelector(".answer");
    if (!resp.ok) {
      answer.textContent = body && body.error ? body.error.message : `HTTP ${resp.status}`;
      card.classList.add("failed");
    } else {
      answer.textContent = body.choices[0].message.content || "(no text)";
    }
    card.dataset.requestId = id || "";
    const facts = card.querySelector(".facts");
    facts.textContent = `${resp.status} · ${ms(elapsed)} in the browser · request ${id}`;
    const row = id ? await ledgerRow(id) : null;
    if (row) {
      card.dataset.costMicros = String(row.cost_micros);
      card.dataset.latencyMs = String(row.latency_ms);
      facts.textContent = `${row.deployment || "–"} · ${ms(row.latency_ms)} · ` +
        `${row.input_tokens} in / ${row.output_tokens} out tokens · ${usd(row.cost_micros)}`;
      facts.appendChild(h("span", {}, " · ", h("a", { href: `#request/${encodeURIComponent(id)}` }, "routing")));
    }
    card.dataset.done = "1";
    return { model, latency: row ? row.latency_ms : elapsed, cost: row ? row.cost_micros : null };
  }

  async function send(ev) {
    ev.preventDefault();
    const models = Array.from(document.querySelectorAll("#pg-models input:checked")).map((b) => b.value);
    const prompt = document.getElementById("pg-prompt").value;
    const maxTokens = Number(document.getElementById("pg-max-tokens").value) || 256;
    const out = document.getElementById("pg-results");
    out.textContent = "";
    document.getElementById("pg-chart").textContent = "";
    if (!models.length || !prompt.trim()) return;
    const cards = models.map((m) => {
      const card = h("article", { class: "card pg-card", dataset: { model: m } },
        h("h3", {}, m), h("p", { class: "facts" }, "waiting…"), h("div", { class: "answer" }));
      out.appendChild(card);
      return card;
    });
    const results = await Promise.all(models.map((m, i) => ask(m, prompt, maxTokens, cards[i]).catch((err) => {
      cards[i].querySelector(".answer").textContent = String(err.message || err);
      cards[i].dataset.done = "1";
      return { model: m, latency: null, cost: null };
    })));
    charts.groupedBars(document.getElementById("pg-chart"), {
      title: "latency", categories: results.map((r) => r.model), format: ms, height: 200,
      measures: [{ name: "latency", values: results.map((r) => r.latency) }],
    });
    document.getElementById("pg-results").dataset.done = "1";
  }

  views.playground = async function () {
    const box = document.getElementById("pg-models");
    if (!box.dataset.loaded) {
      const data = await api("/ui/api/models");
      for (const m of data.data) {
        box.appendChild(h("label", {}, h("input", { type: "checkbox", value: m.id, name: "model" }), ` ${m.id}`));
      }
      box.dataset.loaded = "1";
      document.getElementById("pg-form").addEventListener("submit", (ev) => send(ev).catch(window.Dash.showError));
    }
  };
})();
