"""The Redis conversation lock (docs/architecture.md, "In order, never interleaved"): a lease renewed while held,
released only by its holder, and a dead holder's lease lapsing by itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from gateway.conversation import Priority
from gateway.messages import ChannelName
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys

pytestmark = pytest.mark.redis


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    opened = await open_store(redis_url, keys=store_keys(redis_url))
    yield opened
    await opened.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_slow_holder_keeps_its_lock(store: Store, raw: Redis) -> None:
    conversation = uuid.uuid4().hex
    async with store.lock(conversation):
        lowest = await raw.pttl(K.lock(conversation))
        assert 0 < lowest <= 6_000  # a lease of 6 s
        async with asyncio.timeout(5):  # renewed every 2 s: the time left goes up again
            while (left := await raw.pttl(K.lock(conversation))) < lowest + 1_000:
                lowest = min(lowest, left)
                await asyncio.sleep(0.05)


async def test_a_holder_whose_lease_lapsed_never_frees_the_next_holders_lock(store: Store, raw: Redis) -> None:
    conversation = uuid.uuid4().hex
    key = K.lock(conversation)
    async with store.lock(conversation):
        await raw.set(key, "another-instance", px=6_000)  # our lease lapsed; another instance took the lock
    assert await raw.get(key) == "another-instance"


async def test_a_dead_holders_lock_lapses_by_itself(store: Store, raw: Redis) -> None:
    conversation = uuid.uuid4().hex
    await raw.set(K.lock(conversation), "a-dead-instance", px=300)  # nobody renews it
    async with store.lock(conversation, timeout=5):
        assert await raw.get(K.lock(conversation)) != "a-dead-instance"


async def test_the_record_read_with_the_lock_gives_way_to_the_holders_own_writes(store: Store, raw: Redis) -> None:
    """The lock is taken with the record read in the same step (``lock_read``); the holder's reads are answered
    from it until it writes the record: then from Redis again, held writes sent first."""
    now = datetime.now(UTC)
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, uuid.uuid4().hex, now)
    async with store.lock(conversation.id):
        read = await store.get_conversation(conversation.id)
        assert read is not None and read.priority is Priority.NORMAL
        read.priority = Priority.HIGH
        await store.save_conversation(read)
        again = await store.get_conversation(conversation.id)
        assert again is not None and again.priority is Priority.HIGH
    async with store.locked_batch(conversation.id):
        read = await store.get_conversation(conversation.id)
        assert read is not None and read.priority is Priority.HIGH
        read.priority = Priority.URGENT
        await store.save_conversation(read)  # held in the batch
        again = await store.get_conversation(conversation.id)
        assert again is not None and again.priority is Priority.URGENT


async def test_the_lock_taken_reads_the_record_as_it_is_then(store: Store, raw: Redis) -> None:
    """A record changed before the lock is taken is read as changed (the read rides with the taking)."""
    now = datetime.now(UTC)
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, uuid.uuid4().hex, now)
    async with store.lock(conversation.id):
        pass
    changed = replace(conversation, priority=Priority.URGENT)
    await store.save_conversation(changed)
    async with store.lock(conversation.id):
        read = await store.get_conversation(conversation.id)
    assert read is not None and read.priority is Priority.URGENT
    missing = "missing" + uuid.uuid4().hex
    async with store.lock(missing):
        assert await store.get_conversation(missing) is None
