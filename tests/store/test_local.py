"""The in-process events and locks behind the SQLite store: bounded buffers, no lingering lock entries."""

from __future__ import annotations

import asyncio

from gateway.events import NoticesChanged, Resync
from gateway.store.local import SUBSCRIBER_BUFFER, LocalEvents, LocalLocks


async def test_lock_entries_go_once_unused() -> None:
    locks = LocalLocks()

    async def hold(conversation_id: str) -> None:
        async with locks.lock(conversation_id, timeout=5):
            await asyncio.sleep(0)

    await asyncio.gather(*(hold(f"c{n % 3}") for n in range(9)))
    assert len(locks) == 0


async def test_a_stalled_subscriber_keeps_only_the_latest_events_and_is_told_to_resync() -> None:
    events = LocalEvents()
    async with events.subscribe() as subscription:
        for n in range(SUBSCRIBER_BUFFER + 5):
            events.publish(NoticesChanged(str(n)))
        assert await anext(subscription) == Resync()
        assert await anext(subscription) == NoticesChanged("5")
        events.publish(NoticesChanged("next"))
        assert [await anext(subscription) for _ in range(SUBSCRIBER_BUFFER)][-1] == NoticesChanged("next")  # once


async def test_closing_the_hub_ends_every_subscription() -> None:
    events = LocalEvents()
    subscription = events.subscribe()
    events.publish(NoticesChanged("c1"))
    await events.close()
    assert [event async for event in subscription] == [NoticesChanged("c1")]
