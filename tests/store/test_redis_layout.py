"""The Redis store after ``gateway store migrate`` reads what earlier layouts wrote: before Cluster hash tags
(records, transcripts, indexes, queues), and a key per transcript entry and per provider id (a store written by
the code of commit 8621530, restored from its ``DUMP``s)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from gateway.cli import main
from gateway.conversation import Conversation, Status
from gateway.ids import seen_digest
from gateway.messages import ChannelName
from gateway.store import Author, ClaimState, Delivery, OutboxItem, OutboxStatus, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.store.codec import dumps, encode_entry
from gateway.store.redis_migrate import new_name
from gateway.testing import DATA_KEY, SECRET_KEY, store_keys

pytestmark = pytest.mark.redis

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


def test_every_key_of_the_layout_before_gets_a_slot_safe_name_and_current_names_stay() -> None:
    assert new_name("hg:conv:c1") == ("hg:c:{c1}", "conversation")
    assert new_name("hg:conv:{c1}") == ("hg:c:{c1}", "conversation")
    assert new_name("hg:done:{c1}") == ("hg:d:{c1}", "processed marks")
    assert new_name("hg:lock:{c1}") == (None, "lock")
    assert new_name("hg:outbox:item:i1") == ("hg:outbox:item:{i1}", "outbox")
    assert new_name("hg:outbox:conv:c1") == ("hg:{outbox}:conv:c1", "outbox")
    assert new_name("hg:takes:main") == ("hg:{queue}:takes:main", "queue")
    assert new_name("hg:inbox:item:x") == ("hg:{inbox}:item:x", "inbox")
    assert new_name("hg:timers:c1") == (None, "timers")
    for current in (
        "hg:c:{c1}",
        "hg:t:{c1}",
        "hg:o:{c1}i1",
        "hg:p:20000:7",
        "hg:{outbox}:heads",
        "hg:timers",
        "hg:{seen}:c:in:x",
        "hg:{seen}:20000:7",
        "hg:evidence:n",
        "hg:events",
        "hg:client:x",
    ):
        assert new_name(current) is None


async def test_a_store_of_the_layout_before_reads_the_same_after_the_migration(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = store_keys(redis_url)
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    store = await open_store(redis_url, keys=keys)
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, "chat-9", T0)
    await store.close()
    old = TranscriptEntry("old-1", conversation.id, T0, Author.BOT, "bonjour", delivery=Delivery.SENT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:  # the same data under the names before
        for key in client.keys("hg:*"):
            before = key.replace("hg:c:", "hg:conv:").replace("{index}:", "")
            client.rename(key, before.replace("{", "").replace("}", ""))
        client.hset("hg:entry:old-1", mapping={"data": dumps(encode_entry(old)), "delivery": "sent"})
        client.rpush(f"hg:transcript:{conversation.id}", "old-1")
        client.sadd(f"hg:timers:{conversation.id}", json.dumps([conversation.id, "reminder"]))
        client.hset("hg:queue:entries", "x", "{}")
    finally:
        client.close()
    monkeypatch.setenv("GATEWAY_STORE", redis_url)
    monkeypatch.setenv("GATEWAY_DATA_KEY", DATA_KEY)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET_KEY)
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0  # the command runs its own event loop
    assert "1 conversation" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0
    assert "nothing: the layout is current" in capsys.readouterr().out
    store = await open_store(redis_url, keys=keys)
    try:
        found = await store.find_active_conversation(ChannelName.TELEGRAM, "chat-9")
        assert found is not None and found.id == conversation.id
        assert [c.id for c in await store.conversations_by_status(Status.BOT)] == [conversation.id]
        new = TranscriptEntry("new-1", conversation.id, T0, Author.USER, "salut", delivery=Delivery.DELIVERED)
        await store.append_transcript(new)
        assert await store.transcript(conversation.id) == [old, new]
        assert await store.set_delivery(conversation.id, "old-1", Delivery.READ, "mid-9")
        read = await store.find_by_provider_id("mid-9")
        assert read is not None and (read.id, read.delivery) == ("old-1", Delivery.READ)
        assert isinstance(await store.get_conversation(conversation.id), Conversation)
    finally:
        await store.close()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.exists(f"hg:timers:{conversation.id}") == 0 and client.hexists("hg:{queue}:entries", "x")
    finally:
        client.close()


async def test_a_store_written_with_a_key_per_entry_and_per_provider_id_reads_the_same_after_the_migration(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``layout_8621530.json``: every key's ``DUMP`` (and TTL) of a store written through the store of commit
    8621530 with the test data key: conversation ``a`` (active: a young person's message, a bot reply sent with
    provider id ``mid-1`` then read, one still pending in the outbox, a message processed, and an entry of the
    layout before that as a hash ``hg:entry:{…}`` with provider id ``mid-old``); conversation ``b`` (closed, its
    transcript expiring in 7 days, its reply failed)."""
    fixture = json.loads((Path(__file__).parent / "layout_8621530.json").read_text())
    a, b = fixture["a"], fixture["b"]
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
        for name, key in fixture["keys"].items():
            client.restore(name, max(key["pttl"], 0), base64.b64decode(key["dump"]))
    monkeypatch.setenv("GATEWAY_STORE", redis_url)
    monkeypatch.setenv("GATEWAY_DATA_KEY", DATA_KEY)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET_KEY)
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0
    out = capsys.readouterr().out
    assert "2 transcript" in out and "6 entry" in out and "1 provider id" in out and "2 outbox" in out
    assert "1 de-duplication mark" in out and "1 outbox pending" in out  # the alert's set, for the pending reply
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0
    assert "nothing: the layout is current" in capsys.readouterr().out
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        names = set(client.keys("hg:*"))
        gone = (
            "hg:e:",
            "hg:entry:",
            "hg:provider:",
            "hg:transcript:",
            "hg:outbox:item:",
            "hg:conv:",
            "hg:done:",
            "hg:seen:",
        )
        assert not [name for name in names if name.startswith(gone)]
        assert 6 * 24 * 3600 < client.ttl(K.transcript(b)) <= 7 * 24 * 3600  # its TTL kept
        assert client.ttl(K.transcript(a)) == -1 and client.ttl(K.done(a)) > 0
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        entries = await store.transcript(a)
        assert [(e.text, e.delivery, e.provider_message_id) for e in entries] == [
            ("Ancien message", Delivery.SENT, "mid-old"), ("bonjour", Delivery.DELIVERED, None),
            ("Salut, je suis là.", Delivery.READ, "mid-1"), ("Tu veux en parler ?", Delivery.PENDING, None),
        ]  # fmt: skip
        found = await store.find_by_provider_id("mid-1")
        assert found is not None and found == entries[2]
        assert await store.claim("in:telegram:77", "me", 10) is ClaimState.DONE
        failed = await store.outbox_get(b, f"b1-{b}")
        assert failed is not None and (failed.status, failed.last_error) == (OutboxStatus.FAILED, "refused")
        assert [e.delivery for e in await store.transcript(b)] == [Delivery.PENDING, Delivery.FAILED]
        await store.outbox_put(OutboxItem(f"b1-{a}", a, {"text": "Salut"}, T0))  # sent already: never again
        assert await store.outbox_oldest_pending() is not None  # the alert sees the reply migrated
        later = T0 + timedelta(minutes=5)  # the pending reply's lease (taken at T0 + 5 s) is over
        [pending] = await store.outbox_due(later, 10)
        assert (pending.id, pending.payload) == (f"b2-{a}", {"text": "Tu veux en parler ?"})
        assert await store.outbox_mark_sent(a, pending.id, "mid-2", lease=pending.next_attempt_at)
        assert await store.outbox_due(later, 10) == []
        assert await store.outbox_oldest_pending() is None
        assert (await store.transcript(a))[3].delivery is Delivery.SENT
        again = await store.find_by_provider_id("mid-2")
        assert again is not None and again.id == f"b2-{a}"
    finally:
        await store.close()


async def test_processed_marks_holding_the_whole_inbound_key_are_recognised_after_the_migration(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Marks as main wrote them before the digests: the whole inbound key as the field of the day's hash, in the
    shard of the key's SHA-256, and as the member of the conversation's processed marks; a lapsed claim naming
    its conversation, whose global mark was never written, is decided by the conversation's mark."""
    keys = store_keys(redis_url)
    long_key = "in:messenger:m_" + "A1b2-C3d4_" * 9  # a mid's length
    short_key = "in:telegram:77"
    today = int(datetime.now(UTC).timestamp()) // 86_400
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.flushdb()
        # days after today: a mark in today's hash would expire at 00:00 UTC, mid-test when the suite runs then
        for key, day in ((long_key, today + 2), (short_key, today + 1)):
            marks = K.seen_marks(day, hashlib.sha256(key.encode()).digest()[-1] % K.SEEN_SHARDS)
            client.hset(marks, key, "1")
            client.expireat(marks, (day + 1) * 86_400)
        assert client.object("encoding", marks) == "listpack"
        lapsed_key = "in:messenger:m_" + "Z9y8-X7w6_" * 9
        until_ms = (today + 3) * 86_400_000
        client.zadd(K.done("conv-1"), {lapsed_key: until_ms, long_key: until_ms})
        client.pexpireat(K.done("conv-1"), until_ms)
        client.set(K.seen_claim(lapsed_key), "c:1:conv-1:dead", ex=3600)
    monkeypatch.setenv("GATEWAY_STORE", redis_url)
    monkeypatch.setenv("GATEWAY_DATA_KEY", DATA_KEY)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET_KEY)
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0
    assert "4 processed mark (whole key)" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0
    assert "nothing: the layout is current" in capsys.readouterr().out
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        fields = {field for name in client.keys(K.SEEN + "[0-9]*") for field in client.hkeys(name)}
        assert fields == {seen_digest(long_key), seen_digest(short_key)}
        assert all(0 < client.ttl(name) <= 4 * 86_400 for name in client.keys(K.SEEN + "[0-9]*"))
        assert set(client.zrange(K.done("conv-1"), 0, -1)) == {seen_digest(lapsed_key), seen_digest(long_key)}
        assert 0 < client.pttl(K.done("conv-1")) <= 3 * 86_400_000
    store = await open_store(redis_url, keys=keys)
    try:
        assert await store.claim(long_key, "me", 10) is ClaimState.DONE  # still processed: never answered twice
        assert await store.claim(short_key, "me", 10) is ClaimState.DONE
        assert await store.claim(lapsed_key, "me", 10) is ClaimState.DONE  # the conversation's mark decided
        assert await store.claim("in:telegram:78", "me", 10) is ClaimState.CLAIMED
        marks = [seen_digest(k) for k in (long_key, short_key, lapsed_key)]  # the last repaired by its claim
        assert sorted(await store.seen_keys()) == sorted(marks)
    finally:
        await store.close()
