"""What the tests of the conversation lock's fence share (``tests/store/test_redis_fencing.py``,
``test_redis_fence_slots.py``, ``test_redis_fenced_indexes.py``, ``tests/test_lock_network.py``): a real store on
Redis and on a Cluster with a plain client beside it (``opened``), a transcript entry, and the lock's key lost before
a commit reaches Redis (``lose_the_lock``: a fast failover to a replica the lock's ``SET`` had not reached, its lease
not over; the next holder may take the lock at once).

The stalls are ``tests/delaying_proxy.py``'s: ``proxy``, a fixture, in front of the session's Redis, and
``commit_held_past_the_lease``, a late holder's commit held on its way past the lease and the socket timeout while
the next holder commits (``test_redis_fencing.py``, ``test_redis_fenced_indexes.py``). Until 2026-12-07 each of
those modules wrote its own fixture and its own late commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
import redis

from gateway.conversation import Conversation
from gateway.store import Author, Store, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy, delaying_proxy
from tests.store.conftest import emptied

SOCKET_TIMEOUT = 5.0  # GATEWAY_REDIS_SOCKET_TIMEOUT's default, the stores' here
PAST_THE_LEASE = 8.0  # past the 6 s lease and the socket timeout: a call fails on the client, its bytes land later

# a holder's step under the lock: the store and the conversation as read under it
Step = Callable[[Store, Conversation], Awaitable[None]]


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


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[DelayingProxy]:
    """``tests/delaying_proxy.py`` in front of the session's Redis (emptied), passing everything on at once until a
    test stalls it (``stall_at``). Its module imports ``redis_url`` from ``tests.store.conftest`` too."""
    async with delaying_proxy(emptied(redis_url), delay=0.001) as proxy:
        yield proxy


async def commit_held_past_the_lease(
    proxy: DelayingProxy, late: Store, other: Store, conversation_id: str, late_step: Step, next_step: Step
) -> None:
    """``late`` (behind ``proxy``) takes the conversation's lock and makes ``late_step``, whose commit (the record's
    script: the path towards Redis stalled from the moment it leaves, ``stall_at``; no sleep of the test's) is held
    past the lease and the socket timeout; ``other`` (reaching Redis directly) takes the lock once the lease lapsed
    and makes ``next_step``. Returns once the late commit failed on its client and its held pipeline was delivered
    and run (the proxy's connection to Redis ended). The test reads what Redis answered (``proxy.unheard``,
    ``proxy.fenced``) and what stands."""
    failed: list[BaseException] = []
    stalling: list[asyncio.Event] = []

    async def commit_late() -> None:
        try:
            async with late.locked_batch(conversation_id):
                found = await late.get_conversation(conversation_id)
                assert found is not None
                await late_step(late, found)
                stalling.append(proxy.stall_at(K.done(conversation_id).encode(), seconds=PAST_THE_LEASE))
        except Exception as error:  # the socket timeout: a StoreError
            failed.append(error)

    holder = asyncio.create_task(commit_late())
    async with asyncio.timeout(10):
        while not stalling:
            await asyncio.sleep(0.01)
        await stalling[0].wait()
    held = set(proxy.serving)  # the commit's connection among them
    async with other.locked_batch(conversation_id, timeout=30):  # taken once the late holder's lease lapsed
        found = await other.get_conversation(conversation_id)
        assert found is not None
        await next_step(other, found)
    await asyncio.wait_for(holder, 30)
    assert failed, "the late commit was answered within the socket timeout: nothing was tested"
    # the client gave up on the call and closed its connection; the proxy delivers what it holds once the stall is
    # over, then closes the connection to Redis, which runs what it read first: wait for that connection to end
    async with asyncio.timeout(20):
        while all(not task.done() for task in held):
            await asyncio.sleep(0.05)
