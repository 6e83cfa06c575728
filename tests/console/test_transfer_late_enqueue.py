"""A transfer's queue step, or the alert check's ``back_in_line``, reaching Redis late, after its lock lapsed, never
un-takes the next holder's entry.

As a hand-back's (``tests/console/test_handback_late_requeue.py``): on Redis a transfer makes its queue step first
(``store.enqueue``, slot ``{queue}``, which cannot read the lock), alone, then the rest of its writes fenced by the
conversation's lock; so does the alert check putting a queued young person whose take was cut short back in line
(``Actions._line_again``: ``store.requeue``, or ``store.enqueue`` with no entry left). Instance A starts the step and
stalls (a GC pause, a frozen VM) just before it leaves, past its lock's lease; another instance makes the same change
(Anne's retry, the next check), Bob takes the conversation; then A wakes and its step lands. Until 2026-12-08 it
replaced (the transfer) or un-took (the check) whoever held the entry: Bob's entry waited in the queue while the record
said Bob, and A dying before its undo, the next alert check (``Actions.complete_hand_back``) completed a transfer, or a
hand-back, Bob never made, in the middle of his conversation. Now the step names the holder it expects (the record's
listener, read under the lock; the entry's holder the check read; none for a waiting conversation): another's entry is
refused (Conflict), nothing changed.

A's stall is the store's step held (the real store, nothing of the gateway patched) while its lock's key is deleted
(its lease lapsed: the renewals of a frozen process stop), then A dies right after its step (``Killed``, before its
undo). Redis standalone and Cluster. SQLite cannot have it: its conversation locks go with the process and have no
lease (a stalled holder keeps its lock), and its queue step is in the batch's one transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from gateway.console.actions import ActionRefused
from gateway.conversation import Status
from gateway.errors import Conflict, LockLost
from gateway.messages import ChannelName, Inbound
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import Killed, held_by_anne, instance
from tests.console.test_take_crash import next_check
from tests.store.conftest import emptied, redis_cluster_url, redis_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_cluster_url", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

KEY = "tr-7c2a"  # the console's id of Anne's transfer, the same when her browser sends it again


class StallsThenDies:
    """Instance A's store: its call ``step`` waits for ``go`` (``reached`` set first), then is made, then the instance
    dies (before anything after it, its undo included). A check's queue step is ``requeue``, sent at once; a
    transfer's, ``enqueue``, is held in its batch and leaves with the place read after it (``position``, one round
    trip): that read is where it stalls."""

    def __init__(self, store: Store, step: str) -> None:
        self._store, self._step = store, step
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        if name != self._step:
            return getattr(self._store, name)

        async def stalled(*args: Any, **options: Any) -> Any:
            self.reached.set()
            await self.go.wait()
            await getattr(self._store, name)(*args, **options)
            raise Killed

        return stalled


@pytest.fixture(params=["redis", "redis-cluster"])
async def url(request: pytest.FixtureRequest) -> str:
    return emptied(request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url"))


@pytest.fixture
async def two(url: str) -> AsyncIterator[tuple[Store, Store]]:
    """The stores of two instances on the same Redis: B's (and the test's), A's."""
    b = await open_store(url, keys=store_keys(url))
    a = await open_store(url, keys=store_keys(url))
    try:
        yield b, a
    finally:
        await a.close()
        await b.close()


def lapse(url: str, conversation_id: str) -> None:
    """A frozen past its lease: the lock lapsed."""
    client = redis.Redis.from_url(url)
    try:
        client.delete(K.lock(conversation_id))
    finally:
        client.close()


async def bob_keeps_it(store: Store, clock: Clock, conversation_id: str, queue: str) -> None:
    entry = await store.queue_entry(conversation_id)
    assert entry is not None and (entry.taken_by, entry.queue) == ("bob", queue), f"Bob's entry left waiting: {entry}"
    assert await store.waiting() == []
    clock.advance(seconds=10)
    await next_check(store, clock)  # the alert check: nothing to complete, Bob keeps the young person
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.WITH_LISTENER, "bob")
    entry = await store.queue_entry(conversation_id)
    assert entry is not None and entry.taken_by == "bob"
    assert await store.held_by("bob") == 1


async def test_a_stalled_transfers_late_queue_step_leaves_the_next_holder_holding(
    two: tuple[Store, Store], url: str, clock: Clock
) -> None:
    store, a_store = two
    conversation_id = await held_by_anne(store, clock)
    stalled = StallsThenDies(a_store, "position")
    _, a = instance(stalled, clock)
    _, b = instance(store, clock)
    late = asyncio.create_task(a.transfer(conversation_id, "anne", "listeners", key=KEY))
    await asyncio.wait_for(stalled.reached.wait(), 30)
    lapse(url, conversation_id)
    await b.transfer(conversation_id, "anne", "listeners", key=KEY)  # Anne's retry, on B: the claim taken over
    await b.take(conversation_id, "bob", 3)
    stalled.go.set()
    # its step made (before: Bob's entry replaced, waiting), or refused (now: Conflict, or LockLost from the same
    # round trip's fenced writes, the store's undo then keeping Bob's entry)
    with pytest.raises((Killed, Conflict, LockLost)):
        await asyncio.wait_for(late, 30)
    await bob_keeps_it(store, clock, conversation_id, "listeners")


async def test_a_stalled_checks_late_back_in_line_leaves_the_next_holder_holding(
    two: tuple[Store, Store], url: str, clock: Clock
) -> None:
    store, a_store = two
    dispatcher, b = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-cut", f"mid.{number}", text))
    [waiting] = await store.waiting()
    conversation_id = waiting.conversation_id
    await store.take(conversation_id, "xena", clock())  # Xena's take cut after its queue step: the record says queued
    stalled = StallsThenDies(a_store, "requeue")
    _, a = instance(stalled, clock)
    late = asyncio.create_task(a.back_in_line(conversation_id))  # the check on A
    await asyncio.wait_for(stalled.reached.wait(), 30)
    lapse(url, conversation_id)
    assert await b.back_in_line(conversation_id)  # the next check, on B: back in line
    await b.take(conversation_id, "bob", 3)
    stalled.go.set()
    with pytest.raises((Killed, Conflict, ActionRefused)):  # its step made (before: Bob's entry un-taken), or refused
        await asyncio.wait_for(late, 30)
    await bob_keeps_it(store, clock, conversation_id, waiting.queue)


class ReadsLateThenStalls:
    """Instance A's store for the check: its read of the entry (``queue_entry``) waits for ``read`` (``reading`` set
    first), its queue step (``requeue``) for ``go`` (``reached`` set first), then is made, then the instance dies."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reading, self.read = asyncio.Event(), asyncio.Event()
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def queue_entry(self, conversation_id: str) -> Any:
        self.reading.set()
        await self.read.wait()
        return await self._store.queue_entry(conversation_id)

    async def requeue(self, *args: Any, **options: Any) -> Any:
        self.reached.set()
        await self.go.wait()
        await self._store.requeue(*args, **options)
        raise Killed


async def test_a_stalled_check_that_reads_the_entry_waiting_leaves_the_next_holder_holding(
    two: tuple[Store, Store], url: str, clock: Clock
) -> None:
    """The check on A reads the young person listed in no queue (Xena's take cut short), stalls past its lease, the
    check on B puts them back in line, A reads their entry: waiting, held by nobody; A stalls again, Bob takes them on
    B, A's step lands. Until 2026-12-08 A's step was ``requeue(holder=None)``, unchecked, which un-took Bob's entry:
    ``Bob's entry left waiting: QueueEntry(..., taken_by=None)``. Now an entry read waiting needs nothing."""
    store, a_store = two
    dispatcher, b = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-read", f"mid.{number}", text))
    [waiting] = await store.waiting()
    conversation_id = waiting.conversation_id
    await store.take(conversation_id, "xena", clock())  # Xena's take cut after its queue step: the record says queued
    stalled = ReadsLateThenStalls(a_store)
    _, a = instance(stalled, clock)
    late = asyncio.create_task(a.back_in_line(conversation_id))  # the check on A: not waiting, read so
    await asyncio.wait_for(stalled.reading.wait(), 30)
    lapse(url, conversation_id)
    assert await b.back_in_line(conversation_id)  # the next check, on B: back in line, waiting
    stalled.read.set()  # A reads the entry now: waiting, held by nobody
    reached = asyncio.create_task(stalled.reached.wait())
    await asyncio.wait({late, reached}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    await b.take(conversation_id, "bob", 3)
    stalled.go.set()
    reached.cancel()
    # its step made (before: Bob's entry un-taken), or nothing to do (now: the entry it read waits)
    with contextlib.suppress(Killed, Conflict, ActionRefused, LockLost):
        assert not await asyncio.wait_for(late, 30)
    await bob_keeps_it(store, clock, conversation_id, waiting.queue)
