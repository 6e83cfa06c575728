"""A reply's provider id as its transcript entry keeps it, on SQLite, Redis and Cluster: with ids of a real
provider's length (a Messenger mid is some 88 characters), a receipt naming the id still finds its entry and takes it
forward (a WhatsApp status callback; a Messenger delivery naming its mids, and its read watermark; a reply sent in
parts, each part's receipt), and a late refusal is still told to be about this conversation (``leaving``). On Redis
the entry's head keeps a fixed-size digest of each id, never the id itself (issue 8: ``bench/load.py --bytes
--real-ids``); an entry written before, its head holding the whole id, is still found and taken forward (a store
upgraded in place). The dispatcher and the outbox are the real ones; the channel a small sender answering long ids.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from gateway.dispatcher import outbox_item
from gateway.leaving import _stale_refusal
from gateway.messages import ChannelName, Outbound, Receipt
from gateway.outbox import Outbox
from gateway.store import Author, Delivery, Store, TranscriptEntry
from gateway.store import redis_keys as K
from tests.store.test_contract_early_receipts import T0, dispatcher_of

MS = ChannelName.MESSENGER
WA = ChannelName.WHATSAPP
SENDERS = {MS: "7012345678901234", WA: "whatsapp:+33600000042"}


def long_id(message_id: str, part: int | None = None) -> str:
    """A Messenger-like id (``m_`` and 86 characters) for a reply (and one of its parts)."""
    own = message_id if part is None else f"{message_id}p{part}"
    return "m_" + (own + "x" * 86)[:86]


class LongIds:
    """Answers every send with a long id, or with its ``parts`` parts' long ids as ``send_parts`` joins them."""

    def __init__(self, parts: int = 1) -> None:
        self.parts = parts

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        if self.parts == 1:
            return long_id(message.id)
        return " ".join(long_id(message.id, n) for n in range(first_part, self.parts))


async def replied(store: Store, channel: ChannelName, entry_id: str = "r1", parts: int = 1) -> str:
    """A reply as the dispatcher writes it (its entry and its item in one batch), sent by the outbox."""
    conversation, _ = await store.active_conversation(channel, SENDERS[channel], T0)
    entry = TranscriptEntry(entry_id, conversation.id, T0, Author.BOT, "Bonjour, je suis là.")
    async with store.batch():
        await store.append_transcript(entry)
        await store.outbox_put(outbox_item(conversation, entry, T0))
    await Outbox(store, {channel: LongIds(parts)}, clock=lambda: T0 + timedelta(minutes=1)).deliver_due()
    return conversation.id


async def delivery_of(store: Store, conversation_id: str, entry_id: str = "r1") -> Delivery:
    return next(e.delivery for e in await store.transcript(conversation_id) if e.id == entry_id)


def client_of(store_url: str) -> redis.Redis | redis.RedisCluster:
    """A client of the store's Redis: the Cluster's is on db 0 (``conftest.redis_cluster_url``), the other on 1."""
    return redis.RedisCluster.from_url(store_url) if store_url.endswith("/0") else redis.Redis.from_url(store_url)


def heads(store_url: str, conversation_id: str) -> list[str]:
    """The heads of the conversation's transcript entries on Redis ("<id>\\n<code><provider id>")."""
    client = client_of(store_url)
    try:
        values = client.lrange(K.transcript(conversation_id), 0, -1)
    finally:
        client.close()
    return [b"\n".join(v.split(b"\n", 2)[:2]).decode() for v in values]


def written_before(store_url: str, conversation_id: str, entry_id: str, provider_id: str) -> None:
    """The entry's head rewritten as the store wrote it before digests: the whole provider id."""
    client = client_of(store_url)
    try:
        key = K.transcript(conversation_id)
        for at, value in enumerate(client.lrange(key, 0, -1)):
            entry, head, data = value.split(b"\n", 2)
            if entry.decode() == entry_id:
                client.lset(key, at, b"\n".join([entry, head[:1] + provider_id.encode(), data]))
    finally:
        client.close()


def is_redis(store_url: str) -> bool:
    return store_url.startswith("redis://")


async def test_a_status_callback_finds_a_reply_of_a_real_length_id(store: Store, store_url: str) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await replied(store, WA)
    await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "delivered", provider_message_id=long_id("r1")))
    assert await delivery_of(store, conversation_id) == Delivery.DELIVERED
    await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "read", provider_message_id=long_id("r1")))
    assert await delivery_of(store, conversation_id) == Delivery.READ
    found = await store.find_by_provider_id(long_id("r1"))
    assert found is not None and (found.conversation_id, found.id) == (conversation_id, "r1")
    assert await store.find_by_provider_id(long_id("r2")) is None
    if is_redis(store_url):
        [head] = heads(store_url, conversation_id)
        assert long_id("r1") not in head and len(head) < len("r1\nr") + 24, head  # a digest, not the id


async def test_a_messenger_delivery_and_watermark_find_replies_of_real_length_ids(store: Store, store_url: str) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await replied(store, MS, "r1")
    await replied(store, MS, "r2")
    delivered = Receipt(MS, SENDERS[MS], "delivered", provider_message_id=long_id("r1"))
    await dispatcher.handle_receipt(delivered)
    assert [await delivery_of(store, conversation_id, r) for r in ("r1", "r2")] == [Delivery.DELIVERED, Delivery.SENT]
    watermark = int((T0 + timedelta(minutes=2)).timestamp() * 1000)
    await dispatcher.handle_receipt(Receipt(MS, SENDERS[MS], "read", watermark=watermark))
    assert [await delivery_of(store, conversation_id, r) for r in ("r1", "r2")] == [Delivery.READ, Delivery.READ]
    if is_redis(store_url):
        assert not any(long_id(r) in h for h in heads(store_url, conversation_id) for r in ("r1", "r2"))


async def test_each_parts_receipt_finds_a_reply_sent_in_parts_of_real_length_ids(store: Store, store_url: str) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await replied(store, WA, parts=3)
    for n in range(3):
        found = await store.find_by_provider_id(long_id("r1", n))
        assert found is not None and found.id == "r1"
    await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "read", provider_message_id=long_id("r1", 2)))
    await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "read", provider_message_id=long_id("r1", 0)))
    assert await delivery_of(store, conversation_id) == Delivery.SENT  # part 1: no word yet
    await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "read", provider_message_id=long_id("r1", 1)))
    assert await delivery_of(store, conversation_id) == Delivery.READ
    assert await store.advance_part(conversation_id, "r1", long_id("r9"), Delivery.FAILED) is None
    if is_redis(store_url):
        [head] = heads(store_url, conversation_id)
        assert not any(long_id("r1", n) in head for n in range(3)), head


async def test_a_late_refusal_of_a_reply_of_this_conversation_is_found_in_its_transcript(
    store: Store, store_url: str
) -> None:
    conversation_id = await replied(store, WA)
    if is_redis(store_url):  # its id's lookup finds nothing (as for a record landing after it): the transcript tells
        client = client_of(store_url)
        try:
            for key in client.scan_iter(match=K.key("p", "*")):
                client.delete(key)
        finally:
            client.close()
        assert await store.find_by_provider_id(long_id("r1")) is None
    assert await _stale_refusal(store, conversation_id, long_id("r1")) is None  # about this conversation: marks it
    assert await _stale_refusal(store, conversation_id, long_id("r2")) is not None


@pytest.mark.redis
async def test_an_entry_written_before_with_the_whole_id_is_still_found_and_taken_forward(
    store: Store, store_url: str
) -> None:
    if not is_redis(store_url):
        pytest.skip("the head's old form is Redis's")
    dispatcher = dispatcher_of(store)
    conversation_id = await replied(store, WA, "r1")
    await replied(store, WA, "r2", parts=3)
    written_before(store_url, conversation_id, "r1", long_id("r1"))
    old_parts = f"{long_id('r2', 0)} {long_id('r2', 1)}~d {long_id('r2', 2)}"
    written_before(store_url, conversation_id, "r2", old_parts)
    assert any(long_id("r1") in h for h in heads(store_url, conversation_id))  # the old form, as written then
    await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "read", provider_message_id=long_id("r1")))
    assert await delivery_of(store, conversation_id, "r1") == Delivery.READ
    for n in (0, 2):
        await dispatcher.handle_receipt(Receipt(WA, SENDERS[WA], "delivered", provider_message_id=long_id("r2", n)))
    assert await delivery_of(store, conversation_id, "r2") == Delivery.DELIVERED
    assert await _stale_refusal(store, conversation_id, long_id("r2", 1)) is None
    await replied(store, WA, "r3")  # written now: its digest
    for kept in (long_id("r1"), long_id("r3")):
        await store.keep_receipt(kept, Delivery.READ)  # a take still to come
    await store.erase_conversation(conversation_id)  # both forms forgotten: the index's fields, the kept receipts
    every_id = (long_id("r1"), *(long_id("r2", n) for n in range(3)), long_id("r3"))
    for provider_id in every_id:
        assert await store.find_by_provider_id(provider_id) is None and await store.kept_receipt(provider_id) is None
    assert await store.kept_receipts_waiting(T0 + timedelta(days=3650), 10) == []
    client = client_of(store_url)
    try:
        assert [k for k in client.scan_iter(match=K.key("p", "*")) if client.hlen(k)] == []
    finally:
        client.close()
