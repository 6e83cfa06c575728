/* The helpline's web chat (protocol: docs/webchat-protocol.md). Vanilla JS, no dependency.
 * Everything that comes from the server or the young person is inserted with textContent, never as HTML. */
(function () {
  "use strict";
  var TOKEN_KEY = "hg-chat-token";
  var PENDING_KEY = "hg-chat-pending";
  var OPENING_KEY = "hg-chat-opening";  // the page's opening key, until a session frame gives it its token
  var CONVERSATION_KEY = "hg-chat-conversation";  // the conversation the page follows, until it has seen it end
  var LANG_KEY = "hg-chat-lang";
  var ENDED_KEY = "hg-chat-ended";  // the ended conversation's last bot and listener messages, shown until a new one
  var KEEP_AFTER_END = 6;
  // ... for an hour, as the messages not yet acknowledged: a reload soon after still shows the numbers given and
  // sends what was waiting; whoever opens the chat on the same device later (a parent, a sibling: the home may be
  // where the danger is) finds neither what the line said nor what the young person wrote
  var KEEP_MS = 60 * 60 * 1000;
  var UPLOAD_TIMEOUT_MS = 60 * 1000;  // an image without an answer by then is said not sent (it may be tried again)
  var SILENCE_MS = 15000;  // a message sent and nothing heard since: the connection is taken for dead
  var OPENING_MS = 15000;  // a socket not open by then (its upgrade held by a proxy) is given up, and tried again
  var UNREACHABLE_MS = 30000;  // without a session this long, the reconnecting line says where to turn meanwhile
  // a message a full network refused (client_full) is tried again by itself after about this long, twice as long
  // each time it is refused again, at most HELD_RETRY_MAX_MS (since 2026-12-07: until then only "Réessayer" or a new
  // session sent it, and a held page's words of danger waited for good after a place had freed)
  var HELD_RETRY_MS = 4000;
  var HELD_RETRY_MAX_MS = 60000;
  // a refused frame's retry_after (the refusing rate's window end, in seconds) is waited for, never longer than this
  // (a day: the longest window a rate of new chats is given; the server tells at most the window itself)
  var HELD_RETRY_AFTER_MAX_S = 86400;
  var MAX_TEXT = 4000;  // characters in one message, as the server takes them (MAX_TEXT in gateway/webchat.py)
  var TEXTS = {
    fr: { title: "Besoin de parler ?", end: "Terminer", quickExit: "Sortie rapide", choices: "Réponses proposées",
      typing: "Un·e écoutant·e écrit…", ended: "Conversation terminée.", newConversation: "Nouvelle conversation",
      inputLabel: "Ton message", placeholder: "Écris ici…", send: "Envoyer",
      hint: "Appuie deux fois sur Échap pour quitter rapidement.", reconnecting: "Reconnexion…",
      unreachable: "Le chat ne répond pas pour l'instant, on réessaie. Si tu as besoin de parler maintenant, le 119 et le 3114 répondent 24h/24 ; en danger immédiat, appelle le 17 ou le 112 (SMS au 114).",
      hintTouch: "Le bouton « Sortie rapide », en haut, te fait quitter tout de suite.",
      queued: "En attente d'un·e écoutant·e — position ",
      closedLine: "Ligne fermée — les écoutant·es reprennent {when} · ta conversation garde sa place",
      closedLineLater: "Ligne fermée · ta conversation garde sa place", withListener: "Un·e écoutant·e est avec toi.",
      confirmEnd: "Veux-tu vraiment terminer la conversation ?", bot: "Bot", listener: "Écoutant·e", you: "Toi",
      error: "Ce message n'a pas pu être envoyé.", other: "Page in English", pageTitle: "Chat d'écoute",
      notSent: "Pas encore envoyé.", retry: "Réessayer", waiting: "Pas encore envoyé…", sending: "Envoi en cours…",
      unsent: "La conversation venait de se terminer : ton dernier message n'a pas été envoyé. Il t'attend dans la boîte de message, pour une nouvelle conversation.",
      now: "à l'instant", ago: "il y a {n} min", image: "Image",
      imageButton: "Envoyer une image (capture d'écran, photo)", imageSent: "📎 Image envoyée",
      imageSending: "📎 Envoi de l'image…",
      refused: {
        type: "Cette image n'a pas été envoyée : seules les images JPEG, PNG ou WebP sont acceptées.",
        heic: "Cette image n'a pas été envoyée : le format HEIC (iPhone) n'est pas accepté. Fais une capture d'écran, ou choisis « Le plus compatible » dans Réglages > Appareil photo > Formats.",
        too_big: "Cette image n'a pas été envoyée : elle est trop lourde ({mb} Mo au plus). Une capture d'écran suffit.",
        too_large: "Cette image n'a pas été envoyée : elle est trop grande. Une capture d'écran suffit.",
        corrupt: "Cette image n'a pas été envoyée : le fichier est abîmé ou n'est pas une image.",
        rate_limited: "Trop de messages d'un coup : attends un peu avant d'envoyer cette image.",
        too_many_images: "Cette image n'a pas été envoyée : trop d'images pour l'instant. Tu peux toujours écrire ici. Si c'est urgent, le 119 et le 3114 répondent 24h/24 ; en danger immédiat, appelle le 17 ou le 112 (SMS au 114).",
        other: "Cette image n'a pas pu être envoyée. Réessaie dans un moment." } },
    en: { title: "Need to talk?", end: "End", quickExit: "Quick exit", choices: "Suggested answers",
      typing: "A listener is typing…", ended: "Conversation ended.", newConversation: "New conversation",
      inputLabel: "Your message", placeholder: "Write here…", send: "Send",
      hint: "Press Escape twice to leave quickly.", reconnecting: "Reconnecting…",
      unreachable: "The chat is not answering right now, we keep trying. If you need to talk now, 119 and 3114 answer 24/7; in immediate danger, call 17 or 112 (text 114).",
      hintTouch: "The “Quick exit” button, at the top, takes you away at once.",
      queued: "Waiting for a listener — position ",
      closedLine: "Line closed — listeners are back {when} · your conversation keeps its place",
      closedLineLater: "Line closed · your conversation keeps its place", withListener: "A listener is with you.",
      confirmEnd: "Do you really want to end the conversation?", bot: "Bot", listener: "Listener", you: "You",
      error: "This message could not be sent.", other: "Page en français", pageTitle: "Helpline chat",
      notSent: "Not sent yet.", retry: "Try again", waiting: "Not sent yet…", sending: "Sending…",
      unsent: "The conversation had just ended: your last message was not sent. It is waiting in the message box, for a new conversation.",
      now: "just now", ago: "{n} min ago", image: "Image",
      imageButton: "Send a picture (screenshot, photo)", imageSent: "📎 Picture sent",
      imageSending: "📎 Sending the picture…",
      refused: {
        type: "This picture was not sent: only JPEG, PNG or WebP pictures are accepted.",
        heic: "This picture was not sent: the HEIC format (iPhone) is not accepted. Take a screenshot, or choose \"Most Compatible\" in Settings > Camera > Formats.",
        too_big: "This picture was not sent: it is too heavy ({mb} MB at most). A screenshot is enough.",
        too_large: "This picture was not sent: it is too large. A screenshot is enough.",
        corrupt: "This picture was not sent: the file is damaged or is not a picture.",
        rate_limited: "Too many messages at once: wait a little before sending this picture.",
        too_many_images: "This picture was not sent: too many pictures for now. You can still write here. If it is urgent, 119 and 3114 answer 24/7; in immediate danger, call 17 or 112 (text 114).",
        other: "This picture could not be sent. Try again in a moment." } }
  };
  var FINAL = { closed: 1, referred: 1, abandoned: 1 };
  var $ = function (id) { return document.getElementById(id); };
  var state = { ws: null, token: null, opening: null, delay: 500, shown: {}, entries: [], lastBot: null, lang: storedLang(), told: toldLang(), typingTimer: null,
    lastTyping: 0, status: "bot", escapes: 0, lastEscape: 0, unread: 0, live: false, away: false,
    receipts: { delivered: [], read: [] }, unseen: [], heard: 0, keepalive: 20, tick: 0, pending: null, known: {}, leaving: false, unanswered: null, endAsked: false, session: false,
    conversation: null, lostAt: Date.now(), retry: null, langAsked: null,
    held: { timer: null, at: 0, delay: HELD_RETRY_MS, auto: {}, own: {} } };
  var ESCAPE_WINDOW_MS = 2000;

  /* The language the page chose (its switch, the conversation's), else the browser's: English when it starts with
     "en" (as the widget's launcher and the console), any other French. */
  function storedLang() {
    var browser = /^en\b/i.test(navigator.language || "") ? "en" : "fr";
    try { return localStorage.getItem(LANG_KEY) || browser; } catch (e) { return browser; }
  }
  /* Whether that language was told (chosen on the page, a conversation's kept by the browser, a browser in French or
     English), not French by default for a browser in another language: only then does the hello name it, so that the
     bot reads such a young person's words for their language ("I want to kill myself" answered in English). */
  function toldLang() {
    if (/^(en|fr)\b/i.test(navigator.language || "")) { return true; }
    try { return !!localStorage.getItem(LANG_KEY); } catch (e) { return false; }
  }
  function t(key) { return (TEXTS[state.lang] || TEXTS.fr)[key]; }

  function applyTexts() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach(function (el) { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll("[data-i18n-aria]").forEach(function (el) { el.setAttribute("aria-label", t(el.dataset.i18nAria)); });
    $("message-input").placeholder = t("placeholder");
    $("lang-toggle").textContent = state.lang === "fr" ? "EN" : "FR";
    $("lang-toggle").setAttribute("aria-label", t("other"));  // never the bot's own "English" answer's name
    $("lang-toggle").lang = state.lang === "fr" ? "en" : "fr";  // read in the language it offers
    renderStatus();
    renderTitle();
    if (!$("connection").hidden) { sayReconnecting(); }  // in the language chosen now
    document.querySelectorAll("time.when").forEach(renderWhen);
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "id-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  /* The token the server gave (kept in memory too, for a browser whose storage refuses it). */
  function storedToken() {
    try { return localStorage.getItem(TOKEN_KEY) || state.token; } catch (e) { return state.token; }
  }

  /* Without a token, every hello carries the same opening key, drawn once: a page that never got its session frame
     (its socket cut just after the hello) finds the conversation that hello opened instead of opening another. */
  function openingKey() {
    try { state.opening = state.opening || localStorage.getItem(OPENING_KEY); } catch (e) { /* the tab keeps it */ }
    if (!state.opening) {
      var bytes = new Uint8Array(18);
      crypto.getRandomValues(bytes);
      state.opening = btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_");
      try { localStorage.setItem(OPENING_KEY, state.opening); } catch (e) { /* private mode: the tab keeps it */ }
    }
    return state.opening;
  }

  /* The conversation the page follows (from its session frame), until the page has seen it end: a hello after a
     dropped connection, a phone asleep or a reload names it, so that one that ended meanwhile is shown ended, with
     the listener's last words and the numbers given, instead of a new conversation starting in its place. */
  function storedConversation() {
    try { return localStorage.getItem(CONVERSATION_KEY) || state.conversation; } catch (e) { return state.conversation; }
  }
  /* A conversation a frame names is followed unless that frame says it ended (its own status, not the page's:
     until 2026-12-07 the page's, and once an end was shown the resync naming the next conversation, which a message
     crossing the listener's close opened, was ignored: the page went on in it following nothing, and its end, come
     while the page was away, was never shown, a new conversation greeted instead). */
  function followConversation(id, status) {
    if (typeof id !== "string" || FINAL[status]) { return; }
    state.conversation = id;
    try { localStorage.setItem(CONVERSATION_KEY, id); } catch (e) { /* private mode: the tab keeps it */ }
  }
  function forgetConversation() {
    state.conversation = null;
    try { localStorage.removeItem(CONVERSATION_KEY); } catch (e) { /* nothing kept */ }
  }

  function forgetOpening() {
    state.opening = null;
    try { localStorage.removeItem(OPENING_KEY); } catch (e) { /* nothing kept */ }
  }

  /* The messages sent and not yet acknowledged: in the page's memory, copied to localStorage so that a reload sends
     them again; a browser whose storage refuses them (private mode, a widget's frame without storage) still sends
     them again after a reconnection. Each says when it was written: one older than an hour when a page opens is
     dropped unshown and unsent, so that a young person's words left by a closed tab are never shown to (nor sent
     as) whoever opens the chat on the same device later.
     The tabs of the chat on one browser share that list: each writes its own messages (those it holds, and drops
     those it no longer holds: acknowledged) and keeps the others' by id, and a page opening a session takes those
     another tab left (closed before it could reconnect) and sends them too. Each tab wrote its own list whole: a
     second tab's message wrote over the first's, and the first tab closed offline lost its message for good. */
  function pending() {
    if (state.pending === null) {
      var stored = storedPending();
      var kept = stored.filter(recent);
      stored.forEach(function (m) { state.known[m.id] = true; });  // one too old goes from the storage too
      state.pending = kept;
      if (kept.length !== stored.length) { savePending(kept); }
    }
    return state.pending.slice();
  }
  function savePending(list) {
    state.pending = list.slice();
    list.forEach(function (m) { state.known[m.id] = true; });
    if (state.leaving) { return; }  // the quick exit cleared the storage: nothing is written again
    var others = storedPending().filter(function (m) { return !state.known[m.id]; });  // another tab's, kept
    try { localStorage.setItem(PENDING_KEY, JSON.stringify(others.concat(list))); } catch (e) { /* private mode: the page keeps them */ }
  }
  function storedPending() {  // every tab's ([] when the storage refuses them)
    var stored = [];
    try { stored = JSON.parse(localStorage.getItem(PENDING_KEY) || "[]"); } catch (e) { stored = []; }
    return Array.isArray(stored) ? stored.filter(function (m) { return m && typeof m.id === "string"; }) : [];
  }
  function recent(m) { return typeof m.at === "number" && Date.now() - m.at < KEEP_MS; }
  /* What other tabs left waiting, taken by this page to send with its own, in the order written (the server
     records each id once: a tab still open that sends it too changes nothing). */
  function takeOthers() {
    var mine = pending();  // read first: a page's first read takes the whole list as its own
    var others = storedPending().filter(function (m) { return !state.known[m.id] && recent(m); });
    if (others.length) { savePending(mine.concat(others).sort(function (a, b) { return a.at - b.at; })); }
  }

  /* ---------- rendering ---------- */

  /* When a message was written, relative while recent ("il y a 3 min"), else the clock; the exact time in
     datetime. Refreshed every 30 s. */
  function when(at) {
    var time = document.createElement("time");
    time.className = "when";
    time.dateTime = at;
    renderWhen(time);
    return time;
  }

  function renderWhen(time) {
    var at = new Date(time.dateTime);
    var minutes = Math.floor((Date.now() - at.getTime()) / 60000);
    if (isNaN(minutes)) { time.textContent = ""; return; }
    time.textContent = minutes < 1 ? t("now") : minutes < 60 ? t("ago").replace("{n}", String(minutes))
      : at.toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  }

  function bubble(author, text, id, isPending, at) {
    var el = document.createElement("div");
    el.className = "msg " + author + (isPending ? " pending" : "");
    if (id) { el.dataset.id = id; }
    el.dataset.author = author;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = author === "user" ? t("you") : author === "listener" ? t("listener") : t("bot");
    who.appendChild(document.createTextNode(" · "));
    who.appendChild(when(at || new Date().toISOString()));
    var body = document.createElement("span");
    body.className = "text";
    if (author === "bot" || author === "listener") { linkify(body, text); } else { body.textContent = text; }
    el.appendChild(who);
    el.appendChild(body);
    $("messages").appendChild(el);
    el.scrollIntoView({ block: "end" });
    return el;
  }

  /* Helpline numbers become tel: links (sms: for 114, the text line for the deaf) and http(s) URLs become links,
     built as DOM nodes: the text around them stays text. Only for the line's own texts, never the young person's.
     15 (the SAMU, for someone hurt or who has taken something) only when named so, "15 (SAMU)" or "15 (medical
     emergency)": "15" alone is too often an age, a time or a count (until 2026-12-06 it was never a link: the young
     person hurt had to copy it). */
  var LINKS = /(https?:\/\/[^\s<>"]+)|(^|[^\d\w+.,:-])(116[\s\u00a0]?006|116[\s\u00a0]?111|3114|3018|119|112|114|17|15(?=[\s\u00a0]?\((?:SAMU|medical)))(?![\d\w]|[.,:\/]\d|\s?(?:ans?|years?|h\b|min|%|€))/gi;
  var NOT_A_LINE = /(position|number|numéro|n°|#)\s*$/i;  // "position 17" is a place in line, not the police

  function linkify(node, text) {
    var at = 0;
    var match;
    LINKS.lastIndex = 0;
    while ((match = LINKS.exec(text)) !== null) {
      var url = match[1] ? match[1].replace(/[.,;:!?)\]]+$/, "") : null;
      var start = url ? match.index : match.index + match[2].length;
      var shown = url || match[3];
      LINKS.lastIndex = start + shown.length;
      if (!url && NOT_A_LINE.test(text.slice(0, start))) { continue; }
      node.appendChild(document.createTextNode(text.slice(at, start)));
      node.appendChild(link(url, shown));
      at = start + shown.length;
    }
    node.appendChild(document.createTextNode(text.slice(at)));
  }

  function link(url, shown) {
    var a = document.createElement("a");
    a.textContent = shown;
    if (url) {
      a.href = url;  // http(s) only, by the pattern: never a javascript: URL
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    } else {
      var digits = shown.replace(/\D/g, "");
      a.href = (digits === "114" ? "sms:" : "tel:") + digits;
      a.className = "phone";
    }
    return a;
  }

  function showEntry(entry) {
    if (state.shown[entry.id]) { return; }
    state.shown[entry.id] = true;
    if (entry.author === "user" && !entry.images && adopt(entry)) { return; }
    if (entry.author !== "user") {
      state.entries.push({ id: entry.id, author: entry.author, text: entry.text, at: entry.at });
      if (ended()) { saveEnded(); }
    }
    var text = entry.images ? t("imageSent") + (entry.text ? " · " + entry.text : "") : entry.text;
    bubble(entry.author, text, entry.id, false, entry.at);
    acknowledge(entry);
    if (entry.author !== "user" && state.live && (document.hidden || state.away)) { state.unread += 1; renderTitle(); }
    if (lineMessage(entry)) {
      state.lastBot = entry;
      renderChoices(entry.choices || [], true);
    }
    if (entry.author === "listener") { $("typing").hidden = true; }
  }

  /* Whose entry puts its choices in place of the buttons shown: the line's messages (the bot's, a listener's), each
     in the conversation's order, the last one's winning (a session or a resync replaying the history ends on it);
     one without choices clears them (the question answered, or the talk moved on). A gate's notice ("notice-": a
     flood refused, a network at its cap) is none of the line's questions, never stored: it leaves the buttons of
     the question still asked above it (until 2026-12-06 it cleared them, and a young person refused once had
     nothing left to answer with but typing). The young person's entries, the listener's typing, receipts and the
     page's own lines ("Pas encore envoyé") never touch them either. */
  function lineMessage(entry) {
    return (entry.author === "bot" || entry.author === "listener") && !/^notice-/.test(entry.id);
  }

  /* Receipts for the line's messages: delivered once shown, read once the young person can see them (the tab in
     front and, in the widget, its panel open). Sent together at the end of the current task. */
  function seeing() { return !document.hidden && !state.away; }

  function acknowledge(entry) {
    if (!lineMessage(entry)) { return; }
    if (seeing()) { receipt("read", entry.id); } else { receipt("delivered", entry.id); state.unseen.push(entry.id); }
  }

  function receipt(status, id) {
    var waiting = state.receipts.delivered.length + state.receipts.read.length;
    state.receipts[status].push(id);
    if (!waiting) { setTimeout(sendReceipts, 0); }
  }

  function sendReceipts() {
    var ws = state.ws;
    ["delivered", "read"].forEach(function (status) {
      var ids = state.receipts[status];
      state.receipts[status] = [];
      for (var at = 0; ws && ws.readyState === WebSocket.OPEN && at < ids.length; at += 100) {
        ws.send(JSON.stringify({ type: "receipt", status: status, ids: ids.slice(at, at + 100) }));
      }
    });
  }

  function seen() {  // the page came into sight: what arrived meanwhile is read now
    if (!seeing() || !state.unseen.length) { return; }
    state.unseen.splice(0).forEach(function (id) { receipt("read", id); });
  }

  /* Choices of the bot's last question. Answering by keyboard goes on: after a tapped choice, focus moves to the
     next question's choices (or to the message box while the page has none to offer). */
  function renderChoices(choices, fromBot) {
    var box = $("choices");
    var follow = box.dataset.answered === "1" || box.contains(document.activeElement);
    Array.prototype.slice.call(box.querySelectorAll("button")).forEach(function (b) { b.remove(); });
    box.hidden = choices.length === 0;
    choices.forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.textContent = choice.label;
      button.addEventListener("click", function () { box.dataset.answered = "1"; send(choice.label, choice.value); });
      box.appendChild(button);
    });
    var last = $("messages").lastElementChild;  // the box took room from the list: the question stays in sight
    if (last && choices.length) { last.scrollIntoView({ block: "end" }); }
    if (!fromBot || !follow) { return; }
    if (choices.length) {
      box.dataset.answered = "";
      box.querySelector("button").focus({ preventScroll: true });
    } else if (document.activeElement === document.body && !$("composer").hidden) {
      $("message-input").focus({ preventScroll: true });
    }
  }

  function renderStatus() {
    if (ended()) { state.endAsked = false; }  // "Terminer" done (or the conversation ended otherwise)
    var line = $("status-line");
    var text = "";
    if (state.status === "queued") { text = t("queued") + (state.position || "?"); }
    if (state.status === "queued" && state.reopens) {  // the line closed: no listener promised (the bot said where to turn)
      var when = state.reopens[state.lang] || "";
      text = when ? t("closedLine").replace("{when}", when) : t("closedLineLater");
    }
    if (state.status === "with_listener") { text = t("withListener"); }
    line.textContent = text;
    line.hidden = !text;
    var isEnded = ended();
    var wasEnded = !$("ended").hidden;
    if (isEnded) { forgetConversation(); }  // its end is seen: the next hello is for a new conversation
    var endFocused = $("ended").contains(document.activeElement);
    $("ended").hidden = !isEnded;
    $("composer").hidden = isEnded;
    if (!isEnded && wasEnded && (endFocused || document.activeElement === document.body)) {  // the next one (goOnInNext)
      $("message-input").focus({ preventScroll: true });
    }
    if (!isEnded || wasEnded) { return; }
    var focused = document.activeElement;
    var lost = !focused || focused === document.body || $("composer").contains(focused) || $("choices").contains(focused);
    renderChoices([]);
    $("typing").hidden = true;
    saveEnded();
    var last = $("messages").lastElementChild;
    if (last) { last.scrollIntoView({ block: "end" }); }  // the last message (numbers, referral) stays in sight
    if (lost) { $("new-conversation").focus({ preventScroll: true }); }
  }

  function ended() { return !!FINAL[state.status]; }

  function renderTitle() {
    document.title = (state.unread ? "(" + state.unread + ") " : "") + t("pageTitle");
    if (window.parent !== window) { window.parent.postMessage({ type: "hg-unread", count: state.unread }, "*"); }  // a number only
  }

  /* Only what the line said (never the young person's words), so a reload still shows the numbers given. */
  function saveEnded() {
    if (state.leaving) { return; }  // the quick exit cleared the storage: nothing is written again
    var kept = { status: state.status, entries: state.entries.slice(-KEEP_AFTER_END), at: Date.now() };
    try { localStorage.setItem(ENDED_KEY, JSON.stringify(kept)); } catch (e) { /* private mode: the tab only */ }
  }

  function restoreEnded() {
    var kept = null;
    try { kept = JSON.parse(localStorage.getItem(ENDED_KEY) || "null"); } catch (e) { kept = null; }
    if (kept && !(typeof kept.at === "number" && Date.now() - kept.at < KEEP_MS)) {
      try { localStorage.removeItem(ENDED_KEY); } catch (e) { /* ignore */ }
      kept = null;  // kept too long (or by a page from before the hour): a new conversation
    }
    if (!kept || !FINAL[kept.status] || !Array.isArray(kept.entries)) { return false; }
    state.status = kept.status;
    kept.entries.forEach(function (entry) {
      if (entry && typeof entry.text === "string") {
        showEntry({ id: String(entry.id), author: String(entry.author), text: entry.text, at: String(entry.at || "") });
      }
    });
    renderStatus();
    return true;
  }

  /* ---------- connection ---------- */

  function socketUrl() {
    var base = document.body.dataset.base || (location.protocol + "//" + location.host);
    return base.replace(/^http/, "ws") + "/chat/ws";
  }

  function connect() {
    if (state.leaving) { return; }
    var ws = new WebSocket(socketUrl());
    state.ws = ws;
    state.session = false;  // until this socket's session frame: a refused hello (a full network) opens none
    // an automatic try the socket replaced had waiting is dropped: this socket's refusals set their own (until
    // 2026-12-07 (night) it stayed set, the new socket's refusal set none, and it found its socket gone: no try again)
    clearTimeout(state.held.timer);
    state.held = { timer: null, at: 0, delay: state.held.delay, auto: {}, own: state.held.own };
    // an upgrade never answered (a proxy or a portal that holds websockets) left the page waiting as long as the
    // browser let it (minutes), blank or deaf, saying nothing: given up, it closes, is said and tried again
    setTimeout(function () {
      if (state.ws === ws && ws.readyState === WebSocket.CONNECTING) { ws.close(); }
    }, OPENING_MS);
    ws.onopen = function () {
      state.heard = Date.now();
      var token = storedToken();
      // the conversation this tab followed before the one the storage names: another tab's new one (started after
      // an erasure this tab missed) is not this tab's, nor are the words it still has to send (until 2026-12-07
      // they went into it)
      ws.send(JSON.stringify({ type: "hello", token: token, opening: token ? null : openingKey(),
        conversation: token ? state.conversation || storedConversation() : null, language: state.told ? state.lang : null }));
    };
    ws.onmessage = function (event) { state.heard = Date.now(); handle(JSON.parse(event.data)); };
    ws.onclose = function () {
      if (state.ws !== ws) { return; }  // replaced by a new conversation's socket
      state.ws = null;
      if (ended()) { return; }  // a reconnection would greet a new conversation nobody asked for
      sayReconnecting();
      // the delay grows until a session is opened, not merely a socket (a server that closes each socket after its
      // hello, as during a store outage, is not asked twice a second by every page), with a random part so that
      // the pages cut at once do not all come back at once
      state.retry = setTimeout(connect, state.delay / 2 + Math.random() * state.delay / 2);
      state.delay = Math.min(state.delay * 2, 10000);
    };
  }

  /* "Reconnexion…"; the line unreachable for UNREACHABLE_MS (no session since the page opened or lost its
     connection), where to turn meanwhile too, as links: a page that cannot reach the line never leaves a young
     person with nothing but a spinner's word (the phone may still call when its data does not get through). */
  function sayReconnecting() {
    var line = $("connection");
    state.lostAt = state.lostAt || Date.now();
    line.textContent = "";
    if (Date.now() - state.lostAt >= UNREACHABLE_MS) { linkify(line, unreachable()); } else { line.textContent = t("reconnecting"); }
    line.hidden = false;
    pending().forEach(function (m) { sayWaiting(m.id); });  // sent into the connection lost, or not yet
  }

  /* flows.yaml's words as the page was served (its message "unreachable", by language: gateway/app.py), else the
     page's own: the line's partners' numbers are ops' to change, not the widget's. */
  function unreachable() {
    var texts = {};
    try { texts = JSON.parse(document.body.dataset.unreachable || "{}"); } catch (e) { texts = {}; }
    return typeof texts[state.lang] === "string" ? texts[state.lang] : t("unreachable");
  }

  function handle(frame) {
    if (state.leaving || frame.type === "keepalive") { return; }  // heard: that is all it is for (watchSilence)
    else if (frame.type === "session") { onSession(frame); }
    else if (frame.type === "entry") { showEntry(frame.entry); }
    else if (frame.type === "ack") { onAck(frame.id); }
    else if (frame.type === "refused") { onRefused(frame); }
    else if (frame.type === "typing") { showTyping(); }
    else if (frame.type === "language") { followLanguage(frame.language); }  // answered the bot's language question
    else if (frame.type === "status") {
      state.status = frame.status; state.position = frame.position; state.reopens = frame.reopens; followLanguage(frame.language); renderStatus();
    }
    else if (frame.type === "resync") {  // the server may have missed events: what we did not show, and the status
      if (ended() && !FINAL[frame.status]) { goOnInNext(frame.status); }  // a message of the page opened the next
      frame.entries.forEach(showEntry);
      followConversation(frame.conversation, frame.status);
      state.status = frame.status; state.position = frame.position; state.reopens = frame.reopens; followLanguage(frame.language); renderStatus();
    }
    else if (frame.type === "error" && frame.code === "ended") { onEnded(); }
    else if (frame.type === "error") { bubble("system", t("error"), null, false); }
  }

  /* After an end shown, the socket was moved to the next conversation (a resync naming it, not ended): a message
     the page sent as the listener closed the one it followed was taken in a new one (``EndedMeanwhile``; the server
     sent the ended one's last words and end first). The page goes on in it below the ended one's messages, as after
     "Nouvelle conversation" but keeping them in sight: the ended one's kept end goes (a reload resumes the new one,
     where until 2026-12-07 it showed the old end and connected nothing), and what is kept after the next end is
     this one's. */
  function goOnInNext(status) {
    try { localStorage.removeItem(ENDED_KEY); } catch (e) { /* nothing kept */ }
    state.entries = [];
    state.status = status;  // its entries, shown next, are not kept as the ended one's
  }

  /* The page's own texts follow the conversation's language: a young person who answered "English" to the bot
     gets the quick exit, the hint and the status line in English too. */
  function followLanguage(language) {
    if (language === state.langAsked) { state.langAsked = null; }  // the switch is the conversation's now
    if (!TEXTS[language] || language === state.lang) { return; }
    state.lang = language;
    state.told = true;
    try { localStorage.setItem(LANG_KEY, language); } catch (e) { /* the tab keeps it */ }
    applyTexts();
  }

  function onSession(frame) {
    state.delay = 500;
    state.session = true;
    clearTimeout(state.held.timer);  // what is pending goes below, on this session
    state.held = { timer: null, at: 0, delay: HELD_RETRY_MS, auto: {}, own: {} };
    state.lostAt = null;
    $("connection").hidden = true;
    if (typeof frame.keepalive === "number" && frame.keepalive > 0) { state.keepalive = frame.keepalive; }
    if (state.langAsked && frame.language !== state.langAsked) {  // switched while the connection was down: asked now
      state.ws.send(JSON.stringify({ type: "language", language: state.langAsked }));
    } else {
      followLanguage(frame.language);
    }
    state.token = frame.token;
    try { localStorage.setItem(TOKEN_KEY, frame.token); } catch (e) { /* private mode: session lasts the tab */ }
    forgetOpening();  // the token speaks for the page from now on
    if (ended() && !FINAL[frame.status]) { goOnInNext(frame.status); }  // the next one an image went to (followImage)
    state.status = frame.status;
    state.position = frame.position;
    state.reopens = frame.reopens;
    followConversation(frame.conversation, frame.status);
    document.querySelectorAll(".msg.pending[data-restored]").forEach(function (el) { el.remove(); });  // shown below
    frame.history.forEach(showEntry);
    state.live = true;  // from here on, what arrives while the tab is hidden counts as unread
    var told = frame.history.filter(function (e) { return e.author === "user"; }).map(function (e) { return e.text; });
    takeOthers();
    pending().forEach(function (m) {  // re-send what the server never acknowledged; it de-duplicates on id
      // words the history already shows are not shown again (stored, the answer lost): new, their entry shows them
      if (!document.querySelector('[data-id="' + m.id + '"]') && told.indexOf(m.text) < 0) { bubble("user", m.text, m.id, true); }
      sending(m.id);
      state.ws.send(JSON.stringify({ type: "message", id: m.id, text: m.text, payload: m.payload }));
    });
    if (pending().length) { expectAnswer(); }
    renderStatus();
    if (state.endAsked) { askEnd(); }  // "Terminer" pressed while the connection was down or dead: asked again
  }

  /* What waits to be sent, shown as the page opens: reloaded while the line cannot be reached (a socket refused, a
     proxy holding it), the page showed nothing of it, and the young person typed it again (the listener got it
     twice). The session's history takes their place: they are shown again after it, but for those it holds. */
  function showPending() {
    pending().forEach(function (m) { bubble("user", m.text, m.id, true).dataset.restored = "1"; });
  }

  /* A message sent after the end started nothing (the server dropped it): the end is shown, and the words are
     not lost: said, and put back in the message box for a new conversation ("Nouvelle conversation" keeps it). */
  function onEnded() {
    var unsent = pending().map(function (m) { return m.text; }).filter(function (text) { return !!text; });
    savePending([]);
    document.querySelectorAll(".msg.pending").forEach(function (el) { el.remove(); });
    if (unsent.length) {
      var input = $("message-input");
      input.value = unsent.concat(input.value ? [input.value] : []).join("\n");
      bubble("system", t("unsent"), null, false);
    }
    if (!ended()) { state.status = "closed"; renderStatus(); }
  }

  /* A message the server refused (a flood, a network at its cap) stays the young person's, kept and sent again at
     the next session, and says so: "Pas encore envoyé", with a button that tries again now (same id: recorded once).
     A refused hello (no id) leaves this socket held: what the page still has to send goes now, each message judged
     by its words (one that tells a danger opens the conversation), instead of waiting for a session that a full
     network would never give. */
  function onRefused(frame) {
    if (frame.id === null) {
      if (frame.reason === "blocked" || !state.ws) { return; }
      takeOthers();
      pending().forEach(function (m) {
        if (!document.querySelector('[data-id="' + m.id + '"]')) { bubble("user", m.text, m.id, true); }
        state.ws.send(JSON.stringify({ type: "message", id: m.id, text: m.text, payload: m.payload }));
      });
      return;
    }
    var automatic = state.held.auto[frame.id];
    delete state.held.auto[frame.id];
    // a place may free: tried again by itself; so is an automatic try the network's rate of new chats refused (the
    // cap freed, its window spent: chats_per_address), until the window ends. Until 2026-12-07 that refusal, said
    // quietly, stopped the tries: the message waited for "Réessayer" for good.
    // retry_after (since 2026-12-07 evening): the refusing rate's window end, waited for (until then the page asked
    // about once a minute for up to an hour, a school's held pages all the while)
    // limit "network" (since 2026-12-07): a first message the network's rate of new chats refused (a school's pupils
    // opening chats, not this page's flood) is tried again by itself too, once retry_after has passed; until then it
    // waited for "Réessayer" for good. A refusal for the page's own doing (no limit) is not looped.
    // An automatic try refused for the page's own flood (messages_per_conversation: no retry_after, no limit) is
    // its last: the message waits for "Réessayer" or a new session (state.held.own), as a first message refused so
    // does. Until 2026-12-07 (night) it was taken for the network's window and tried again every round, for good.
    var own = automatic && frame.reason === "rate_limited" && !frame.limit && typeof frame.retry_after !== "number";
    if (own) { state.held.own[frame.id] = true; }
    if (frame.reason === "client_full" || (automatic && frame.reason === "rate_limited" && !own)
        || (frame.reason === "rate_limited" && frame.limit === "network")) { heldRetry(frame.retry_after); }
    var el = document.querySelector('.msg.pending[data-id="' + frame.id + '"]');
    if (!el) { return; }
    var shown = el.querySelector(".not-sent [data-i18n]");
    if (shown && automatic) { return; }  // tried again by itself: nothing new to say (nor to a screen reader)
    if (shown) {  // refused again ("Réessayer"): said again in the bubble, the notice being shown once a minute
      sayInstead(shown, "notSent");
      return;
    }
    var waiting = el.querySelector(".waiting");
    if (waiting) { waiting.remove(); }  // said now as refused, with its button
    el.classList.add("failed");
    var line = document.createElement("span");
    line.className = "not-sent";
    var said = document.createElement("span");
    said.dataset.i18n = "notSent";
    said.textContent = t("notSent");
    var again = document.createElement("button");
    again.type = "button";
    again.className = "small retry";
    again.dataset.i18n = "retry";
    again.textContent = t("retry");
    again.addEventListener("click", function () { retry(frame.id); });
    line.appendChild(said);
    line.appendChild(again);
    el.appendChild(line);
  }

  /* The messages a full network refused, sent again by the page itself on this socket after a while, longer each
     time (HELD_RETRY_MS doubling up to HELD_RETRY_MAX_MS, with a random part: a school's held pages do not all ask
     at once), until one is let in: its session frame, then its ack (the same id: recorded once, counted once by the
     gate). Marked "auto": the server repeats no notice for them and asks the model nothing more (their words were
     read at their first refusal). A new socket sends what is pending itself (its hello's refusal, or its session).
     retryAfter: the refused frame's retry_after (seconds until the refusing rate's window ends): the try waits at
     least that long, never less than its backoff, with a random part of the backoff after it (a school's held pages
     do not all ask the second the window ends); a timer set earlier than it is set again. Until 2026-12-07 evening
     the backoff alone: about once a minute for the rest of an hour's window. A message whose automatic try was
     refused for the page's own flood (state.held.own, onRefused) is not sent (since 2026-12-07, night). */
  function heldRetry(retryAfter) {
    var ws = state.ws, delay = state.held.delay;
    var wait = delay / 2 + Math.random() * delay / 2;
    var after = typeof retryAfter === "number" && isFinite(retryAfter) && retryAfter > 0
      ? Math.min(retryAfter, HELD_RETRY_AFTER_MAX_S) * 1000 : 0;
    if (after > 0) { wait = Math.max(wait, after + Math.random() * delay / 2); }
    if (state.held.timer !== null) {
      if (after === 0 || state.held.at >= Date.now() + after) { return; }  // one timer for all that is pending
      clearTimeout(state.held.timer);  // it would come before the window ends: refused again for nothing
    }
    state.held.delay = Math.min(delay * 2, HELD_RETRY_MAX_MS);
    state.held.at = Date.now() + wait;
    state.held.timer = setTimeout(function () {
      state.held.timer = null;
      if (state.ws !== ws || !ws || ws.readyState !== WebSocket.OPEN || ended() || state.leaving) { return; }
      pending().forEach(function (m) {
        if (!document.querySelector('.msg.pending.failed[data-id="' + m.id + '"]')) { return; }
        if (state.held.own[m.id]) { return; }  // refused for the page's own flood: "Réessayer" or a new session
        state.held.auto[m.id] = true;
        ws.send(JSON.stringify({ type: "message", id: m.id, text: m.text, payload: m.payload, auto: true }));
      });
    }, wait);
  }

  /* A message the page could not send (no connection: typed while it is down, or sent into one lost before the
     server acknowledged it) says so in words, not only by its dashed outline: "Pas encore envoyé…", added to the
     bubble in the messages' log, which a screen reader is given as the refusal's line is. It goes once the message
     is acknowledged (stored) or refused (onRefused says it then). */
  function sayWaiting(id) {
    var el = document.querySelector('.msg.pending[data-id="' + id + '"]');
    var trying = el && el.querySelector('.not-sent [data-i18n="sending"]');
    if (trying) { sayInstead(trying, "notSent"); }  // "Réessayer" pressed, the connection lost before the answer
    if (!el || el.querySelector(".not-sent, .waiting")) { return; }
    var line = document.createElement("span");
    line.className = "waiting";
    line.dataset.i18n = "waiting";
    line.textContent = t("waiting");
    el.appendChild(line);
  }

  /* A refused message's state said anew ("Envoi en cours…", "Pas encore envoyé."): a new line in place of the
     old, since the messages' log gives a screen reader what is added to it (aria-relevant="additions"), never a
     text changed in place (a retry refused again within the minute has no notice to say it). */
  function sayInstead(old, key) {
    var said = document.createElement("span");
    said.dataset.i18n = key;
    said.textContent = t(key);
    old.replaceWith(said);
  }

  function sending(id) {  // sent again: no longer said as not sent
    var el = document.querySelector('.msg.pending[data-id="' + id + '"]');
    var line = el && el.querySelector(".not-sent");
    if (line) { removeFocused(line); el.classList.remove("failed"); }
  }

  /* A message's "Réessayer" goes (sent again, or acknowledged): if it held the focus, the focus goes on to the
     message box, never to nothing (a keyboard would start again from the top of the page). */
  function removeFocused(node) {
    var focused = node.contains(document.activeElement);
    node.remove();
    if (focused && !$("composer").hidden) { $("message-input").focus({ preventScroll: true }); }
  }

  function retry(id) {
    var message = pending().filter(function (m) { return m.id === id; })[0];
    if (!message || !state.ws || state.ws.readyState !== WebSocket.OPEN) { return; }  // sent at the next session
    // "Pas encore envoyé" and its button stay until the answer (the ack takes the message away, a refusal keeps
    // it): the focus stays on the button pressed, never on nothing, for a keyboard or a screen reader
    var said = document.querySelector('.msg.pending[data-id="' + id + '"] .not-sent [data-i18n]');
    if (said) { sayInstead(said, "sending"); }  // until the ack or the refusal
    delete state.held.auto[id];  // pressed: its answer is said
    delete state.held.own[id];  // and tried by the page itself again, should the network refuse it
    state.ws.send(JSON.stringify({ type: "message", id: message.id, text: message.text, payload: message.payload }));
    expectAnswer();
  }

  /* The message is stored: its bubble stays, no longer waiting, for the entry's own frame to take (adopt), before
     or after this. Removing it for the entry's copy gave a screen reader the young person's every message twice. */
  function onAck(id) {
    savePending(pending().filter(function (m) { return m.id !== id; }));
    var el = document.querySelector('.msg.pending[data-id="' + id + '"]');
    if (el) { stored(el); el.dataset.acked = "1"; }
  }

  /* The young person's entry whose message the page shows already (waiting, or stored and not yet taken by its
     entry): that bubble is it, the first of the same words (the messages go in order). */
  function adopt(entry) {
    var el = Array.prototype.filter.call(document.querySelectorAll(".msg.user.pending, .msg.user[data-acked]"), function (bubble) {
      return bubble.querySelector(".text").textContent === entry.text;
    })[0];
    if (!el) { return false; }
    stored(el);
    delete el.dataset.acked;
    return true;
  }

  function stored(el) {
    var line = el.querySelector(".not-sent");
    if (line) { removeFocused(line); }
    var waiting = el.querySelector(".waiting");
    if (waiting) { waiting.remove(); }
    el.classList.remove("pending", "failed");
  }

  function showTyping() {
    $("typing").hidden = false;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(function () { $("typing").hidden = true; }, 5000);
  }

  /* ---------- actions ---------- */

  function send(text, payload) {
    text = text.trim();
    if (!text || ended()) { return; }
    parts(text).forEach(function (part) { sendOne(part, payload); });
  }

  /* A text longer than a message (a story pasted whole) goes as several, cut at a line break or a space when one
     is in the second half, never between the two halves of an emoji: nothing of it is dropped. */
  function parts(text) {
    var out = [];
    while (text.length > MAX_TEXT) {
      var cut = Math.max(text.lastIndexOf("\n", MAX_TEXT), text.lastIndexOf(" ", MAX_TEXT));
      if (cut < MAX_TEXT / 2) { cut = /[\uD800-\uDBFF]/.test(text.charAt(MAX_TEXT - 1)) ? MAX_TEXT - 1 : MAX_TEXT; }
      out.push(text.slice(0, cut).trim());
      text = text.slice(cut).trim();
    }
    return out.concat(text ? [text] : []).filter(function (part) { return !!part; });
  }

  function sendOne(text, payload) {
    var message = { id: uuid(), text: text, payload: payload || null, at: Date.now() };
    savePending(pending().concat([message]));
    bubble("user", text, message.id, true);
    renderChoices([]);
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: "message", id: message.id, text: message.text, payload: message.payload }));
      expectAnswer();
    } else {
      sayWaiting(message.id);
    }
  }

  /* A message sent and nothing heard from the server for SILENCE_MS since: the connection died without a word (a
     phone changing networks, a Wi-Fi lost; the browser may take minutes to notice), so the page drops it and
     connects again, which sends what is pending once more (the server de-duplicates on id). Anything heard (the
     ack, an entry, a notice) shows the connection alive. */
  function expectAnswer() {
    var ws = state.ws, sentAt = Date.now();
    setTimeout(function () {
      if (state.ws !== ws || state.heard >= sentAt || !(pending().length || state.endAsked)) { return; }
      dropDead(ws);
    }, SILENCE_MS);
  }

  /* The connection is taken for dead: dropped without waiting for the browser to notice, and opened again. */
  function dropDead(ws) {
    ws.onclose = null;
    ws.onmessage = null;
    try { ws.close(); } catch (e) { /* already gone */ }
    state.ws = null;
    if (ended() || state.leaving) { return; }  // a reconnection would greet a new conversation nobody asked for
    sayReconnecting();
    connect();
  }

  /* Idle too, the page hears the server at least every `keepalive` seconds (a keepalive frame when nothing else
     was sent, gateway/sockets.py): 2.5 times as long without a frame, the connection died without a word and the
     page connects again, so that a listener's answer is not left unseen. A tick that comes late (a tab asleep in
     the background, a phone's screen off) starts the count again from then rather than judging the sleep. */
  function watchSilence() {
    var now = Date.now(), asleep = state.tick && now - state.tick > 5000;
    state.tick = now;
    if (asleep) { state.heard = Math.max(state.heard, now); return; }
    var ws = state.ws;
    if (ws && ws.readyState === 1 && now - state.heard > state.keepalive * 2500) { dropDead(ws); }
  }

  /* The browser says the network is gone (airplane mode, a tunnel, a Wi-Fi lost): the socket is dead however open
     it looks, and the page says so now (before, nothing until 15 s after a message, 50 s on an idle page); back
     online, it connects again now, not after its growing delay (up to 10 s). */
  window.addEventListener("offline", function () { if (state.ws) { dropDead(state.ws); } });
  window.addEventListener("online", function () {
    if (state.ws || state.leaving || ended()) { return; }  // a socket on its way, or nothing to reconnect
    clearTimeout(state.retry);
    connect();
  });

  /* An image (a screenshot, a photo): posted on its own, cleaned by the server (no location or other metadata),
     then it comes back as the young person's message. A refusal is said plainly, in the page's language. */
  function sendImage(file) {
    var token = storedToken();
    if (!file || !token || ended()) { return; }
    if (file.size > uploadMax()) { bubble("system", refusal("too_big"), null, false); return; }
    var key = [file.name, file.size, file.lastModified].join("/");
    var id = state.unanswered && state.unanswered.key === key ? state.unanswered.id : uuid();
    var waiting = bubble("user", t("imageSending"), id, true);
    var url = (document.body.dataset.base || "") + "/chat/upload";
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, UPLOAD_TIMEOUT_MS) : null;
    fetch(url, { method: "POST", body: file, credentials: "omit", signal: controller ? controller.signal : undefined,
      headers: { "X-Chat-Token": token, "X-Upload-Id": id, "Content-Type": "application/octet-stream" } })
      .then(function (response) {
        clearTimeout(timer);
        // the server answered: stored, or refused and not stored; but a 5xx says neither (the gateway's 503:
        // processed, and the replicas behind or the store failing after it; a load balancer's 502 or 504: the
        // instance stopped, dead or slow, maybe after keeping it): the same file chosen again goes under the same
        // id, kept once (until 2026-12-07 under a new one, then for a while still after a 502 or 504: stored twice)
        state.unanswered = response.status >= 500 ? { key: key, id: id } : null;
        if (response.ok) { waiting.remove(); return response.json().then(followImage, function () { /* kept */ }); }
        return response.json().then(function (body) { refused(waiting, body && body.error); }, function () { refused(waiting, "other"); });
      }, function () {
        // no answer (a network gone, or no answer in time): the image may have reached the server all the same.
        // The same file chosen again goes under the same id, which the server keeps once (one image, one message).
        clearTimeout(timer);
        state.unanswered = { key: key, id: id };
        refused(waiting, "other");
      });
  }

  /* The 201 names the conversation the image went to: another than the one the page follows (that one ended as the
     image waited for its lock, the image taken in a new one, greeted by the bot), the page says hello again on its
     socket naming it: the server shows the ended one's last words and end (a resync naming it), then the session of
     the next one, the image in its history (onSession goes on in it). The socket down, the next hello names it.
     Until 2026-12-07 nothing was named: the end shown, the image's bubble gone without a word, and the conversation
     holding it never shown until "Nouvelle conversation". */
  function followImage(body) {
    var next = body && body.conversation;
    if (typeof next !== "string" || next === state.conversation) { return; }
    var ws = state.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "hello", token: storedToken(), opening: null, conversation: next,
        language: state.told ? state.lang : null }));
    } else {
      followConversation(next);
      try { localStorage.removeItem(ENDED_KEY); } catch (e) { /* nothing kept */ }
    }
  }

  /* An image's 409 `ended` says only that the token has no open conversation: erased (while it was kept, or
     before), ended unseen, or lost by the store (a Redis failover) with this socket still open. The page does not
     end anything itself: the image is said not sent and the page says hello again naming its conversation, whose
     answer decides (`closed` as after any end, or a conversation that works). Until 2026-12-07 it showed the end
     at once: a conversation a failover lost was told ended to the young person, as a text no longer was. */
  function refused(waiting, code) {
    waiting.remove();
    bubble("system", refusal(code === "ended" ? "other" : code), null, false);
    if (code === "ended" && state.ws && !ended()) { state.ws.close(); }  // its onclose connects again (its short delay)
  }

  function uploadMax() { return Number(document.body.dataset.uploadMax) || 5000000; }

  function refusal(code) {
    var messages = t("refused");
    var mb = String(Math.floor(uploadMax() / 100000) / 10).replace(".", state.lang === "fr" ? "," : ".");
    return (messages[code] || messages.other).replace("{mb}", mb);
  }

  function quickExit() {
    tellLeaving();
    leaveNow();
    try { localStorage.clear(); sessionStorage.clear(); } catch (e) { /* nothing to clear */ }
    var target = document.body.dataset.quickExit || "https://www.google.com/search?q=meteo";
    try { window.top.location.replace(target); } catch (e) { location.replace(target); }
  }

  /* The page goes blank at once and stays silent while the exit page loads (a slow network may take seconds):
     nothing more is shown, stored (the end the beacon causes would store the line's last messages again) or
     connected. */
  function leaveNow() {
    state.leaving = true;
    var ws = state.ws;
    state.ws = null;
    if (ws) { ws.onclose = null; ws.onmessage = null; try { ws.close(); } catch (e) { /* gone */ } }
    document.body.hidden = true;
  }

  /* Another tab of the chat made the quick exit (it cleared the storage): this one leaves too. */
  window.addEventListener("storage", function (event) {
    if (event.key !== null || state.leaving) { return; }
    leaveNow();
    var target = document.body.dataset.quickExit || "https://www.google.com/search?q=meteo";
    try { window.top.location.replace(target); } catch (e) { location.replace(target); }
  });

  /* The listener must know nobody reads any more: a beacon survives the page being replaced right after. */
  function tellLeaving() {
    var token = storedToken();
    if (!token || ended()) { return; }
    var url = (document.body.dataset.base || "") + "/chat/leave";
    var body = JSON.stringify({ token: token });
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, body)) { return; }
      fetch(url, { method: "POST", body: body, keepalive: true, credentials: "omit" }).catch(function () { /* unanswered */ });
    } catch (e) { /* leaving matters more than telling */ }
  }

  /* The same browser keeps its token: the listener sees a young person who writes again as returning (the quick
     exit is the way to leave no trace). A page without one draws a new opening key: a new conversation. */
  /* "Terminer": asked on the socket if it is open, and asked again after the next session until the end is seen: a
     click while the page reconnects (the socket not open) or into a connection that died silently was lost, the
     conversation going on without the young person. No answer in time: the connection is taken for dead. */
  function askEnd() {
    if (!state.endAsked || ended() || !(state.ws && state.ws.readyState === WebSocket.OPEN)) { return; }
    state.ws.send(JSON.stringify({ type: "end" }));
    expectAnswer();
  }

  function newConversation() {
    try { [PENDING_KEY, ENDED_KEY].forEach(function (key) { localStorage.removeItem(key); }); } catch (e) { /* ignore */ }
    forgetOpening();
    forgetConversation();
    $("messages").textContent = "";
    state.shown = {};
    state.entries = [];
    state.status = "bot";
    renderStatus();
    var old = state.ws;
    state.ws = null;
    if (old) { old.close(); }
    connect();
    $("message-input").focus();
  }

  function bind() {
    $("composer").addEventListener("submit", function (event) {
      event.preventDefault();
      $("choices").dataset.answered = "";  // typing: the focus stays in the message box
      send($("message-input").value);
      $("message-input").value = "";
    });
    $("message-input").addEventListener("keydown", function (event) {
      if (event.isComposing || event.keyCode === 229) { return; }  // Enter that ends a word being composed (an IME, a phone's keyboard)
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
    });
    $("message-input").addEventListener("input", function () {
      var now = Date.now();
      if (now - state.lastTyping > 3000 && state.session && state.ws && state.ws.readyState === WebSocket.OPEN) {
        state.lastTyping = now;
        state.ws.send(JSON.stringify({ type: "typing" }));
      }
    });
    $("quick-exit").addEventListener("click", quickExit);
    $("image-button").addEventListener("click", function () { $("image-input").click(); });
    $("image-input").addEventListener("change", function () {
      var file = $("image-input").files[0];
      $("image-input").value = "";
      sendImage(file);
    });
    $("end-button").addEventListener("click", function () {
      if (window.confirm(t("confirmEnd"))) { state.endAsked = true; askEnd(); }
    });
    $("new-conversation").addEventListener("click", newConversation);
    $("lang-toggle").addEventListener("click", function () {
      state.lang = state.lang === "fr" ? "en" : "fr";
      state.told = true;
      state.langAsked = state.lang;  // until the server says it back (asked again after the next session)
      try { localStorage.setItem(LANG_KEY, state.lang); } catch (e) { /* ignore */ }
      applyTexts();
      if (state.session && state.ws && state.ws.readyState === WebSocket.OPEN) {  // the bot follows from the next message on
        state.ws.send(JSON.stringify({ type: "language", language: state.lang }));
      }
    });
    document.addEventListener("keydown", function (event) {  // Escape twice within 2 s: quick exit
      if (event.key !== "Escape") { state.escapes = 0; return; }
      var now = Date.now();
      state.escapes = now - state.lastEscape > ESCAPE_WINDOW_MS ? 1 : state.escapes + 1;
      state.lastEscape = now;
      if (state.escapes >= 2) { quickExit(); }
    });
  }

  bind();
  if (window.matchMedia && matchMedia("(hover: none) and (pointer: coarse)").matches) {
    document.querySelector(".hint").dataset.i18n = "hintTouch";  // a phone has no Escape key: name the button
  }
  applyTexts();
  setInterval(function () { document.querySelectorAll("time.when").forEach(renderWhen); }, 30000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !state.away && state.unread) { state.unread = 0; renderTitle(); }
    seen();
  });
  window.addEventListener("message", function (event) {  // the widget's panel opened or closed
    if (event.source !== window.parent || !event.data || event.data.type !== "hg-widget") { return; }
    state.away = !event.data.open;
    if (!state.away && state.unread) { state.unread = 0; renderTitle(); }
    seen();
  });
  if (!restoreEnded()) { showPending(); connect(); }
  setInterval(watchSilence, 1000);
})();
