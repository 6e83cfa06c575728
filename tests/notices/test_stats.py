"""Supervision's figures for notices and referrals: per platform and category, time to removal (median, 90th
percentile), refusals, unanswered and late ones, referrals per partner; in the JSON and in the CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.notices.record import Notice, NoticeStatus, Referral, ReferralStatus
from tests.conftest import Clock

Client = TestClient  # type: ignore[type-arg]


def _notice(n: int, platform: str, category: str, at: datetime) -> Notice:
    return Notice(id=f"n{n}", conversation_id=f"c{n}", pseudonym=f"Loutre-{n}", platform=platform,
                  category=category, locations=("https://x.com/a",), description="", language="en",
                  created_by="anne", created_at=at, updated_at=at)  # fmt: skip


async def test_notice_and_referral_figures_in_json_and_csv(app: Client, clock: Clock) -> None:
    store, start = app.app[STORE], clock.now - timedelta(days=2)
    removal_hours = [1, 2, 3, 4, 10]
    for n, hours in enumerate(removal_hours):
        sent = _notice(n, "instagram", "harassment", start).moved(NoticeStatus.SENT, start)
        await store.put_notice(sent.moved(NoticeStatus.REMOVED, start + timedelta(hours=hours)))
    await store.put_notice(_notice(10, "tiktok", "sextortion", start).moved(NoticeStatus.REFUSED, start))
    await store.put_notice(replace(_notice(11, "tiktok", "sextortion", start), status=NoticeStatus.NO_ANSWER))
    await store.put_notice(_notice(12, "snapchat", "harassment", start).moved(NoticeStatus.SENT, start))  # late
    await store.put_notice(_notice(13, "x", "harassment", datetime(2020, 1, 1, tzinfo=UTC)))  # another period
    for n, consent in enumerate([True, True, False]):
        await store.put_referral(Referral(
            id=f"r{n}", conversation_id="c", pseudonym="Loutre-1", partner="116006", consent=consent,
            created_by="anne", created_at=start, updated_at=start,
            status=ReferralStatus.SENT if consent else ReferralStatus.DECLINED,
        ))  # fmt: skip

    period = {"from": start.date().isoformat(), "to": clock.now.date().isoformat()}
    figures = (await (await app.get("/api/stats", params=period)).json())["casework"]
    assert figures["notices"] == 8
    assert [(r["key"], r["value"]) for r in figures["per_platform"]] == [("instagram", 5), ("tiktok", 2),
                                                                         ("snapchat", 1)]  # fmt: skip
    assert {r["key"]: r["value"] for r in figures["per_category"]} == {"harassment": 6, "sextortion": 2}
    assert figures["removal_hours"] == {"count": 5, "median": 3.0, "p90": 7.6}
    assert (figures["refused"], figures["no_answer"], figures["overdue"]) == (1, 1, 1)
    assert figures["referrals_per_partner"] == [{"key": "116006", "label": "116 006 - France Victimes", "value": 2}]
    assert figures["referrals_declined"] == 1

    rows = list(csv.reader(io.StringIO(await (await app.get("/api/stats.csv", params=period)).text())))
    assert ["notices.per_platform", "instagram", "Instagram", "5"] in rows
    assert ["notices", "removal_p90_hours", "", "7.6"] in rows
    assert ["notices.referrals_per_partner", "116006", "116 006 - France Victimes", "2"] in rows
    assert not any("Loutre" in cell for row in rows for cell in row)
