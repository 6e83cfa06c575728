"""The index of who holds how many (``QueueStore.held_index``, ``QueueStore.held_ids``; Redis ``hg:{queue}:holding``
beside each ``held:<listener>``, SQLite the partial index ``queue_held``), on SQLite, Redis and Cluster: kept by the
queue's steps (take, hand-back, a transfer's enqueue, a close's removal); the held records not all accounted for (a
step cut short), ``holders`` too; a store written before the index has it made once (Redis, at the first read), and
no held entry read after. Since 2026-12-07 (before, the console read every held entry at each reload)."""

from __future__ import annotations

from dataclasses import replace

import redis

from gateway.conversation import Conversation, Priority, Status
from gateway.store import HeldIndex, Store
from gateway.store import redis_keys as K
from tests.store.test_contract_flagged import at, opened
from tests.store.test_contract_read_receipts import is_redis


async def held(store: Store, n: int, listener: str) -> Conversation:
    conversation = await opened(store, n, Status.QUEUED)
    conversation.queue, conversation.queued_at, conversation.waiting_since = "listeners", at(n), at(n)
    await store.save_conversation(conversation)
    await store.enqueue(conversation.id, "listeners", Priority.NORMAL, at(n))
    await store.take(conversation.id, listener, at(n))
    conversation = replace(conversation, status=Status.WITH_LISTENER, listener=listener)
    await store.save_conversation(conversation)
    return conversation


async def test_the_index_follows_takes_hand_backs_transfers_and_closes(store: Store) -> None:
    assert await store.held_index() == HeldIndex({}, None)
    a1, a2, b1 = await held(store, 1, "anne"), await held(store, 2, "anne"), await held(store, 3, "bea")
    assert await store.held_index() == HeldIndex({"anne": 2, "bea": 1}, None)  # every held record accounted for
    assert await store.held_ids(["anne", "bea", "cleo"]) == {"anne": sorted([a1.id, a2.id]), "bea": [b1.id]}
    assert await store.held_ids([]) == {}
    await store.requeue(a1.id)  # a hand-back cut after its queue step: the record held, its entry waiting
    index = await store.held_index()
    assert index.counts == {"anne": 1, "bea": 1}
    assert index.whole == {a1.id: None, a2.id: "anne", b1.id: "bea"}  # not all accounted for: who holds each
    await store.save_conversation(replace(a1, status=Status.QUEUED, listener=None))  # the hand-back completed
    assert await store.held_index() == HeldIndex({"anne": 1, "bea": 1}, None)
    await store.enqueue(b1.id, "lgbt", Priority.NORMAL, at(3))  # a transfer to another queue: waiting there
    await store.save_conversation(replace(b1, status=Status.QUEUED, queue="lgbt", listener=None))
    assert await store.held_index() == HeldIndex({"anne": 1}, None)  # Bea holds none: not listed
    assert await store.held_ids(["bea"]) == {}
    await store.take(b1.id, "anne", at(4))
    await store.save_conversation(replace(b1, status=Status.WITH_LISTENER, queue="lgbt", listener="anne"))
    await store.save_conversation(replace(a2, status=Status.CLOSED, closed_at=at(5)))  # a close: record, then entry
    index = await store.held_index()  # Redis: the entry left yet, no held record's; SQLite: gone with the record
    assert index.whole == (None if index.counts == {"anne": 1} else {b1.id: "anne"}), index
    await store.remove_from_queue(a2.id)
    assert await store.held_index() == HeldIndex({"anne": 1}, None)
    assert await store.held_ids(["anne"]) == {"anne": [b1.id]}


async def test_a_store_written_before_the_index_has_it_made_once_and_no_entry_read_after(
    store: Store, store_url: str
) -> None:
    """The old layout (Redis): ``held:<listener>`` sets, no ``hg:{queue}:holding``. The first read makes it from the
    entries (one script), then reads none: no ``HMGET``/``HVALS`` of the entries, no ``SMEMBERS`` of the held
    status's set, whatever the number held. SQLite counts on its index: nothing to make."""
    for n in range(12):
        await held(store, n, f"holder{n % 3}")
    if not is_redis(store_url):
        assert await store.held_index() == HeldIndex({"holder0": 4, "holder1": 4, "holder2": 4}, None)
        return
    client = redis.Redis.from_url(store_url)
    try:
        client.delete(K.QUEUE + "holding", K.QUEUE + "holding:made")
        assert await store.held_index() == HeldIndex({"holder0": 4, "holder1": 4, "holder2": 4}, None)
        assert client.exists(K.QUEUE + "holding:made") == 1
        client.config_resetstat()
        assert await store.held_index() == HeldIndex({"holder0": 4, "holder1": 4, "holder2": 4}, None)
        stats = client.info("commandstats")
        assert not {"cmdstat_hmget", "cmdstat_hvals", "cmdstat_smembers", "cmdstat_evalsha"} & set(stats), stats
        await held(store, 20, "holder0")  # kept by the scripts once made
        assert (await store.held_index()).counts["holder0"] == 5
    finally:
        client.close()
