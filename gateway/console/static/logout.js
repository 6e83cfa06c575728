/* "Se déconnecter", on the console and supervision pages. Unsent drafts (drafts.js: kept in this tab only) never
   outlive a logout, a desk may be shared; the conversations the listener holds go back to the queue at a logout (nobody
   else may answer them while they are held), where the young person is told their listener is gone (and, the line
   closed, where to turn until it reopens). When there are drafts or held conversations, an in-page dialog first says
   how many drafts will be lost and how many conversations go back to the queue (and that the line is closed now),
   "Annuler" focused first (Escape cancels too, keeping everything); confirmed, the drafts are forgotten and the
   session ends. Without either the logout is immediate. The held ones are read from the server at the click (until
   2026-12-06 only drafts were warned of); unanswered within HELD_WAIT_MS, the drafts alone decide. The dialog is
   built here, once for both pages, with data-i18n attributes as the pages' own dialogs (i18n.js translates it with
   them). */
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
      "logout.held.one": "La conversation que tu tiens retournera dans la file : le ou la jeune sera prévenu·e que tu es parti·e.",
      "logout.held.many": "Les {n} conversations que tu tiens retourneront dans la file : chaque jeune sera prévenu·e que tu es parti·e.",
      "logout.held.closed": "La ligne est fermée maintenant : personne ne leur répondra avant la réouverture, ils et elles seront orienté·es vers d'autres numéros en attendant.",
      "logout.held.elsewhere.one": "Tu es connecté·e dans un autre navigateur : tu gardes la conversation que tu tiens et tu y réponds là-bas (sans console ouverte là-bas, elle retourne d'elle-même dans la file après quelques minutes).",
      "logout.held.elsewhere.many": "Tu es connecté·e dans un autre navigateur : tu gardes les {n} conversations que tu tiens et tu y réponds là-bas (sans console ouverte là-bas, elles retournent d'elles-mêmes dans la file après quelques minutes).",
      "logout.held.hint": "Annule pour les clôturer, les transférer ou prévenir d'abord.",
      "logout.held.confirm": "Se déconnecter et les rendre",
      "logout.unanswered": "Pas de réponse du serveur (connexion coupée ?) : tu es peut-être encore connecté·e. Réessaie « Se déconnecter » avant de quitter ce poste."
    },
    en: {
      "logout.title": "Log out?",
      "logout.one": "1 unsent draft will be lost: it is kept in this tab only, and it is erased when you log out.",
      "logout.many": "{n} unsent drafts will be lost: they are kept in this tab only, and they are erased when you log out.",
      "logout.hint": "Cancel to send, save or copy them first.",
      "logout.confirm": "Log out and lose them",
      "logout.held.one": "The conversation you hold will go back to the queue: the young person will be told you left.",
      "logout.held.many": "The {n} conversations you hold will go back to the queue: each young person will be told you left.",
      "logout.held.closed": "The line is closed now: nobody will answer them before it reopens; they will be referred to other numbers meanwhile.",
      "logout.held.elsewhere.one": "You are logged in in another browser: you keep the conversation you hold and answer it there (with no console open there, it goes back to the queue by itself after a few minutes).",
      "logout.held.elsewhere.many": "You are logged in in another browser: you keep the {n} conversations you hold and answer them there (with no console open there, they go back to the queue by themselves after a few minutes).",
      "logout.held.hint": "Cancel to close or transfer them, or to tell them, first.",
      "logout.held.confirm": "Log out and hand them back",
      "logout.unanswered": "No answer from the server (connection lost?): you may still be logged in. Try \"Log out\" again before leaving this computer."
    }
  });

  /* No answer within LOGOUT_WAIT_MS (a network gone silent, a connection reset): the session may not have ended, and
     the page said nothing, staying as it was: a listener left a shared desk logged in. Said, to try again. */
  var LOGOUT_WAIT_MS = 15000;
  var HELD_WAIT_MS = 5000;  // the held conversations read at the click: without an answer, the drafts alone decide
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
    box.setAttribute("aria-describedby", "logout-lost logout-held");
    var form = el("form", "stack");
    form.method = "dialog";
    var title = text("h2", "logout.title");
    title.id = "logout-title";
    var lost = el("p", "", "");
    lost.id = "logout-lost";
    var held = el("p", "", "");
    held.id = "logout-held";
    var hint = el("p", "meta", "");
    hint.id = "logout-hint";
    var buttons = el("div", "dialog-buttons");
    var cancel = text("button", "dialog.cancel", "ghost");
    cancel.value = "cancel";
    cancel.autofocus = true;
    var confirm = el("button", "danger", "");
    confirm.id = "logout-confirm";
    confirm.value = "ok";
    buttons.appendChild(cancel);
    buttons.appendChild(confirm);
    [title, lost, held, hint, buttons].forEach(function (node) { form.appendChild(node); });
    box.appendChild(form);
    box.addEventListener("close", function () { if (box.returnValue === "ok") { logOut(button); } });
    document.body.appendChild(box);
    return box;
  }

  /* What the dialog says, in the page's language: the drafts lost, the conversations going back to the queue. The
     texts are set again when the language changes while it is open. */
  function fillDialog(count, held, closed, elsewhere) {
    $("logout-lost").hidden = !count;
    $("logout-lost").textContent = !count ? "" : count === 1 ? t("logout.one") : t("logout.many", { n: count });
    $("logout-held").hidden = !held;
    if (elsewhere) {  // another session of theirs: the logout keeps them (api.py, logout)
      $("logout-held").textContent = !held ? "" : held === 1 ? t("logout.held.elsewhere.one") : t("logout.held.elsewhere.many", { n: held });
    } else {
      $("logout-held").textContent = !held ? "" : [held === 1 ? t("logout.held.one") : t("logout.held.many", { n: held }),
        closed ? t("logout.held.closed") : ""].filter(Boolean).join(" ");
    }
    var goBack = held && !elsewhere;
    $("logout-hint").textContent = [count ? t("logout.hint") : "", goBack ? t("logout.held.hint") : ""].filter(Boolean).join(" ");
    $("logout-confirm").textContent = count ? t("logout.confirm") : goBack ? t("logout.held.confirm") : t("head.logout");
  }

  /* The conversations this listener holds, whether a queue is closed now and whether they are logged in in another
     browser (GET /api/me's ``elsewhere``: then the logout keeps them), read from the server (0 and false when it does
     not answer in time: the logout is not held up by it; "they go back" said then, the safe side). */
  function heldNow() {
    var answered = function (response) { return response.ok && response.data ? response.data : null; };
    var unanswered = function (error) {
      if (error && error.message === "session") { throw error; }  // the session is over: the page is leaving
      return null;
    };
    return Promise.all([
      HG.api("GET", "/api/queue", undefined, HELD_WAIT_MS).then(answered, unanswered),
      HG.api("GET", "/api/me", undefined, HELD_WAIT_MS).then(answered, unanswered)
    ]).then(function (read) {
      var queue = read[0], me = read[1];
      if (!queue) { return { held: 0, closed: false, elsewhere: false }; }
      return { held: (queue.mine || []).length, closed: (queue.closed || []).length > 0,
        elsewhere: Boolean(me && me.elsewhere) };
    });
  }

  function logoutButton(button) {
    var box = null;
    var shown = null;  // what the open dialog says, to say it again in another language
    HG.onLanguage(function () { if (box && box.open && shown) { fillDialog(shown.count, shown.held, shown.closed, shown.elsewhere); } });
    button.addEventListener("click", function () {
      var count = drafts.count();
      heldNow().then(function (now) {
        if (!count && !now.held) { logOut(button); return; }
        box = box || dialog(button);
        shown = { count: count, held: now.held, closed: now.closed, elsewhere: now.elsewhere };
        fillDialog(count, now.held, now.closed, now.elsewhere);
        box.returnValue = "";  // Escape keeps the last value: never an "ok" from before
        box.showModal();
      }, function () {});
    });
  }

  HG.logoutButton = logoutButton;
})();
