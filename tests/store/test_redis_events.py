"""The Redis store's events: one pub/sub connection per process, shared by every subscription in it."""

from __future__ import annotations

import asyncio

import pytest
import redis

from gateway.events import QueueChanged
from gateway.store import open_store
from gateway.store.redis import EVENTS_CHANNEL
from gateway.testing import store_keys

pytestmark = pytest.mark.redis


def _subscribers(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.pubsub_numsub(EVENTS_CHANNEL)[0][1])
    finally:
        client.close()


async def test_subscriptions_share_one_connection_and_each_gets_every_event(redis_url: str) -> None:
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        before = _subscribers(redis_url)
        first, second = await store.subscribe(), await store.subscribe()
        assert _subscribers(redis_url) == before + 1  # four consumers per instance: Redis sends each event once
        await store.publish(QueueChanged())
        async with asyncio.timeout(10):
            assert isinstance(await anext(first), QueueChanged)
            assert isinstance(await anext(second), QueueChanged)
        await first.aclose()
        await store.publish(QueueChanged())
        async with asyncio.timeout(10):
            assert isinstance(await anext(second), QueueChanged)  # the others go on
        await second.aclose()  # the last one: the connection is closed
        async with asyncio.timeout(10):
            while _subscribers(redis_url) != before:
                await asyncio.sleep(0.01)
        third = await store.subscribe()  # and opened again for the next
        await store.publish(QueueChanged())
        async with asyncio.timeout(10):
            assert isinstance(await anext(third), QueueChanged)
        await third.aclose()
    finally:
        await store.close()
