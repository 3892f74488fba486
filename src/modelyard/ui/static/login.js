/* The login page: show why the last attempt failed (a fixed message per code). */
(function () {
  "use strict";
  const MESSAGES = {
    missing: "Enter an admin key.",
    invalid: "That key is not valid.",
    not_admin: "That key is not an admin key.",
  };
  const code = new URLSearchParams(window.location.search).get("error");
  const box = document.getElementById("login-error");
  if (code && MESSAGES[code]) {
    box.textContent = MESSAGES[code];
    box.hidden = false;
  }
})();
