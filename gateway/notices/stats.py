"""The notices and referrals of a period, for supervision and the trusted flagger's yearly report (DSA art. 22):
notices per platform and category, what became of them, how long removals took (median and 90th percentile,
from sending to the recorded removal), refusals, unanswered ones, referrals per partner. Counts only."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from statistics import median, quantiles
from typing import Any

from gateway.flows.model import Flow
from gateway.notices.record import NoticeStatus
from gateway.store import CaseworkStore


async def casework_figures(
    store: CaseworkStore, flow: Flow, since: datetime, until: datetime, now: datetime
) -> dict[str, Any]:
    """Notices and referrals created in ``[since, until)``."""
    notices = [n for n in await store.list_notices() if since <= n.created_at < until]
    referrals = [r for r in await store.list_referrals() if since <= r.created_at < until]  # both directions
    lang = flow.default_language
    hours = [(n.closed_at - n.sent_at).total_seconds() / 3600 for n in notices
             if n.status == NoticeStatus.REMOVED and n.closed_at and n.sent_at]  # fmt: skip
    overdue = 0
    for n in notices:
        platform = flow.platforms.get(n.platform)
        due = n.due_at(platform.response_hours) if platform else None
        overdue += due is not None and due <= now
    platforms = {k: p.name for k, p in flow.platforms.items()}
    categories = {k: c.label.get(lang, k) for k, c in flow.notice_categories.items()}
    partners = {k: p.name.get(lang, k) for k, p in flow.partners.items() if p.referral}
    statuses = Counter(n.status.value for n in notices)
    return {
        "notices": len(notices),
        "per_platform": _rows(Counter(n.platform for n in notices), platforms),
        "per_category": _rows(Counter(n.category for n in notices), categories),
        "per_status": [{"key": s.value, "label": s.value, "value": statuses[s.value]} for s in NoticeStatus],
        "removal_hours": {"count": len(hours), "median": _round(median(hours)) if hours else None,
                          "p90": _round(_p90(hours)) if hours else None},
        "refused": statuses[NoticeStatus.REFUSED.value],
        "no_answer": statuses[NoticeStatus.NO_ANSWER.value],
        "overdue": overdue,
        "referrals": len(referrals),
        "referrals_per_partner": _rows(Counter(r.partner for r in referrals if r.consent and not r.inbound), partners),
        "referrals_declined": sum(1 for r in referrals if not r.consent),
        "referrals_inbound": _rows(Counter(r.partner for r in referrals if r.inbound), partners),
    }  # fmt: skip


def _p90(values: list[float]) -> float:
    return values[0] if len(values) == 1 else quantiles(values, n=10, method="inclusive")[8]


def _round(value: float) -> float:
    return round(value, 1)


def _rows(counts: Counter[str], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    keys = [k for k in labels if counts[k]] + sorted(k for k in counts if k not in labels)
    return [{"key": k, "label": labels.get(k, k), "value": counts[k]} for k in keys]


def casework_csv(figures: Mapping[str, Any]) -> str:
    """The same ``section,key,label,value`` rows as the supervision CSV, without its header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for section in ("per_platform", "per_category", "per_status", "referrals_per_partner", "referrals_inbound"):
        writer.writerows([f"notices.{section}", _safe(r["key"]), _safe(r["label"]), r["value"]]
                         for r in figures[section])  # fmt: skip
    removal = figures["removal_hours"]
    writer.writerows([
        ["notices", "total", "", figures["notices"]], ["notices", "refused", "", figures["refused"]],
        ["notices", "no_answer", "", figures["no_answer"]], ["notices", "overdue", "", figures["overdue"]],
        ["notices", "removal_median_hours", "", "" if removal["median"] is None else removal["median"]],
        ["notices", "removal_p90_hours", "", "" if removal["p90"] is None else removal["p90"]],
        ["referrals", "total", "", figures["referrals"]], ["referrals", "declined", "", figures["referrals_declined"]],
    ])  # fmt: skip
    return out.getvalue()


def _safe(label: str) -> str:
    """A spreadsheet must not read a label as a formula (CSV injection)."""
    return "'" + label if label[:1] in ("=", "+", "-", "@", "\t", "\r") else label
