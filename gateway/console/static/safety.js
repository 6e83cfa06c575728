/* Supervision, protection against abuse: the open conversations grouped by client (a flood shows as one
   client many times), each one flagged at risk badged, with a bulk close that keeps those (a second button closes
   them, deliberately), the blocks in force with "lift", the accounts with "log out everywhere"
   (every session ends, open consoles close at once), and the audit log. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, api = HG.api, t = HG.t;
  var $ = function (id) { return document.getElementById(id); };
  var shown = { floods: [], blocks: [], audit: [], accounts: [] };
  var LISTS = [["floods", "/api/floods", "conversations"], ["blocks", "/api/blocks", "blocks"],  // shown's, read from
    ["audit", "/api/audit", "entries"], ["accounts", "/api/listeners", "listeners"]];  // that route's that key
  var keptFlagged = [];  // the ids the last bulk close kept as flagged at risk: the second button's
  var fresh = HG.newest();  // the ten-second reload answered after a close's own reload is dropped

  HG.onLanguage(render);
  load();
  setInterval(load, 10000);

  $("floods-all").addEventListener("change", function () {
    document.querySelectorAll("#floods tbody input").forEach(function (box) { box.checked = $("floods-all").checked; });
  });
  $("floods-close").addEventListener("click", function () {
    var ids = Array.prototype.map.call(document.querySelectorAll("#floods tbody input:checked"), function (box) { return box.value; });
    if (!ids.length) { return; }
    closeFloods({ ids: ids });
  });
  /* A conversation flagged at risk is kept by the close above (the gateway reads it at the close, so one flagged
     after this page loaded is kept too); this second button, after a confirmation, closes the ones kept: a troll
     spamming risk words can still be cleared, deliberately. */
  $("floods-close-flagged").addEventListener("click", function () {
    var ids = keptFlagged;
    if (!ids.length || !window.confirm(t("safety.close_flagged.confirm", { n: ids.length }))) { return; }
    closeFloods({ ids: ids, include_flagged: true });
  });

  /* A refusal or no answer (common.js: the console's words and language) is said and the lists read again; with no
     answer, what was closed is unknown: the ids kept as flagged stay offered (closing one already closed is a no-op). */
  function closeFloods(body) {
    api("POST", "/api/floods/close", body).then(function (response) {
      var said = HG.refusal(response);
      keptFlagged = [];
      if (response.ok) {  // one already ending (idle close, "Terminer", cut short) is skipped: the gateway completes it
        said = t("safety.closed", { n: response.data.closed }) +
          (response.data.ending ? " · " + t("safety.ending", { n: response.data.ending }) : "") +
          (response.data.flagged_kept ? " · " + t("safety.flagged_kept", { n: response.data.flagged_kept }) : "");
        keptFlagged = response.data.flagged_kept_ids || [];
      }
      $("floods-result").textContent = said;
      showCloseFlagged();
      $("floods-all").checked = false;
      load();
    }, HG.unanswered(function (text) { $("floods-result").textContent = text; load(); }, "other"));
  }

  /* A block's "Lever" or an account's "Déconnecter partout": ``done`` on success, else the refusal (``about``: a
     block or an account gone meanwhile is not "this conversation") or no answer said in ``box``; the lists read again. */
  function safetyAction(method, path, about, box, done) {
    api(method, path).then(function (response) {
      $(box).textContent = response.ok ? done(response.data) : HG.refusal(response, about);
      load();
    }, HG.unanswered(function (text) { $(box).textContent = text; load(); }, "other"));
  }

  function showCloseFlagged() {
    var button = $("floods-close-flagged");
    button.hidden = !keptFlagged.length;
    button.textContent = t("safety.close_flagged", { n: keptFlagged.length });
  }

  /* The lists read every 10 s, each on its own: a list whose read is refused (the store away: 503) or unanswered
     keeps what it showed and says so once, on its own line under its title (replaced, never a toast per period);
     the lists read fine are drawn and say nothing; the next read of a list that answers hides its line. */
  function load() {
    fresh(Promise.all(LISTS.map(function (list) {
      return api("GET", list[1]).catch(function (error) {  // no answer: this list's; a 401 (session) is the page's
        if (error && error.message === "session") { throw error; }
        return null;
      });
    }))).then(function (answers) {
      LISTS.forEach(function (list, i) {
        var answer = answers[i];
        if (answer && answer.ok) { shown[list[0]] = answer.data[list[2]]; stale(list[0], null); return; }
        stale(list[0], !answer ? "safety.stale.network" : answer.status === 503 ? "safety.stale.store" : "safety.stale.refused");
      });
      render();
    }, function () { /* the session ended: the page is going to the login page */ });
  }

  function stale(list, key) { HG.staleLine($(list + "-stale"), key); }

  function render() {
    showCloseFlagged();  // its label in the language chosen
    var checked = {};
    document.querySelectorAll("#floods tbody input:checked").forEach(function (box) { checked[box.value] = true; });
    var floods = $("floods").querySelector("tbody");
    clear(floods);
    if (!shown.floods.length) { floods.appendChild(row([el("td", "empty", t("safety.none"))])); }
    shown.floods.forEach(function (c) {
      var box = el("input");
      box.type = "checkbox";
      box.value = c.id;
      box.checked = !!checked[c.id];
      box.setAttribute("aria-label", c.pseudonym);
      var client = c.client ? c.client.replace("client", t("safety.client")) + (c.same_client > 1 ? " ×" + c.same_client : "") : "–";
      var who = el("td", "", c.pseudonym + " · " + HG.channel(c.channel));
      if (c.flagged) {  // kept by a bulk close unless closed deliberately: the class, never the words
        who.appendChild(document.createTextNode(" "));
        var why = c.risk && t("risk." + c.risk) !== "risk." + c.risk ? t("risk." + c.risk) : c.risk;  // a rule's name
        who.appendChild(el("span", "badge risk", t("safety.flagged") + (why ? " · " + why : "")));
      }
      var cells = [cell(box), who, el("td", c.same_client > 1 ? "flood" : "", client),
        el("td", "", t("safety.status." + c.status) + (c.priority === "urgent" ? " · " + t("safety.urgent") : "")),
        el("td", "", HG.duration(c.waiting_seconds))];
      floods.appendChild(row(cells));
    });
    var blocks = $("blocks").querySelector("tbody");
    clear(blocks);
    if (!shown.blocks.length) { blocks.appendChild(row([el("td", "empty", t("safety.none"))])); }
    shown.blocks.forEach(function (b) {
      var lift = el("button", "ghost", t("safety.lift"));
      lift.type = "button";
      lift.addEventListener("click", function () {
        safetyAction("DELETE", "/api/blocks/" + encodeURIComponent(b.key), "block", "blocks-result", function () { return ""; });
      });
      var until = b.until ? new Date(b.until).toLocaleString(HG.locale()) : t("safety.forever");
      blocks.appendChild(row([el("td", "", b.pseudonym || "–"), el("td", "", HG.channel(b.channel)), el("td", "", b.reason),
        el("td", "", b.by), el("td", "", until), cell(lift)]));
    });
    var accounts = $("accounts").querySelector("tbody");
    clear(accounts);
    shown.accounts.forEach(function (a) {
      var out = el("button", "ghost", t("safety.logout_everywhere"));
      out.type = "button";
      out.setAttribute("aria-label", t("safety.logout_everywhere") + " : " + a.name);
      out.addEventListener("click", function () {
        safetyAction("POST", "/api/listeners/" + encodeURIComponent(a.name) + "/logout", "listener", "accounts-result",
          function (data) { return t("safety.logged_out", { name: a.name, n: data.ended }); });
      });
      accounts.appendChild(row([el("td", "", a.name), el("td", "", t(a.supervisor ? "role.supervisor" : "role.listener")), cell(out)]));
    });
    var audit = $("audit");
    clear(audit);
    if (!shown.audit.length) { audit.appendChild(el("li", "empty", t("safety.none"))); }
    shown.audit.forEach(function (a) {
      var when = new Date(a.at).toLocaleString(HG.locale());
      var action = t("safety.action." + a.action);  // an action with no words yet reads as itself, not as a key
      if (action === "safety.action." + a.action) { action = a.action.replace(/_/g, " "); }
      audit.appendChild(el("li", "", when + " · " + a.actor + " · " + action + (a.subject ? " · " + a.subject : "") +
        (a.detail ? " · " + a.detail : "")));
    });
  }

  function row(cells) { var tr = el("tr"); cells.forEach(function (c) { tr.appendChild(c); }); return tr; }
  function cell(child) { var td = el("td"); td.appendChild(child); return td; }
})();
