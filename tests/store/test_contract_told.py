"""The supervision board's count of the waiting young people told, in this wait, that the line is closed
(``ConversationStore.told_closed_waiting``; Redis ``hg:{index}:told``, SQLite the ``told_us`` column and its partial
index), on SQLite, Redis and Cluster: kept with each record's save (taken, ended, waiting again or erased, one leaves
it); a store written before the index has it made once (SQLite when the file is opened, Redis at the first count);
the index holds ids and times only. Since 2026-12-07 (before, the board read every waiting record)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import redis

from gateway.conversation import Conversation, Status
from gateway.store import Store
from gateway.store import redis_keys as K
from gateway.store.sqlite import path_from_url
from tests.store.test_contract_flagged import at, opened
from tests.store.test_contract_read_receipts import is_redis, reopened_without


async def waiting(store: Store, n: int) -> Conversation:
    conversation = await opened(store, n, Status.QUEUED)
    conversation.queue, conversation.queued_at, conversation.waiting_since = "listeners", at(n), at(n)
    await store.save_conversation(conversation)
    return conversation


async def told(store: Store, conversation: Conversation, n: int) -> Conversation:
    conversation = replace(conversation, closed_told_at=at(n), updated_at=at(n))
    await store.save_conversation(conversation)
    return conversation


async def test_the_count_follows_each_records_save(store: Store) -> None:
    quiet, taken, ended, again, erased, kept = [await waiting(store, n) for n in range(6)]
    assert await store.told_closed_waiting() == 0
    taken, ended, again, erased, kept = [await told(store, c, 10 + n) for n, c in
                                         enumerate((taken, ended, again, erased, kept))]  # fmt: skip
    assert await store.told_closed_waiting() == 5
    await store.save_conversation(replace(taken, status=Status.WITH_LISTENER, listener="anne"))
    await store.save_conversation(replace(ended, status=Status.CLOSED, closed_at=at(20)))
    await store.save_conversation(replace(again, waiting_since=at(21)))  # handed back: a new wait, told before it
    await store.erase_conversation(erased.id)
    assert await store.told_closed_waiting() == 1
    await store.save_conversation(replace(kept, updated_at=at(30)))  # a message while waiting: still told
    await told(store, quiet, 31)
    assert await store.told_closed_waiting() == 2


async def test_the_index_holds_ids_and_times_never_words(store: Store, store_url: str) -> None:
    conversation = await told(store, await waiting(store, 1), 10)
    assert await store.told_closed_waiting() == 1
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url, decode_responses=True)
        try:
            listed = client.zrange(K.TOLD, 0, -1, withscores=True)
        finally:
            client.close()
        assert listed == [(K.FLAGGED_MADE, 0.0), (conversation.id, float(int(at(10).timestamp() * 1_000_000)))]
    else:
        with sqlite3.connect(path_from_url(store_url)) as conn:
            rows = conn.execute("SELECT told_us FROM conversations WHERE told_us IS NOT NULL").fetchall()
        assert rows == [(int(at(10).timestamp() * 1_000_000),)]


async def test_a_store_written_before_the_index_has_it_made_once(store: Store, store_url: str) -> None:
    """The old layout: no ``hg:{index}:told`` on Redis, no ``told_us`` column on SQLite. Redis makes the index at
    the first count (then never scans again); SQLite fills the column when the file is opened."""
    first, second, _ = [await waiting(store, n) for n in range(3)]
    await told(store, first, 10)
    held = await told(store, second, 11)
    await store.save_conversation(replace(held, status=Status.WITH_LISTENER, listener="anne"))
    third = await told(store, await waiting(store, 4), 12)
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url)
        try:
            client.delete(K.TOLD)
            client.config_resetstat()
            assert await store.told_closed_waiting() == 2
            assert client.info("commandstats")["cmdstat_smembers"]["calls"] == 1  # the waiting status, once
            client.config_resetstat()
            assert await store.told_closed_waiting() == 2
            assert "cmdstat_smembers" not in client.info("commandstats")  # made: never again
        finally:
            client.close()
        await store.save_conversation(replace(third, status=Status.CLOSED, closed_at=at(20)))
        assert await store.told_closed_waiting() == 1
        return
    again = await reopened_without(store, store_url, "conversations", "told_us", "conversations_told")
    try:
        assert await again.told_closed_waiting() == 2
        await again.save_conversation(replace(third, status=Status.CLOSED, closed_at=at(20)))
        assert await again.told_closed_waiting() == 1
    finally:
        await again.close()
