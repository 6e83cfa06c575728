"""A hand-back's queue step that reaches Redis late, after its lock lapsed, never un-takes the next holder's entry.

On Redis a hand-back makes its queue step first (``store.requeue``, slot ``{queue}``, which cannot read the lock),
alone, then the rest of its writes in the batch, fenced by the conversation's lock. Anne's instance A starts her
hand-back and stalls (a GC pause, a frozen VM) just before that step leaves it, past its lock's lease; Anne's retry
(the same console key) on instance B takes the claim over and hands back; Bob takes the conversation; then A wakes and
its queue step lands. Until 2026-12-08 it un-took whoever held the entry: Bob's entry waited in the queue while the
record said Bob. A's record then refused (``LockLost``), its undo put the entry back as taken by Bob; but an instance
that died before its undo left it so, and the next alert check (``Actions.complete_hand_back``) handed Bob's young
person back to the queue in the middle of their conversation. Now the step names the holder it hands back from
(``QueueStore.requeue``'s ``holder``): another's entry is refused (Conflict), nothing changed.

A's stall is the store's step held (``tests/store_holds.py``'s way: the real store, nothing of the gateway patched)
while its lock's key is deleted (its lease lapsed: the renewals of a frozen process stop), then A dies right after its
queue step (``Killed``, before its undo). Redis standalone and Cluster. SQLite cannot have it: its conversation locks
go with the process and have no lease (a stalled holder keeps its lock, B's retry waits for it), and its queue step is
in the batch's one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from gateway.conversation import Status
from gateway.errors import Conflict
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import Killed, held_by_anne, instance
from tests.console.test_take_crash import next_check
from tests.store.conftest import emptied, redis_cluster_url, redis_url

__all__ = ["redis_cluster_url", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

KEY = "hb-5e1d"  # the console's id of Anne's hand-back, the same when her browser sends it again


class StallsThenDies:
    """Instance A's store: its next queue step (``requeue``) waits for ``go`` (``reached`` set first), then is made,
    then the instance dies (before anything after it, its undo included)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def requeue(self, conversation_id: str, **options: Any) -> Any:
        self.reached.set()
        await self.go.wait()
        await self._store.requeue(conversation_id, **options)
        raise Killed


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


async def test_a_stalled_hand_backs_late_queue_step_leaves_the_next_holder_holding(
    two: tuple[Store, Store], url: str, clock: Clock
) -> None:
    store, a_store = two
    conversation_id = await held_by_anne(store, clock)
    stalled = StallsThenDies(a_store)
    _, a = instance(stalled, clock)
    _, b = instance(store, clock)
    late = asyncio.create_task(a.hand_back(conversation_id, "anne", key=KEY))
    await asyncio.wait_for(stalled.reached.wait(), 30)
    client = redis.Redis.from_url(url)
    try:
        client.delete(K.lock(conversation_id))  # A frozen past its lease: the lock lapsed
    finally:
        client.close()
    await b.hand_back(conversation_id, "anne", key=KEY)  # Anne's retry, on B: the claim taken over
    await b.take(conversation_id, "bob", 3)
    stalled.go.set()
    with pytest.raises((Killed, Conflict)):  # its step made (before: Bob's entry un-taken), or refused (now)
        await asyncio.wait_for(late, 30)
    entry = await store.queue_entry(conversation_id)
    assert entry is not None and entry.taken_by == "bob", f"Bob's entry left waiting: {entry}"
    assert await store.waiting() == []
    clock.advance(seconds=10)
    await next_check(store, clock)  # the alert check: nothing to complete, Bob keeps the young person
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.WITH_LISTENER, "bob")
    entry = await store.queue_entry(conversation_id)
    assert entry is not None and entry.taken_by == "bob"
    assert await store.held_by("bob") == 1
