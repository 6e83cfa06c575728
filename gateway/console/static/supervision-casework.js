/* Supervision: the period's takedown notices (per platform, per category, time to removal, refusals,
   unanswered, late) and warm referrals per partner. Drawn from the "hg:figures" event supervision.js sends. */
(function () {
  "use strict";
  var el = HG.el, clear = HG.clear;
  var $ = function (id) { return document.getElementById(id); };

  HG.addTexts({
    fr: {
      "cws.notices": "Signalements aux plateformes", "cws.referrals": "Orientations avec accord, par partenaire",
      "cws.summary": "{n} signalement(s) · retrait en {median} h (médiane), {p90} h (90 %) · {refused} refusé(s) · {no_answer} sans réponse · {overdue} en retard",
      "cws.declined": "{n} refusée(s) par le jeune (rien n'a été envoyé)", "cws.nothing": "Rien sur la période."
    },
    en: {
      "cws.notices": "Notices to platforms", "cws.referrals": "Referrals with consent, per partner",
      "cws.summary": "{n} notice(s) · removal in {median} h (median), {p90} h (90th percentile) · {refused} refused · {no_answer} unanswered · {overdue} late",
      "cws.declined": "{n} declined by the young person (nothing was sent)", "cws.nothing": "Nothing in this period."
    }
  });
  var t = HG.t, last = null;

  document.addEventListener("hg:figures", function (event) { last = event.detail.casework; render(); });
  HG.onLanguage(render);

  function render() {
    if (!last) { return; }
    var removal = last.removal_hours;
    $("cws-summary").textContent = t("cws.summary", {
      n: last.notices, median: removal.median === null ? "–" : removal.median, p90: removal.p90 === null ? "–" : removal.p90,
      refused: last.refused, no_answer: last.no_answer, overdue: last.overdue
    });
    bars($("chart-notice-platforms"), last.per_platform);
    bars($("chart-notice-categories"), last.per_category);
    bars($("chart-referrals"), last.referrals_per_partner);
    $("cws-declined").textContent = t("cws.declined", { n: last.referrals_declined });
  }

  function bars(list, rows) {
    clear(list);
    if (!rows.length) { list.appendChild(el("li", "empty", t("cws.nothing"))); return; }
    var top = Math.max.apply(null, rows.map(function (r) { return r.value; }).concat([1]));
    rows.forEach(function (row) {
      var item = el("li", "bar");
      item.dataset.key = row.key;
      item.appendChild(el("span", "name", row.label));
      var track = el("span", "track"), fill = el("span", "fill");
      fill.style.display = "block";
      fill.style.width = (100 * row.value / top) + "%";
      track.appendChild(fill);
      item.appendChild(track);
      item.appendChild(el("span", "n", String(row.value)));
      list.appendChild(item);
    });
  }
})();
