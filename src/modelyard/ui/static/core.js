/* The dashboard's core: JSON calls to /ui/api, formatting, DOM helpers, and the views
   registry switched by the URL's fragment (#spend, #requests, #request/ID, ...). */
(function () {
  "use strict";
  const views = {};

  async function api(path, options) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (resp.status === 401) {
      window.location.assign("/ui/login");
      throw new Error("the session ended");
    }
    const body = await resp.json().catch(() => null);
    if (!resp.ok) {
      const msg = body && body.error ? body.error.message : `HTTP ${resp.status}`;
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  function usd(micros) {
    if (micros == null) return "–";
    const d = micros / 1e6;
    if (d === 0) return "$0";
    if (Math.abs(d) < 0.01) return "$" + d.toFixed(6);
    return "$" + d.toFixed(2);
  }

  function ms(v) { return v == null ? "–" : `${v < 10 ? Number(v).toFixed(1) : Math.round(v)} ms`; }
  function pct(v) { return v == null ? "–" : `${(v * 100).toFixed(1)}%`; }
  function when(ts) { return ts == null ? "–" : new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19); }

  /* h("td", {class: "num", dataset: {x: 1}}, "text", child...) */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c == null) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function table(el, columns, rows, onRow) {
    el.textContent = "";
    el.appendChild(h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", {}, c.title)))));
    const body = h("tbody");
    for (const row of rows) {
      const tr = h("tr", onRow ? { class: "clickable" } : {},
        ...columns.map((c) => h("td", c.num ? { class: "num" } : {}, c.cell(row))));
      if (onRow) onRow(tr, row);
      body.appendChild(tr);
    }
    if (!rows.length) body.appendChild(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "nothing yet")));
    el.appendChild(body);
  }

  function showError(err) {
    const banner = document.getElementById("error-banner");
    if (!err) { banner.hidden = true; return; }
    banner.textContent = String(err.message || err);
    banner.hidden = false;
  }

  async function route() {
    const hash = window.location.hash.replace(/^#/, "") || "spend";
    const [name, ...rest] = hash.split("/");
    const view = views[name] ? name : "spend";
    for (const section of document.querySelectorAll("section.view")) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const a of document.querySelectorAll("header nav a")) {
      a.classList.toggle("active", a.dataset.view === view || (view === "request" && a.dataset.view === "requests"));
    }
    showError(null);
    document.body.dataset.ready = "";
    try {
      await views[view](decodeURIComponent(rest.join("/")));
      document.body.dataset.ready = view;  // tests wait for this
    } catch (err) {
      showError(err);
      document.body.dataset.ready = "error";
    }
  }

  window.Dash = { views, api, usd, ms, pct, when, h, table, route, showError };
})();
