/* Start the dashboard: who is logged in, then the view the URL names. */
(function () {
  "use strict";
  window.addEventListener("hashchange", () => window.Dash.route());
  window.Dash.api("/ui/api/me").then((me) => {
    document.getElementById("who").textContent = me.name;
  }).catch(() => {});
  window.Dash.route();
})();
