"""Retention and erasure in the store contract: both stores, the same tests.

After a purge the stripped record is still counted and no text of the conversation is left anywhere in the store
(the SQLite file and every Redis key and value are searched); after an erasure nothing names the conversation's id
or the sender's keyed hash.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.ids import entry_id_of_key, entry_id_of_seen, seen_digest
from gateway.messages import Attachment, ChannelName
from gateway.retention import stripped
from gateway.store import (
    Author,
    ClaimState,
    Delivery,
    DoneMark,
    InboxItem,
    OutboxItem,
    PendingLate,
    Store,
    TranscriptEntry,
)
from gateway.store import redis_keys as K

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
SECRET = "je me sens seul depuis la rentrée, personne ne me parle"
NOTE = "note privée : suivi par l'infirmière scolaire"
PHONE = "+33612345678"


async def a_conversation(store: Store, sender: str = PHONE, text: str = SECRET) -> Conversation:
    conversation, _ = await store.active_conversation(ChannelName.WHATSAPP, sender, T0)
    conversation.summary = [("Sujet", text)]
    conversation.engine = {"answers": {"topic": text}, "language": "fr"}
    conversation.flag = RiskFlag("suicide", 0.9, "keywords", (text.split()[-1],))
    entries = [
        TranscriptEntry("u-" + conversation.id, conversation.id, T0, Author.USER, text, delivery=Delivery.DELIVERED,
                        attachments=(Attachment("image", "https://media.example/" + conversation.id),)),
        TranscriptEntry("r-" + conversation.id, conversation.id, T0, Author.BOT, "Réponse : " + text,
                        provider_message_id="SM" + conversation.id),
        TranscriptEntry("n-" + conversation.id, conversation.id, T0, Author.NOTE, NOTE if text == SECRET else "vu"),
    ]  # fmt: skip
    for entry in entries:
        await store.append_transcript(entry)
    payload = {"recipient": sender, "text": "Réponse : " + text}
    await store.outbox_put(OutboxItem("r-" + conversation.id, conversation.id, payload, T0))
    await store.outbox_put(OutboxItem("r2-" + conversation.id, conversation.id, payload, T0))
    await store.outbox_mark_sent(conversation.id, "r-" + conversation.id, "SM" + conversation.id)
    await store.put_upload(f"{conversation.id}/0123abcd", "image/png", b"PNG " + text.encode())
    await store.set_timer(conversation.id, "idle_close", T0 + timedelta(hours=1))
    late = PendingLate(conversation.id, "u-" + conversation.id, windows=True, queued_at=T0)
    await store.late_put(late, "a-live-process", T0 + timedelta(seconds=30))  # its late reading still to come
    await store.enqueue(conversation.id, "general", Priority.NORMAL, T0)
    await store.take(conversation.id, "anne", T0)
    conversation.status, conversation.queue, conversation.listener = Status.WITH_LISTENER, "general", "anne"
    await store.save_conversation(conversation, done=DoneMark("in:whatsapp:" + conversation.id, 3600))
    return conversation


async def close(store: Store, conversation: Conversation) -> Conversation:
    conversation.status, conversation.closed_at, conversation.outcome = Status.CLOSED, T0, "listened"
    await store.remove_from_queue(conversation.id)
    await store.save_conversation(conversation)
    return conversation


def everything(store_url: str) -> str:
    """Every key and value of the store, as text (SQLite: the file's rows; Redis: every key and its value)."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        conn = sqlite3.connect(path)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return "\n".join(repr(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}"))
        finally:
            conn.close()
    options: dict[str, Any] = {"decode_responses": True, "encoding_errors": "surrogateescape"}  # sealed: bytes
    client: redis.Redis | redis.RedisCluster = redis.Redis.from_url(store_url, **options)
    if client.info("cluster").get("cluster_enabled"):  # every node's keys
        client.close()
        client = redis.RedisCluster.from_url(store_url, **options)
    try:
        return "\n".join(f"{key} = {_value(client, key)}" for key in client.scan_iter(count=1000))
    finally:
        client.close()


def _value(client: redis.Redis | redis.RedisCluster, key: str) -> object:
    kind = client.type(key)
    return {
        "string": client.get, "list": lambda k: client.lrange(k, 0, -1), "set": client.smembers,
        "zset": lambda k: client.zrange(k, 0, -1), "hash": client.hgetall,
    }[kind](key)  # fmt: skip


async def test_a_purge_leaves_the_counted_record_and_no_content(store: Store, store_url: str) -> None:
    conversation = await close(store, await a_conversation(store))
    kept = await a_conversation(store, sender="+33699999999", text="un autre jeune, toujours là")
    assert SECRET in [entry.text for entry in await store.transcript(conversation.id)]
    assert SECRET not in everything(store_url)  # sealed at rest (gateway/crypto.py): the purge is checked below

    count = await store.purge_conversation(stripped(conversation, T0 + timedelta(days=31)))

    assert count == 3
    dump = everything(store_url)
    for secret in (SECRET, NOTE, PHONE, "media.example/" + conversation.id, "SM" + conversation.id, "parle"):
        assert secret not in dump, secret
    assert "un autre jeune, toujours là" in [e.text for e in await store.transcript(kept.id)]  # only that one
    assert await store.transcript(conversation.id) == []
    assert await store.transcript(kept.id) != []
    assert await store.get_upload(f"{conversation.id}/0123abcd") is None  # the web chat image too
    assert await store.get_upload(f"{kept.id}/0123abcd") is not None
    record = await store.get_conversation(conversation.id)
    assert record is not None and record.purged_at == T0 + timedelta(days=31)
    assert (record.status, record.outcome, record.channel, record.queue) == (
        Status.CLOSED,
        "listened",
        ChannelName.WHATSAPP,
        "general",
    )
    assert record.flag is not None and record.flag.risk == "suicide" and record.flag.words == ()
    listed = await store.list_conversations(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert {c.id for c in listed} == {conversation.id, kept.id}  # still counted
    assert await store.outbox_get(conversation.id, "r2-" + conversation.id) is None
    assert [p.conversation_id for p in await store.late_claim("x", T0 + timedelta(days=1), T0 + timedelta(days=2),
                                                              10)] == [kept.id]  # fmt: skip
    assert await store.due_timers(T0 + timedelta(days=2)) == [t for t in await store.due_timers(
        T0 + timedelta(days=2)) if t.conversation_id == kept.id]  # fmt: skip


async def test_an_erasure_leaves_nothing_naming_the_conversation(store: Store, store_url: str) -> None:
    conversation = await a_conversation(store)
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune, toujours là")
    await store.outbox_put(OutboxItem("n-gate", "notice-KEYEDHASH42", {"recipient": PHONE, "text": "x"}, T0))
    await store.inbox_put([InboxItem("in:whatsapp:late", "SENDERKEY42", {"sender": PHONE, "text": SECRET}, T0)])

    assert await store.erase_conversation(conversation.id) == 3
    await store.erase_conversation("notice-KEYEDHASH42")
    assert await store.inbox_forget("SENDERKEY42") == 1
    await store.forget_seen([seen_digest("in:whatsapp:" + conversation.id)])

    dump = everything(store_url)
    for secret in (conversation.id, SECRET, NOTE, PHONE, "KEYEDHASH42", "SENDERKEY42"):
        assert secret not in dump, secret
    assert await store.get_conversation(conversation.id) is None
    assert await store.held_by("anne") == 1  # the other conversation only
    assert await store.late_waiting() == 1  # the other conversation's late reading only
    assert await store.get_conversation(other.id) is not None
    assert seen_digest("in:whatsapp:" + other.id) in await store.seen_keys()
    found, created = await store.active_conversation(ChannelName.WHATSAPP, PHONE, T0)
    assert created and found.id != conversation.id  # the erased sender starts afresh


async def test_erasing_a_waiting_conversation_frees_its_queue_place(store: Store) -> None:
    first, _ = await store.active_conversation(ChannelName.TELEGRAM, "111", T0)
    second, _ = await store.active_conversation(ChannelName.TELEGRAM, "222", T0)
    await store.enqueue(first.id, "general", Priority.URGENT, T0)
    await store.enqueue(second.id, "general", Priority.NORMAL, T0)

    await store.erase_conversation(first.id)

    assert [e.conversation_id for e in await store.waiting("general")] == [second.id]
    assert await store.position(second.id) == 1
    assert await store.conversations_by_status(Status.BOT) == [second]


async def test_ended_transcripts_expire_on_redis(store: Store, store_url: str) -> None:
    conversation = await a_conversation(store)
    async with store.batch():
        await store.expire_transcript(conversation.id, 3600)
    if store_url.startswith("redis://"):
        client = redis.Redis.from_url(store_url, decode_responses=True)
        try:
            assert 0 < client.ttl(K.transcript(conversation.id)) <= 3600  # the entries are in it
            assert client.ttl(K.conversation(conversation.id)) == -1  # the record stays, for the figures
        finally:
            client.close()
    assert len(await store.transcript(conversation.id)) == 3


async def test_first_created_is_where_a_purge_starts(store: Store) -> None:
    assert await store.first_created() is None
    await store.active_conversation(ChannelName.TELEGRAM, "2", T0 + timedelta(days=3))
    await store.active_conversation(ChannelName.TELEGRAM, "1", T0)
    assert await store.first_created() == T0


async def test_a_processed_mark_leads_back_to_its_message_entry_and_is_forgotten_by_it(store: Store) -> None:
    """An erasure knows the person's entries, not their messages' keys: each mark (a digest of the key, whatever
    the provider id's length) gives the entry id of its message (``ids.entry_id_of_seen``)."""
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "psid-1", T0)
    keys = ["in:messenger:m_" + "Q7-x_" * 17 + str(n) for n in range(2)]
    for key in keys:
        assert await store.claim(key, "me", 10) is ClaimState.CLAIMED
        await store.save_conversation(conversation, done=DoneMark(key, 3600))
    marks = {entry_id_of_seen(d): d for d in await store.seen_keys()}
    assert set(marks) == {entry_id_of_key(k) for k in keys} and all(len(d) == 16 for d in marks.values())
    await store.forget_seen([marks[entry_id_of_key(keys[0])]])
    assert await store.seen_keys() == [seen_digest(keys[1])]
