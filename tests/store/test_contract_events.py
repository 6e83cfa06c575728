"""Which events a subscription gets, on every store (``Subscription.follow``, ``gateway/events.py``'s ``scope``):
every subscription those of every instance (presence, typing, sessions ended); a conversation's only while it
follows that conversation or every one; the queue's changes and alerts only while it follows every one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.conversation import Status
from gateway.events import EntryAdded, Event, QueueChanged, StatusChanged, Typing
from gateway.store import Author, Store, Subscription, TranscriptEntry

AT = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


def added(conversation_id: str) -> EntryAdded:
    return EntryAdded(conversation_id, TranscriptEntry(f"e-{conversation_id}", conversation_id, AT, Author.BOT, "…"))


async def received(subscription: Subscription, count: int) -> list[Event]:
    async with asyncio.timeout(10):
        return [await anext(subscription) for _ in range(count)]


async def test_a_subscription_gets_what_it_follows_and_what_every_instance_gets(store: Store) -> None:
    narrow, wide = await store.subscribe(everything=False), await store.subscribe()
    try:
        typing = Typing("c-other", "listener")
        for event in (added("c-other"), QueueChanged(), typing):
            await store.publish(event)
        assert await received(narrow, 1) == [typing]  # neither another conversation's entry nor the queue
        assert await received(wide, 3) == [added("c-other"), QueueChanged(), typing]

        await narrow.follow("c-mine")
        status = StatusChanged("c-mine", Status.QUEUED, "main")
        for event in (added("c-other"), added("c-mine"), status):
            await store.publish(event)
        assert await received(narrow, 2) == [added("c-mine"), status]
        assert await received(wide, 3) == [added("c-other"), added("c-mine"), status]

        await narrow.unfollow("c-mine")
        await narrow.follow_all(True)
        for event in (added("c-mine"), QueueChanged()):
            await store.publish(event)
        assert await received(narrow, 2) == [added("c-mine"), QueueChanged()]  # every conversation's, once

        await narrow.follow_all(False)
        for event in (added("c-mine"), QueueChanged(), typing):
            await store.publish(event)
        assert await received(narrow, 1) == [typing]
        assert await received(wide, 5) == [added("c-mine"), QueueChanged(), added("c-mine"), QueueChanged(), typing]
    finally:
        await narrow.aclose()
        await wide.aclose()
