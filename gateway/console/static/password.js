/* "Mot de passe": a listener changes their own password. The server checks the policy (at least 12 characters,
   not a common one) and says why in `reason`; every other session of the listener is logged out. */
(function () {
  "use strict";
  var t = HG.t;
  var $ = function (id) { return document.getElementById(id); };
  var dialog = $("password-dialog");

  $("password-open").addEventListener("click", function () {
    ["password-current", "password-new", "password-again"].forEach(function (id) { $(id).value = ""; });
    $("password-error").textContent = "";
    dialog.showModal();
    $("password-current").focus();
  });

  $("password-send").addEventListener("click", function () {
    var error = $("password-error");
    error.textContent = "";
    if ($("password-new").value !== $("password-again").value) { error.textContent = t("password.differ"); return; }
    var body = { current: $("password-current").value, new: $("password-new").value };
    HG.api("POST", "/api/me/password", body).then(function (response) {
      if (response.ok) {
        dialog.close("ok");
        var toast = $("toast");
        if (toast) { toast.textContent = t("password.changed"); toast.className = "toast"; toast.hidden = false; }
        return;
      }
      var data = response.data || {};
      if (data.error === "weak_password") { error.textContent = t("password." + data.reason); }
      else if (data.error === "bad_credentials") { error.textContent = t("password.wrong"); }
      else if (data.error === "too_many_attempts" && response.wait > 0) {  // braked: the wait, as the login page says it
        error.textContent = HG.refusal(response, "wait", { wait: HG.duration(response.wait) });
      }
      else { error.textContent = HG.refusal(response); }  // common.js: the console's words (the store away…)
    }, HG.unanswered(function (text) { error.textContent = text; }, "other"));
  });
})();
