/* A risk read in a young person's words, as the console and the supervision page show it: its class, and why
   (the words that matched, or the model's score). Needs i18n.js (HG.t). */
(function () {
  "use strict";
  var t = HG.t;

  function flagText(flag) {
    var how = flag.source === "model"
      ? t("flag.model", { score: Math.round(flag.score * 100) + " %" })
      : t("flag.keywords", { words: flag.words.join(", ") });
    return t("risk." + flag.risk) + " · " + how;
  }

  /* The flag of a message, after its text (or last, for a message shown without it); one read later takes the
     place of a weaker one only, as the store keeps it (TranscriptStore.flag_entry): a reload shows the same. */
  function showFlag(item, flag) {
    var shown = item.querySelector(".flag");
    if (shown && Number(item.dataset.flagScore) > flag.score) { return; }
    var mark = HG.el("span", "flag", flagText(flag));
    var text = item.querySelector(".text");
    if (shown) { shown.replaceWith(mark); } else if (text) { text.after(mark); } else { item.appendChild(mark); }
    item.classList.add("flagged");
    item.dataset.flagScore = String(flag.score);
  }

  HG.flagText = flagText;
  HG.showFlag = showFlag;
})();
