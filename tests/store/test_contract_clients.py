"""A web chat client's open conversations (``ConversationStore.open_conversations_of_client``), counted from an
index the store keeps, on every store: the count follows each status change, erasure and purge; on SQLite a
partial index answers it; on Redis the client's set lists more, never less, and the reader checks each record."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.retention import stripped
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.store.sqlite import _COUNT_CLIENT, path_from_url
from gateway.testing import store_keys

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
WEB = ChannelName.WEBCHAT
CLIENT, OTHER = "client-hash-1", "client-hash-2"


async def opened_by(store: Store, sender: str, client: str | None, status: Status = Status.BOT) -> Conversation:
    conversation, _ = await store.active_conversation(WEB, sender, T0)
    conversation = replace(conversation, client=client, status=status)
    await store.save_conversation(conversation)
    return conversation


async def test_the_count_follows_the_status_of_each_conversation(store: Store) -> None:
    in_bot = await opened_by(store, "s1", CLIENT)
    queued = await opened_by(store, "s2", CLIENT, Status.QUEUED)
    with_listener = await opened_by(store, "s3", CLIENT, Status.WITH_LISTENER)
    await opened_by(store, "s4", CLIENT, Status.CLOSED)
    await opened_by(store, "s5", OTHER)
    await opened_by(store, "s6", None)
    assert await store.open_conversations_of_client(CLIENT) == 2
    assert await store.open_conversations_of_client(OTHER) == 1
    assert await store.open_conversations_of_client("nobody") == 0

    await store.save_conversation(replace(with_listener, status=Status.QUEUED))  # handed back: waits again
    assert await store.open_conversations_of_client(CLIENT) == 3
    await store.save_conversation(replace(queued, status=Status.WITH_LISTENER))
    await store.save_conversation(replace(in_bot, status=Status.ABANDONED))
    assert await store.open_conversations_of_client(CLIENT) == 1


async def test_erased_and_purged_conversations_no_longer_count(store: Store) -> None:
    erased = await opened_by(store, "s1", CLIENT)
    await opened_by(store, "s2", CLIENT, Status.QUEUED)
    await store.erase_conversation(erased.id)
    assert await store.open_conversations_of_client(CLIENT) == 1
    ended = await opened_by(store, "s3", CLIENT, Status.CLOSED)
    await store.purge_conversation(stripped(ended, T0 + timedelta(days=31)))
    assert await store.open_conversations_of_client(CLIENT) == 1


async def test_sqlite_counts_on_the_partial_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    await (await open_store(url, keys=store_keys(url))).close()  # the file with the store's schema
    conn = sqlite3.connect(path_from_url(url))
    try:
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + _COUNT_CLIENT, ("k",)))
    finally:
        conn.close()
    assert "INDEX conversations_client" in plan and "SCAN" not in plan, plan


async def test_a_sqlite_file_from_before_the_client_column_is_counted_right(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    try:
        await opened_by(store, "s1", CLIENT)
        await opened_by(store, "s2", CLIENT, Status.QUEUED)
        await opened_by(store, "s3", CLIENT, Status.CLOSED)
    finally:
        await store.close()
    conn = sqlite3.connect(path_from_url(url))
    conn.executescript("DROP INDEX conversations_client; ALTER TABLE conversations DROP COLUMN client;")
    conn.close()
    store = await open_store(url, keys=store_keys(url))
    try:
        assert await store.open_conversations_of_client(CLIENT) == 2
    finally:
        await store.close()


@pytest.mark.redis
@pytest.mark.parametrize("which", ["redis_url", "redis_cluster_url"])
async def test_a_redis_set_left_listing_more_counts_only_what_the_records_say(
    request: pytest.FixtureRequest, which: str
) -> None:
    """The states a crash between two steps of ``save_conversation`` leaves: an id added before its record says
    so (not counted, kept), an id not removed after its conversation ended (not counted, dropped), an erased id."""
    url: str = request.getfixturevalue(which)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    store = await open_store(url, keys=store_keys(url))
    try:
        counted = await opened_by(store, "s1", CLIENT)
        not_yet = await opened_by(store, "s2", None)  # the crash came after the set's step, before the record's
        ended = await opened_by(store, "s3", CLIENT)
        await store.save_conversation(replace(ended, status=Status.CLOSED))
        client.sadd(K.client(CLIENT), not_yet.id, ended.id, "erased-long-ago")  # the removal never ran
        assert await store.open_conversations_of_client(CLIENT) == 1
        assert client.smembers(K.client(CLIENT)) == {counted.id, not_yet.id}  # a live record's id stays listed
        await store.save_conversation(replace(not_yet, client=CLIENT))  # the record's step, done again
        assert await store.open_conversations_of_client(CLIENT) == 2
    finally:
        await store.close()
        client.close()


async def test_at_cap_is_the_count_reaching_the_cap_on_every_store(store: Store) -> None:
    """``client_at_cap`` (since 2026-12-07) answers ``open_conversations_of_client(client) >= cap``, whatever
    shortcut the store takes: at each count from 0 to 3 and each cap from 0 to 4."""
    opened: list[Conversation] = []
    for count in range(4):
        assert await store.open_conversations_of_client(CLIENT) == count
        for cap in range(5):
            assert await store.client_at_cap(CLIENT, cap) is (count >= cap), (count, cap)
        opened.append(await opened_by(store, f"s{count}", CLIENT, Status.QUEUED if count % 2 else Status.BOT))
    await store.save_conversation(replace(opened[0], status=Status.WITH_LISTENER))  # taken: no longer counts
    assert [await store.client_at_cap(CLIENT, cap) for cap in (3, 4)] == [True, False]
    assert not await store.client_at_cap(OTHER, 1)


@pytest.mark.redis
@pytest.mark.parametrize("which", ["redis_url", "redis_cluster_url"])
async def test_a_redis_set_listing_leftovers_reads_the_records_at_the_cap(
    request: pytest.FixtureRequest, which: str
) -> None:
    """The set at the cap or over it by a crash's leftovers (ended, erased, another client's id): the records
    decide, never the set's size; never "below" when the open ones are at the cap, never "at" when fewer."""
    url: str = request.getfixturevalue(which)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    store = await open_store(url, keys=store_keys(url))
    try:
        first = await opened_by(store, "s1", CLIENT)
        queued = await opened_by(store, "s2", CLIENT, Status.QUEUED)
        ended = await opened_by(store, "s3", CLIENT)
        await store.save_conversation(replace(ended, status=Status.CLOSED))
        others = await opened_by(store, "s4", OTHER)
        client.sadd(K.client(CLIENT), ended.id, "erased-long-ago", others.id)  # 5 listed, 2 open
        assert await store.client_at_cap(CLIENT, 2) and not await store.client_at_cap(CLIENT, 3)
        assert client.scard(K.client(CLIENT)) == 3  # the ended and missing ones dropped by the read
        await store.save_conversation(replace(first, status=Status.ABANDONED))
        assert not await store.client_at_cap(CLIENT, 2)  # 1 open: its set listed 2 (the other client's id)
        assert client.smembers(K.client(CLIENT)) == {queued.id, others.id}  # a live record's id stays listed
    finally:
        await store.close()
        client.close()
