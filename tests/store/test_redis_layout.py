"""The Redis store reads what an earlier layout wrote: transcript entries stored as hashes (``hg:entry:<id>``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from gateway.store import Author, Delivery, TranscriptEntry, open_store
from gateway.store.codec import dumps, encode_entry
from gateway.testing import store_keys

pytestmark = pytest.mark.redis

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


async def test_entries_of_the_layout_before_are_read_and_updated(redis_url: str) -> None:
    old = TranscriptEntry("old-1", "c-old", T0, Author.BOT, "bonjour", delivery=Delivery.SENT)
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        client.hset("hg:entry:old-1", mapping={"data": dumps(encode_entry(old)), "delivery": "sent"})
        client.rpush("hg:transcript:c-old", "old-1")
    finally:
        client.close()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        new = TranscriptEntry("new-1", "c-old", T0, Author.USER, "salut", delivery=Delivery.DELIVERED)
        await store.append_transcript(new)
        assert await store.transcript("c-old") == [old, new]
        assert await store.set_delivery("old-1", Delivery.READ, "mid-9")
        found = await store.find_by_provider_id("mid-9")
        assert found is not None and (found.id, found.delivery) == ("old-1", Delivery.READ)
    finally:
        await store.close()
