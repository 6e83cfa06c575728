/* Login: posts the name and password as JSON to /api/session, then opens the console; a refusal said in words. */
(function () {
  "use strict";
  var form = document.getElementById("login-form");
  var error = document.getElementById("login-error");
  if (/[?&]expired=1/.test(location.search)) { document.getElementById("expired").hidden = false; }
  document.getElementById("name").focus();
  /* A refusal in the console's words (common.js's HG.refusal): a login braked after wrong passwords with its wait
     (Retry-After, "15 min"), the store away (503 ``unavailable``), too many logins at once; "Connexion impossible"
     for an answer with no code the console knows (a proxy's page), never the server's English message. */
  function refused(response, wait) {
    var code = (response.data || {}).error;
    if (!code || HG.t("refused." + code) === "refused." + code) { return HG.t("login.failed"); }
    return wait > 0 ? HG.refusal(response, "wait", { wait: HG.duration(wait) }) : HG.refusal(response, "login");
  }

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
      if (response.status === 401) { error.textContent = HG.t("login.wrong"); button.disabled = false; return; }
      var type = response.headers.get("Content-Type") || "", wait = Number(response.headers.get("Retry-After"));
      var read = type.indexOf("json") >= 0 ? response.json().catch(function () { return null; }) : Promise.resolve(null);
      return read.then(function (data) {
        error.textContent = refused({ status: response.status, data: data }, wait);
        button.disabled = false;
      });
    }).catch(function () {
      error.textContent = HG.t("login.offline");
      button.disabled = false;
    });
  });
})();
