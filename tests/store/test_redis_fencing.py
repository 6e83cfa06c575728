"""The writes of a message's commit are fenced by the conversation's lock: a commit held on its way past the lease
(a network stall; or a call that timed out on the client, its bytes already sent, reaching Redis later) must not
land on top of what the next holder wrote meanwhile. Until 2026-12-07 the record's script (``put_conversation``)
wrote unconditionally and only its release checked the token: the late commit overwrote the newer record with an
older state and wrote its entry into a conversation another instance had moved on.

A real store behind ``tests/delaying_proxy.py`` (the path towards Redis stalled from the moment the commit's
pipeline leaves, ``stall_at``: no sleep of the test's) past the lock's lease and the socket timeout, a second store
reaching Redis directly: it takes the lock once the lease lapses, processes the next message and commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.messages import ChannelName
from gateway.store import Author, ClaimState, DoneMark, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy, delaying_proxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis

SOCKET_TIMEOUT = 5.0  # GATEWAY_REDIS_SOCKET_TIMEOUT's default
STALL = 8.0  # past the 6 s lease and the socket timeout: the commit's call fails on the client, its bytes land later


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[DelayingProxy]:  # noqa: F811
    async with delaying_proxy(emptied(redis_url), delay=0.001) as proxy:
        yield proxy


def _entry(conversation_id: str, entry_id: str) -> TranscriptEntry:
    return TranscriptEntry(entry_id, conversation_id, datetime.now(UTC), Author.USER, "bonjour")


async def test_a_commit_held_past_the_lease_writes_nothing_over_the_next_holders(
    proxy: DelayingProxy,
    redis_url: str,  # noqa: F811
) -> None:
    late = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(redis_url, keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    try:
        conversation, _ = await other.active_conversation(ChannelName.MESSENGER, "sender-1", datetime.now(UTC))
        cid = conversation.id
        await other.save_conversation(replace(conversation, engine={"step": "start"}))
        failed: list[BaseException] = []
        stalling: list[asyncio.Event] = []

        async def commit_late() -> None:  # the first message's commit, held on its way
            try:
                async with late.locked_batch(cid):
                    found = await late.get_conversation(cid)
                    assert found is not None
                    await late.append_transcript(_entry(cid, "in-a"))
                    await late.save_conversation(replace(found, engine={"step": "a"}), done=DoneMark("in:a", 3600))
                    began = proxy.stall_at(K.done(cid).encode(), seconds=STALL)  # the record's script
                    stalling.append(began)
            except Exception as error:  # the socket timeout: a StoreError
                failed.append(error)

        holder = asyncio.create_task(commit_late())
        async with asyncio.timeout(10):
            while not stalling:
                await asyncio.sleep(0.01)
            await stalling[0].wait()
        held = set(proxy.serving)  # the commit's connection among them
        async with other.locked_batch(cid, timeout=30):  # taken once the late holder's lease lapsed
            found = await other.get_conversation(cid)
            assert found is not None
            await other.append_transcript(_entry(cid, "in-b"))
            await other.save_conversation(replace(found, engine={"step": "b"}), done=DoneMark("in:b", 3600))
        await asyncio.wait_for(holder, 30)
        assert failed, "the late commit was answered within the socket timeout: nothing was tested"
        # the client gave up on the call and closed its connection; the proxy delivers what it holds once the stall
        # is over, then closes the connection to Redis, which runs what it read first: wait for that connection to end
        async with asyncio.timeout(20):
            while all(not task.done() for task in held):
                await asyncio.sleep(0.05)
        record = await other.get_conversation(cid)
        assert record is not None
        assert record.engine == {"step": "b"}, "the late commit overwrote the next holder's record"
        ids = [e.id for e in await other.transcript(cid)]
        assert "in-a" not in ids, "the late commit's entry was written into a conversation moved on"
        assert ids == ["in-b"]
        # nothing says the late message was processed: it is processed again by whoever holds the lock next
        assert await other.claim("in:a", "redelivery", 30) != ClaimState.DONE
    finally:
        await late.close()
        await other.close()
