/* Supervision: "Risques lus après la fin" (GET /api/supervision/read-late): the ended conversations in which the
   model read a risk after the young person had left (they were told where to turn; nobody at the line was), from
   the last 48 hours, by pseudonym, each openable in the console as an ended conversation is (audited), until a
   supervisor marks it seen (POST /api/supervision/read-late/{id}/seen, in the audit log). Reloaded on the live
   events that a late reading publishes ("flag", "queue"), throttled as the risk flags are. No message's text. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, t = HG.t;
  var $ = function (id) { return document.getElementById(id); };

  HG.addTexts({
    fr: {
      "late.title": "Risques lus après la fin",
      "late.help": "Conversations terminées (ces 48 dernières heures) où un risque n'a été lu qu'après le départ du jeune : on lui a dit vers qui se tourner, personne à la ligne ne l'a vu. Ouvrez la conversation (inscrit au journal), puis marquez-la vue.",
      "late.none": "Aucun risque lu après la fin d'une conversation.",
      "late.ended": "terminée à {time}",
      "late.seen": "Marquer comme vue", "late.seen.aria": "Marquer la conversation de {name} comme vue",
      "late.stale": "{why} : les risques lus après la fin n'ont pas pu être relus ; ce qui est affiché peut ne plus être à jour (relus toutes les 5 secondes)."
    },
    en: {
      "late.title": "Risks read after the end",
      "late.help": "Ended conversations (last 48 hours) in which a risk was read only after the young person had left: they were told where to turn, nobody at the line saw it. Open the conversation (recorded in the audit log), then mark it seen.",
      "late.none": "No risk read after a conversation ended.",
      "late.ended": "ended at {time}",
      "late.seen": "Mark as seen", "late.seen.aria": "Mark {name}'s conversation as seen",
      "late.stale": "{why}: the risks read after the end could not be read again; what is shown may be out of date (read again every 5 seconds)."
    }
  });

  var shown = [], timer = null, loading = false, again = false, last = 0, GAP = 2000;
  /* A read refused or unanswered: said above the list (the conversations shown kept, "Aucun risque" never claimed
     from a read that failed), read again every 5 s until it answers; before, nothing was said. */
  var staleness = HG.staleRead($("read-late-stale"), "late.stale", load);

  document.addEventListener("hg:live", function (event) {
    var type = event.detail.type;
    if (type === "open") { load(); }
    else if (type === "flag" || type === "queue") { loadSoon(); }
  });
  HG.onLanguage(function () { render(shown); });

  function loadSoon() {
    if (timer !== null) { return; }
    timer = setTimeout(function () { timer = null; load(); }, Math.max(150, last + GAP - Date.now()));
  }

  function load() {
    if (loading) { again = true; return; }
    loading = true;
    last = Date.now();
    var done = function () {
      loading = false;
      if (again) { again = false; loadSoon(); }
    };
    HG.api("GET", "/api/supervision/read-late").then(function (response) {
      if (!response.ok) { staleness.refused(response); $("read-late-none").hidden = true; return; }
      staleness.ok();
      render(response.data.read_late);
    }, function (error) { staleness.unanswered(error); $("read-late-none").hidden = true; }).then(done, done);
  }

  function render(conversations) {
    shown = conversations;
    var list = $("read-late");
    clear(list);
    conversations.forEach(function (c) { list.appendChild(item(c)); });
    $("read-late-none").hidden = conversations.length > 0 || staleness.stale();
  }

  function when(iso) {
    var date = new Date(iso);
    return isNaN(date) ? "" : date.toLocaleString(HG.locale ? HG.locale() : "fr-FR",
      { weekday: "short", hour: "2-digit", minute: "2-digit" });
  }

  function item(c) {
    var node = el("li", "card flagged-conversation read-late priority-" + c.priority);
    node.dataset.conversation = c.id;
    var head = el("p", "card-head");
    head.appendChild(el("strong", "pseudonym", c.pseudonym));
    if (c.priority !== "normal") { head.appendChild(el("span", "badge " + c.priority, t("priority." + c.priority))); }
    if (c.flag) { head.appendChild(el("span", "badge risk", HG.flagText(c.flag))); }
    node.appendChild(head);
    var meta = el("p", "card-meta");
    meta.appendChild(el("span", "pill channel", HG.channel(c.channel)));
    meta.appendChild(el("span", "pill", (c.language || "").toUpperCase()));
    meta.appendChild(el("span", "pill status", c.closed_at ? t("late.ended", { time: when(c.closed_at) }) : t("status." + c.status)));
    var open = el("a", "button ghost small", t("flags.open"));
    open.href = "/console#c=" + encodeURIComponent(c.id);
    open.setAttribute("aria-label", t("flags.open.aria", { name: c.pseudonym }));
    meta.appendChild(open);
    var seen = el("button", "small", t("late.seen"));
    seen.type = "button";
    seen.setAttribute("aria-label", t("late.seen.aria", { name: c.pseudonym }));
    var said = el("p", "error");  // why it was not marked: the console's words (common.js), never silence
    said.setAttribute("role", "alert");
    var failed = function (text) { seen.disabled = false; said.textContent = text; node.insertBefore(said, meta.nextSibling); };
    seen.addEventListener("click", function () {
      seen.disabled = true;
      HG.api("POST", "/api/supervision/read-late/" + encodeURIComponent(c.id) + "/seen", {}).then(function (response) {
        if (response.ok || response.status === 404) { load(); return; }  // 404: a colleague marked it first
        failed(HG.refusal(response));
      }, HG.unanswered(failed, "other"));
    });
    meta.appendChild(seen);
    node.appendChild(meta);
    var messages = el("ol", "flag-messages");
    messages.setAttribute("aria-label", t("flags.messages", { name: c.pseudonym }));
    c.messages.forEach(function (m) {
      var row = el("li", "msg user");
      row.dataset.entry = m.id;
      row.dataset.author = "user";
      var who = el("span", "who", t("author.user"));
      who.appendChild(el("time", "", HG.clock(m.at)));
      row.appendChild(who);
      HG.showFlag(row, m.flag);
      messages.appendChild(row);
    });
    node.appendChild(messages);
    return node;
  }
})();
