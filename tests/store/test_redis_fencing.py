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
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis

from gateway.conversation import Conversation, Priority, Status
from gateway.errors import LockLost
from gateway.events import EntryAdded
from gateway.messages import ChannelName
from gateway.store import Claim, ClaimState, DoneMark, Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy
from tests.store.conftest import redis_cluster_url, redis_url  # noqa: F401  (the session's servers)
from tests.store.fencing_setup import (  # noqa: F401  (``opened``, ``proxy``: fixtures)
    SOCKET_TIMEOUT,
    commit_held_past_the_lease,
    entry,
    lose_the_lock,
    opened,
    proxy,
)

pytestmark = pytest.mark.redis


async def test_a_commit_held_past_the_lease_writes_nothing_over_the_next_holders(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    late = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(redis_url, keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    try:
        conversation, _ = await other.active_conversation(ChannelName.MESSENGER, "sender-1", datetime.now(UTC))
        cid = conversation.id
        await other.save_conversation(replace(conversation, engine={"step": "start"}))

        async def first_message(store: Store, found: Conversation) -> None:  # its commit held on its way
            await store.append_transcript(entry(cid, "in-a"))
            await store.save_conversation(replace(found, engine={"step": "a"}), done=DoneMark("in:a", 3600))

        async def next_message(store: Store, found: Conversation) -> None:
            await store.append_transcript(entry(cid, "in-b"))
            await store.save_conversation(replace(found, engine={"step": "b"}), done=DoneMark("in:b", 3600))

        await commit_held_past_the_lease(proxy, late, other, cid, first_message, next_message)
        # Redis refused it (its FENCED answer read by the proxy on the connection the client had left: what
        # bench/chaos.py's ``redis-stall-commit`` counts)
        assert proxy.unheard >= 1 and proxy.fenced >= proxy.unheard
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


async def _processed_by(other: Store, cid: str) -> None:
    async with other.locked_batch(cid, claim=Claim("in:a", "owner-b", 30)) as state:
        assert state is ClaimState.CLAIMED
        found = await other.get_conversation(cid)
        assert found is not None
        await other.append_transcript(entry(cid, "in-a"))
        await other.save_conversation(replace(found, engine={"step": "b"}), done=DoneMark("in:a", 3600))


async def _commit_after_the_lock_was_lost(
    store: Store, client: redis.Redis, cid: str, *, other: Store | None = None
) -> None:
    """The first message's commit, its lock key lost before the commit reached Redis (a fast failover to a replica
    the lock's SET had not reached: its lease not lapsed, the processed mark's deadline not passed); with
    ``other``, the claim lost too and the message processed meanwhile by that other instance."""
    with pytest.raises(LockLost):
        async with store.locked_batch(cid, claim=Claim("in:a", "owner-a", 30)) as state:
            assert state is ClaimState.CLAIMED
            found = await store.get_conversation(cid)
            assert found is not None
            await store.append_transcript(entry(cid, "in-a"))
            await store.save_conversation(replace(found, engine={"step": "a"}), done=DoneMark("in:a", 3600))
            lose_the_lock(client, cid)  # the failover: the lock gone, its lease not over
            if other is not None:  # the claim gone with it: the provider's redelivery processed by another instance
                client.delete(K.seen_claim("in:a"))
                await asyncio.create_task(_processed_by(other, cid))


async def test_a_commit_whose_lock_was_lost_before_its_lease_ended_leaves_its_message_unprocessed(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """The record's save is refused (fenced), so the global processed mark written along in the same pipeline
    (another slot, its deadline not passed) is taken back: the message is processed again by the next delivery.
    Until 2026-12-07 the mark stayed: the message was taken for processed and recorded nowhere (lost)."""
    store, client, _ = opened
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-2", datetime.now(UTC))
    cid = conversation.id
    await _commit_after_the_lock_was_lost(store, client, cid)
    assert await store.transcript(cid) == []  # refused: recorded nowhere
    # the provider's redelivery: processed, once
    assert await store.claim("in:a", "redelivery", 30) is ClaimState.CLAIMED, "the lost message was taken for done"
    async with store.locked_batch(cid, claim=Claim("in:a", "redelivery", 30)) as state:
        assert state is ClaimState.CLAIMED
        found = await store.get_conversation(cid)
        assert found is not None
        await store.append_transcript(entry(cid, "in-a"))
        await store.save_conversation(replace(found, engine={"step": "a"}), done=DoneMark("in:a", 3600))
    assert [e.id for e in await store.transcript(cid)] == ["in-a"]
    assert await store.claim("in:a", "again", 30) is ClaimState.DONE


async def test_a_mark_taken_back_never_undoes_another_instances_processing(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """The lock and the claim both lost: another instance processed the message meanwhile (its record and mark
    written) before the refused commit's mark ran. The mark taken back leaves a lapsed claim naming the
    conversation, whose processed marks decide: DONE, the global mark repaired, never processed twice."""
    store, client, url = opened
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-3", datetime.now(UTC))
    cid = conversation.id
    other = await open_store(url, keys=store_keys(url))
    try:
        await _commit_after_the_lock_was_lost(store, client, cid, other=other)
    finally:
        await other.close()
    record = await store.get_conversation(cid)
    assert record is not None and record.engine == {"step": "b"}
    assert await store.claim("in:a", "redelivery", 30) is ClaimState.DONE
    assert await store.claim("in:a", "again", 30) is ClaimState.DONE


async def test_a_refused_ending_leaves_the_queue_entry_and_the_address_of_the_conversation_it_did_not_end(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """A commit that ends a waiting conversation (a quick exit, a stop) whose record is refused (the lock's key lost
    before the commit reached Redis) must not take its queue entry away (slot ``{queue}``) nor free the sender's
    address: the record still says it waits, and the young person is waiting in the queue."""
    store, client, _ = opened
    now = datetime.now(UTC)
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-4", now)
    cid = conversation.id
    async with store.locked_batch(cid):
        found = await store.get_conversation(cid)
        assert found is not None
        await store.enqueue(cid, "general", Priority.NORMAL, now)
        await store.save_conversation(replace(found, status=Status.QUEUED))
    with pytest.raises(LockLost):
        async with store.locked_batch(cid):
            found = await store.get_conversation(cid)
            assert found is not None and found.status is Status.QUEUED
            await store.save_conversation(replace(found, status=Status.CLOSED))
            lose_the_lock(client, cid)  # the failover: the lock gone, its lease not over
    record = await store.get_conversation(cid)
    assert record is not None and record.status is Status.QUEUED  # refused: it still waits
    assert [e.conversation_id for e in await store.waiting()] == [cid], "its queue entry went with a refused ending"
    again, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-4", now)
    assert again.id == cid, "the sender's address was freed by a refused ending: a second conversation opened"


async def test_a_refused_commit_publishes_none_of_its_events(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """A commit whose conversation's writes are refused (the lock's key lost before its lease ended) must not tell a
    web chat page or a console of an entry the store never kept: until 2026-12-07 its ``EntryAdded`` was published
    all the same (a plain PUBLISH beside the refused scripts): the page showed the bot's reply, then, the message
    processed again, the same reply under a new id (twice), and the history never had the first. Now an event of a
    batch made under the conversation's lock is published by a script fenced by it, as the entries are."""
    store, client, _ = opened
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, "page-1", datetime.now(UTC))
    cid = conversation.id
    listening = client.pubsub()
    listening.subscribe(K.CONVERSATION_EVENTS + cid)
    try:
        assert listening.get_message(timeout=5) is not None  # the subscription's confirmation
        with pytest.raises(LockLost):
            async with store.locked_batch(cid):
                found = await store.get_conversation(cid)
                assert found is not None
                phantom = entry(cid, "reply-refused")
                await store.append_transcript(phantom)
                await store.publish(EntryAdded(cid, phantom))
                await store.save_conversation(replace(found, engine={"step": "a"}))
                lose_the_lock(client, cid)  # the failover: the lock gone, its lease not over
        async with store.locked_batch(cid):  # the message processed again: its reply, told
            found = await store.get_conversation(cid)
            assert found is not None
            kept = entry(cid, "reply-kept")
            await store.append_transcript(kept)
            await store.save_conversation(replace(found, engine={"step": "a"}))
            await store.publish(EntryAdded(cid, kept))  # after the record, which releases the lock when last
        told: list[str] = []
        async with asyncio.timeout(10):
            while not any("reply-kept" in data for data in told):
                message = await asyncio.to_thread(listening.get_message, timeout=1)
                if message is not None and message["type"] == "message":
                    told.append(str(message["data"]))
        assert [e.id for e in await store.transcript(cid)] == ["reply-kept"]
        assert not any("reply-refused" in data for data in told), "a refused entry was told to the conversation's pages"
    finally:
        listening.close()


async def test_a_task_started_under_the_lock_never_takes_its_holders_refusal(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    """A task started under the lock inherits its context, the holder's fence with it, and may write while the
    holder's commit is on its way (a round trip through ``proxy``: the child's answer comes once the holder's commit
    was queued). Until 2026-12-07 its flush read the holder's fence as its own: it cleared the holder's note that a
    fenced script was queued, found no refusal among its own answers, and the holder's refused commit (record,
    entry) was taken for written: no LockLost, the message's mark kept, the message recorded nowhere (lost)."""
    store = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-5", datetime.now(UTC))
        cid = conversation.id
        aside, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-6", datetime.now(UTC))
        children: list[asyncio.Task[None]] = []
        proxy.delay = 0.05  # each way: the child's write still on its way when the holder's commit is queued
        lost = None
        try:
            async with store.locked_batch(cid, claim=Claim("in:a", "owner-a", 30)) as state:
                assert state is ClaimState.CLAIMED
                found, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-5", datetime.now(UTC))
                assert found.id == cid  # the message path's read: its address known, no claim before the flush
                # and its record read under the lock, as the message path reads it (nothing it leaves: the commit
                # one pipeline, its mark taken back; a commit that leaves a set sends it after the record)
                found = await store.get_conversation(cid)
                assert found is not None
                await store.append_transcript(entry(cid, "in-a"))
                await store.save_conversation(replace(found, engine={"step": "a"}), done=DoneMark("in:a", 3600))
                lose_the_lock(client, cid)  # the failover: the lock gone, its lease not over
                children.append(asyncio.create_task(store.append_transcript(entry(aside.id, "aside"))))
                await asyncio.sleep(0)  # the child's write sent first
        except LockLost as error:
            lost = error
        await asyncio.gather(*children)
        assert await store.transcript(cid) == []  # refused: recorded nowhere
        assert await store.claim("in:a", "redelivery", 30) is ClaimState.CLAIMED, "the lost message was taken for done"
        assert lost is not None, "the holder's refused commit was taken for written"
    finally:
        client.close()
        await store.close()
