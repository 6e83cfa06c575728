/* Shared by the console pages: API calls, safe element building (textContent only), durations, a beep,
   and the live events socket. Text is only ever set with textContent. */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  /* Every call that changes something goes as JSON, even without a body: the server refuses any other POST
     (an HTML form of another site cannot send JSON). */
  /* ``waitMs``: give up on an answer after that long (the promise is rejected, as when the connection drops): a
     connection gone silent (a Wi-Fi lost without a word) otherwise keeps a request pending for minutes. The answer:
     ``{ok, status, data, wait}``, ``wait`` the Retry-After's seconds (0 without one: a braked password change's). */
  var leaving = false;  // this page is logging out (leaving()): a 401 from now on is that logout, not an expiry
  function leaving_() { leaving = true; }

  function api(method, path, body, waitMs) {
    var options = { method: method, credentials: "same-origin", headers: {} };
    if (body === undefined && method !== "GET" && method !== "HEAD") { body = {}; }
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    if (waitMs && window.AbortController) {
      var controller = new AbortController();
      options.signal = controller.signal;
      setTimeout(function () { controller.abort(); }, waitMs);
    }
    return fetch(path, options).then(function (response) {
      if (response.status === 401) {  // after one's own logout, any request still out says nothing of expiry
        location.href = leaving ? "/console/login" : "/console/login?expired=1";
        throw new Error("session");
      }
      var type = response.headers.get("Content-Type") || "", wait = Number(response.headers.get("Retry-After")) || 0;
      var read = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
      return read.then(function (data) { return { ok: response.ok, status: response.status, data: data, wait: wait }; });
    });
  }

  /* A refusal in the console's words (i18n.js's ``refused.*``, French first, then English): a validation error's
     own text naming the refused field (``refused.field.<field>``), else its code's, ``about``'s own first
     (``refused.not_found.notice``: a notice, not a conversation); the server's English ``message`` only for a code
     the console has no words for. The answer's details (``position``, ``max``, ``current``) and ``params`` fill
     the text's {names}. */
  function refusal(response, about, params) {
    var data = response.data || {}, values = {}, keys = [];
    [data, params || {}].forEach(function (from) { Object.keys(from).forEach(function (k) { values[k] = from[k]; }); });
    if (typeof data.field === "string") { keys.push("refused.field." + data.field); }
    if (about) { keys.push("refused." + data.error + "." + about); }
    keys.push("refused." + data.error);
    for (var i = 0; i < keys.length; i += 1) {
      var text = HG.t(keys[i], values);
      if (text !== keys[i]) { return text; }
    }
    return data.message || HG.t("refused.other", { status: response.status });
  }

  /* A line saying that what is shown may be out of date (a read refused or unanswered): ``key`` its text (i18n.js),
     kept in ``data-i18n`` so that it follows a language switch; no ``key`` hides it. The console's queue
     (``queueStale``) and the supervision's safety lists (``stale``) say so with it. */
  function staleLine(line, key) {
    line.hidden = !key;
    line.textContent = key ? HG.t(key) : "";
    if (key) { line.dataset.i18n = key; } else { delete line.dataset.i18n; }
  }

  /* The rejection handler of a request that got no answer (the connection dropped, the server unreachable):
     ``show`` gets ``refused.network`` (look where the conversation stands, then try again: a conversation's action),
     or ``refused.network.<about>`` when the caller says what it is about (``"other"``: an action on no conversation,
     a safety action, supervision, the password), never silence; a 401 (the session over) already sent the page to
     the login. */
  function unanswered(show, about) {
    return function (error) {
      if (error && error.message === "session") { return; }
      show(HG.t(about ? "refused.network." + about : "refused.network"));
    };
  }

  /* What a young person wrote, with the characters that could hide or reorder it made visible instead of applied:
     bidirectional overrides, embeddings and isolates (U+202A–202E, U+2066–2069), marks (U+200E, U+200F, U+061C),
     zero-width and invisible characters (U+200B, U+200C, U+2060–2064, U+FEFF, U+180E, U+00AD). A zero-width
     joiner inside an emoji sequence (👩‍💻) is kept. Shown as ⟦U+202E⟧. */
  var HIDDEN = /[\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/g;
  var EMOJI_SIDE = /[\uD800-\uDFFF\u2600-\u27BF\uFE0F]/;
  function visible(text) {
    var source = String(text === undefined || text === null ? "" : text);
    return source.replace(HIDDEN, function (c, at) {
      if (c === "\u200D" && EMOJI_SIDE.test(source.charAt(at - 1)) && EMOJI_SIDE.test(source.charAt(at + 1))) { return c; }
      return "\u27E6U+" + ("000" + c.charCodeAt(0).toString(16).toUpperCase()).slice(-4) + "\u27E7";
    });
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) { return minutes + " min"; }
    var rest = minutes % 60;
    return Math.floor(minutes / 60) + " h " + (rest < 10 ? "0" : "") + rest;
  }

  function clock(iso) {
    var date = new Date(iso);
    return isNaN(date) ? "" : date.toLocaleTimeString(HG.locale ? HG.locale() : "fr-FR", { hour: "2-digit", minute: "2-digit" });
  }

  var audio = null;
  function unlockAudio() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) { audio = new Context(); }
    if (audio && audio.state === "suspended") { audio.resume(); }
  }
  document.addEventListener("click", unlockAudio);
  document.addEventListener("keydown", unlockAudio);

  /* A short two-tone beep (three for urgent), generated: no sound file. */
  function beep(urgent) {
    if (!audio) { unlockAudio(); }
    if (!audio) { return; }
    var notes = urgent ? [880, 660, 880] : [660, 880];
    notes.forEach(function (frequency, index) {
      var start = audio.currentTime + index * 0.18;
      var oscillator = audio.createOscillator();
      var gain = audio.createGain();
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.15);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(start);
      oscillator.stop(start + 0.16);
    });
  }

  /* The live events socket, reconnecting with a growing delay; onOpen also runs after a reconnection and on
     "resync" (the server may have missed events: the page reloads what it shows). handlers.watch: a page that
     only watches (supervision) and is not counted as a listener online. The server sends something at least every
     `keepalive` seconds (a keepalive frame when nothing else, gateway/sockets.py): 2.5 times as long without a
     frame, the connection died without a word (a laptop's Wi-Fi changing, a proxy dropping it) and the page would
     show "En direct" while receiving nothing, so it connects again. A check that comes late (a computer asleep, a
     tab in the background) starts the count again rather than judging the sleep. */
  function events(handlers) {
    var delay = 500, current = null, heard = 0, keepalive = 20, tick = 0;
    function closed(ws) {
      if (current !== ws) { return; }
      current = null;
      if (handlers.onClose) { handlers.onClose(); }
      setTimeout(function () {
        api("GET", "/api/me").then(connect, function () { setTimeout(connect, delay); });
      }, delay);
      delay = Math.min(delay * 2, 15000);
    }
    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(scheme + location.host + "/api/events" + (handlers.watch ? "?watch=1" : ""));
      current = ws;
      heard = Date.now();
      ws.onmessage = function (message) {
        var event;
        heard = Date.now();
        try { event = JSON.parse(message.data); } catch (e) { return; }
        if (event.type === "keepalive") { return; }
        if (event.type === "hello") {
          delay = 500;
          if (typeof event.keepalive === "number" && event.keepalive > 0) { keepalive = event.keepalive; }
          if (handlers.onOpen) { handlers.onOpen(); }
          return;
        }
        if (event.type === "resync") { if (handlers.onOpen) { handlers.onOpen(); } return; }  // events were missed: reload
        handlers.onEvent(event);
      };
      ws.onclose = function () { closed(ws); };
    }
    setInterval(function () {
      var now = Date.now(), asleep = tick && now - tick > 5000, ws = current;
      tick = now;
      if (asleep) { heard = Math.max(heard, now); return; }
      if (ws && ws.readyState === 1 && now - heard > keepalive * 2500) {
        ws.onclose = null;
        ws.onmessage = null;
        try { ws.close(); } catch (e) { /* already gone */ }
        closed(ws);
      }
    }, 1000);
    connect();
  }

  /* A page's reload whose answers can come back out of order: a periodic one still out when an action's own
     reload starts (a bulk close, a take) may be answered after it, and would draw what was true before the action.
     ``var fresh = HG.newest();`` then ``fresh(promise).then(draw)``: an answer older than one already drawn is
     dropped (its promise never settles). Only an older answer: a newer request alone drops nothing, so reloads
     asked faster than they are answered (a peak's events) still draw. */
  function newest() {
    var asked = 0, drawn = 0;
    return function (promise) {
      var mine = ++asked;
      return new Promise(function (resolve, reject) {
        promise.then(function (value) { if (mine > drawn) { drawn = mine; resolve(value); } },
          function (error) { if (mine > drawn) { reject(error); } });
      });
    };
  }

  var CHANNELS = { webchat: "Chat web", messenger: "Messenger", whatsapp: "WhatsApp", telegram: "Telegram" };

  window.HG = { el: el, clear: clear, api: api, visible: visible, duration: duration, clock: clock, beep: beep, events: events,
    newest: newest, leaving: leaving_, refusal: refusal, unanswered: unanswered, staleLine: staleLine,
    CHANNELS: CHANNELS };
})();

/* A part of a page read in the background (a list, a panel, a diagram) whose read failed: said on its own line, in
   the console's words (i18n.js's ``key``, whose {why} is ``stale.why.*``: the store away, no answer, another
   refusal), what the part shows left as it was; with ``retry``, read again every 5 s until it answers. ``line =
   HG.staleRead(node, key, retry)``, then ``line.ok()`` (the line hidden), ``line.refused(response)`` or
   ``line.unanswered`` (a rejection handler: a 401 already sent the page to the login). Follows a language switch. */
(function () {
  "use strict";
  var RETRY_MS = 5000;
  function staleRead(node, key, retry) {
    var said = null, timer = null;
    function draw() {
      if (said) { node.textContent = HG.t(key, { why: HG.t("stale.why." + said.why, { status: said.status }) }); }
    }
    function set(why, status) {
      said = why ? { why: why, status: status } : null;
      node.hidden = !said;
      if (said) { draw(); } else { node.textContent = ""; }
      clearTimeout(timer);
      timer = said && retry ? setTimeout(retry, RETRY_MS) : null;
    }
    HG.onLanguage(draw);
    return {
      ok: function () { if (said || timer) { set(null); } },
      refused: function (response) { set(response.status === 503 ? "store" : "refused", response.status); },
      unanswered: function (error) { if (!(error && error.message === "session")) { set("network"); } },
      stale: function () { return Boolean(said); }
    };
  }
  HG.staleRead = staleRead;
})();
