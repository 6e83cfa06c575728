/* The listener console: the live queue, one conversation at a time, replies, canned responses, private notes
   and actions. Everything a young person wrote goes into the page with textContent only. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, api = HG.api, drafts = HG.drafts;  // drafts.js: what is not sent or saved yet
  var $ = function (id) { return document.getElementById(id); };

  var t = HG.t, flagText = HG.flagText, showFlag = HG.showFlag;  // flags.js
  // A queue (or history) asked before a take, a close or an event and answered after the newer one is dropped.
  var freshQueue = HG.newest(), freshHistory = HG.newest();
  var refusal = HG.refusal;  // common.js: a refusal in the console's words (i18n.js's refused.*)

  var state = {
    me: null, flow: null, waiting: [], waitingTotal: 0, newest: null, mine: [], others: [], othersTotal: 0, fetchedAt: Date.now(), known: null,
    current: null, via: {}, shown: {}, mode: "reply", typingSent: 0, typingTimer: null, queueTimer: null, historyTimer: null, erased: {}, newArrival: false,
    draft: null, sending: false, lost: {}, closing: null, closeNotes: null, referring: null, acting: {}, opening: null
  };

  // ----- start ----------------------------------------------------------------------------------------------

  /* Who the listener is and the flow's material, read again every START_RETRY_MS while refused (the store away:
     503) or unanswered, the reason said: never a blank console with nothing said. */
  var START_RETRY_MS = 3000;
  function start() {
    Promise.all([api("GET", "/api/me"), api("GET", "/api/flow")]).then(function (results) {
      var refused = results.filter(function (r) { return !r.ok; })[0];
      if (refused) { toast(refusal(refused), true); setTimeout(start, START_RETRY_MS); return; }
      started(results);
    }, function (error) {
      if (error && error.message === "session") { return; }  // a 401: the page is going to the login page
      toast(t("refused.network.other"), true);  // the console starting: no conversation to look at yet
      setTimeout(start, START_RETRY_MS);
    });
  }
  start();

  function started(results) {
    state.me = results[0].data;
    state.flow = results[1].data;
    $("me").textContent = state.me.name;
    drafts.start(state.me.name);
    $("supervision-link").hidden = !state.me.supervisor;
    $("erase-open").hidden = !state.me.supervisor;  // erasure on request: supervisors only (the API checks too)
    fillSelects();
    HG.events({ onOpen: onConnected, onEvent: onEvent, onClose: function () { connection(false); } });
    var match = /#c=([\w-]+)(?:&via=([\w-]+))?/.exec(location.hash);
    if (match && match[2]) { state.via[match[1]] = match[2]; }  // an earlier one of a held conversation, as before
    if (match) { openConversation(match[1]); }
  }
  HG.logoutButton($("logout"));  // logout.js: asks first when drafts would be lost
  HG.onLanguage(function () {
    connection(state.connected);
    title();
    if (!state.me) { return; }
    fillSelects();
    renderQueue();
    // every label in the new language, from the conversation as it is now: the one read when it was opened lacks
    // what came since (drawn by appendEntry), which a redraw from it took off the screen
    if (state.current) { state.rebuild = true; if (state.current.erased) { renderConversation(false); } else { openConversation(state.current.id); } }
    if (state.gone) { $("gone").textContent = t(state.gone.key, { name: state.gone.name }); }
  });
  setInterval(renderWaitingTimes, 15000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { state.newArrival = false; title(); } });

  function onConnected() {  // also after a reconnection: events (deliveries) may have been missed, redraw all
    connection(true);
    loadHistory();
    loadQueue();
    if (state.current) { state.rebuild = true; if (state.current.erased) { renderConversation(false); } else { openConversation(state.current.id); } }
  }

  function connection(on) {
    if (on === undefined) { return; }
    state.connected = on;
    $("connection").dataset.i18n = on ? "conn.live" : "conn.reconnecting";  // a page's addTexts translates it again
    $("connection").textContent = on ? t("conn.live") : t("conn.reconnecting");
    $("connection").className = "pill " + (on ? "on" : "off");
  }

  /* The lists from flows.yaml, in the console's language (canned texts stay in the young person's). */
  function fillSelects() {
    fill($("canned"), state.flow.canned_responses.map(function (canned, index) {
      return { value: String(index), label: canned.shortcut + " · " + HG.local(canned.title) };
    }));
    fill($("partner"), state.flow.partners.map(function (p) { return { value: p.id, label: HG.local(p.names, p.name) }; }));
    fill($("queue"), state.flow.queues.map(function (q) { return { value: q.id, label: HG.local(q.names, q.name) }; }));
    fill($("outcome"), state.flow.outcomes.map(function (c) { return { value: c.id, label: HG.local(c.labels, c.label) }; }));
  }

  function fill(select, options) {  // keeps a first empty option ("Choisir…") and the current choice
    var chosen = select.value;
    Array.prototype.slice.call(select.options).forEach(function (option) { if (option.value) { select.removeChild(option); } });
    options.forEach(function (o) { var option = el("option", "", o.label); option.value = o.value; select.appendChild(option); });
    if (chosen) { select.value = chosen; }
  }

  // ----- live events ----------------------------------------------------------------------------------------

  /* Receipts can overtake the transcript they update (a "read" sent while the conversation is still loading):
     the latest one of each entry is kept and applied when the entry is drawn. Forward only, failed aside. Only
     those of the conversation shown and of the one being opened (state.opening) are kept, by conversation: a
     supervisor's console gets every conversation's, and kept each one for the whole shift. */
  var DELIVERY_RANK = { pending: 0, sent: 1, delivered: 2, read: 3 };
  var receipts = {};  // conversation id → entry id → its latest delivery

  function latestDelivery(conversation, id, delivery) {
    var seen = (receipts[conversation] || {})[id];
    if (seen && delivery !== "failed" && (DELIVERY_RANK[seen] || 0) > (DELIVERY_RANK[delivery] || 0)) { return seen; }
    return delivery;
  }

  function keepReceipt(event) {
    var id = event.conversation_id;
    if (id !== (state.current && state.current.id) && id !== state.opening) { return; }
    receipts[id] = receipts[id] || {};
    receipts[id][event.id] = latestDelivery(id, event.id, event.delivery);
  }

  function forgetReceipts() {  // another conversation shown: those of the one before go
    Object.keys(receipts).forEach(function (id) {
      if (id !== (state.current && state.current.id) && id !== state.opening) { delete receipts[id]; }
    });
  }

  function onEvent(event) {
    if (event.type === "delivery") { keepReceipt(event); }
    var current = state.current && event.conversation_id === state.current.id;
    if (event.type === "queue" || event.type === "status" || event.type === "language") { scheduleQueue(); }
    if (event.type === "presence" && state.me && state.me.supervisor) { scheduleQueue(); }  // who is away, live
    if (event.type === "status" && heldHere(event.conversation_id)) { scheduleHistory(); }
    if (event.type === "erased" && state.history) { forget(event.conversation_id); }  // the current one: below
    if (!current) { return; }
    if (event.type === "erased") {  // a supervisor or the young person erased it: the last thing it shows
      state.current.erased = true;
      drafts.drop(state.current.id);  // erased means everything about them, a draft too
      $("reply").value = "";
      appendEntry(event.entry);
      $("conv-actions").hidden = true;
      $("composer").hidden = true;
      return;
    }
    if (state.current.erased) { return; }  // nothing left to load
    if (event.type === "entry" || event.type === "note") {
      var entry = event.entry;
      if (entry.attachments && entry.attachments.length) { openConversation(state.current.id); return; }
      if (entry.author === "system") { openConversation(state.current.id); return; }  // e.g. left: the header too
      appendEntry(entry);
      if (entry.author === "user") { $("user-typing").hidden = true; }
    } else if (event.type === "language") {  // the young person chose another: the header and canned texts follow
      openConversation(state.current.id);
    } else if (event.type === "status") {
      if (event.status === "with_listener" && !isMine()) { state.lost[event.conversation_id] = true; }
      else { delete state.lost[event.conversation_id]; }  // closed, back in line: no longer "a colleague took it"
      openConversation(state.current.id);
    } else if (event.type === "flag") {
      var flagged = document.querySelector('[data-entry="' + CSS.escape(event.entry_id) + '"]');
      if (flagged) {  // a risk read while the listener holds it (a late reading too): seen at once, and kept shown
        showFlag(flagged, event.flag);
        flagged.classList.add("flash");
        announce(flagText(event.flag));
      }
    } else if (event.type === "delivery") {
      var mark = document.querySelector('[data-entry="' + CSS.escape(event.id) + '"] .delivery');
      if (mark) { setDelivery(mark, latestDelivery(state.current.id, event.id, event.delivery)); }
    } else if (event.type === "typing" && event.who === "user") {
      $("user-typing").hidden = false;
      clearTimeout(state.typingTimer);
      state.typingTimer = setTimeout(function () { $("user-typing").hidden = true; }, 6000);
    }
  }

  /* A burst of events (an arrival is a status and a queue event; at a peak several a second, on every console) is one
     reload, 150 ms after its first event: later ones do not push it back. Until 2026-12-07 each event restarted the
     150 ms, so that events coming closer than that (a busy line) held the queue as it was until a lull. */
  function scheduleQueue() {
    if (state.queueTimer) { return; }  // a reload already due: it is asked after this event, and sees it
    state.queueTimer = setTimeout(function () { state.queueTimer = null; loadQueue(); }, 150);
  }

  /* The history reads every conversation of the last 30 days on the server: read again only when it can have
     changed (a conversation this listener holds changes status: closed, given back, transferred, taken away), never
     at each arrival in the queue, which every console hears at a peak. */
  function heldHere(id) {
    var listed = state.mine.some(function (card) { return card.id === id; });
    return listed || Boolean(state.current && state.current.id === id && state.current.listener === state.me.name);
  }

  /* One of the history erased: its event comes before the erasure is done (a read now could still find it), and an
     erased conversation never comes back: it leaves the list here. */
  function forget(id) {
    state.erased[id] = true;  // a read already under way cannot bring it back
    var kept = state.history.filter(function (card) { return card.id !== id; });
    if (kept.length === state.history.length) { return; }
    state.history = kept;
    drawHistory();
  }

  function scheduleHistory() {
    clearTimeout(state.historyTimer);
    state.historyTimer = setTimeout(loadHistory, 150);
  }

  // ----- the queue ------------------------------------------------------------------------------------------

  /* The listener's own ended conversations, to read again (transcript, notes, outcome). A read refused or unanswered
     is said above the list (what it shows kept, "Aucune conversation terminée" never claimed from a failed read) and
     made again every 5 s until it answers; before, nothing was said (a dropped read: an unhandled rejection). */
  var historyStale = HG.staleRead($("history-stale"), "history.stale", loadHistory);
  function loadHistory() {
    return freshHistory(api("GET", "/api/history")).then(function (response) {
      if (!response.ok) { historyStale.refused(response); $("history-empty").hidden = true; return; }
      historyStale.ok();
      state.history = response.data.ended.filter(function (card) { return !state.erased[card.id]; });
      drawHistory();
    }, function (error) { historyStale.unanswered(error); $("history-empty").hidden = true; });
  }

  function drawHistory() {
    renderList($("history"), state.history, false);
    $("history-count").textContent = String(state.history.length);
    $("history-empty").hidden = state.history.length > 0 || historyStale.stale();
  }

  /* The queue is read on events only: one read refused (the store away: 503) or unanswered would leave it as it was
     until the next event, a young person arrived meanwhile unseen. Said above the queue, and read again every
     QUEUE_RETRY_MS until it answers. */
  var QUEUE_RETRY_MS = 5000;
  function queueStale(key) {
    HG.staleLine($("queue-stale"), key);
    clearTimeout(state.staleTimer);
    if (key) { state.staleTimer = setTimeout(loadQueue, QUEUE_RETRY_MS); }
  }

  function loadQueue() {  // never the history with it: loadHistory
    return freshQueue(api("GET", "/api/queue")).then(function (response) {
      if (!response.ok) { queueStale(response.status === 503 ? "queue.stale.store" : "queue.stale.refused"); return; }
      queueStale(null);
      state.waiting = response.data.waiting;  // the first page of a long queue (the server's QUEUE_PAGE)
      state.waitingTotal = typeof response.data.waiting_total === "number" ? response.data.waiting_total : state.waiting.length;
      state.newest = response.data.newest || null;  // the latest arrival, on the page or past it
      state.mine = response.data.mine;
      state.others = response.data.others || [];  // supervisors: the conversations other listeners hold (a page)
      state.othersTotal = typeof response.data.others_total === "number" ? response.data.others_total : state.others.length;
      state.fetchedAt = Date.now();
      state.closed = response.data.closed || [];  // the queues closed now (each with when it reopens)
      clearTimeout(state.linesTimer);  // read again when a queue opens or closes: the line's state is never stale
      var changesIn = response.data.changes_in;
      if (typeof changesIn === "number") { state.linesTimer = setTimeout(loadQueue, Math.min(Math.max(changesIn, 0), 86400) * 1000 + 1000); }
      announceArrivals();
      renderQueue();
      keepStranded();
    }, function (error) { if (!(error && error.message === "session")) { queueStale("queue.stale.network"); } });
  }

  /* A draft whose conversation no longer has a box for it here (a colleague took it, a supervisor closed it, the
     young person left: not waiting nor held by this listener), while another one was shown, is listed as kept; an
     ended one in the history or opened from a held one shows no box either. The one shown is dealt with as it is
     drawn (renderConversation). A supervisor may open every conversation: theirs wait where they are. */
  function keepStranded() {
    if (state.me.supervisor) { return; }
    var open = {};
    state.waiting.concat(state.mine).forEach(function (card) { open[card.id] = true; });
    drafts.ids().forEach(function (id) {
      var shown = state.current && state.current.id === id;
      if (!open[id] && !shown) { drafts.keep(id); }
    });
  }

  /* A waiting card this page has not seen before: this listener's own, given back, is no arrival (no beep, no
     "Nouvelle conversation en attente" over the toast that says it was given back). Nor is a card that only moved
     onto the page (a long queue: a take pulls card 101 up): its wait began (`waiting_from`, server time) at or before
     the latest arrival of the last load (`newest.at`), so it waited already, past the page. A real arrival, or a card
     given back or transferred since, began after it. Until 2026-12-07 (evening) every take of a long queue beeped
     "Nouvelle conversation en attente" on every console, nobody new arrived. */
  function announceArrivals() {
    var ids = {};
    var fresh = [];
    var before = state.newestAt;  // undefined: the first load; null: nobody waited at the last one
    function since(at) { return before === null || !(Date.parse(at) <= before); }
    state.waiting.forEach(function (card) {
      ids[card.id] = true;
      if (state.known && !state.known[card.id] && since(card.waiting_from)) { fresh.push(card); }
    });
    state.mine.forEach(function (card) { ids[card.id] = true; });
    /* An arrival past the page shown (a long queue) is new all the same: since 2026-12-07 the console is sent the
       first page only, and without this its sound and toast would have stopped at a peak. */
    var newest = state.newest;
    if (newest && !ids[newest.id]) {
      if (state.known && !state.known[newest.id] && since(newest.at)) { fresh.push(newest); }
      ids[newest.id] = true;
    }
    state.known = ids;
    state.newestAt = newest ? Date.parse(newest.at) : null;
    if (!fresh.length) { title(); return; }
    var urgent = fresh.some(function (card) { return card.priority === "urgent"; });
    HG.beep(urgent);
    if (document.hidden) { state.newArrival = true; }
    toast(urgent ? t("toast.urgent") : t("toast.new"), false, true);
    title();
  }

  function title() {
    var count = state.waitingTotal || 0;
    document.title = (state.newArrival ? "● " : "") + (count ? "(" + count + ") " : "") + t("app.title");
  }

  /* The line closed now: said above the queue, with when it reopens (the young people writing are told it by the bot),
     so that a listener knows nobody new arrives and why the cards say "informé·e". */
  function renderLines() {
    var box = $("line-closed");
    var closed = state.closed || [];
    box.hidden = !closed.length;
    box.textContent = closed.map(function (line) {
      var queue = state.flow.queues.filter(function (q) { return q.id === line.queue; })[0];
      var name = queue ? HG.local(queue.names, queue.name) : line.queue;
      if (!line.reopens_at) { return t("line.closed.later", { queue: name }); }
      var when = new Date(line.reopens_at).toLocaleString(HG.locale(), { weekday: "long", hour: "2-digit", minute: "2-digit" });
      return t("line.closed", { queue: name, when: when });
    }).join(" ");
  }

  /* "informé·e 23:05 : ligne fermée…": the bot told them, in this wait, that the line was closed and where to turn
     meanwhile; still said after the reopening, for the listener arriving in the morning. */
  function closedTold(c) { return c.closed_told_at ? t("conv.closed_told", { time: HG.clock(c.closed_told_at) }) : ""; }

  function renderQueue() {
    renderLines();
    renderList($("waiting"), state.waiting, true);
    renderList($("mine"), state.mine, false);
    renderList($("others"), state.others || [], false);
    $("others-section").hidden = !state.me.supervisor;
    $("others-count").textContent = String(state.othersTotal || (state.others || []).length);  // all, not the page
    var othersMore = (state.othersTotal || 0) - (state.others || []).length;  // since 2026-12-07: a page of them
    $("others-more").hidden = othersMore <= 0;
    $("others-more").textContent = othersMore > 0 ? t("queue.others.more", { n: othersMore }) : "";
    renderList($("history"), state.history || [], false);
    $("waiting-count").textContent = String(state.waitingTotal);  // all of them, not the page shown
    var more = state.waitingTotal - state.waiting.length;
    $("waiting-more").hidden = more <= 0;
    $("waiting-more").textContent = more > 0 ? t("queue.waiting.more", { n: more }) : "";
    $("mine-count").textContent = String(state.mine.length);
    $("waiting-empty").hidden = state.waitingTotal > 0;
    $("mine-empty").hidden = state.mine.length > 0;
    $("capacity").textContent = state.mine.length + " / " + state.me.capacity;
    $("capacity").className = "pill" + (state.mine.length >= state.me.capacity ? " full" : "");
  }

  function renderList(list, cards, waiting) {
    clear(list);
    cards.forEach(function (card) { list.appendChild(cardItem(card, waiting)); });
  }

  function cardItem(card, waiting) {
    var item = el("li", "card priority-" + card.priority);
    item.dataset.id = card.id;
    if (state.current && state.current.id === card.id) { item.classList.add("selected"); }
    var open = el("button", "card-open");
    open.type = "button";
    var head = el("span", "card-head");
    head.appendChild(el("strong", "pseudonym", card.pseudonym));
    if (card.priority !== "normal") { head.appendChild(el("span", "badge " + card.priority, t("priority." + card.priority))); }
    if (card.flag) { head.appendChild(el("span", "badge risk", flagText(card.flag))); }
    open.appendChild(head);
    var meta = el("span", "card-meta");
    meta.appendChild(el("span", "pill channel", HG.channel(card.channel)));
    meta.appendChild(el("span", "pill", (card.language || "").toUpperCase()));
    if (card.status === "with_listener" && card.listener !== state.me.name) { meta.appendChild(el("span", "pill", card.listener)); }
    if (card.listener_away) { meta.appendChild(el("span", "pill away", t("conv.away"))); }  // supervisors: nobody answers it
    if (card.page_answered && waiting) { meta.appendChild(el("span", "pill page", t("conv.page_answered"))); }  // a human did
    if (card.left_how && card.outcome === undefined) { meta.appendChild(el("span", "pill left", leftText(card))); }  // the page gone: nobody reads
    if (closedTold(card) && card.outcome === undefined) { meta.appendChild(el("span", "pill told", closedTold(card))); }
    if (waiting) {
      var wait = el("span", "wait");
      wait.dataset.seconds = String(card.waiting_seconds);
      meta.appendChild(wait);
    }
    if (card.outcome !== undefined) {
      var outcome = (state.flow.outcomes.filter(function (o) { return o.id === card.outcome; })[0]);
      meta.appendChild(el("span", "pill", outcome ? HG.local(outcome.labels, outcome.label) : t("status." + card.status)));
    }
    open.appendChild(meta);
    var summary = el("span", "card-summary");
    card.summary.slice(0, 4).forEach(function (pair) { summary.appendChild(el("span", "", pair[0] + " : " + HG.visible(pair[1]))); });
    open.appendChild(summary);
    open.addEventListener("click", function () { openConversation(card.id); });
    item.appendChild(open);
    if (waiting) {
      var take = el("button", "take", t("conv.take"));
      take.type = "button";
      take.setAttribute("aria-label", t("queue.take.aria", { name: card.pseudonym }));
      take.addEventListener("click", function () { takeConversation(card.id); });
      item.appendChild(take);
    }
    renderWaitingTime(item.querySelector(".wait"));
    return item;
  }

  function renderWaitingTimes() { document.querySelectorAll(".wait").forEach(renderWaitingTime); }

  function renderWaitingTime(node) {
    if (!node) { return; }
    var seconds = Number(node.dataset.seconds) + (Date.now() - state.fetchedAt) / 1000;
    node.textContent = t("queue.waited", { d: HG.duration(seconds) });
  }

  // ----- one conversation -----------------------------------------------------------------------------------

  function takeConversation(id) {
    api("POST", "/api/conversations/" + id + "/take", undefined, ANSWER_WAIT_MS).then(function (response) {
      if (response.ok) {
        state.acting = {};  // a new hold: its hand-back, transfer or close is a new one
        toast(t("toast.taken", { name: response.data.pseudonym }));
        openConversation(id, true).then(function () { $("reply").focus(); });
        loadQueue();
        return;
      }
      var taken = (response.data || {}).error === "taken";
      var card = state.waiting.filter(function (c) { return c.id === id; })[0];
      if (taken) { state.lost[id] = true; }
      toast(refusal(response), true);
      loadQueue();
      if (state.current && state.current.id === id) {
        openConversation(id);  // never the panel from before: gone (said there), or a supervisor's, refreshed
      } else if (taken && card) {
        tellGone("gone.taken", card.pseudonym);  // its card's "Prendre": the toast fades, this line stays
      }
    }, unanswered);
  }

  /* A request that got no answer (the connection dropped, the server unreachable): said, never silent; what it
     asked may or may not be done, so the queue and the open conversation are read again when they can be. A 401
     (the session over) already left the page. */
  function unanswered(error) {
    if (error && error.message === "session") { return; }
    toast(t("refused.network"), true);
    loadHistory();  // what it asked may have ended a conversation
    loadQueue();
    if (state.current) { openConversation(state.current.id); }
  }

  /* `acted`: the listener has just taken or acted on it; a private note chosen before never outlives that. */
  function openConversation(id, acted) {
    var via = state.via[id] ? "?via=" + encodeURIComponent(state.via[id]) : "";  // an earlier one of a held conversation
    state.opening = id;  // its receipts are kept from now on (keepReceipt)
    return api("GET", "/api/conversations/" + id + via).then(function (response) {
      if (state.opening === id) { state.opening = null; }
      if (!response.ok) { forgetReceipts(); unavailable(id, response); return; }
      var changed = !state.current || state.current.id !== id;
      $("gone").hidden = true;
      state.gone = null;
      state.current = response.data;
      if (changed || acted) { state.mode = "reply"; }
      var draft = drafts.get(id);
      if (changed) {
        history.replaceState(null, "", "#c=" + id + (state.via[id] ? "&via=" + state.via[id] : ""));
        $("reply").value = draft ? draft.text : "";  // what was written here before, never another's words
        $("summary-box").open = window.innerWidth > 800;  // on a phone the transcript needs the room
      }
      // A note written stays a note through a take: only its author turns it into a reply.
      if ((changed || acted) && draft && draft.mode === "note" && $("reply").value.trim()) { state.mode = "note"; }
      if (changed) { forgetReceipts(); }
      renderConversation(changed);
      document.querySelectorAll(".card").forEach(function (node) { node.classList.toggle("selected", node.dataset.id === id); });
    }, function (error) {  // no answer: said (a card's "Ouvrir" did nothing before); what is shown stays as it was
      if (state.opening === id) { state.opening = null; forgetReceipts(); }
      if (!(error && error.message === "session")) { toast(t("refused.network"), true); }
    });
  }

  function renderConversation(changed) {
    var c = state.current;
    document.body.classList.add("viewing");
    $("placeholder").hidden = true;
    $("conversation").hidden = false;
    $("conv-title").textContent = c.pseudonym;
    var meta = [HG.channel(c.channel), (c.language || "").toUpperCase(), t("status." + c.status),
      t("priority." + c.priority)];
    if (c.listener) { meta.push(t("conv.with", { name: c.listener })); }
    if (c.left_how) { meta.push(leftText(c)); }
    if (closedTold(c)) { meta.push(closedTold(c)); }
    if (c.flag) { meta.push(flagText(c.flag)); }
    $("conv-meta").textContent = meta.join(" · ");
    renderSummary(c.summary);
    renderEarlier(c.earlier || [], !c.restricted);
    $("restricted").hidden = !c.restricted;
    state.serverOffset = Date.parse(c.now) - Date.now();  // the server's clock decides when a window closes
    renderWindow(c.window);
    $("unsubscribed-warning").hidden = !unsubscribed(c);  // said before the listener writes: the reply is closed
    $("unsubscribed-warning").textContent = unsubscribed(c) ? leftText(c) : "";
    var mine = isMine();
    $("conv-actions").hidden = false;
    $("take").hidden = c.status !== "queued";
    $("refer-open").hidden = !mine;
    $("refer-open").disabled = unsubscribed(c);  // the partner's message would not reach them (refused 409)
    // A supervisor may give back, transfer or close a conversation another listener holds (one who left their
    // console without logging out, or a conversation to move on).
    var supervising = state.me.supervisor && c.status === "with_listener";
    $("handback").hidden = !(mine || supervising);
    $("transfer-open").hidden = !(mine || supervising || c.status === "queued");
    $("close-open").hidden = !(mine || supervising || c.status === "queued");
    $("composer").hidden = !(mine || c.status === "queued" || c.status === "with_listener");
    var draft = drafts.get(c.id);
    var closing = state.closing === c.id;  // this listener's close: its draft goes with it (closed())
    if (draft && $("composer").hidden && !closing) { drafts.keep(c.id); }  // ended or erased under it: listed, to copy
    else if (draft && draft.kept) { drafts.put(c.id, { text: draft.text, mode: draft.mode, name: draft.name }); }  // back in its box
    updateComposer();
    var quiet = changed || state.rebuild;  // the history drawn again: nothing of it is new to a screen reader
    if (quiet) {
      clear($("transcript"));
      clear($("transcript-news"));
      state.shown = {};
      state.exchange = false;
    }
    state.rebuild = false;
    c.transcript.forEach(function (entry) {
      if (state.shown[entry.id]) { return; }
      if (!state.exchange && (entry.author === "listener" || entry.author === "note")) {
        state.exchange = true;
        $("transcript").appendChild(el("li", "divider", t("conv.exchange")));
      }
      appendEntry(entry, quiet);
    });
    if (changed) { $("transcript").scrollTop = $("transcript").scrollHeight; }
    document.dispatchEvent(new CustomEvent("hg:conversation", { detail: c }));  // casework.js: notices, referrals
  }

  /* A young person who wrote before (same channel identity): the dates and outcomes, each opening that one. */
  function renderEarlier(earlier, openable) {
    var box = $("returning");
    clear(box);
    box.hidden = earlier.length === 0;
    if (!earlier.length) { return; }
    box.appendChild(el("strong", "", t("conv.returning")));
    earlier.forEach(function (item) {
      var outcome = state.flow.outcomes.filter(function (o) { return o.id === item.outcome; })[0];
      var what = outcome ? HG.local(outcome.labels, outcome.label) : t("status." + item.status);
      var date = new Date(item.created_at).toLocaleDateString(document.documentElement.lang || "fr");
      if (!openable) { box.appendChild(el("span", "pill", t("conv.earlier", { date: date, what: what }))); return; }
      var open = el("button", "secondary small", t("conv.earlier", { date: date, what: what }));
      open.type = "button";
      var from = state.current.id;
      open.addEventListener("click", function () { state.via[item.id] = from; openConversation(item.id); });
      box.appendChild(open);
    });
  }

  function isMine() { return state.current && state.current.status === "with_listener" && state.current.listener === state.me.name; }

  /* WhatsApp's STOP (left_how "blocked" there, gateway/dispatcher.py unsubscribed): nothing reaches them until they
     send START; a reply or a referral is refused. Elsewhere "blocked" is a block (Telegram's), worded as such. */
  function unsubscribed(c) { return Boolean(c && c.channel === "whatsapp" && c.left_how === "blocked"); }

  function leftText(c) { return unsubscribed(c) ? t("conv.left.unsubscribed") : t("conv.left." + c.left_how); }

  function renderSummary(summary) {
    var list = $("summary");
    clear(list);
    summary.forEach(function (pair) { list.appendChild(el("dt", "", pair[0])); list.appendChild(el("dd", "", HG.visible(pair[1]))); });
    $("summary-box").hidden = summary.length === 0;
  }

  var CLOSING_MS = 2 * 3600 * 1000;  // as gateway/console/actions.py CLOSING

  setInterval(function () {  // a window open when the conversation was loaded closes while the listener reads it
    var c = state.current;
    if (!c || !c.window || !c.window.closes_at) { return; }
    var left = Date.parse(c.window.closes_at) - (Date.now() + (state.serverOffset || 0));
    var now = left < 0 ? "closed" : left < CLOSING_MS ? "closing" : "open";
    if (now !== c.window.state) { c.window.state = now; renderWindow(c.window); updateComposer(); }
  }, 30000);

  function renderWindow(replyWindow) {
    var box = $("window-warning");
    var channel = HG.channel(state.current.channel);
    box.hidden = !(replyWindow && (replyWindow.state === "closing" || replyWindow.state === "closed"));
    box.className = "warning" + (replyWindow && replyWindow.state === "closed" ? " closed" : "");
    box.dataset.state = replyWindow ? replyWindow.state : "";
    if (box.hidden) { return; }
    if (replyWindow.state === "closed") {
      box.textContent = t("window.closed", { channel: channel, hours: replyWindow.hours });
    } else {
      box.textContent = t("window.closing", { channel: channel, time: HG.clock(replyWindow.closes_at), hours: replyWindow.hours });
    }
  }

  /* `quiet`: drawn with the history (announce). */
  function appendEntry(entry, quiet) {
    if (state.shown[entry.id]) { return; }
    state.shown[entry.id] = true;
    var list = $("transcript");
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    var item = el("li", "msg " + (entry.author === "page_human" ? "page human" : entry.author));  // both the page's
    item.dataset.entry = entry.id;
    item.dataset.author = entry.author;
    var head = el("span", "who", t("author." + entry.author));
    head.appendChild(el("time", "", HG.clock(entry.at)));
    item.appendChild(head);
    item.appendChild(el("span", "text", entry.system ? systemText(entry.system, entry.text) : HG.visible(entry.text)));
    if (entry.flag) { showFlag(item, entry.flag); }
    if (entry.choices && entry.choices.length) {
      item.appendChild(el("span", "choices", t("conv.choices", { list: entry.choices.map(function (c) { return c.label; }).join(" · ") })));
    }
    (entry.attachments || []).forEach(function (attachment) { item.appendChild(attachmentView(attachment)); });
    var said = item.textContent;  // without its delivery mark, which changes as it goes (sent, delivered, read)
    if (entry.author === "bot" || entry.author === "listener") {
      var mark = el("span", "delivery");
      setDelivery(mark, latestDelivery(state.current.id, entry.id, entry.delivery));
      item.appendChild(mark);
    }
    list.appendChild(item);
    if (atBottom || entry.author !== "user") { list.scrollTop = list.scrollHeight; }
    if (!quiet) { announce(said); }
  }

  /* What a screen reader is told of the conversation shown: each entry (or risk read) as it comes, once, in a
     polite live region of its own. The transcript is not one: drawn again whole (the language switch, each
     reconnection, another conversation opened) it gave the whole history again, and each delivery mark's change
     ("envoyé", then "lu") was read out alone. The transcript still shows both to whoever reads it. */
  function announce(text) {
    var news = $("transcript-news");
    news.appendChild(el("span", "", text));
    while (news.childNodes.length > 5) { news.removeChild(news.firstChild); }
  }

  /* A server-written entry, in the console's language (gateway/system_entries.py: its code and parameters). */
  function systemText(system, fallback) {
    var key = "system." + system.code;
    if (HG.t(key) === key) { return fallback; }  // a code this page does not know yet: the stored FR · EN text
    var params = Object.assign({}, system.params);
    if (params.channel) { params.channel = HG.channel(params.channel); }
    if (params.author) { params.author = t("author." + params.author); }
    return t(key, params);
  }

  function setDelivery(mark, delivery) {
    mark.textContent = t("delivery." + delivery);
    mark.className = "delivery " + delivery;
  }

  function attachmentView(attachment) {
    var box = el("span", "attachment");
    if (attachment.kind === "forwarded") {  // the mark of a forwarded message (gateway/messages.py): no file
      box.textContent = t("attachment.forwarded");
      return box;
    }
    var label = t("attachment.label", { kind: t("kind." + attachment.kind) }) + (attachment.name ? " : " + attachment.name : "");
    if (attachment.number === null || !attachment.fetchable) {
      box.textContent = label + (attachment.fetchable ? "" : t("attachment.unfetchable"));
      return box;
    }
    var url = "/api/conversations/" + state.current.id + "/attachments/" + attachment.number;
    if (attachment.kind === "image") {
      var show = el("button", "secondary small", t("attachment.show", { label: label }));
      show.type = "button";
      show.addEventListener("click", function () {
        var image = el("img", "attachment-image");
        image.alt = label;
        image.src = url;
        box.replaceChild(image, show);
      });
      box.appendChild(show);
    } else {
      var link = el("a", "", t("attachment.open", { label: label }));
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      box.appendChild(link);
    }
    return box;
  }

  // ----- composing ------------------------------------------------------------------------------------------

  /* The listener's choice (state.mode) lasts until the next note, take, action or conversation; what the composer
     does is mode(): a private note whenever a reply cannot go (not taken, reply window closed). */
  function setMode(chosen) {
    state.mode = chosen;
    if ($("reply").value.trim()) { keepDraft(); }
    updateComposer();
  }

  function canReply() {
    var closed = state.current && state.current.window && state.current.window.state === "closed";
    return isMine() && !closed && !unsubscribed(state.current);
  }

  function mode() { return canReply() ? state.mode : "note"; }

  function updateComposer() {
    var note = mode() === "note";
    var why = !note ? "" : !isMine() ? "compose.note.untaken" : unsubscribed(state.current) ? "compose.note.unsubscribed"
      : !canReply() ? "compose.note.window" : "compose.note.hint";
    $("mode-reply").setAttribute("aria-pressed", String(!note));
    $("mode-note").setAttribute("aria-pressed", String(note));
    $("composer").classList.toggle("note-mode", note);
    $("composer").dataset.mode = note ? "note" : "reply";
    $("reply").placeholder = note ? t("compose.note.placeholder") : t("compose.placeholder");
    $("reply-label").textContent = note ? t("compose.note.label") : t("compose.to");
    $("note-why").textContent = why ? t(why) : "";
    $("note-why").hidden = !why;
    $("send").textContent = note ? t("compose.save") : t("compose.send");
    $("send").className = note ? "note-send" : "";
    $("mode-reply").disabled = !canReply();
    // A reply written while it could go, which can no longer go (the conversation was taken from this listener,
    // handed back, transferred): still in the box, said so; Enter would only save it as a private note.
    var draft = state.current && drafts.get(state.current.id);
    var stranded = Boolean(draft && draft.mode === "reply" && !isMine() && $("reply").value.trim());
    $("draft-kept").hidden = !stranded;
    $("draft-kept").textContent = stranded ? t("compose.kept.reply") : "";
  }

  /* The composer's text, kept per conversation in this tab (drafts.js) as it is written. */
  function keepDraft() {
    if (!state.current || state.current.erased) { return; }
    drafts.put(state.current.id, { text: $("reply").value, mode: mode(), name: state.current.pseudonym });
  }

  $("mode-reply").addEventListener("click", function () { setMode("reply"); $("reply").focus(); });
  $("mode-note").addEventListener("click", function () { setMode("note"); $("reply").focus(); });

  function cannedText(canned) {
    var language = (state.current && state.current.language) || "fr";
    return canned.text[language] || canned.text.fr || canned.text[Object.keys(canned.text)[0]];
  }

  function insertText(text) {
    var box = $("reply");
    var value = box.value;
    if (/^\/\S*$/.test(value.trim())) { value = ""; }
    box.value = value ? value.replace(/\s*$/, " ") + text : text;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    $("suggestions").hidden = true;
    keepDraft();
  }

  function matching(prefix) {
    return state.flow.canned_responses.filter(function (c) { return c.shortcut.indexOf(prefix) === 0; });
  }

  $("canned").addEventListener("change", function () {
    var canned = state.flow.canned_responses[Number($("canned").value)];
    $("canned").value = "";
    if (canned) { insertText(cannedText(canned)); }
  });

  $("reply").addEventListener("input", function () {
    keepDraft();
    var value = $("reply").value;
    var list = $("suggestions");
    clear(list);
    var word = value.trim();
    var found = /^\/\S*$/.test(word) ? matching(word) : [];
    found.forEach(function (canned) {
      var item = el("li");
      var button = el("button", "suggestion", canned.shortcut + "  " + HG.local(canned.title));
      button.type = "button";
      button.addEventListener("click", function () { insertText(cannedText(canned)); });
      item.appendChild(button);
      list.appendChild(item);
    });
    list.hidden = found.length === 0;
    if (mode() === "reply" && value && Date.now() - state.typingSent > 3000) {
      state.typingSent = Date.now();
      // best-effort: refused or unanswered, it is not said and the next keystrokes send another after 3 s (a 401 has
      // already sent the page to the login)
      api("POST", "/api/conversations/" + state.current.id + "/typing").catch(function () { /* best-effort */ });
    }
  });

  $("reply").addEventListener("keydown", function (event) {
    if (event.isComposing || event.keyCode === 229) { return; }  // Enter that ends a word being composed (an IME)
    var word = $("reply").value.trim();
    if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && /^\/\S+$/.test(word)) {
      var found = matching(word);
      var exact = found.filter(function (c) { return c.shortcut === word; })[0] || (found.length === 1 ? found[0] : null);
      if (exact) { event.preventDefault(); insertText(cannedText(exact)); return; }
    }
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send(); }
  });

  $("composer").addEventListener("submit", function (event) { event.preventDefault(); send(); });

  /* A reply (a private note too) keeps its id until the server answered it: sent again (Enter, its answer lost with the connection), it
     carries the same id, and the server records and sends it once. Another text, or another conversation, is
     another reply. The id is kept with the conversation's draft too (drafts.sending): after a reload, or another
     conversation opened meanwhile, the text back in the box is still the same reply. One send at a time. */
  function replyId(text) {
    var conversation = state.current.id, stored = drafts.get(conversation), draft = state.draft;
    var reply = stored && stored.reply && stored.reply.text === text ? stored.reply : null;
    if (!reply && draft && draft.text === text && draft.conversation === conversation) { reply = draft; }
    if (!reply) { reply = { text: text, id: randomId() }; }
    state.draft = { text: text, conversation: conversation, id: reply.id };
    drafts.sending(conversation, { text: text, id: reply.id });
    return reply.id;
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* An "Orienter" keeps its id until the server answered it, as a reply does: clicked again after its answer was
     lost, the partner's message reaches the young person once. Answered, the next one is another. */
  function referId(partner) {
    var id = state.current.id, kept = state.referring;
    if (!kept || kept.conversation !== id || kept.partner !== partner) {
      state.referring = kept = { conversation: id, partner: partner, id: randomId() };
    }
    return kept.id;
  }

  /* A hand-back, a transfer or a close keeps its id until the server answered it, as "Orienter" does, for what the
     page showed when it was asked (the conversation, its status and holder) and what was chosen (the queue, the
     category): sent again (its answer lost, a browser's retry, clicked again on a page that could not reload), the
     server makes it once and answers it as made, never "not yours" or "no longer active" for the listener's own
     action; a supervisor's hand-back sent again after a colleague took the conversation from the queue is not made
     again on the colleague's hold. Asked on what the page shows since (another holder), or after a take, it is a new
     one. */
  function actionId(action, what) {
    var shown = state.current, seen = [shown.id, shown.status, shown.listener || "", what].join(" ");
    var kept = state.acting[action];
    if (!kept || kept.seen !== seen) { state.acting[action] = kept = { seen: seen, id: randomId() }; }
    return kept.id;
  }

  function answered(action, then) {
    return function (id) {
      delete state.acting[action];
      if (then) { then(id); }
    };
  }

  var ANSWER_WAIT_MS = 15000;  // no answer by then: said, and Send is free again (the reply's id makes it go once)

  function send() {
    var text = $("reply").value.trim();
    if (!text || !state.current || state.sending) { return; }
    var note = mode() === "note";
    var id = state.current.id;
    var path = "/api/conversations/" + id + (note ? "/notes" : "/messages");
    var body = { text: text, id: replyId(text) };  // a note too: sent again after its answer was lost, recorded once
    state.sending = true;
    $("send").disabled = true;
    // "Clôturer" waits for the send's answer (since 2026-12-07): opened meanwhile, the close took the note still in
    // the box (its answer not back, the box not cleared) into its own notes and saved it a second time under the
    // close's id (tests/e2e/test_console_history.py)
    $("close-open").disabled = true;
    api("POST", path, body, ANSWER_WAIT_MS).then(function (response) {
      if (response.ok) {
        state.draft = null;
        var still = state.current && state.current.id === id;  // another one opened meanwhile keeps its own text
        var written = drafts.get(id);
        if (written && written.text.trim() === text) { drafts.drop(id); }  // sent or saved: no longer a draft
        if (still && $("reply").value.trim() === text) { $("reply").value = ""; }
        if (!still) { return; }
        $("composer-error").textContent = "";
        $("suggestions").hidden = true;
        appendEntry(response.data);
        if (note) { state.mode = "reply"; }  // a note is one message: the next one goes to the young person
      } else {
        $("composer-error").textContent = refusal(response);
      }
    }, function () {  // no answer (the connection dropped): maybe sent; sending again sends it once
      $("composer-error").textContent = t("compose.unanswered");
    }).then(function () {
      state.sending = false;
      $("send").disabled = false;
      $("close-open").disabled = false;
      updateComposer();
    });
  }

  // ----- actions --------------------------------------------------------------------------------------------

  $("take").addEventListener("click", function () { takeConversation(state.current.id); });
  $("back").addEventListener("click", closePanel);

  function closePanel() {
    document.body.classList.remove("viewing");
    $("conversation").hidden = true;
    $("placeholder").hidden = false;
    state.current = null;
    forgetReceipts();
    history.replaceState(null, "", location.pathname);
    document.querySelectorAll(".card.selected").forEach(function (node) { node.classList.remove("selected"); });
  }

  /* The conversation shown can no longer be seen: a colleague took it (their take won, or came while this
     listener read its card), someone closed it, it was erased. The panel goes (it offered to take it or to write
     a note) and a line above the queue says why until another conversation is opened: a toast fades. */
  function unavailable(id, response) {
    var error = (response.data || {}).error;
    var shown = state.current && state.current.id === id;
    if (!shown || (error !== "forbidden" && error !== "not_found")) { toast(refusal(response), true); return; }
    var why = error === "not_found" ? "gone.not_found" : state.lost[id] ? "gone.taken" : "gone.forbidden";
    delete state.lost[id];  // said once; a console left open all day keeps no list of every race it lost
    if (error === "not_found") { drafts.drop(id); } else { drafts.keep(id); }  // erased: nothing of them stays
    var name = state.current.pseudonym;
    closePanel();
    tellGone(why, name);
    loadQueue();
  }

  function tellGone(key, name) {
    state.gone = { key: key, name: name };
    $("gone").hidden = false;  // shown, then filled: a screen reader announces the status line's new text
    $("gone").textContent = t(key, { name: name });
  }
  $("handback").addEventListener("click", function () {
    act("hand-back", { id: actionId("hand-back", "") }, t("toast.handedback"), answered("hand-back"));
  });
  $("refer-open").addEventListener("click", function () { $("refer-dialog").showModal(); });
  $("transfer-open").addEventListener("click", function () { $("transfer-dialog").showModal(); });
  $("close-open").addEventListener("click", function () {
    $("close-error").textContent = "";
    $("close-dialog").returnValue = "";  // Escape keeps the last value: never an "ok" from an earlier close
    closingDraft();
    $("close-dialog").showModal();
  });

  /* Closing with something in the box (docs/console.md, "Nothing half-written is lost"): a private note goes into
     the close's notes, seen and editable there, and is saved with the close; a reply is said to be discarded by it
     ("Annuler" to send it first). Once closed, the draft is gone: never listed as kept, the listener closed it. */
  function closingDraft() {
    var text = $("reply").value.trim();
    var note = Boolean(text) && mode() === "note";
    var notes = $("close-notes").value;
    state.closeNotes = null;
    if (note && notes.indexOf(text) < 0) {
      state.closeNotes = { before: notes, filled: notes.trim() ? notes.trim() + "\n\n" + text : text };
      $("close-notes").value = state.closeNotes.filled;
    }
    $("close-draft").hidden = !text;
    $("close-draft").textContent = text ? t(note ? "close.draft.note" : "close.draft.reply") : "";
  }

  function closed(id) {
    drafts.drop(id);  // a note went with the close; a reply was said discarded
    if (state.current && state.current.id === id) { $("reply").value = ""; }
  }

  $("refer-dialog").addEventListener("close", function () {
    if ($("refer-dialog").returnValue !== "ok") { return; }
    var partner = $("partner").value;
    act("refer", { partner: partner, id: referId(partner) }, t("toast.referred"), function () { state.referring = null; });
  });
  $("transfer-dialog").addEventListener("close", function () {
    if ($("transfer-dialog").returnValue !== "ok") { return; }
    var queue = $("queue").value;
    act("transfer", { queue: queue, id: actionId("transfer", queue) }, t("toast.transferred"), answered("transfer"));
  });
  $("block-open").addEventListener("click", function () { $("block-error").textContent = ""; $("block-dialog").showModal(); });
  $("block-send").addEventListener("click", function (event) {
    if (!$("block-reason").value.trim()) { event.preventDefault(); $("block-error").textContent = t("block.missing"); }
  });
  $("block-dialog").addEventListener("close", function () {
    if ($("block-dialog").returnValue !== "ok" || !$("block-reason").value.trim()) { return; }
    act("block", { duration: $("block-duration").value, reason: $("block-reason").value }, t("toast.blocked")).then(function () {
      $("block-reason").value = "";
    });
  });
  $("erase-open").addEventListener("click", function () {
    $("erase-dialog").returnValue = "";  // Escape keeps the last value: never an "ok" from an earlier erasure
    $("erase-dialog").showModal();
  });
  $("erase-dialog").addEventListener("close", function () {
    if ($("erase-dialog").returnValue !== "ok" || !state.current) { return; }
    api("POST", "/api/conversations/" + state.current.id + "/erase", { confirm: true }).then(function (response) {
      if (!response.ok) { toast(refusal(response), true); return; }
      // erased by an erasure of the person already under way: its counts are in its audit line (since 2026-12-07)
      toast(t(response.data && response.data.under_way ? "toast.erased_under_way" : "toast.erased"));
      loadQueue();
      $("back").click();  // the conversation no longer exists
    }, unanswered);  // said, and the conversation read again: erased, it says so ("gone.not_found")
  });
  $("close-send").addEventListener("click", function (event) {
    if (!$("outcome").value) { event.preventDefault(); $("close-error").textContent = t("close.missing"); }
  });
  $("close-dialog").addEventListener("close", function () {
    var filled = state.closeNotes;
    state.closeNotes = null;
    if ($("close-dialog").returnValue !== "ok" || !$("outcome").value) {  // not closed: the note stays in the box only
      if (filled && $("close-notes").value === filled.filled) { $("close-notes").value = filled.before; }
      return;
    }
    state.closing = state.current.id;  // its draft is not "kept" when the closed status shows before the answer
    var outcome = $("outcome").value, body = { outcome: outcome, notes: $("close-notes").value, id: actionId("close", outcome) };
    act("close", body, t("toast.closed"), answered("close", closed)).then(function () {
      state.closing = null;
      $("outcome").value = "";
      $("close-notes").value = "";
    });
  });

  /* `then(id)`: what follows the action's success, before the conversation is drawn again. No answer within
     ANSWER_WAIT_MS (a network gone silent) is said as a dropped connection is (`unanswered`), never a wait of minutes
     with nothing said, and a second click on what may be done already. */
  function act(action, body, done, then) {
    var id = state.current.id;
    return api("POST", "/api/conversations/" + id + "/" + action, body === undefined ? undefined : body, ANSWER_WAIT_MS).then(function (response) {
      if (response.ok) { toast(done); if (then) { then(id); } } else { toast(refusal(response), true); }
      loadHistory();  // this listener's own action: a close ends a conversation of theirs
      loadQueue();
      openConversation(id, true).then(keepFocus);
    }, unanswered);
  }

  /* The button pressed may go with the actions the conversation no longer has (closed, handed back): the focus
     goes to the conversation's title, where a keyboard or a screen reader goes on (the toast says what was done),
     never to the page's body, from which they would start again at the top. */
  function keepFocus() {
    var focused = document.activeElement;
    if (focused && focused !== document.body && focused.checkVisibility()) { return; }
    if (!$("conversation").hidden) { $("conv-title").focus(); }
  }

  // ----- small things ---------------------------------------------------------------------------------------

  var toastTimer = null;
  /* An arrival's toast (``passive``) never covers an error still shown: "Pas de réponse du serveur" for an action whose
     answer was lost must stay read, not be replaced a moment later by "Nouvelle conversation en attente" (the card
     the lost hand-back put back in line, say). An action's own answer always replaces it. */
  function toast(text, error, passive) {
    var box = $("toast");
    if (passive && !box.hidden && / error-toast/.test(box.className)) { return; }
    box.textContent = text;
    box.className = "toast" + (error ? " error-toast" : "");
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 5000);
  }
})();
