"""Reading many conversations at once (a supervisor's figures or CSV over a year, an erasure looking through every
conversation, the purge) on SQLite, Redis and a Redis Cluster: the records are read and decoded a part at a time,
the event loop serving webhooks, web chats and consoles between the parts.

Until 2026-12-06 they were decoded in one block: 20,000 conversations (a national line's year) held the loop 2–3 s
on this 2-core machine (~100 µs a record: AES-GCM and JSON), during which the gateway answered no one. The test reads
6,000 and measures the longest time the loop went without a turn against the whole read: in one block it is most of
the read; in parts, a fraction. A ratio, not a duration: a slow machine slows both alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.notices.record import Notice, Referral, ReferralStatus
from gateway.store import Store
from tests.loop_gaps import longest_hold

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
COUNT = 6000


async def test_many_conversations_are_read_with_the_loop_turning_between_parts(store: Store) -> None:
    for first in range(0, COUNT, 250):
        async with store.batch():
            for n in range(first, min(first + 250, COUNT)):
                created = T0 - timedelta(minutes=n)
                await store.save_conversation(Conversation(
                    id=f"c{n:05d}", channel=ChannelName.WEBCHAT, sender=f"s{n}", pseudonym=f"Lynx-{n}",
                    created_at=created, updated_at=created, status=Status.CLOSED, closed_at=created,
                ))  # fmt: skip
    found, longest, took = await longest_hold(
        store.list_conversations(T0 - timedelta(days=366), T0 + timedelta(days=1))
    )
    assert len(found) == COUNT and found[0].id == f"c{COUNT - 1:05d}"  # oldest first, none lost between parts
    assert longest < took / 2, (longest, took)


async def test_every_notice_and_referral_is_read_with_the_loop_turning_between_parts(store: Store) -> None:
    """The casework figures (the supervision board's, its CSV) and the notices' list read every notice and referral
    ever kept: a line's years of them (~100 µs a record, AES-GCM and JSON) were decoded in one block until
    2026-12-06, 6,000 holding the loop 0.6 s of a 0.7 s read. Now a part at a time, as the conversations."""
    for first in range(0, COUNT, 250):
        async with store.batch():
            for n in range(first, min(first + 250, COUNT)):
                at = T0 + timedelta(minutes=n)  # oldest first in every store (SQLite: as written)
                await store.put_notice(Notice(
                    id=f"n{n:05d}", conversation_id=f"c{n:05d}", pseudonym=f"Lynx-{n}", platform="instagram",
                    category="harassment", locations=("https://www.instagram.com/p/abc/",), description="insultes",
                    language="fr", created_by="anne", created_at=at, updated_at=at,
                ))  # fmt: skip
                await store.put_referral(Referral(
                    id=f"r{n:05d}", conversation_id=f"c{n:05d}", pseudonym=f"Lynx-{n}", partner="116006",
                    consent=True, created_by="anne", created_at=at, updated_at=at, status=ReferralStatus.SENT,
                    shared=(("Âge", "15"),), summary="résumé relu", sent_at=at,
                ))  # fmt: skip
    notices, longest, took = await longest_hold(store.list_notices())
    assert len(notices) == COUNT and notices[0].id == "n00000" and notices[-1].id == f"n{COUNT - 1:05d}"
    assert longest < took / 2, ("notices", longest, took)
    referrals, longest, took = await longest_hold(store.list_referrals())
    assert len(referrals) == COUNT and referrals[0].id == "r00000"
    assert longest < took / 2, ("referrals", longest, took)
