"""What the tests of the conversation lock's fence share (``tests/store/test_redis_fencing.py``,
``test_redis_fence_slots.py``): a real store on Redis and on a Cluster with a plain client beside it (``opened``),
a transcript entry, and the lock's key lost before a commit reaches Redis (``lose_the_lock``: a fast failover to a
replica the lock's ``SET`` had not reached, its lease not over; the next holder may take the lock at once). The
stalls past the lease are ``tests/delaying_proxy.py``'s (``test_redis_fencing.py``, ``test_redis_fenced_indexes.py``,
``tests/test_lock_network.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis

from gateway.store import Author, Store, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.store.conftest import emptied


@pytest.fixture(params=["redis_url", "redis_cluster_url"])
async def opened(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, redis.Redis, str]]:
    url = emptied(request.getfixturevalue(request.param))
    client = redis.Redis.from_url(url, decode_responses=True)
    store = await open_store(url, keys=store_keys(url))
    try:
        yield store, client, url
    finally:
        await store.close()
        client.close()


def entry(conversation_id: str, entry_id: str) -> TranscriptEntry:
    return TranscriptEntry(entry_id, conversation_id, datetime.now(UTC), Author.USER, "bonjour")


def lose_the_lock(client: redis.Redis, conversation_id: str) -> None:
    """The failover: the conversation's lock gone, its lease not over (its holder's next fenced write refused)."""
    client.delete(K.lock(conversation_id))
