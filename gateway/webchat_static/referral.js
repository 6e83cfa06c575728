/* A partner's referral link (/chat/referral#CODE): a press on the button exchanges the code, once, for the web
   chat session of the conversation waiting for the young person, then opens the chat. The code is in the
   fragment, so it is never sent with the page request. */
(function () {
  "use strict";
  var TOKEN_KEY = "hg-chat-token";  // the web chat's session key (chat.js)
  var code = location.hash.slice(1);
  document.getElementById("open").addEventListener("click", function () {
    fetch("/chat/referral", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code: code }) })
      .then(function (response) { return response.json().then(function (data) { return { ok: response.ok, data: data }; }); })
      .then(function (answer) {
        if (!answer.ok) {
          document.getElementById("problem").textContent = "Ce lien a déjà servi ou n'est plus valable. Écris-nous sur le chat : 3018.fr · This link was already used.";
          return;
        }
        try {
          ["hg-chat-ended", "hg-chat-pending"].forEach(function (key) { localStorage.removeItem(key); });
          localStorage.setItem(TOKEN_KEY, answer.data.token);
        } catch (e) { /* private mode: the chat starts anew */ }
        history.replaceState(null, "", "/chat/referral");
        location.replace("/chat");
      });
  });
})();
