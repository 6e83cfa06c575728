"""A watermark's receipt (Messenger's ``read``, or a ``delivery`` without message ids: every reply sent up to a
time) costs the entries it changes, not the transcript: ``Store.mark_until`` reads only the replies awaiting a read
receipt (Redis: ``hg:tu:{<conv>}``, a sorted set in the conversation's slot; SQLite: an indexed column), on SQLite,
Redis and Cluster; and the dispatcher no longer loads the transcript for it (before, a young person reading a
500-entry conversation cost 500 decryptions per receipt). Idempotent (a receipt replayed changes nothing, emits
nothing), in the transcript's order, erased with the conversation, expired with its transcript."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.dispatcher import Dispatcher
from gateway.events import DeliveryChanged, Event, Typing
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Receipt
from gateway.store import RECEIPT_KEPT_SECONDS, Author, Delivery, OutboxItem, Store, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.store.redis_lua import INDEXED_FROM, UNREAD_MADE
from gateway.store.sqlite import path_from_url
from gateway.testing import store_keys

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
SENDER = "7012345678901234"
LONG = INDEXED_FROM + 40


def at(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def is_redis(store_url: str) -> bool:
    return store_url.startswith("redis://")


async def said(store: Store, conversation_id: str, n: int) -> None:
    """A young person's message, as the dispatcher records it (delivered: it reached us)."""
    await store.append_transcript(
        TranscriptEntry(f"u{n:04d}", conversation_id, at(n), Author.USER, f"message {n}", delivery=Delivery.DELIVERED)
    )


async def replied(store: Store, conversation_id: str, n: int) -> str:
    """A reply as the dispatcher writes it: its entry and its outbox item, in one batch, at one ``now``."""
    entry = TranscriptEntry(f"r{n:04d}", conversation_id, at(n), Author.BOT, f"reply {n}")
    async with store.batch():
        await store.append_transcript(entry)
        await store.outbox_put(OutboxItem(entry.id, conversation_id, {"text": entry.text}, at(n), awaits_read=True))
    return entry.id


async def conversation_of(store: Store, size: int) -> str:
    """A conversation of ``size`` entries, a message and a reply in turn, every reply sent and read."""
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, SENDER, T0)
    for n in range(0, size, 2):
        await said(store, conversation.id, n)
        reply = await replied(store, conversation.id, n + 1)
        assert await store.outbox_mark_sent(conversation.id, reply, f"mid.{n + 1}")
        await store.set_delivery(conversation.id, reply, Delivery.READ)
    return conversation.id


async def deliveries(store: Store, conversation_id: str) -> dict[str, Delivery]:
    return {e.id: e.delivery for e in await store.transcript(conversation_id)}


async def test_a_watermark_marks_the_replies_sent_up_to_it_once_in_order(store: Store) -> None:
    conversation_id = await conversation_of(store, LONG)
    replies = [await replied(store, conversation_id, n) for n in range(100, 105)]
    sent, delivered, pending_id, later_id, failed_id = replies
    await said(store, conversation_id, 105)
    await store.set_delivery(conversation_id, sent, Delivery.SENT, "mid.100")
    await store.set_delivery(conversation_id, delivered, Delivery.DELIVERED, "mid.101")
    assert await store.outbox_mark_sent(conversation_id, later_id, "mid.103")  # the outbox's own mark
    await store.set_delivery(conversation_id, failed_id, Delivery.FAILED)
    before = await deliveries(store, conversation_id)

    assert await store.mark_until(conversation_id, at(102), Delivery.READ) == ["r0100", "r0101"]
    assert await store.mark_until(conversation_id, at(102), Delivery.READ) == []  # replayed: nothing twice
    after = await deliveries(store, conversation_id)
    assert {i: d for i, d in after.items() if d != before[i]} == {"r0100": Delivery.READ, "r0101": Delivery.READ}
    assert after[pending_id] is Delivery.PENDING and after["u0105"] is Delivery.DELIVERED  # not sent; not a reply

    assert await store.mark_until(conversation_id, at(104), Delivery.DELIVERED) == [later_id]
    assert await store.mark_until(conversation_id, at(104), Delivery.DELIVERED) == []
    assert await store.set_delivery(conversation_id, pending_id, Delivery.SENT, "mid.102")  # sent at last
    assert await store.mark_until(conversation_id, at(999), Delivery.READ) == [pending_id, later_id]
    assert await store.mark_until(conversation_id, at(999), Delivery.READ) == []
    final = await deliveries(store, conversation_id)
    assert final[failed_id] is Delivery.FAILED and final["u0105"] is Delivery.DELIVERED
    assert [e.id for e in await store.transcript(conversation_id)][-6:] == [
        "r0100", "r0101", "r0102", "r0103", "r0104", "u0105",
    ]  # fmt: skip


async def test_a_watermark_before_every_reply_or_of_nobody_changes_nothing(store: Store) -> None:
    conversation_id = await conversation_of(store, 4)
    reply = await replied(store, conversation_id, 10)
    await store.set_delivery(conversation_id, reply, Delivery.SENT, "mid.10")
    assert await store.mark_until(conversation_id, at(9), Delivery.READ) == []
    assert await store.mark_until("no-such-conversation", at(99), Delivery.READ) == []
    with pytest.raises(ValueError):
        await store.mark_until(conversation_id, at(99), Delivery.SENT)
    assert (await deliveries(store, conversation_id))[reply] is Delivery.SENT


async def test_erasure_and_ttls_cover_the_replies_awaiting_a_receipt(store: Store, store_url: str) -> None:
    conversation_id = await conversation_of(store, LONG)
    unread = await replied(store, conversation_id, 100)
    await store.set_delivery(conversation_id, unread, Delivery.SENT, "mid.100")
    client = redis.Redis.from_url(store_url) if is_redis(store_url) else None
    try:
        async with store.batch():
            await store.expire_transcript(conversation_id, 3600)
        if client is not None:
            assert [0 < client.ttl(name) <= 3600 for name in K.transcript_keys(conversation_id)] == [True] * 3
            client.persist(K.transcript_unread(conversation_id))
            await replied(store, conversation_id, 101)  # a reply after the end takes its transcript's TTL
            assert 0 < client.ttl(K.transcript_unread(conversation_id)) <= 3600

        count = len(await store.transcript(conversation_id))
        assert await store.erase_conversation(conversation_id) == count

        assert await store.mark_until(conversation_id, at(999), Delivery.READ) == []
        if client is not None:
            assert client.exists(*K.transcript_keys(conversation_id)) == 0
    finally:
        if client is not None:
            client.close()


@pytest.mark.redis
async def test_a_watermark_reads_what_awaits_it_not_the_transcript(store: Store, store_url: str) -> None:
    """Counted by Redis itself: no list read whole, one LSET per entry changed, a few hundred bytes sent back."""
    if not is_redis(store_url):
        pytest.skip("SQLite: the dispatcher test below traces its statements")
    conversation_id = await conversation_of(store, 300)
    for n in (400, 401):
        await store.set_delivery(conversation_id, await replied(store, conversation_id, n), Delivery.SENT)
    client = redis.Redis.from_url(store_url, decode_responses=True)
    try:
        client.config_resetstat()
        before = client.info("stats")["total_net_output_bytes"]
        assert await store.mark_until(conversation_id, at(999), Delivery.READ) == ["r0400", "r0401"]
        sent = client.info("stats")["total_net_output_bytes"] - before
        stats = client.info("commandstats")
        assert client.zrange(K.transcript_unread(conversation_id), 0, -1) == [UNREAD_MADE]  # awaiting nothing
    finally:
        client.close()
    assert "cmdstat_lrange" not in stats, stats["cmdstat_lrange"]
    assert stats["cmdstat_lset"]["calls"] == 2
    assert sent < 2_000  # the transcript is over 30 KB; the INFO reply itself is counted too


async def reopened_without(store: Store, store_url: str, table: str, column: str, index: str) -> Store:
    """A SQLite file as the version before ``column`` (and its ``index``) left it: the store closed, both dropped,
    the file opened again (which adds the column)."""
    await store.close()
    with sqlite3.connect(path_from_url(store_url)) as conn:
        conn.execute(f"DROP INDEX {index}")
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    return await open_store(store_url, keys=store_keys(store_url))


class Statements:
    """The SQL statements the SQLite store's connection runs: its trace callback (seen, nothing changed), set on
    the store's own thread (the only one that may touch its connection)."""

    def __init__(self, store: Store) -> None:
        self.run = getattr(store, "_run")  # noqa: B009  # the store's thread
        self.seen: list[str] = []

    async def __aenter__(self) -> list[str]:
        await self.run(lambda conn: conn.set_trace_callback(self.seen.append))
        return self.seen

    async def __aexit__(self, *exc_info: object) -> None:
        await self.run(lambda conn: conn.set_trace_callback(None))


async def events_until(subscription: Any, sentinel: Event) -> list[Event]:
    seen: list[Event] = []
    async with asyncio.timeout(10):
        async for event in subscription:
            if event == sentinel:
                return seen
            seen.append(event)
    raise AssertionError("the subscription ended")


async def test_the_dispatcher_tells_each_read_reply_once_without_loading_the_transcript(
    store: Store, store_url: str
) -> None:
    conversation_id = await conversation_of(store, 300)
    for n in (400, 401):
        await store.set_delivery(conversation_id, await replied(store, conversation_id, n), Delivery.SENT)
    await said(store, conversation_id, 402)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=lambda: at(500))
    read = Receipt(ChannelName.MESSENGER, SENDER, "read", watermark=int(at(402).timestamp() * 1000))
    client = redis.Redis.from_url(store_url, decode_responses=True) if is_redis(store_url) else None
    events = await store.subscribe()
    try:
        if client is not None:
            client.config_resetstat()
            for _ in range(2):  # Messenger sends it again: nothing changes twice
                await dispatcher.handle_receipt(read)
            assert "cmdstat_lrange" not in client.info("commandstats")
        else:
            async with Statements(store) as statements:
                for _ in range(2):
                    await dispatcher.handle_receipt(read)
            reads = [s for s in statements if s.startswith("SELECT") and " FROM transcript " in s]
            assert reads and all("unread_us IS NOT NULL" in s for s in reads), reads  # never the whole transcript
        sentinel = Typing("sentinel", "listener")
        await store.publish(sentinel)
        published = await events_until(events, sentinel)
    finally:
        await events.aclose()
        if client is not None:
            client.close()
    assert published == [DeliveryChanged(conversation_id, r, Delivery.READ) for r in ("r0400", "r0401")]
    final = await deliveries(store, conversation_id)
    assert (final["r0400"], final["r0401"], final["u0402"]) == (Delivery.READ, Delivery.READ, Delivery.DELIVERED)


async def test_a_reply_of_a_channel_without_watermarks_awaits_none(store: Store, store_url: str) -> None:
    """Telegram sends no read receipts, WhatsApp one per message: their replies (``OutboxItem.awaits_read`` False,
    the dispatcher's for every channel but Messenger) are never indexed, so they cost no bytes while unread."""
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, "chat-1", T0)
    entry = TranscriptEntry("r0001", conversation.id, at(1), Author.BOT, "reply")
    async with store.batch():
        await store.append_transcript(entry)
        await store.outbox_put(OutboxItem(entry.id, conversation.id, {"text": entry.text}, at(1)))
    await store.set_delivery(conversation.id, entry.id, Delivery.SENT, "tg-1")
    assert await store.mark_until(conversation.id, at(99), Delivery.READ) == []
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url)
        try:
            assert client.exists(K.transcript_unread(conversation.id)) == 0
        finally:
            client.close()


async def test_replies_recorded_before_the_unread_index_are_marked_by_a_watermark(store: Store, store_url: str) -> None:
    """A conversation whose replies were recorded by the version before the index, written as it wrote them: no
    ``hg:tu:`` member (Redis; the conversation created before the store had the sets, ``K.UNREAD_SINCE``), no
    ``unread_us`` column (SQLite; the file opened again adds it). A watermark marks them read as any other; on
    Redis the transcript is read once, at the first watermark, never again."""
    old = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # before the index: any store opened since has a later mark
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, SENDER, old)
    replies = []
    for n in range(0, LONG, 2):
        await said(store, conversation.id, n)
        entry = TranscriptEntry(f"r{n + 1:04d}", conversation.id, at(n + 1), Author.BOT, f"reply {n + 1}")
        async with store.batch():  # as the version before put a reply: nothing awaits a read receipt
            await store.append_transcript(entry)
            await store.outbox_put(OutboxItem(entry.id, conversation.id, {"text": entry.text}, at(n + 1)))
        assert await store.outbox_mark_sent(conversation.id, entry.id, f"mid.{n + 1}")
        replies.append(entry.id)
    await store.set_delivery(conversation.id, replies[0], Delivery.READ)  # read by a per-message receipt
    await store.set_delivery(conversation.id, replies[1], Delivery.DELIVERED)
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url, decode_responses=True)
        try:
            assert client.exists(K.transcript_unread(conversation.id)) == 0  # the layout before
        finally:
            client.close()
    else:
        store = await reopened_without(store, store_url, "transcript", "unread_us", "transcript_unread")
    try:
        later = await replied(store, conversation.id, 500)  # by this version, after: awaits its receipt
        await store.set_delivery(conversation.id, later, Delivery.SENT, "mid.500")
        assert await store.mark_until(conversation.id, at(9), Delivery.READ) == replies[1:5]
        assert await store.mark_until(conversation.id, at(999), Delivery.READ) == [*replies[5:], later]
        final = await deliveries(store, conversation.id)
        assert all(final[r] is Delivery.READ for r in [*replies, later])
        assert all(d is Delivery.DELIVERED for i, d in final.items() if i.startswith("u"))  # theirs: untouched
        if is_redis(store_url):
            client = redis.Redis.from_url(store_url, decode_responses=True)
            try:
                assert client.zrange(K.transcript_unread(conversation.id), 0, -1) == [UNREAD_MADE]
                reply = await replied(store, conversation.id, 600)
                await store.set_delivery(conversation.id, reply, Delivery.SENT, "mid.600")
                client.config_resetstat()
                assert await store.mark_until(conversation.id, at(999), Delivery.READ) == [reply]
                assert "cmdstat_lrange" not in client.info("commandstats")  # made once: never read again
            finally:
                client.close()
    finally:
        if not is_redis(store_url):
            await store.close()


# A watermark that comes before the send's record (Meta accepted the reply, the outbox's record not written yet: a
# record retried through a Redis outage, bench/chaos.py --seed 21). Meta accepted the reply before the outbox got its
# answer (``answered_at``): a watermark at or after that answer certainly covers it; one before it may not.


async def test_a_watermark_before_the_record_applies_when_the_send_was_answered_before_it(store: Store) -> None:
    conversation_id = await conversation_of(store, 4)
    early = await replied(store, conversation_id, 10)  # accepted by Meta, its record on its way
    assert await store.mark_until(conversation_id, at(12), Delivery.READ) == []  # nothing recorded sent yet
    assert (await deliveries(store, conversation_id))[early] is Delivery.PENDING
    shown = await store.outbox_mark_sent(conversation_id, early, "mid.10", answered_at=at(11))
    assert shown == Delivery.READ  # the record shows the kept watermark in its own step (the outbox tells it)
    assert (await deliveries(store, conversation_id))[early] is Delivery.READ  # before: sent, for ever
    assert await store.mark_until(conversation_id, at(12), Delivery.READ) == []  # replayed: nothing more


async def test_a_send_answered_after_the_kept_watermark_stays_as_it_is(store: Store) -> None:
    """Answered after the read: it may have been accepted after it too (a long outage before the send), so it
    is never shown read by that watermark; a delivery watermark after its answer shows it delivered."""
    conversation_id = await conversation_of(store, 4)
    late, delivered = await replied(store, conversation_id, 10), await replied(store, conversation_id, 11)
    assert await store.mark_until(conversation_id, at(14), Delivery.READ) == []
    assert await store.mark_until(conversation_id, at(20), Delivery.DELIVERED) == []
    assert await store.outbox_mark_sent(conversation_id, late, "mid.10", answered_at=at(21)) is not False
    assert await store.outbox_mark_sent(conversation_id, delivered, "mid.11", answered_at=at(15)) == Delivery.DELIVERED
    final = await deliveries(store, conversation_id)
    assert (final[late], final[delivered]) == (Delivery.SENT, Delivery.DELIVERED)


async def test_the_newest_watermark_is_kept_never_an_older_one(store: Store) -> None:
    conversation_id = await conversation_of(store, 4)
    first, second = await replied(store, conversation_id, 10), await replied(store, conversation_id, 11)
    assert await store.mark_until(conversation_id, at(20), Delivery.READ) == []
    assert await store.mark_until(conversation_id, at(12), Delivery.READ) == []  # out of order: never back
    assert await store.outbox_mark_sent(conversation_id, first, "mid.10", answered_at=at(15)) == Delivery.READ
    assert await store.mark_until(conversation_id, at(30), Delivery.READ) == []  # a newer one replaces it
    assert await store.outbox_mark_sent(conversation_id, second, "mid.11", answered_at=at(25)) == Delivery.READ
    final = await deliveries(store, conversation_id)
    assert (final[first], final[second]) == (Delivery.READ, Delivery.READ)


@pytest.mark.parametrize("provider_id", ["mid.10", "mid.10a mid.10b"])  # Redis: ``outbox_sent``; in parts: resolve
async def test_a_record_made_again_answers_the_kept_watermark_its_first_try_showed(
    store: Store, provider_id: str
) -> None:
    """The outbox's retry of a record whose first try showed a kept watermark, its answer lost (a Redis outage, a
    connection cut): answered as the first try was, with the delivery its entry shows, so the outbox tells the
    console the reply read. Until 2026-12-06 the retry answered True on SQLite, on Cluster and for a reply sent in
    parts, and the console was told the reply `sent` while its entry showed it read."""
    conversation_id = await conversation_of(store, 4)
    early = await replied(store, conversation_id, 10)
    assert [i.id for i in await store.outbox_due(at(10), 10, lease_seconds=60)] == [early]
    lease = at(70)
    assert await store.mark_until(conversation_id, at(12), Delivery.READ) == []  # the reply still pending: kept
    first = await store.outbox_mark_sent(conversation_id, early, provider_id, lease=lease, answered_at=at(11))
    again = await store.outbox_mark_sent(conversation_id, early, provider_id, lease=lease, answered_at=at(11))
    assert (first, again) == (Delivery.READ, Delivery.READ)
    assert (await deliveries(store, conversation_id))[early] is Delivery.READ


async def test_a_watermark_between_the_replys_making_and_its_sends_answer_leaves_it_as_it_is(store: Store) -> None:
    """A reply made long before its send (Meta unreachable for an hour, the outbox trying again), recorded sent with
    the time its answer came; a watermark between the reply's making and that answer, delivered after the record
    (Meta redelivers webhooks late), does not show it read nor delivered: Meta may have accepted it after that
    time. A watermark at or after the answer does. Until 2026-12-06 the entry's making time was compared: read."""
    conversation_id = await conversation_of(store, 4)
    late, early = await replied(store, conversation_id, 10), await replied(store, conversation_id, 11)
    assert await store.outbox_mark_sent(conversation_id, late, "mid.10", answered_at=at(3600)) is not False
    assert await store.outbox_mark_sent(conversation_id, early, "mid.11") is not False  # no answer's time: as before
    assert await store.mark_until(conversation_id, at(1800), Delivery.DELIVERED) == [early]
    assert await store.mark_until(conversation_id, at(1800), Delivery.READ) == [early]
    assert (await deliveries(store, conversation_id))[late] is Delivery.SENT
    assert await store.mark_until(conversation_id, at(3600), Delivery.READ) == [late]
    assert (await deliveries(store, conversation_id))[late] is Delivery.READ


async def test_a_watermark_kept_for_a_pending_reply_is_erased_with_its_conversation(
    store: Store, store_url: str
) -> None:
    conversation_id = await conversation_of(store, 4)
    await replied(store, conversation_id, 10)
    assert await store.mark_until(conversation_id, at(12), Delivery.READ) == []
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url)
        try:
            assert client.exists(K.kept_watermark(conversation_id)) == 1
            assert 0 < client.pttl(K.kept_watermark(conversation_id)) <= RECEIPT_KEPT_SECONDS * 1000
            await store.erase_conversation(conversation_id)
            assert client.exists(K.kept_watermark(conversation_id)) == 0
        finally:
            client.close()
    else:
        path = path_from_url(store_url)
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM kept_watermarks").fetchone() == (1,)
        await store.erase_conversation(conversation_id)
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM kept_watermarks").fetchone() == (0,)
