/* A partner's referral link (/chat/referral#CODE): a press on the button exchanges the code, once, for the web
   chat session of the conversation waiting for the young person, then opens the chat. The code is in the
   fragment, so it is never sent with the page request. */
(function () {
  "use strict";
  var TOKEN_KEY = "hg-chat-token";  // the web chat's session key (chat.js)
  var code = location.hash.slice(1);
  var USED = "Ce lien a déjà servi ou n'est plus valable. Écris-nous sur le chat : 3018.fr · This link was already used.";
  /* The gateway away (503, 429, an answer that is not its JSON) or unanswered (the connection dropped): the link may
     still be good, so it is not called used; where to turn meanwhile, as the chat's own "unreachable" says. */
  var UNANSWERED = "Le chat ne répond pas pour l'instant : réessaie dans un moment. Si tu as besoin de parler maintenant, " +
    "le 119 et le 3114 répondent 24h/24 ; en danger immédiat, appelle le 17 ou le 112 (SMS au 114). · The chat is not " +
    "answering right now: try again in a moment. To talk now, 119 and 3114 answer 24/7; in immediate danger, call 17 or 112.";
  function said(text) { document.getElementById("problem").textContent = text; }
  /* This page's own key, sent with the code: pressed again after an answer that never came (the connection dropped
     as the server used the link), the server knows it is the same page and answers again, never "déjà servi". */
  var KEY_NAME = "hg-referral-key", key = null;
  function pageKey() {
    try { key = key || sessionStorage.getItem(KEY_NAME); } catch (e) { /* private mode: this page's memory */ }
    if (!key) {
      var bytes = new Uint8Array(24);
      crypto.getRandomValues(bytes);
      key = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      try { sessionStorage.setItem(KEY_NAME, key); } catch (e) { /* kept in this page only */ }
    }
    return key;
  }
  /* A 503 with Retry-After (the replicas not confirming yet with GATEWAY_REDIS_REPLICA_ACKS, the exchange made on
     the primary; or another exchange of this link under way) is asked again by the page itself, after the time it
     says but 2 s at most, RETRIES times at most (6 s in all before "ne répond pas"): the same page key is answered
     the same session. Until 2026-12-07 the first 503 said "ne répond pas" and waited for another press. */
  var RETRIES = 3;
  function exchange(left) {
    return fetch("/chat/referral", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: code, key: pageKey() }) })
      .then(function (response) {
        var after = parseInt(response.headers.get("Retry-After") || "", 10);
        if (response.status === 503 && left > 0 && after >= 0) {
          var wait = Math.min(Math.max(after, 1), 2) * 1000;
          return new Promise(function (resolve) { setTimeout(resolve, wait); })
            .then(function () { return exchange(left - 1); });
        }
        return response;
      });
  }
  document.getElementById("open").addEventListener("click", function () {
    said("");
    exchange(RETRIES)
      .then(function (response) {
        if (response.status === 429 || response.status >= 500) { return { ok: false, away: true }; }
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (answer) {
        if (!answer.ok) { said(answer.away ? UNANSWERED : USED); return; }
        try {
          ["hg-chat-ended", "hg-chat-pending"].forEach(function (name) { localStorage.removeItem(name); });
          localStorage.setItem(TOKEN_KEY, answer.data.token);
        } catch (e) { /* private mode: the chat starts anew */ }
        history.replaceState(null, "", "/chat/referral");
        location.replace("/chat");
      })
      .catch(function () { said(UNANSWERED); });
  });
})();
