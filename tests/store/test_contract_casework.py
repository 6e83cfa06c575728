"""The store contract for notices, their evidence and referrals: SQLite and Redis alike."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.notices.record import Evidence, Notice, NoticeStatus, Referral, ReferralStatus
from gateway.store import Store

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


def notice(conversation_id: str, n: int = 0) -> Notice:
    return Notice(
        id=f"n-{uuid.uuid4().hex[:8]}", conversation_id=conversation_id, pseudonym="Loutre-1234",
        platform="instagram", category="harassment", locations=("https://www.instagram.com/p/abc/",),
        description="messages insultants", language="en", created_by="anne", created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n), evidence=(0, 2),
    )  # fmt: skip


async def test_notices_are_kept_replaced_and_listed_oldest_first(store: Store) -> None:
    conv, other = uuid.uuid4().hex, uuid.uuid4().hex
    first, second, elsewhere = notice(conv, 0), notice(conv, 1), notice(other, 2)
    for n in (first, second, elsewhere):
        await store.put_notice(n)
    sent = first.moved(NoticeStatus.SENT, T0 + timedelta(hours=1))
    await store.put_notice(sent)
    assert await store.get_notice(first.id) == sent
    assert await store.get_notice("nope") is None
    assert await store.list_notices(conv) == [sent, second]
    assert [n.id for n in await store.list_notices() if n.id in {first.id, second.id, elsewhere.id}] == [
        first.id, second.id, elsewhere.id,
    ]  # fmt: skip


async def test_evidence_is_kept_then_dropped(store: Store) -> None:
    files = [Evidence("preuve-1.jpg", "image/jpeg", b"\xff\xd8\x00binary"), Evidence("preuve-2.png", "image/png", b"")]
    await store.put_evidence("n1", files)
    assert await store.get_evidence("n1") == files
    assert await store.drop_evidence("n1") == 2
    assert await store.get_evidence("n1") == []
    assert await store.drop_evidence("n1") == 0


async def test_referrals_are_kept_and_listed(store: Store) -> None:
    conv = uuid.uuid4().hex
    referral = Referral(
        id=uuid.uuid4().hex, conversation_id=conv, pseudonym="Loutre-1234", partner="116006", consent=True,
        created_by="anne", created_at=T0, updated_at=T0, status=ReferralStatus.SENT,
        shared=(("Âge", "15"), ("Sujet", "harcèlement")), summary="résumé relu", sent_at=T0,
    )  # fmt: skip
    await store.put_referral(referral)
    taken = referral.moved(ReferralStatus.TAKEN_UP, T0 + timedelta(days=1))
    await store.put_referral(taken)
    assert await store.get_referral(referral.id) == taken
    assert await store.list_referrals(conv) == [taken]
    assert referral.id in [r.id for r in await store.list_referrals()]
    assert await store.get_referral("nope") is None


async def test_a_notice_round_trips_every_field(store: Store) -> None:
    full = replace(
        notice(uuid.uuid4().hex), status=NoticeStatus.REMOVED, csam=True, linked="other", sent_at=T0,
        closed_at=T0, answer="Content removed.", message_id="<x@y>", told_at=T0, reminded_at=T0,
        evidence_deleted_at=T0,
    )  # fmt: skip
    await store.put_notice(full)
    assert await store.get_notice(full.id) == full
