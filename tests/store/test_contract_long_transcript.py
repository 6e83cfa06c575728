"""Long transcripts (a listener's conversation of hundreds of entries): every transcript write keeps its
guarantees (written once, in order, deliveries, flags, the outbox's marks, erasure, TTLs) past the length from
which Redis indexes a transcript (``redis_lua.INDEXED_FROM``), on SQLite, Redis and Cluster; and on Redis no
write of one entry reads the whole list any more (before, every one did: ``LRANGE 0 -1`` inside its script)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.conversation import RiskFlag
from gateway.messages import ChannelName
from gateway.store import Author, Delivery, OutboxItem, Store, TranscriptEntry
from gateway.store import redis_keys as K
from gateway.store.redis_lua import INDEXED_FROM
from gateway.testing import kept_provider_id
from tests.loop_gaps import longest_hold

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
LONG = INDEXED_FROM + 40
FLAG = RiskFlag("suicide", 0.9, "model")


def entry(conversation_id: str, n: int, author: Author = Author.USER) -> TranscriptEntry:
    return TranscriptEntry(f"e{n:04d}", conversation_id, T0 + timedelta(seconds=n), author, f"message {n}")


async def long_conversation(store: Store, size: int = LONG) -> str:
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, "chat-long", T0)
    for n in range(size):
        await store.append_transcript(entry(conversation.id, n, Author.USER if n % 2 else Author.LISTENER))
    return conversation.id


def is_redis(store_url: str) -> bool:
    return store_url.startswith("redis://")


async def test_a_long_transcripts_entries_are_written_once_in_order(store: Store) -> None:
    conversation_id = await long_conversation(store)
    for n in (0, 1, INDEXED_FROM - 1, INDEXED_FROM, LONG - 1):  # a retried processing writes the same ids again
        await store.append_transcript(entry(conversation_id, n))
    await store.append_transcript(entry(conversation_id, LONG))

    assert [e.id for e in await store.transcript(conversation_id)] == [f"e{n:04d}" for n in range(LONG + 1)]


async def test_a_long_transcripts_deliveries_and_flags_reach_the_entry_named(store: Store) -> None:
    conversation_id = await long_conversation(store)

    assert await store.set_delivery(conversation_id, "e0001", Delivery.READ, "pm-early")
    assert await store.set_delivery(conversation_id, f"e{LONG - 2:04d}", Delivery.DELIVERED, "pm-late")
    assert not await store.set_delivery(conversation_id, "nothing", Delivery.READ)
    assert await store.flag_entry(conversation_id, "e0003", FLAG)
    assert not await store.flag_entry(conversation_id, "nothing", FLAG)

    entries = {e.id: e for e in await store.transcript(conversation_id)}
    assert (entries["e0001"].delivery, entries["e0001"].provider_message_id) == (
        Delivery.READ,
        kept_provider_id(store, "pm-early"),
    )
    late = entries[f"e{LONG - 2:04d}"]
    assert (late.delivery, late.provider_message_id) == (Delivery.DELIVERED, kept_provider_id(store, "pm-late"))
    assert entries["e0003"].flag == FLAG and entries["e0003"].text == "message 3"
    assert [e.delivery for e in entries.values()].count(Delivery.PENDING) == LONG - 2
    found = await store.find_by_provider_id("pm-early")
    assert found is not None and found.id == "e0001"


async def test_a_reply_to_a_long_transcript_is_written_sent_and_shown_once(store: Store) -> None:
    conversation_id = await long_conversation(store)
    reply = entry(conversation_id, LONG, Author.BOT)
    item = OutboxItem(reply.id, conversation_id, {"text": "reply"}, T0)
    for _ in range(2):  # a retried processing puts the same reply again
        async with store.batch():
            await store.append_transcript(reply)
            await store.outbox_put(item)

    [due] = await store.outbox_due(T0, 10)
    assert due.id == reply.id
    assert await store.outbox_mark_sent(conversation_id, reply.id, "pm-reply", lease=due.next_attempt_at)
    async with store.batch():  # put once more after its send: never pending again, never written twice
        await store.append_transcript(reply)
        await store.outbox_put(item)

    entries = await store.transcript(conversation_id)
    assert [e.id for e in entries] == [f"e{n:04d}" for n in range(LONG + 1)]
    assert (entries[-1].delivery, entries[-1].provider_message_id) == (
        Delivery.SENT,
        kept_provider_id(store, "pm-reply"),
    )
    assert await store.outbox_due(T0 + timedelta(hours=1), 10) == []


async def test_erasing_a_long_conversation_leaves_no_index(store: Store, store_url: str) -> None:
    conversation_id = await long_conversation(store)
    await store.set_delivery(conversation_id, "e0001", Delivery.READ)

    assert await store.erase_conversation(conversation_id) == LONG

    assert await store.transcript(conversation_id) == []
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url)
        try:
            assert client.exists(*K.transcript_keys(conversation_id)) == 0
        finally:
            client.close()


async def test_an_ended_long_transcript_expires_with_its_index(store: Store, store_url: str) -> None:
    conversation_id = await long_conversation(store)
    async with store.batch():
        await store.expire_transcript(conversation_id, 3600)
    if not is_redis(store_url):
        return  # no TTLs in SQLite: the daily purge deletes the transcript
    client = redis.Redis.from_url(store_url)
    try:
        assert [0 < client.ttl(name) <= 3600 for name in K.transcript_keys(conversation_id)[:2]] == [True, True]
        client.delete(K.transcript_index(conversation_id))  # an index made again later takes its list's TTL
        await store.set_delivery(conversation_id, "e0001", Delivery.READ)
        assert 0 < client.ttl(K.transcript_index(conversation_id)) <= 3600
    finally:
        client.close()


@pytest.mark.redis
async def test_an_index_not_in_step_with_its_transcript_is_made_again(store: Store, store_url: str) -> None:
    """A store of an earlier layout has no index; an index could lapse before its list: the list is the truth."""
    if not is_redis(store_url):
        pytest.skip("the index is Redis's")
    conversation_id = await long_conversation(store)
    index = K.transcript_index(conversation_id)
    client = redis.Redis.from_url(store_url, decode_responses=True)
    try:
        client.delete(index)  # no index at all
        await store.append_transcript(entry(conversation_id, 5))  # still written once
        client.hset(index, mapping={"e0002": 7, "e0007": 2})  # places swapped, its count still right
        assert await store.set_delivery(conversation_id, "e0002", Delivery.READ)
        client.hset(index, "#", 3)  # its count wrong
        await store.append_transcript(entry(conversation_id, LONG))

        entries = await store.transcript(conversation_id)
        assert [e.id for e in entries] == [f"e{n:04d}" for n in range(LONG + 1)]
        assert [e.id for e in entries if e.delivery is Delivery.READ] == ["e0002"]
        assert client.hget(index, "#") == str(LONG + 1) and client.hget(index, "e0007") == "7"
    finally:
        client.close()


@pytest.mark.redis
async def test_no_write_of_one_entry_reads_a_long_transcript_whole(store: Store, store_url: str) -> None:
    """Counted by Redis itself (``INFO commandstats``: the commands scripts run count too): appending an entry, a
    reply's entry and item, its send, a receipt and a flag read no list whole, however long the transcript."""
    if not is_redis(store_url):
        pytest.skip("SQLite finds an entry by its primary key's index")
    conversation_id = await long_conversation(store, 300)
    client = redis.Redis.from_url(store_url, decode_responses=True)
    try:
        client.config_resetstat()
        await store.append_transcript(entry(conversation_id, 300))
        reply = entry(conversation_id, 301, Author.BOT)
        async with store.batch():
            await store.append_transcript(reply)
            await store.outbox_put(OutboxItem(reply.id, conversation_id, {"text": "reply"}, T0))
        [due] = await store.outbox_due(T0, 10)
        assert await store.outbox_mark_sent(conversation_id, due.id, "pm-301", lease=due.next_attempt_at)
        assert await store.set_delivery(conversation_id, "e0010", Delivery.READ)
        assert await store.flag_entry(conversation_id, "e0011", FLAG)
        stats = client.info("commandstats")
    finally:
        client.close()
    assert "cmdstat_lrange" not in stats, stats["cmdstat_lrange"]
    assert stats["cmdstat_lset"]["calls"] == 3 and stats["cmdstat_rpush"]["calls"] == 2


@pytest.mark.redis
async def test_a_receipt_reads_its_entry_not_the_whole_transcript(store: Store, store_url: str) -> None:
    """Redis's bytes sent to its clients (``INFO stats``): the receipt's entry, not 300 entries."""
    if not is_redis(store_url):
        pytest.skip("SQLite finds an entry by its provider id's index")
    conversation_id = await long_conversation(store, 300)
    await store.set_delivery(conversation_id, "e0297", Delivery.SENT, "pm-297")
    client = redis.Redis.from_url(store_url, decode_responses=True)
    try:
        before = client.info("stats")["total_net_output_bytes"]
        found = await store.find_by_provider_id("pm-297")
        sent = client.info("stats")["total_net_output_bytes"] - before
    finally:
        client.close()
    assert found is not None
    assert (found.id, found.conversation_id, found.text) == ("e0297", conversation_id, "message 297")
    assert sent < 5_000  # the whole transcript is over 30 KB; the INFO reply itself is counted too


@pytest.mark.parametrize("size", [3, LONG], ids=["short", "indexed"])
async def test_entries_written_names_the_ids_the_transcript_holds(store: Store, size: int) -> None:
    """Whether an operation cut short wrote its message (ids derived from it): the ids held, the others not, on a
    short transcript and on one Redis indexes; none for a conversation with no transcript."""
    conversation_id = await long_conversation(store, size)
    asked = ["e0000", f"e{size - 1:04d}", "e9999", "e0000", "nothing"]
    assert await store.entries_written(conversation_id, asked) == {"e0000", f"e{size - 1:04d}"}
    assert await store.entries_written(conversation_id, []) == set()
    assert await store.entries_written("no-such-conversation", ["e0000"]) == set()


async def test_a_very_long_transcript_is_decoded_with_the_loop_turning_between_parts(store: Store) -> None:
    """A conversation of 3,000 entries (nothing bounds a transcript: a conversation open for days, a young person
    writing and writing), opened in the console: its entries (~30 µs each, AES-GCM and JSON) were decoded in one
    block until 2026-12-06, which held the loop 0.09 s of a 0.10 s read (0.14 s with the console's rendering),
    each time it was opened. Now a part at a time, the same entries in the same order."""
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, "chat-long", T0)
    size = 3000
    for first in range(0, size, 250):
        async with store.batch():
            for n in range(first, first + 250):
                await store.append_transcript(entry(conversation.id, n, Author.USER if n % 2 else Author.LISTENER))
    entries, longest, took = await longest_hold(store.transcript(conversation.id))
    assert [e.id for e in entries] == [f"e{n:04d}" for n in range(size)]
    assert longest < took / 2, (longest, took)
