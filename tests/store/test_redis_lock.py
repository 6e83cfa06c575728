"""The Redis conversation lock (docs/architecture.md, "In order, never interleaved"): a lease renewed while held,
released only by its holder, and a dead holder's lease lapsing by itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

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
