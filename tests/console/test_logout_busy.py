"""A logout's hand-backs do not wait for a busy conversation lock one after the other.

Anne logs out holding three young people; the lock of the one her logout tries first is held by another holder (a
reply being processed, an instance's lock not lapsed yet). Her two other young people are handed back while that lock
is still held, told once that their listener left, and the logout answers once the busy one is handed back too (its
lock let go within ``LOCK_SECONDS``). Until 2026-12-07 the logout tried them one after the other: each busy lock was
waited for up to ``LOCK_SECONDS`` (10 s) before the next conversation was tried, N × 10 s for N busy ones, the others
held by the listener who had left all that time. No part of the gateway is patched: the test holds the real store's
lock (SQLite's in-process lock, Redis's lease, a Cluster's).

The logout's actions wait far longer than the test for a lock (``BUSY_WAIT``): the others handed back while the lock
is held prove they were tried without waiting for it (``hand_back``'s ``wait=0.0``), not after a wait that lapsed.
Until 2026-12-07 (night) the logout's own 10 s wait let this test pass with that first try waiting as long as any
(the busy lock waited for, LockTimeout, then the others): only the order of the answers was checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.console.actions import Actions
from gateway.conversation import Status
from gateway.messages import ChannelName, Inbound
from gateway.store import Store
from tests.conftest import Clock
from tests.console.test_handback_crash import instance
from tests.console.test_handback_refused import told_once_and_waiting_among
from tests.store.conftest import redis_cluster_url, redis_url, store, store_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_cluster_url", "redis_url", "store", "store_url"]  # fixtures used below

BUSY_WAIT = 3600.0  # how long the logout's actions wait for a lock: beyond the test's safety net (``until``)


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not await condition():
            await asyncio.sleep(0.02)


async def three_held_by_anne(store: Store, clock: Clock) -> list[str]:
    """Three young people walked to the queue on Messenger and taken by Anne: their ids in the order a logout tries
    them (``conversations_by_status``)."""
    dispatcher, actions = instance(store, clock)
    for person in range(3):
        for number, text in enumerate(WALK_TO_QUEUE):
            message = Inbound(ChannelName.MESSENGER, f"psid-busy-{person}", f"mid.{person}.{number}", text)
            assert await dispatcher.handle_inbound(message)
        [entry] = await store.waiting()
        await actions.take(entry.conversation_id, "anne", 3)
    held = [c.id for c in await store.conversations_by_status(Status.WITH_LISTENER) if c.listener == "anne"]
    assert len(held) == 3
    return held


async def test_a_logout_hands_back_the_others_while_one_conversations_lock_is_busy(store: Store, clock: Clock) -> None:
    busy, *others = await three_held_by_anne(store, clock)
    dispatcher, made = instance(store, clock)
    actions = Actions(dispatcher, made.store, made.flows, clock=clock, lock_seconds=BUSY_WAIT)

    async def others_handed_back() -> bool:
        records = [await store.get_conversation(i) for i in others]
        return logout.done() or all(c is not None and c.status == Status.QUEUED for c in records)

    async with store.lock(busy):  # another holder, as the logout begins
        logout = asyncio.create_task(actions.hand_back_all("anne", lambda name: False))
        try:  # within the safety net, far within BUSY_WAIT: the others were not tried after a wait for the lock
            await until(others_handed_back)
        except TimeoutError:
            logout.cancel()  # not left waiting an hour for the lock once the store is closed
            raise AssertionError("the others waited for the busy conversation's lock") from None
        # before 2026-12-07: nothing handed back until the busy one's wait ended (LockTimeout, 10 s later), and then
        # the logout had answered with the busy one still held by Anne
        assert not logout.done(), "the logout answered before the busy conversation's lock was let go"
        for conversation_id in others:  # handed back while the lock is still held
            await told_once_and_waiting_among(store, conversation_id)
        held = await store.get_conversation(busy)
        assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")
    assert await logout == 3  # the busy one handed back once its lock was let go
    for conversation_id in [busy, *others]:
        conversation = await store.get_conversation(conversation_id)
        assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None)
        await told_once_and_waiting_among(store, conversation_id)
    assert await store.held_by("anne") == 0


async def test_the_busy_ones_are_waited_for_at_once_not_one_after_the_other(store: Store, clock: Clock) -> None:
    """Two of Anne's three conversations have their locks held as she logs out. The one let go first (the second the
    logout tries) is handed back while the other's lock is still held: the busy ones wait for their locks at once
    (``hand_back_each``'s second pass, since 2026-12-07), not one after the other (N x ``lock_seconds``). Until
    2026-12-08 only one busy lock was tested, which a second pass one after the other passed too."""
    first, second, free = await three_held_by_anne(store, clock)
    dispatcher, made = instance(store, clock)
    actions = Actions(dispatcher, made.store, made.flows, clock=clock, lock_seconds=BUSY_WAIT)

    async def queued(conversation_id: str) -> bool:
        record = await store.get_conversation(conversation_id)
        return logout.done() or (record is not None and record.status == Status.QUEUED)

    async with store.lock(first):  # held until the end: the logout waits for it
        async with store.lock(second):
            logout = asyncio.create_task(actions.hand_back_all("anne", lambda name: False))
            try:
                await until(lambda: queued(free))  # tried without waiting: handed back while both are held
            except TimeoutError:
                logout.cancel()
                raise AssertionError("the free one waited for a busy conversation's lock") from None
        try:  # the second let go, the first still held: within the safety net, far within BUSY_WAIT
            await until(lambda: queued(second))
        except TimeoutError:
            logout.cancel()  # not left waiting an hour for the lock once the store is closed
            raise AssertionError("the busy ones were waited for one after the other") from None
        assert not logout.done(), "the logout answered before the first busy conversation's lock was let go"
        await told_once_and_waiting_among(store, second)
        held = await store.get_conversation(first)
        assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")
    assert await logout == 3  # the first handed back once its lock was let go
    for conversation_id in (first, second, free):
        await told_once_and_waiting_among(store, conversation_id)
    assert await store.held_by("anne") == 0
