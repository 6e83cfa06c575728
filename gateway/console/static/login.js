/* Login: posts the name and password as JSON to /api/session, then opens the console. */
(function () {
  "use strict";
  var form = document.getElementById("login-form");
  var error = document.getElementById("login-error");
  if (/[?&]expired=1/.test(location.search)) { document.getElementById("expired").hidden = false; }
  document.getElementById("name").focus();
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.textContent = "";
    var name = document.getElementById("name").value.trim();
    var password = document.getElementById("password").value;
    if (!name || !password) { error.textContent = HG.t("login.missing"); return; }
    var button = document.getElementById("login-button");
    button.disabled = true;
    fetch("/api/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: name, password: password })
    }).then(function (response) {
      if (response.ok) { location.href = "/console"; return; }
      error.textContent = HG.t(response.status === 401 ? "login.wrong" : "login.failed");
      button.disabled = false;
    }).catch(function () {
      error.textContent = HG.t("login.offline");
      button.disabled = false;
    });
  });
})();
