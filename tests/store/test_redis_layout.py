"""The Redis store after ``gateway store migrate`` reads what the layout before Cluster hash tags wrote: records,
transcripts (entries as compact values, and as hashes ``hg:entry:<id>`` from before), indexes, queues."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import redis

from gateway.cli import main
from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.store import Author, Delivery, TranscriptEntry, open_store
from gateway.store.codec import dumps, encode_entry
from gateway.store.redis_migrate import new_name
from gateway.testing import DATA_KEY, SECRET_KEY, store_keys

pytestmark = pytest.mark.redis

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


def test_every_key_of_the_layout_before_gets_a_slot_safe_name_and_current_names_stay() -> None:
    assert new_name("hg:conv:c1") == ("hg:conv:{c1}", "conversation")
    assert new_name("hg:outbox:item:i1") == ("hg:outbox:item:{i1}", "outbox")
    assert new_name("hg:outbox:conv:c1") == ("hg:{outbox}:conv:c1", "outbox")
    assert new_name("hg:takes:main") == ("hg:{queue}:takes:main", "queue")
    assert new_name("hg:inbox:item:x") == ("hg:{inbox}:item:x", "inbox")
    assert new_name("hg:timers:c1") == (None, "timers")
    for current in ("hg:conv:{c1}", "hg:{outbox}:heads", "hg:timers", "hg:seen:in:x", "hg:evidence:n", "hg:events"):
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
            client.rename(key, key.replace("{index}:", "").replace("{", "").replace("}", ""))
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
        assert await store.set_delivery("old-1", Delivery.READ, "mid-9")
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
