/* What a listener wrote and has not sent or saved yet, per conversation: a reply to the young person or a private
   note. Kept in this tab's sessionStorage only (never sent to the server, never logged; gone when the tab closes
   or the listener logs out), under the listener's name and the conversation's id, so that nothing half-written is
   lost when the panel closes or another conversation opens: console.js puts it back when that conversation opens
   again with a composer.

   A draft whose conversation went away from this listener (a colleague took it, a supervisor closed it, the young
   person ended it) is "kept": the list above the queue says so, in the console's language, and offers to copy it or to
   discard it. Saving it as a note there is not offered: the server refuses a note on a conversation this listener
   no longer sees (403 forbidden, gateway/console/access.py); one that came back to the queue opens with it. A close
   by the listener themself takes its draft along (console.js: a note saved with the close, a reply discarded), and a
   logout forgets every draft of the tab (logout.js). */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear, t = HG.t;
  var $ = function (id) { return document.getElementById(id); };
  var PREFIX = "hg-draft:";
  var me = null;

  HG.addTexts({
    fr: {
      "kept.title": "Brouillons gardés",
      "kept.note": "Ta note non enregistrée a été gardée ({name}). Cette conversation ne t'est plus ouverte : la note n'a été enregistrée nulle part. Copie-la pour ne pas la perdre.",
      "kept.reply": "Ta réponse non envoyée a été gardée ({name}). Elle n'a pas été envoyée au jeune : cette conversation ne t'est plus ouverte. Copie-la pour ne pas la perdre.",
      "kept.where": "Gardé dans cet onglet seulement, jusqu'à sa fermeture ou ta déconnexion.",
      "kept.copy": "Copier", "kept.copied": "Copié.", "kept.discard": "Jeter",
      "kept.text": "Brouillon gardé ({name})",
      "compose.kept.reply": "Ta réponse non envoyée a été gardée ici : elle n'est pas partie et ne peut plus partir d'ici (la conversation ne t'est plus confiée). Copie-la, ou enregistre-la comme note privée."
    },
    en: {
      "kept.title": "Kept drafts",
      "kept.note": "Your unsaved note was kept ({name}). This conversation is no longer open to you: the note was not saved anywhere. Copy it so as not to lose it.",
      "kept.reply": "Your unsent reply was kept ({name}). It was not sent to the young person: this conversation is no longer open to you. Copy it so as not to lose it.",
      "kept.where": "Kept in this tab only, until it is closed or you log out.",
      "kept.copy": "Copy", "kept.copied": "Copied.", "kept.discard": "Discard",
      "kept.text": "Kept draft ({name})",
      "compose.kept.reply": "Your unsent reply was kept here: it did not go and can no longer go from here (the conversation is no longer yours). Copy it, or save it as a private note."
    }
  });

  function key(id) { return PREFIX + me + ":" + id; }

  function read(storageKey) {
    try { return JSON.parse(sessionStorage.getItem(storageKey) || "null"); } catch (e) { return null; }
  }

  function write(storageKey, value) {
    try {
      if (value) { sessionStorage.setItem(storageKey, JSON.stringify(value)); } else { sessionStorage.removeItem(storageKey); }
    } catch (e) { /* storage full or refused: the box keeps the text while the panel shows it */ }
  }

  function storedKeys() {
    var keys = [];
    try {
      for (var i = 0; i < sessionStorage.length; i += 1) {
        var k = sessionStorage.key(i);
        if (k && k.indexOf(PREFIX) === 0) { keys.push(k); }
      }
    } catch (e) { /* no storage: nothing kept */ }
    return keys;
  }

  /* The listener now logged in; another account's drafts left in this tab go (a shared desk). */
  function start(listener) {
    me = listener;
    storedKeys().forEach(function (k) { if (k.indexOf(PREFIX + me + ":") !== 0) { write(k, null); } });
    render();
  }

  function get(id) { return me ? read(key(id)) : null; }

  /* draft: {text, mode: "reply" | "note", name: the pseudonym}; an empty text removes it. */
  function put(id, draft) {
    if (!me) { return; }
    var before = get(id);
    var reply = before ? before.reply : undefined;  // the id of a reply sent from this box (sending)
    write(key(id), draft.text.trim() ? { text: draft.text, mode: draft.mode, name: draft.name, kept: false, reply: reply } : null);
    if (before && before.kept) { render(); }
  }

  /* reply: {text, id}, the console's id of the reply being sent from this box, kept with its draft until it is sent:
     the same text sent again after a reload (its answer lost with the connection) carries the same id, and the
     server sends it once. In the page only, a reload made it another reply, sent twice. */
  function sending(id, reply) {
    var draft = get(id);
    if (draft) { draft.reply = reply; write(key(id), draft); }
  }

  function drop(id) {
    if (!me) { return; }
    var before = get(id);
    write(key(id), null);
    if (before && before.kept) { render(); }
  }

  /* Its conversation is no longer open to this listener here: listed, to copy or discard. */
  function keep(id) {
    var draft = get(id);
    if (!draft || draft.kept) { return; }
    draft.kept = true;
    write(key(id), draft);
    render();
  }

  function ids() {
    var mine = PREFIX + me + ":";
    return storedKeys().filter(function (k) { return k.indexOf(mine) === 0; }).map(function (k) { return k.slice(mine.length); });
  }

  /* Every draft held in this tab (what a logout would lose): on the supervision page no listener is started. */
  function count() { return storedKeys().filter(function (k) { var d = read(k); return d && d.text && d.text.trim(); }).length; }

  function forget() { storedKeys().forEach(function (k) { write(k, null); }); }

  function render() {
    var list = $("kept");
    if (!list || !me) { return; }
    clear(list);
    ids().forEach(function (id) {
      var draft = get(id);
      if (draft && draft.kept) { list.appendChild(item(id, draft)); }
    });
    $("kept-section").hidden = !list.children.length;
  }

  function item(id, draft) {
    var node = el("li", "kept-draft");
    node.dataset.id = id;
    node.dataset.mode = draft.mode;
    node.appendChild(el("p", "", t(draft.mode === "reply" ? "kept.reply" : "kept.note", { name: draft.name })));
    var text = el("textarea", "kept-text");
    text.readOnly = true;
    text.rows = 3;
    text.value = draft.text;
    text.setAttribute("aria-label", t("kept.text", { name: draft.name }));
    node.appendChild(text);
    var done = el("span", "meta kept-copied", "");
    done.setAttribute("role", "status");
    node.appendChild(button(t("kept.copy"), "secondary small kept-copy", function () { copy(text, done); }));
    node.appendChild(button(t("kept.discard"), "ghost small kept-discard", function () { drop(id); }));
    node.appendChild(done);
    node.appendChild(el("p", "meta", t("kept.where")));
    return node;
  }

  function button(label, className, onClick) {
    var b = el("button", className, label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  /* The clipboard API where the page may use it (https, localhost); else the selected text and the old command. */
  function copy(text, done) {
    var said = function () { done.textContent = t("kept.copied"); };
    var old = function () { text.select(); if (document.execCommand("copy")) { said(); } };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text.value).then(said, old); } else { old(); }
  }

  HG.onLanguage(render);
  HG.drafts = { start: start, get: get, put: put, sending: sending, drop: drop, keep: keep, ids: ids, count: count,
    forget: forget };
})();
