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

import pytest

from gateway.errors import Conflict
from gateway.store import Store
from tests.conftest import Clock
from tests.console.test_handback_crash import Killed, held_by_anne, instance
from tests.console.test_transfer_late_enqueue import StallsThenDies, bob_keeps_it, lapse, two, url
from tests.store.conftest import redis_cluster_url, redis_url

__all__ = ["redis_cluster_url", "redis_url", "two", "url"]  # fixtures used below

pytestmark = pytest.mark.redis

KEY = "hb-5e1d"  # the console's id of Anne's hand-back, the same when her browser sends it again


async def test_a_stalled_hand_backs_late_queue_step_leaves_the_next_holder_holding(
    two: tuple[Store, Store], url: str, clock: Clock
) -> None:
    store, a_store = two
    conversation_id = await held_by_anne(store, clock)
    taken = await store.queue_entry(conversation_id)
    assert taken is not None  # its queue: the hand-back puts the young person back in it, Bob takes it there
    stalled = StallsThenDies(a_store, "requeue")
    _, a = instance(stalled, clock)
    _, b = instance(store, clock)
    late = asyncio.create_task(a.hand_back(conversation_id, "anne", key=KEY))
    await asyncio.wait_for(stalled.reached.wait(), 30)
    lapse(url, conversation_id)
    await b.hand_back(conversation_id, "anne", key=KEY)  # Anne's retry, on B: the claim taken over
    await b.take(conversation_id, "bob", 3)
    stalled.go.set()
    with pytest.raises((Killed, Conflict)):  # its step made (before: Bob's entry un-taken), or refused (now)
        await asyncio.wait_for(late, 30)
    await bob_keeps_it(store, clock, conversation_id, taken.queue)
