/* "Se déconnecter", on the console and supervision pages. Unsent drafts (drafts.js: kept in this tab only) never
   outlive a logout, a desk may be shared: when there are some, an in-page dialog first says how many will be lost,
   "Annuler" focused first (Escape cancels too, keeping everything); confirmed, they are forgotten and the session
   ends. Without drafts the logout is immediate. The dialog is built here, once for both pages, with data-i18n
   attributes as the pages' own dialogs (i18n.js translates it with them). */
(function () {
  "use strict";
  var el = HG.el, t = HG.t, drafts = HG.drafts;
  var $ = function (id) { return document.getElementById(id); };

  HG.addTexts({
    fr: {
      "logout.title": "Se déconnecter ?",
      "logout.one": "1 brouillon non envoyé sera perdu : il n'est gardé que dans cet onglet, et il est effacé à la déconnexion.",
      "logout.many": "{n} brouillons non envoyés seront perdus : ils ne sont gardés que dans cet onglet, et ils sont effacés à la déconnexion.",
      "logout.hint": "Annule pour les envoyer, les enregistrer ou les copier d'abord.",
      "logout.confirm": "Se déconnecter et les perdre",
      "logout.unanswered": "Pas de réponse du serveur (connexion coupée ?) : tu es peut-être encore connecté·e. Réessaie « Se déconnecter » avant de quitter ce poste."
    },
    en: {
      "logout.title": "Log out?",
      "logout.one": "1 unsent draft will be lost: it is kept in this tab only, and it is erased when you log out.",
      "logout.many": "{n} unsent drafts will be lost: they are kept in this tab only, and they are erased when you log out.",
      "logout.hint": "Cancel to send, save or copy them first.",
      "logout.confirm": "Log out and lose them",
      "logout.unanswered": "No answer from the server (connection lost?): you may still be logged in. Try \"Log out\" again before leaving this computer."
    }
  });

  /* No answer within LOGOUT_WAIT_MS (a network gone silent, a connection reset): the session may not have ended, and
     the page said nothing, staying as it was: a listener left a shared desk logged in. Said, to try again. */
  var LOGOUT_WAIT_MS = 15000;
  var failed = null;  // the line that says so, under the button

  function logOut(button) {
    drafts.forget();  // first: a session already ended sends this page to the login page without an answer
    HG.leaving();  // the page's other requests answered 401 from now on are this logout: no "session expired"
    if (failed) { failed.hidden = true; }
    HG.api("DELETE", "/api/session", undefined, LOGOUT_WAIT_MS).then(function () { location.href = "/console/login"; }, function (error) {
      if (error && error.message === "session") { return; }  // a 401: the page is going to the login page already
      if (!failed) {
        failed = text("p", "logout.unanswered", "error");
        failed.setAttribute("role", "alert");
        button.insertAdjacentElement("afterend", failed);
      }
      failed.hidden = false;
    });
  }

  function text(tag, key, className) {
    var node = el(tag, className || "", t(key));
    node.dataset.i18n = key;
    return node;
  }

  function dialog(button) {
    var box = el("dialog");
    box.id = "logout-dialog";
    box.setAttribute("aria-labelledby", "logout-title");
    box.setAttribute("aria-describedby", "logout-lost");
    var form = el("form", "stack");
    form.method = "dialog";
    var title = text("h2", "logout.title");
    title.id = "logout-title";
    var lost = el("p", "", "");
    lost.id = "logout-lost";
    var buttons = el("div", "dialog-buttons");
    var cancel = text("button", "dialog.cancel", "ghost");
    cancel.value = "cancel";
    cancel.autofocus = true;
    var confirm = text("button", "logout.confirm", "danger");
    confirm.id = "logout-confirm";
    confirm.value = "ok";
    buttons.appendChild(cancel);
    buttons.appendChild(confirm);
    [title, lost, text("p", "logout.hint", "meta"), buttons].forEach(function (node) { form.appendChild(node); });
    box.appendChild(form);
    box.addEventListener("close", function () { if (box.returnValue === "ok") { logOut(button); } });
    document.body.appendChild(box);
    return box;
  }

  function logoutButton(button) {
    var box = null;
    button.addEventListener("click", function () {
      var count = drafts.count();
      if (!count) { logOut(button); return; }
      box = box || dialog(button);
      $("logout-lost").textContent = count === 1 ? t("logout.one") : t("logout.many", { n: count });
      box.returnValue = "";  // Escape keeps the last value: never an "ok" from before
      box.showModal();
    });
  }

  HG.logoutButton = logoutButton;
})();
