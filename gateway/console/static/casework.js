/* Takedown notices and warm referrals in the console: the panel under the summary, "Signaler un contenu" and
   "Orienter avec accord". Listens for the "hg:conversation" event console.js sends when a conversation shows.
   Everything from a young person or a platform goes into the page with textContent only. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, api = HG.api;
  var $ = function (id) { return document.getElementById(id); };

  HG.addTexts({
    fr: {
      "cw.title": "Signalements et orientations", "cw.notice": "Signaler un contenu", "cw.referral": "Transmettre avec accord",
      "cw.none": "Aucun signalement ni orientation.", "cw.platform": "Plateforme", "cw.category": "Motif et fondement juridique",
      "cw.locations": "Adresses du contenu (une par ligne : https://… ou @compte)", "cw.description": "Description (sans nom ni numéro du jeune)",
      "cw.evidence": "Preuves (pièces jointes de la conversation)", "cw.no_evidence": "Aucune pièce jointe dans cette conversation.",
      "cw.csam": "Contenu pédocriminel : aucun fichier n'est joint, seulement l'adresse ; Pharos est saisi en même temps.",
      "cw.create": "Créer le signalement", "cw.send": "Envoyer par e-mail", "cw.filed": "Marquer déposé",
      "cw.form_text": "Texte prêt à coller dans le formulaire :", "cw.open_form": "Ouvrir le formulaire",
      "cw.update": "Mettre à jour", "cw.answer": "Réponse de la plateforme (à coller)", "cw.overdue": "Réponse en retard", "cw.not_in_flow": "Plus dans flows.yaml",
      "cw.told": "Jeune prévenu·e", "cw.ask": "Poser la question d'accord", "cw.asked": "Question envoyée.",
      "cw.consent": "Réponse du jeune", "cw.yes": "Oui, d'accord", "cw.no": "Non",
      "cw.shared": "Ce que le partenaire reçoit (relis, raccourcis ou efface)", "cw.summary": "En quelques mots",
      "cw.refer": "Enregistrer la réponse", "cw.partner": "Destinataire",
      "cw.status.draft": "brouillon", "cw.status.sent": "envoyé", "cw.status.acknowledged": "accusé de réception",
      "cw.status.removed": "retiré", "cw.status.refused": "refusé", "cw.status.no_answer": "sans réponse",
      "cw.status.declined": "refusée par le jeune", "cw.status.taken_up": "prise en charge", "cw.status.closed": "close",
      "cw.done": "Enregistré.",
      "cw.stale": "{why} : les signalements et orientations de cette conversation n'ont pas pu être lus ; ce qui est affiché peut ne plus être à jour (relus toutes les 5 secondes)."
    },
    en: {
      "cw.title": "Notices and referrals", "cw.notice": "Report content", "cw.referral": "Pass on with consent",
      "cw.none": "No notice or referral.", "cw.platform": "Platform", "cw.category": "Reason and legal ground",
      "cw.locations": "Content addresses (one per line: https://… or @account)", "cw.description": "Description (no name or number of the young person)",
      "cw.evidence": "Evidence (the conversation's attachments)", "cw.no_evidence": "No attachment in this conversation.",
      "cw.csam": "Child sexual abuse material: no file is attached, only the address; Pharos is notified too.",
      "cw.create": "Create the notice", "cw.send": "Send by e-mail", "cw.filed": "Mark filed",
      "cw.form_text": "Ready text to paste in the form:", "cw.open_form": "Open the form",
      "cw.update": "Update", "cw.answer": "The platform's answer (paste it)", "cw.overdue": "Answer overdue", "cw.not_in_flow": "No longer in flows.yaml",
      "cw.told": "Young person told", "cw.ask": "Ask the consent question", "cw.asked": "Question sent.",
      "cw.consent": "The young person's answer", "cw.yes": "Yes, they agree", "cw.no": "No",
      "cw.shared": "What the partner receives (review, shorten or blank)", "cw.summary": "In a few words",
      "cw.refer": "Record the answer", "cw.partner": "Recipient",
      "cw.status.draft": "draft", "cw.status.sent": "sent", "cw.status.acknowledged": "acknowledged",
      "cw.status.removed": "removed", "cw.status.refused": "refused", "cw.status.no_answer": "no answer",
      "cw.status.declined": "declined by the young person", "cw.status.taken_up": "taken up", "cw.status.closed": "closed",
      "cw.done": "Saved.",
      "cw.stale": "{why}: this conversation's notices and referrals could not be read; what is shown may be out of date (read again every 5 seconds)."
    }
  });
  var t = HG.t;
  var NEXT = { sent: ["acknowledged", "removed", "refused", "no_answer"], acknowledged: ["removed", "refused", "no_answer"] };
  var state = { material: null, conversation: null, shown: null, shownFor: null, me: null, referral: null, asking: null };

  /* The platforms, categories and partners; refused (the store away) or unanswered, read again when the next
     conversation is shown (console.js says the outage): before, the casework buttons never came until a reload. */
  var asking = false;
  function material() {
    if (asking) { return; }
    asking = true;
    var done = function () { asking = false; };
    Promise.all([api("GET", "/api/casework"), api("GET", "/api/me")]).then(function (answers) {
      if (answers[0].ok && answers[1].ok) { got(answers[0].data, answers[1].data); }
    }).then(done, done);
  }
  material();

  function got(data, me) {
    state.material = data;
    state.me = me.name;
    fill($("notice-platform"), state.material.platforms.map(function (p) { return { value: p.id, label: p.name }; }));
    fill($("notice-category"), state.material.categories.map(function (c) { return { value: c.id, label: c.label }; }));
    fill($("referral-partner"), state.material.partners.map(function (p) { return { value: p.id, label: p.name }; }));
    if (state.conversation) { show(state.conversation); }
  }

  document.addEventListener("hg:conversation", function (event) { show(event.detail); });
  HG.onLanguage(function () { if (state.shown) { render(state.shown); } });

  function fill(select, options) {
    clear(select);
    options.forEach(function (o) { var option = el("option", "", o.label); option.value = o.value; select.appendChild(option); });
  }

  function show(conversation) {
    state.conversation = conversation;
    if (!state.material) { material(); return; }  // shown once the material has come
    var enabled = state.material.enabled && !conversation.restricted;  // a waiting card: take it first
    $("casework").hidden = !enabled;
    $("notice-open").hidden = !enabled;
    var mine = conversation.status === "with_listener" && conversation.listener === state.me;
    $("referral-open").hidden = !(enabled && state.material.partners.length && mine);
    // After a WhatsApp STOP the consent question cannot reach them (refused 409); an answer they gave before can still
    // be recorded and passed on (the partner is e-mailed)
    $("referral-ask").disabled = conversation.channel === "whatsapp" && conversation.left_how === "blocked";
    if (enabled) { load(); } else { noticesStale.ok(); }
  }

  /* The conversation's notices and referrals. A read refused or unanswered is said in the panel and made again every
     5 s while the panel shows; what it showed is kept for the same conversation, never another's (before, nothing
     was said, and a failed read under a newly opened conversation left the previous one's notices shown as its). */
  var noticesStale = HG.staleRead($("casework-stale"), "cw.stale", function () {
    if (state.conversation && !$("casework").hidden) { load(); }
  });
  function load() {
    var id = state.conversation.id;
    var failed = function () {
      if (state.conversation.id !== id) { return false; }
      if (state.shownFor !== id) { state.shown = null; clear($("casework-list")); }
      return true;
    };
    return api("GET", "/api/conversations/" + id + "/notices").then(function (response) {
      if (!response.ok) { if (failed()) { noticesStale.refused(response); } return; }
      if (state.conversation.id !== id) { return; }
      noticesStale.ok();
      state.shown = response.data;
      state.shownFor = id;
      render(response.data);
    }, function (error) { if (failed()) { noticesStale.unanswered(error); } });
  }

  function render(data) {
    var list = $("casework-list");
    clear(list);
    if (!data.notices.length && !data.referrals.length) { list.appendChild(el("li", "empty", t("cw.none"))); }
    data.notices.forEach(function (n) { list.appendChild(noticeItem(n)); });
    data.referrals.forEach(function (r) { list.appendChild(referralItem(r)); });
  }

  function noticeItem(n) {
    var item = el("li", "cw-item");
    item.dataset.notice = n.id;
    var head = el("p", "cw-head");
    head.appendChild(el("strong", "", n.reference + " · " + n.platform_name));
    head.appendChild(el("span", "pill cw-status", t("cw.status." + n.status)));
    if (n.overdue) { head.appendChild(el("span", "pill off", t("cw.overdue"))); }
    if (n.told_at) { head.appendChild(el("span", "pill on", t("cw.told"))); }
    var gone = (n.not_in_flow || []).length > 0;  // its platform or category removed by a reload: never sent
    if (gone) { head.appendChild(el("span", "pill off", t("cw.not_in_flow") + " (" + n.not_in_flow.join(", ") + ")")); }
    item.appendChild(head);
    var category = (state.material.categories.filter(function (c) { return c.id === n.category; })[0] || {}).label || n.category;
    item.appendChild(el("p", "meta", category));
    var places = el("ul", "cw-locations");
    n.locations.forEach(function (l) { places.appendChild(el("li", "", l)); });
    item.appendChild(places);
    if (n.answer) { item.appendChild(el("p", "meta", "« " + n.answer + " »")); }
    if (n.status === "draft" && gone) { /* nothing to send: the server refuses it */ }
    else if (n.status === "draft" && n.form) { item.appendChild(formFiling(n)); }
    else if (n.status === "draft") { item.appendChild(button(t("cw.send"), function () { post("/api/notices/" + n.id + "/send", undefined, "notice"); })); }
    if (NEXT[n.status]) { item.appendChild(statusForm(n)); }
    return item;
  }

  function formFiling(n) {
    var box = el("div", "cw-form");
    box.appendChild(el("p", "meta", t("cw.form_text")));
    var text = el("textarea", "cw-text");
    text.readOnly = true; text.rows = 8; text.value = n.text || "";
    box.appendChild(text);
    (n.files || []).forEach(function (name, k) {
      var file = el("a", "cw-file", name);
      file.href = "/api/notices/" + n.id + "/evidence/" + k;
      file.setAttribute("download", name);
      box.appendChild(file);
    });
    var link = el("a", "button ghost", t("cw.open_form"));
    link.href = n.form; link.target = "_blank"; link.rel = "noopener noreferrer";
    box.appendChild(link);
    box.appendChild(button(t("cw.filed"), function () { post("/api/notices/" + n.id + "/filed", undefined, "notice"); }));
    return box;
  }

  function statusForm(n) {
    var box = el("div", "cw-update");
    var select = el("select", "cw-next");
    NEXT[n.status].forEach(function (s) { var o = el("option", "", t("cw.status." + s)); o.value = s; select.appendChild(o); });
    var answer = el("textarea", "cw-answer");
    answer.rows = 2; answer.maxLength = 4000; answer.placeholder = t("cw.answer");
    box.appendChild(select); box.appendChild(answer);
    box.appendChild(button(t("cw.update"), function () {
      post("/api/notices/" + n.id + "/status", { status: select.value, answer: answer.value }, "notice");
    }));
    return box;
  }

  function referralItem(r) {
    var item = el("li", "cw-item");
    var head = el("p", "cw-head");
    var partner = (state.material.partners.filter(function (p) { return p.id === r.partner; })[0] || {}).name || r.partner;
    head.appendChild(el("strong", "", r.reference + " · " + partner));
    head.appendChild(el("span", "pill cw-status", t("cw.status." + r.status)));
    item.appendChild(head);
    var next = { sent: ["taken_up", "closed"], taken_up: ["closed"] }[r.status] || [];
    next.forEach(function (s) {
      item.appendChild(button(t("cw.status." + s), function () { post("/api/referrals/" + r.id + "/status", { status: s }, "referral"); }));
    });
    return item;
  }

  function button(label, onClick) {
    var b = el("button", "secondary", label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  /* A notice's or a referral's button (``about``: which, for a "not found"); a refusal or no answer said in the
     console's words, and the panel read again (what it asked may be done, or the record changed meanwhile). */
  function post(path, body, about) {
    return api("POST", path, body).then(function (response) {
      if (!response.ok) { message(refused(response, about), true); }
      load();
    }, HG.unanswered(function (text) { message(text, true); load(); }));
  }

  /* HG.refusal (common.js) with the status a record already has in the console's words ("c'est déjà « close »"). */
  function refused(response, about) {
    var current = (response.data || {}).current;
    return HG.refusal(response, about, current ? { current: t("cw.status." + current) } : undefined);
  }

  function message(text, error) {
    var box = $("casework-message");
    box.textContent = text;
    box.className = error ? "error" : "meta";
  }

  // ----- the notice dialog -------------------------------------------------------------------------------------

  $("notice-open").addEventListener("click", function () {
    $("notice-error").textContent = "";
    renderEvidence();
    csamHint();
    $("notice-dialog").showModal();
  });
  $("notice-category").addEventListener("change", csamHint);

  function csam() {
    var id = $("notice-category").value;
    return state.material.categories.some(function (c) { return c.id === id && c.csam; });
  }

  function csamHint() {
    $("notice-csam").hidden = !csam();
    $("notice-evidence-box").hidden = csam();
  }

  function renderEvidence() {
    var box = $("notice-evidence");
    clear(box);
    var found = [];
    (state.conversation.transcript || []).forEach(function (entry) {
      (entry.attachments || []).forEach(function (a) { if (a.number !== null && a.fetchable) { found.push(a); } });
    });
    if (!found.length) { box.appendChild(el("p", "meta", t("cw.no_evidence"))); }
    found.forEach(function (a) {
      var label = el("label", "cw-evidence");
      var check = el("input");
      check.type = "checkbox"; check.value = String(a.number);
      label.appendChild(check);
      label.appendChild(document.createTextNode(" #" + (a.number + 1) + " " + (a.name || a.kind)));
      box.appendChild(label);
    });
  }

  $("notice-create").addEventListener("click", function (event) {
    event.preventDefault();
    var evidence = csam() ? [] : Array.prototype.slice.call($("notice-evidence").querySelectorAll("input:checked"))
      .map(function (c) { return Number(c.value); });
    var body = {
      platform: $("notice-platform").value, category: $("notice-category").value, description: $("notice-description").value,
      locations: $("notice-locations").value.split("\n").map(function (l) { return l.trim(); }).filter(Boolean), evidence: evidence
    };
    api("POST", "/api/conversations/" + state.conversation.id + "/notices", body).then(function (response) {
      if (!response.ok) { $("notice-error").textContent = refused(response); return; }
      $("notice-dialog").close();
      $("notice-locations").value = ""; $("notice-description").value = "";
      message(t("cw.done"), false);
      load();
    }, HG.unanswered(function (text) { $("notice-error").textContent = text; }));
  });

  // ----- the referral dialog -----------------------------------------------------------------------------------

  $("referral-open").addEventListener("click", function () { $("referral-error").textContent = ""; preview(); $("referral-dialog").showModal(); });
  $("referral-partner").addEventListener("change", preview);

  /* What the partner would receive, to read and edit. Refused or unanswered, said in the dialog (an empty list with
     nothing said read as "this partner receives nothing"); a later preview that comes clears what an earlier said. */
  var previewSaid = "";
  function preview() {
    var partner = $("referral-partner").value;
    var path = "/api/conversations/" + state.conversation.id + "/referrals/preview?partner=" + encodeURIComponent(partner);
    var say = function (text) {
      if (text || $("referral-error").textContent === previewSaid) { $("referral-error").textContent = text; }
      previewSaid = text;
    };
    api("GET", path).then(function (response) {
      var box = $("referral-shared");
      clear(box);
      say(response.ok ? "" : refused(response));
      ((response.ok && response.data && response.data.shared) || []).forEach(function (pair) {
        var label = el("label", "", pair[0]);
        var input = el("input", "cw-shared");
        input.value = pair[1]; input.dataset.label = pair[0]; input.maxLength = 500;
        label.appendChild(input);
        box.appendChild(label);
      });
    }, HG.unanswered(function (text) { clear($("referral-shared")); say(text); }));
  }

  /* The consent question keeps its id until the server answered it: asked again (its answer lost), it is told once. */
  $("referral-ask").addEventListener("click", function () {
    var body = { partner: $("referral-partner").value }, kept = state.asking;
    if (!kept || kept.conversation !== state.conversation.id || kept.partner !== body.partner) {
      state.asking = kept = { conversation: state.conversation.id, partner: body.partner, id: newId() };
    }
    body.id = kept.id;
    api("POST", "/api/conversations/" + state.conversation.id + "/referrals/ask", body)
      .then(function (response) {
        if (response.ok) { state.asking = null; }
        $("referral-error").textContent = response.ok ? t("cw.asked") : refused(response);  // the console's words
      }, HG.unanswered(function (text) { $("referral-error").textContent = text; }));
  });

  function newId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* A referral keeps its id until the server answered it: sent again (its answer lost, a 503 while the store
     restarts), it carries the same id, and the partner is e-mailed once. Another content is another referral. */
  function referralId(body) {
    var content = JSON.stringify([state.conversation.id, body.partner, body.consent, body.shared, body.summary]);
    if (!state.referral || state.referral.content !== content) { state.referral = { content: content, id: newId() }; }
    return state.referral.id;
  }

  $("referral-send").addEventListener("click", function (event) {
    event.preventDefault();
    var chosen = document.querySelector("input[name=referral-consent]:checked");
    if (!chosen) { $("referral-error").textContent = t("cw.consent"); return; }
    var shared = Array.prototype.slice.call(document.querySelectorAll(".cw-shared")).map(function (i) { return [i.dataset.label, i.value]; });
    var body = { partner: $("referral-partner").value, consent: chosen.value === "yes", shared: shared, summary: $("referral-summary").value };
    body.id = referralId(body);
    api("POST", "/api/conversations/" + state.conversation.id + "/referrals", body).then(function (response) {
      if (!response.ok) { $("referral-error").textContent = refused(response); return; }
      state.referral = null;  // answered: the next referral is another one
      $("referral-dialog").close();
      message(t("cw.done"), false);
      load();
    }, HG.unanswered(function (text) { $("referral-error").textContent = text; }));
  });
})();
