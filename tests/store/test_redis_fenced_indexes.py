"""A commit refused by the conversation lock's fence leaves the indexes of other slots as the next holder left them:
the status sets and the flagged index list more, never less. Until 2026-12-07 the sets a record's save leaves (its
statuses other than its own, the flagged index when it has no flag: ``save_conversation``'s after part, slot
``{index}``, which cannot read the lock) were written in the same pipeline as the fenced record, so a commit held on
its way past the lease, its record refused, still took the conversation out of the status and the flag the next
holder had saved meanwhile: a conversation with a listener, flagged at risk, missing from ``with_listener`` and from
the console's flagged list until its next change. Now they leave once the record was answered written, as an
ending's writes of other slots do.

A real store behind ``tests/delaying_proxy.py`` (the path towards Redis stalled from the moment the commit's
pipeline leaves, ``stall_at``) past the lock's lease and the socket timeout; a second store reaching Redis directly
takes the lock once the lease lapses and saves the conversation with a listener and a flag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis

from gateway.conversation import RiskFlag, Status
from gateway.messages import ChannelName
from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy, delaying_proxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's servers)

pytestmark = pytest.mark.redis

SOCKET_TIMEOUT = 5.0  # GATEWAY_REDIS_SOCKET_TIMEOUT's default
STALL = 8.0  # past the 6 s lease and the socket timeout


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[DelayingProxy]:  # noqa: F811
    async with delaying_proxy(emptied(redis_url), delay=0.001) as proxy:
        yield proxy


async def test_a_refused_commit_leaves_no_index_the_next_holder_joined(
    proxy: DelayingProxy,
    redis_url: str,  # noqa: F811
) -> None:
    late = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(redis_url, keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        conversation, _ = await other.active_conversation(ChannelName.MESSENGER, "sender-1", datetime.now(UTC))
        cid = conversation.id
        await other.save_conversation(replace(conversation, engine={"step": "start"}))
        failed: list[BaseException] = []
        stalling: list[asyncio.Event] = []

        async def commit_late() -> None:  # a hand-off's commit (its status changed: the bot's set left), held
            try:
                async with late.locked_batch(cid):
                    found = await late.get_conversation(cid)
                    assert found is not None and found.status is Status.BOT
                    await late.save_conversation(replace(found, status=Status.QUEUED, engine={"step": "a"}))
                    stalling.append(proxy.stall_at(K.done(cid).encode(), seconds=STALL))  # the record's script
            except Exception as error:  # the socket timeout: a StoreError
                failed.append(error)

        holder = asyncio.create_task(commit_late())
        async with asyncio.timeout(10):
            while not stalling:
                await asyncio.sleep(0.01)
            await stalling[0].wait()
        held = set(proxy.serving)  # the commit's connection among them
        flag = RiskFlag("suicide", 0.9, "keywords", ("mourir",))
        async with other.locked_batch(cid, timeout=30):  # taken once the late holder's lease lapsed
            found = await other.get_conversation(cid)
            assert found is not None
            moved = replace(found, status=Status.WITH_LISTENER, flag=flag, flagged_at=datetime.now(UTC))
            await other.save_conversation(replace(moved, engine={"step": "b"}))
        await asyncio.wait_for(holder, 30)
        assert failed, "the late commit was answered within the socket timeout: nothing was tested"
        async with asyncio.timeout(20):  # the held pipeline delivered once the stall is over, and run
            while all(not task.done() for task in held):
                await asyncio.sleep(0.05)
        assert proxy.unheard >= 1, "the late record was not refused: nothing was tested"
        record = await other.get_conversation(cid)
        assert record is not None and record.status is Status.WITH_LISTENER
        assert cid in await other.conversation_ids_by_status(Status.WITH_LISTENER), (
            "the refused commit took the conversation out of the next holder's status"
        )
        assert client.zscore(K.FLAGGED, cid) is not None, "the refused commit took the flagged conversation out"
        assert [c.id for c in await other.flagged_conversations(10)] == [cid]
    finally:
        client.close()
        await late.close()
        await other.close()
