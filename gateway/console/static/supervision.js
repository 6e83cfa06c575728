/* Supervision: the live board, the figures of a period as simple charts (built with DOM elements, labels
   through textContent), the CSV export, the current flow's diagram and its last reload. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, api = HG.api;
  var $ = function (id) { return document.getElementById(id); };
  var timer = null, boardTimer = null, longest = { seconds: 0, at: Date.now() };

  HG.logoutButton($("logout"));
  loadBoard();
  loadFigures(true);
  loadFlow();
  HG.events({
    onOpen: function () { connection(true); refresh(); },
    onEvent: function (event) {
      if (event.type === "queue" || event.type === "status") { refresh(); }
      if (event.type === "presence") { loadBoardSoon(); }
    },
    onClose: function () { connection(false); }
  });
  setInterval(function () { $("live-longest").textContent = longestText(); }, 5000);
  setInterval(loadBoard, 30000);

  $("period").addEventListener("submit", function (event) { event.preventDefault(); loadFigures(false); });
  ["from", "to"].forEach(function (id) { $(id).addEventListener("change", updateCsv); });

  function connection(on) {
    $("connection").textContent = on ? "En direct" : "Reconnexion…";
    $("connection").className = "pill " + (on ? "on" : "off");
  }

  function loadBoardSoon() {
    clearTimeout(boardTimer);
    boardTimer = setTimeout(loadBoard, 200);
  }

  function refresh() {
    loadBoardSoon();
    clearTimeout(timer);
    timer = setTimeout(function () { loadFigures(false); }, 800);
  }

  function loadBoard() {
    api("GET", "/api/supervision").then(function (response) {
      if (response.status === 403) { location.href = "/console"; return; }
      if (!response.ok) { return; }
      var live = response.data.live;
      $("live-waiting").textContent = String(live.waiting);
      $("live-urgent").textContent = String(live.urgent);
      $("live-progress").textContent = String(live.in_progress);
      $("live-online").textContent = String(live.listeners_online);
      longest = { seconds: live.longest_wait_seconds, at: Date.now(), waiting: live.waiting };
      $("live-longest").textContent = longestText();
      $("tile-urgent").classList.toggle("alert", live.urgent > 0);
      renderReload(response.data.flow);
    });
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
      if (!response.ok) { $("period-error").textContent = (response.data && response.data.message) || "Période invalide."; return; }
      $("period-error").textContent = "";
      var f = response.data;
      if (initial) {
        $("from").value = f.from.slice(0, 10);
        var to = new Date(Date.parse(f.to.slice(0, 10) + "T12:00:00Z") - 86400000);
        $("to").value = to.toISOString().slice(0, 10);
      }
      updateCsv();
      $("total").textContent = String(f.total);
      $("median").textContent = f.wait.median_seconds === null ? "–" : HG.duration(f.wait.median_seconds);
      $("unanswered").textContent = String(f.wait.unanswered);
      columns($("chart-hours"), f.per_hour, function (r) { return Number(r.key) % 3 === 0 ? r.label : ""; });
      bars($("chart-channels"), f.per_channel.map(function (r) { return { key: r.key, label: HG.CHANNELS[r.key] || r.label, value: r.value }; }));
      columns($("chart-wait"), f.wait.buckets, function (r) { return r.label; });
      bars($("chart-outcomes"), f.outcomes);
      bars($("chart-routes"), f.routes);
    });
  }

  function max(rows) { return Math.max(1, Math.max.apply(null, rows.map(function (r) { return r.value; }))); }

  function columns(box, rows, label) {
    clear(box);
    var top = max(rows);
    var chart = el("div", "columns");
    var labels = el("div", "column-labels");
    rows.forEach(function (row) {
      var column = el("div", "column");
      column.title = row.label + " : " + row.value;
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
    if (!rows.length) { list.appendChild(el("li", "empty", "Rien pour cette période.")); return; }
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
    $("flow-version").textContent = flow.version || "–";
    var last = flow.last_reload;
    var reload = $("reload");
    clear($("problems"));
    if (!last) { reload.textContent = "aucun"; reload.className = "reload"; return; }
    reload.textContent = (last.ok ? "réussi" : "refusé (l'ancien parcours reste en service)") + ", " +
      new Date(last.at).toLocaleString("fr-FR");
    reload.className = "reload " + (last.ok ? "ok" : "refused");
    (last.problems || []).forEach(function (problem) { $("problems").appendChild(el("li", "", problem)); });
  }

  function loadFlow() {
    var box = $("diagram");
    var image = el("img");
    image.alt = "Diagramme du parcours en service";
    image.onerror = function () {
      fetch("/api/flow/diagram.mmd", { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
        clear(box);
        box.appendChild(el("p", "meta", "Graphviz (dot) n'est pas installé sur le serveur : voici le parcours en texte Mermaid."));
        box.appendChild(el("pre", "", text));
      });
    };
    image.src = "/api/flow/diagram.svg";
    box.appendChild(image);
  }
})();
