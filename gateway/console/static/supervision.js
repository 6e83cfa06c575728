/* Supervision: the live board (and what goes wrong beneath it: replies that do not go out, a board that cannot be
   updated), the figures of a period as simple charts (built with DOM elements, labels
   through textContent), the CSV export, the current flow's diagram and its last reload. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, api = HG.api;
  var $ = function (id) { return document.getElementById(id); };
  var t = HG.t;
  var timer = null, boardTimer = null, linesTimer = null, longest = { seconds: 0, at: Date.now() };
  var freshBoard = HG.newest();  // the thirty-second reload answered after an event's is dropped
  var shown = { figures: null, flow: null, material: null, connected: undefined, alerts: [],
    service: null, boardAt: null, stale: null,  // stale: the board's last reload failed ("store" or "network")
    closed: [] };  // the queues closed now, each with when it reopens
  var staleTimer = null;

  HG.logoutButton($("logout"));
  /* The outcome, partner and queue names in each language: refused or unanswered, said under the period (the names
     shown as the flow writes them meanwhile) and read again every 5 s until they come; before, nothing was said. */
  var materialStale = HG.staleRead($("material-stale"), "sup.material.stale", loadMaterial);
  loadMaterial();
  function loadMaterial() {
    api("GET", "/api/flow").then(function (response) {
      if (!response.ok) { materialStale.refused(response); return; }
      materialStale.ok();
      shown.material = response.data;
      if (shown.figures) { renderFigures(shown.figures); }
      renderLines();
    }, materialStale.unanswered);
  }
  HG.onLanguage(function () {
    connection(shown.connected);
    if (shown.figures) { renderFigures(shown.figures); }
    if (shown.flow) { renderReload(shown.flow); }
    renderAlerts();
    renderService();
    renderLines();
    $("diagram").querySelectorAll("img").forEach(function (image) { image.alt = t("sup.diagram"); });
  });
  loadBoard();
  loadFigures(true);
  loadFlow();
  HG.events({
    watch: true,  // a supervisor watching the board is not a listener online
    onOpen: function () { connection(true); refresh(); live({ type: "open" }); },
    onEvent: function (event) {
      live(event);  // supervision-flags.js
      if (event.type === "queue" || event.type === "status") { refresh(); }
      if (event.type === "presence") { loadBoardSoon(); }
      if (event.type === "alert") { alerted(event); }
    },
    onClose: function () { connection(false); loadBoardSoon(); }  // the store gone? the board says so at once
  });
  setInterval(function () { $("live-longest").textContent = longestText(); outboxText(); }, 5000);
  setInterval(loadBoard, 30000);

  $("period").addEventListener("submit", function (event) { event.preventDefault(); loadFigures(false); });
  ["from", "to"].forEach(function (id) { $(id).addEventListener("change", updateCsv); });

  function connection(on) {
    if (on === undefined) { return; }
    shown.connected = on;
    $("connection").dataset.i18n = on ? "conn.live" : "conn.reconnecting";  // a page's addTexts translates it again
    $("connection").textContent = on ? t("conn.live") : t("conn.reconnecting");
    $("connection").className = "pill " + (on ? "on" : "off");
  }

  /* An alert for the supervisors (a login locked, a notice past its answer time), the latest first, as it comes: the
     audit log keeps it too. */
  function alerted(event) {
    shown.alerts.unshift({ at: Date.now(), kind: event.kind, subject: event.subject, detail: event.detail });
    shown.alerts = shown.alerts.slice(0, 20);
    renderAlerts();
  }

  function renderAlerts() {
    var list = $("alerts");
    clear(list);
    list.hidden = !shown.alerts.length;
    shown.alerts.forEach(function (a) {
      var what = t("safety.action." + a.kind);
      if (what === "safety.action." + a.kind) { what = a.kind.replace(/_/g, " "); }
      list.appendChild(el("li", "", HG.clock(new Date(a.at).toISOString()) + " · " + what +
        (a.subject ? " · " + a.subject : "") + (a.detail ? " · " + a.detail : "")));
    });
  }

  function live(event) { document.dispatchEvent(new CustomEvent("hg:live", { detail: event })); }

  /* A burst of events (at a peak several a second) is one reload of the board, 200 ms after its first event, and one
     of the period's figures, 800 ms after it: later events do not push them back. Until 2026-12-07 each event
     restarted both timers, so that events coming closer than 200 ms (a busy line) held the board as it was until a
     lull (tests/e2e/test_supervision_board_burst.py). */
  function loadBoardSoon() {
    if (boardTimer) { return; }  // a reload already due: it is asked after this event, and sees it
    boardTimer = setTimeout(function () { boardTimer = null; loadBoard(); }, 200);
  }

  function refresh() {
    loadBoardSoon();
    if (timer) { return; }
    timer = setTimeout(function () { timer = null; loadFigures(false); }, 800);
  }

  function loadBoard() {
    freshBoard(api("GET", "/api/supervision")).then(function (response) {
      if (response.status === 403) { location.href = "/console"; return; }
      if (!response.ok) { boardFailed(response.status === 503 ? "store" : "network"); return; }
      shown.stale = null;
      shown.boardAt = new Date();
      clearTimeout(staleTimer);
      var live = response.data.live;
      $("live-waiting").textContent = String(live.waiting);
      $("live-urgent").textContent = String(live.urgent);
      $("live-progress").textContent = String(live.in_progress);
      $("live-online").textContent = String(live.listeners_online);
      longest = { seconds: live.longest_wait_seconds, at: Date.now(), waiting: live.waiting };
      $("live-longest").textContent = longestText();
      $("tile-urgent").classList.toggle("alert", live.urgent > 0);
      $("live-told").textContent = String(live.told_closed);
      shown.closed = response.data.closed || [];
      renderLines();
      clearTimeout(linesTimer);  // read again when a queue opens or closes, as the console does
      var changesIn = response.data.changes_in;
      if (typeof changesIn === "number") { linesTimer = setTimeout(loadBoard, Math.min(Math.max(changesIn, 0), 86400) * 1000 + 1000); }
      var service = response.data.service;
      shown.service = service ? { outbox: service.outbox, workers: service.workers, at: Date.now() } : null;
      outboxText();
      renderService();
      renderReload(response.data.flow);
    }, function () { boardFailed("network"); });
  }

  /* The board could not be reloaded: what it shows is from before, and the page says so (never the last figures
     passed off as live); tried again every 5 s until it answers. */
  function boardFailed(why) {
    shown.stale = why;
    renderService();
    clearTimeout(staleTimer);
    staleTimer = setTimeout(loadBoard, 5000);
  }

  /* The line closed now, with when it reopens, as the listeners' console says it above the queue. */
  function renderLines() {
    var box = $("board-closed");
    var queues = (shown.material && shown.material.queues) || [];
    box.hidden = !shown.closed.length;
    box.textContent = shown.closed.map(function (line) {
      var queue = queues.filter(function (q) { return q.id === line.queue; })[0];
      var name = queue ? HG.local(queue.names, queue.name) : line.queue;
      if (!line.reopens_at) { return t("line.closed.later", { queue: name }); }
      var when = new Date(line.reopens_at).toLocaleString(HG.locale(), { weekday: "long", hour: "2-digit", minute: "2-digit" });
      return t("line.closed", { queue: name, when: when });
    }).join(" ");
  }

  function outboxText() {
    var outbox = shown.service && shown.service.outbox;
    var waited = outbox && outbox.oldest_seconds !== null ? outbox.oldest_seconds + (Date.now() - shown.service.at) / 1000 : null;
    $("live-outbox").textContent = waited === null ? "–" : HG.duration(waited);
    $("tile-outbox").classList.toggle("alert", Boolean(outbox && outbox.late));
  }

  /* What goes wrong beneath the board, in words: the board out of date, a background task failing on any instance,
     replies that do not go out. Rewritten only when it changes, so that a screen reader is told once. */
  function renderService() {
    var lines = [], outbox = shown.service && shown.service.outbox;
    if (shown.stale) {
      var since = shown.boardAt ? HG.clock(shown.boardAt.toISOString()) : "–";
      lines.push(t(shown.stale === "store" ? "sup.stale.store" : "sup.stale.network", { time: since }));
    }
    if (shown.service && shown.service.workers && shown.service.workers.length) {
      lines.push(t("sup.workers", { names: shown.service.workers.join(", ") }));
    }
    if (outbox && outbox.late) {
      lines.push(t("sup.outbox.late", { d: HG.duration(outbox.oldest_seconds), s: HG.duration(outbox.alert_seconds) }));
    }
    document.querySelector(".tiles").classList.toggle("stale", Boolean(shown.stale));
    var box = $("service");
    if (box.dataset.shown === lines.join("\n")) { return; }
    box.dataset.shown = lines.join("\n");
    clear(box);
    lines.forEach(function (line) { box.appendChild(el("li", "", line)); });
    box.hidden = !lines.length;
  }

  function longestText() {
    if (!longest.waiting) { return "–"; }
    return HG.duration(longest.seconds + (Date.now() - longest.at) / 1000);
  }

  function query() {
    return "?from=" + encodeURIComponent($("from").value) + "&to=" + encodeURIComponent($("to").value);
  }

  function updateCsv() { $("csv").href = "/api/stats.csv" + query(); }

  function loadFigures(initial) {
    var path = "/api/stats" + (initial ? "" : query());
    api("GET", path).then(function (response) {
      if (!response.ok) {
        $("period-error").textContent = response.status === 400 ? t("sup.bad_period", response.data || {}) : HG.refusal(response);
        if (response.status === 503 && !shown.stale) { loadBoardSoon(); }  // the store gone since the board's last read?
        return;
      }
      $("period-error").textContent = "";
      var f = response.data;
      if (initial) {
        $("from").value = f.from.slice(0, 10);
        var to = new Date(Date.parse(f.to.slice(0, 10) + "T12:00:00Z") - 86400000);
        $("to").value = to.toISOString().slice(0, 10);
      }
      updateCsv();
      renderFigures(f);
    }, HG.unanswered(function () {  // the old figures said old; the board read again, to say it too if it is out of date
      $("period-error").textContent = t("sup.period_unanswered");
      if (!shown.stale) { loadBoardSoon(); }
    }));
  }

  function renderFigures(f) {
    shown.figures = f;
    $("total").textContent = String(f.total);
    $("median").textContent = f.wait.median_seconds === null ? "–" : HG.duration(f.wait.median_seconds);
    $("unanswered").textContent = String(f.wait.unanswered);
    $("left-before-retake").textContent = String(f.wait.left_before_retake);
    $("still-waiting").textContent = String(f.wait.waiting);
    var hours = f.per_hour.map(function (r) { return relabel(r, t("sup.hour", { h: r.label.slice(0, 2) })); });
    columns($("chart-hours"), hours, function (r) { return Number(r.key) % 3 === 0 ? r.label : ""; });
    bars($("chart-channels"), f.per_channel.map(function (r) { return relabel(r, HG.channel(r.key)); }));
    columns($("chart-wait"), f.wait.buckets, function (r) { return r.label; });
    bars($("chart-outcomes"), f.outcomes.map(function (r) { return relabel(r, outcomeLabel(r)); }));
    bars($("chart-routes"), f.routes.map(function (r) { return relabel(r, routeLabel(r)); }));
    document.dispatchEvent(new CustomEvent("hg:figures", { detail: f }));  // supervision-casework.js
  }

  function relabel(row, label) { return { key: row.key, label: label, value: row.value }; }

  /* The figures carry labels in the flow's language; the console's language comes from /api/flow or here. */
  function outcomeLabel(row) {
    var found = shown.material && shown.material.outcomes.filter(function (o) { return o.id === row.key; })[0];
    return found ? HG.local(found.labels, row.label) : row.label;
  }

  function routeLabel(row) {
    if (row.key.indexOf("partner:") === 0) {
      var id = row.key.slice("partner:".length);
      var found = shown.material && shown.material.partners.filter(function (p) { return p.id === id; })[0];
      return found ? HG.local(found.names, row.label) : row.label;
    }
    return ["listener", "closed_line", "bot_ended"].indexOf(row.key) >= 0 ? t("route." + row.key) : row.label;
  }

  function max(rows) { return Math.max(1, Math.max.apply(null, rows.map(function (r) { return r.value; }))); }

  function columns(box, rows, label) {
    clear(box);
    var top = max(rows);
    var chart = el("div", "columns");
    var labels = el("div", "column-labels");
    rows.forEach(function (row) {
      var column = el("div", "column");
      column.title = t("sup.point", { label: row.label, value: row.value });
      column.dataset.key = row.key;
      column.appendChild(el("span", "n", row.value ? String(row.value) : ""));
      var fill = el("div", "fill");
      fill.style.height = (100 * row.value / top) + "%";
      column.appendChild(fill);
      chart.appendChild(column);
      labels.appendChild(el("span", "", label(row)));
    });
    box.appendChild(chart);
    box.appendChild(labels);
  }

  function bars(list, rows) {
    clear(list);
    if (!rows.length) { list.appendChild(el("li", "empty", t("sup.nothing"))); return; }
    var top = max(rows);
    rows.forEach(function (row) {
      var item = el("li", "bar");
      item.dataset.key = row.key;
      item.appendChild(el("span", "name", row.label));
      var track = el("span", "track");
      var fill = el("span", "fill");
      fill.style.display = "block";
      fill.style.width = (100 * row.value / top) + "%";
      track.appendChild(fill);
      item.appendChild(track);
      item.appendChild(el("span", "n", String(row.value)));
      list.appendChild(item);
    });
  }

  function renderReload(flow) {
    shown.flow = flow;
    $("flow-version").textContent = flow.version || "–";
    var last = flow.last_reload;
    var reload = $("reload");
    clear($("problems"));
    if (!last) { reload.textContent = t("sup.reload.none"); reload.className = "reload"; return; }
    reload.textContent = t(last.ok ? "sup.reload.ok" : "sup.reload.refused") + ", " +
      new Date(last.at).toLocaleString(HG.locale());
    reload.className = "reload " + (last.ok ? "ok" : "refused");
    (last.problems || []).forEach(function (problem) { $("problems").appendChild(el("li", "", problem)); });
  }

  /* The diagram as SVG, else (no `dot` on the server, or the SVG refused) the Mermaid text; that one refused or
     unanswered is said above the box, emptied (before, a refusal's JSON was shown as the flow's Mermaid text, and a
     dropped read left a broken image with nothing said). Read once: a page reload tries again. */
  function loadFlow() {
    var box = $("diagram");
    var image = el("img");
    var diagramStale = HG.staleRead($("diagram-stale"), "sup.diagram.stale");
    image.alt = t("sup.diagram");
    image.onerror = function () {
      fetch("/api/flow/diagram.mmd", { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { clear(box); diagramStale.refused({ status: r.status }); return; }
        return r.text().then(function (text) {
          diagramStale.ok();
          clear(box);
          var note = el("p", "meta", t("sup.no_dot"));
          note.dataset.i18n = "sup.no_dot";  // follows a language switch
          box.appendChild(note);
          box.appendChild(el("pre", "", text));
        });
      }).catch(function (error) { clear(box); diagramStale.unanswered(error); });
    };
    image.src = "/api/flow/diagram.svg";
    box.appendChild(image);
  }
})();
