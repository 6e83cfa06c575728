"""The Redis script that keeps a late reading's flag on a transcript entry (``set_entry_data``): it replaces the
entry's sealed data only while it is still the data that was read (a reseal meanwhile makes the store read again),
and keeps the entry's head as it is then (a receipt recorded meanwhile stays)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from gateway.store import Author, Delivery, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.store.redis_lua import SCRIPTS
from gateway.testing import kept_provider_id, store_keys

pytestmark = pytest.mark.redis

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


async def test_the_entry_s_data_is_replaced_only_while_it_is_the_one_read_and_its_head_stays(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    await client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        words = TranscriptEntry("c1-e1", "c1", T0, Author.USER, "mes mots", delivery=Delivery.DELIVERED)
        await store.append_transcript(words)
        await store.append_transcript(TranscriptEntry("c1-e2", "c1", T0, Author.BOT, "réponse"))
        key = K.transcript("c1")
        read = (await client.lrange(key, 0, 0))[0]
        data = read.split(b"\n", 2)[2]
        script = client.register_script(SCRIPTS["set_entry_data"])
        assert await script(keys=[key], args=["c1-e1", b"other data", b"new"]) == 0  # changed since it was read
        assert await client.lrange(key, 0, 0) == [read]
        assert await store.set_delivery("c1", "c1-e1", Delivery.READ, "mid-1")  # the head changes meanwhile
        assert await script(keys=[key], args=["c1-e1", data, b"new"]) == 1
        head = f"c1-e1\nr{kept_provider_id(store, 'mid-1')}\n".encode()  # the id's digest since 2026-12-07
        assert await client.lrange(key, 0, 0) == [head + b"new"] and await client.llen(key) == 2
        assert await script(keys=[key], args=["missing", data, b"new"]) == 0
    finally:
        await store.close()
        await client.aclose()
