/* Supervision: the risk flags of the open conversations (GET /api/supervision/flags), per conversation and per
   message, drawn by the console's own flag rendering (flags.js); a message flagged while this page is open (a
   listener holding the conversation or not) is highlighted. Live events come from supervision.js ("hg:live").
   No message's text: reading it is opening the conversation in the console, which the audit log records. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, t = HG.t;
  var $ = function (id) { return document.getElementById(id); };

  HG.addTexts({
    fr: {
      "flags.title": "Risques signalés",
      "flags.help": "Conversations ouvertes (avec le bot, en attente ou en cours) où un risque a été lu : la classe, et pourquoi (les mots ou le modèle et son score), pour la conversation et pour chaque message. Un message signalé pendant que la page est ouverte clignote. Le texte se lit en ouvrant la conversation (inscrit au journal).",
      "flags.none": "Aucun risque signalé dans les conversations ouvertes.",
      "flags.open": "Ouvrir", "flags.open.aria": "Ouvrir la conversation de {name} dans la console",
      "flags.messages": "Messages signalés de {name}",
      "flags.stale": "{why} : les risques signalés n'ont pas pu être relus ; ce qui est affiché peut ne plus être à jour (relus toutes les 5 secondes)."
    },
    en: {
      "flags.title": "Risk flags",
      "flags.help": "Open conversations (with the bot, waiting or in progress) in which a risk was read: the class, and why (the words, or the model and its score), for the conversation and for each message. A message flagged while this page is open flashes. The text is read by opening the conversation (recorded in the audit log).",
      "flags.none": "No risk flagged in the open conversations.",
      "flags.open": "Open", "flags.open.aria": "Open {name}'s conversation in the console",
      "flags.messages": "{name}'s flagged messages",
      "flags.stale": "{why}: the risk flags could not be read again; what is shown may be out of date (read again every 5 seconds)."
    }
  });

  var shown = [], drawn = {}, live = {}, timer = null;

  document.addEventListener("hg:live", function (event) {
    var news = event.detail;
    if (news.type === "open") { load(); return; }
    if (news.type === "flag") { flagged(news); }
    if (news.type === "flag" || news.type === "queue" || news.type === "status") { loadSoon(); }
  });
  HG.onLanguage(function () { drawn = {}; render(shown); });

  /* A flag read now: highlighted at once where its message is shown (a stronger reading of it), else when the
     reload that follows draws it. Kept (with the count of reloads asked by then) while its message is shown: a
     reload asked after it that does not draw it (its conversation ended) forgets it, so that a board left on all
     night does not keep the id of every message flagged since it opened. */
  var asked = 0;

  function flagged(event) {
    live[event.entry_id] = asked;
    var row = $("flagged").querySelector('[data-entry="' + CSS.escape(event.entry_id) + '"]');
    if (row) { HG.showFlag(row, event.flag); row.classList.add("flash"); }
  }

  /* Reloads are throttled, not debounced: at a peak, queue and status events never stop, and a debounce would never
     load. The first reload after a quiet spell goes 150 ms after its event, then at most one every 2 s (each reads
     every open conversation on the server), one at a time; an event during a reload brings one more after it. */
  var GAP = 2000, last = 0, loading = false, again = false;
  /* A reload refused or unanswered: said above the list (the flags shown kept, "Aucun risque" never claimed from a
     read that failed), read again every 5 s until it answers. Before, nothing was said: a board left on showed the
     flags of before, or "Aucun risque signalé", as current. */
  var staleness = HG.staleRead($("flagged-stale"), "flags.stale", load);

  function loadSoon() {
    if (timer !== null) { return; }
    timer = setTimeout(function () { timer = null; load(); }, Math.max(150, last + GAP - Date.now()));
  }

  function load() {
    if (loading) { again = true; return; }
    loading = true;
    last = Date.now();
    var mine = ++asked;
    var done = function () {
      loading = false;
      if (again) { again = false; loadSoon(); }
    };
    HG.api("GET", "/api/supervision/flags").then(function (response) {
      if (!response.ok) { staleness.refused(response); $("flagged-none").hidden = true; return; }
      staleness.ok();
      render(response.data.flagged);
      forget(response.data.flagged, mine);
    }, function (error) { staleness.unanswered(error); $("flagged-none").hidden = true; }).then(done, done);
  }

  /* The highlights of messages flagged before reload ``mine`` was asked, which it does not show: gone. */
  function forget(conversations, mine) {
    var shownIds = {};
    conversations.forEach(function (c) { c.messages.forEach(function (m) { shownIds[m.id] = true; }); });
    Object.keys(live).forEach(function (id) { if (!shownIds[id] && live[id] < mine) { delete live[id]; } });
  }

  /* A conversation whose card and flags did not change keeps its node (a highlight goes on to its end). */
  function render(conversations) {
    shown = conversations;
    var list = $("flagged"), before = drawn;
    drawn = {};
    var nodes = conversations.map(function (c) {
      var key = JSON.stringify(c);
      var node = before[c.id] && before[c.id].key === key ? before[c.id].node : item(c);
      drawn[c.id] = { key: key, node: node };
      return node;
    });
    var same = nodes.length === list.children.length && nodes.every(function (node, i) { return list.children[i] === node; });
    if (!same) { clear(list); nodes.forEach(function (node) { list.appendChild(node); }); }
    $("flagged-none").hidden = conversations.length > 0 || staleness.stale();
  }

  function item(c) {
    var node = el("li", "card flagged-conversation priority-" + c.priority);
    node.dataset.conversation = c.id;
    var head = el("p", "card-head");
    head.appendChild(el("strong", "pseudonym", c.pseudonym));
    if (c.priority !== "normal") { head.appendChild(el("span", "badge " + c.priority, t("priority." + c.priority))); }
    head.appendChild(el("span", "badge risk", HG.flagText(c.flag)));
    node.appendChild(head);
    var meta = el("p", "card-meta");
    meta.appendChild(el("span", "pill channel", HG.channel(c.channel)));
    meta.appendChild(el("span", "pill", (c.language || "").toUpperCase()));
    meta.appendChild(el("span", "pill status", c.listener && c.status === "with_listener"
      ? t("conv.with", { name: c.listener }) : t("status." + c.status)));
    var open = el("a", "button ghost small", t("flags.open"));
    open.href = "/console#c=" + encodeURIComponent(c.id);
    open.setAttribute("aria-label", t("flags.open.aria", { name: c.pseudonym }));
    meta.appendChild(open);
    node.appendChild(meta);
    var messages = el("ol", "flag-messages");
    messages.setAttribute("aria-label", t("flags.messages", { name: c.pseudonym }));
    c.messages.forEach(function (m) { messages.appendChild(message(m)); });
    node.appendChild(messages);
    return node;
  }

  function message(m) {
    var row = el("li", "msg user");
    row.dataset.entry = m.id;
    row.dataset.author = "user";
    var who = el("span", "who", t("author.user"));
    who.appendChild(el("time", "", HG.clock(m.at)));
    row.appendChild(who);
    HG.showFlag(row, m.flag);
    if (live[m.id]) { row.classList.add("flash"); }
    return row;
  }
})();
