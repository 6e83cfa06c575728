"""The in-process events and locks behind the SQLite store: bounded buffers, no lingering lock entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.errors import LockTimeout
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


class _TimersCounted(asyncio.SelectorEventLoop):
    """A loop that counts the timers armed on it (``asyncio.timeout`` arms one through ``call_at``)."""

    timers = 0

    def call_at(self, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        self.timers += 1
        return super().call_at(*args, **kwargs)


def test_a_free_lock_is_taken_without_a_timer_and_a_held_one_still_times_out() -> None:
    """The inbox takes a sender's turn for every webhook, nearly always free: no timer armed and cancelled for it
    (until 2026-12-07, late, each took one, about 4 µs on uvloop); a lock someone holds is still waited for at most its
    timeout (LockTimeout), and a waiter gets it once released."""
    loop = _TimersCounted()
    try:

        async def scenario() -> None:
            locks = LocalLocks()
            before = loop.timers
            for _ in range(3):
                async with locks.lock("c1", timeout=5):
                    pass
            assert loop.timers == before  # three free locks: no timer (3 before the cut)
            async with locks.lock("c1", timeout=5):
                with pytest.raises(LockTimeout):
                    async with locks.lock("c1", timeout=0.05):
                        pass
                waiter = asyncio.ensure_future(locks.lock("c1", timeout=5).__aenter__())
                await asyncio.sleep(0)
                assert not waiter.done()
            await asyncio.wait_for(waiter, 5)  # released: the waiter holds it
            assert len(locks) == 1

        loop.run_until_complete(scenario())
    finally:
        loop.close()
