"""The Redis conversation lock (docs/architecture.md, "In order, never interleaved"): a lease renewed while held,
released only by its holder, and a dead holder's lease lapsing by itself."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.conversation import Priority
from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import ROOT
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_store_outage_log import failures

__all__ = ["own_redis"]  # the fixture, imported to be used here

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
        # renewed every 0.5 s at the 5 s socket timeout (``lock_timing``; every 2 s until 2026-12-07): the time left
        # goes up again
        async with asyncio.timeout(5):
            while (left := await raw.pttl(K.lock(conversation))) < lowest + 300:
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


async def test_a_processing_whose_caller_went_away_has_its_lock_error_retrieved_and_logged(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """``Dispatcher.handle_inbound`` shields the processing from its caller's cancellation (a provider or a browser
    hanging up, the shutdown): the processing goes on in a task of its own. When that task then fails (here its
    lock's acquisition: ``locked_batch`` → ``_acquire`` raises StoreError once Redis is gone), nobody awaits it any
    more: its error is retrieved, never "Task exception was never retrieved" (asyncio's shield drops its watch of
    the task once the caller is cancelled), and told to the outage log (counted, said once an outage), not a
    WARNING line a message: a Redis restart in a busy minute would otherwise give one line per message in flight."""
    unretrieved: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(  # a task's error never retrieved; not another test's leftovers the collection finds
        lambda _, context: unretrieved.append(context) if "task" in context or "future" in context else None
    )
    store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    raw = Redis.from_url(own_redis.url, decode_responses=True)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows)
    try:
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-gone", "mid-1", "bonjour"))
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, "psid-gone")
        assert conversation is not None
        await raw.set(K.lock(conversation.id), "another-instance", px=60_000)  # held elsewhere: the message waits
        second = Inbound(ChannelName.MESSENGER, "psid-gone", "mid-2", "j'ai besoin de parler")
        caller = asyncio.create_task(dispatcher.handle_inbound(second))
        claim = K.seen_claim(inbound_key(second))
        async with asyncio.timeout(20):  # its claim names the conversation: it waits for the lock
            while f":{conversation.id}:" not in (await raw.get(claim) or ""):
                await asyncio.sleep(0.02)
        caller.cancel()  # the caller goes away; the processing goes on, waiting for the lock
        with pytest.raises(asyncio.CancelledError):
            await caller
        with caplog.at_level(logging.WARNING, logger="gateway.dispatcher"):
            await raw.aclose()
            await asyncio.to_thread(own_redis.stop)  # its next attempt at the lock fails: StoreError from _acquire
            async with asyncio.timeout(20):
                while any(_processing(task) for task in asyncio.all_tasks()):
                    await asyncio.sleep(0.02)
            gc.collect()  # an unretrieved exception is reported as its task is collected
            await asyncio.sleep(0)  # the done callbacks run
        assert not unretrieved, [context.get("message") for context in unretrieved]
        said = [r.getMessage() for r in caplog.records if r.name == "gateway.dispatcher"]
        assert not [line for line in said if "after its caller went away" in line], said
        assert failures(dispatcher.metrics, "dispatcher") >= 1
    finally:
        loop.set_exception_handler(None)
        await store.close()


def _processing(task: asyncio.Task[object]) -> bool:
    return getattr(task.get_coro(), "__qualname__", "") == "Dispatcher._handle_inbound"


def _renewals_running() -> set[asyncio.Task[Any]]:
    """The lock renewals' tasks alive now (``RedisStore._keep_lock`` and each of its ``_renew_lock``)."""
    return {t for t in asyncio.all_tasks() if not t.done() and _named(t, "_keep_lock", "_renew_lock")}


def _named(task: asyncio.Task[Any], *names: str) -> bool:
    coro = task.get_coro()
    return coro is not None and getattr(coro, "__qualname__", "").endswith(names)


@pytest.mark.parametrize("how", ["lock", "locked_batch"])
async def test_a_lock_held_when_the_store_closes_makes_no_renewal_after_the_close(
    redis_url: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-07 a lock still held when its store closed (a shutdown with a turn in flight) went on being
    renewed every 0.5 s until released, each renewal failing at once on the closed renewals' connections and
    dropped without a word. Now the renewals stop at the close, said once; the lease lapses by itself."""
    store = await open_store(redis_url, keys=store_keys(redis_url))
    conversation = uuid.uuid4().hex
    held = store.lock(conversation) if how == "lock" else store.locked_batch(conversation)
    loop = asyncio.get_running_loop()
    renewals: list[float] = []  # when each renewal began (the loop's time): every task the loop made, looked at

    def counted(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if getattr(coro, "__qualname__", "").endswith("_renew_lock"):
            renewals.append(loop.time())
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counted)
    keeping = True
    try:
        with contextlib.suppress(StoreError):  # the release, after the close, may be refused
            async with held:
                async with asyncio.timeout(5):  # the first renewal, 0.5 s in
                    while not renewals:
                        await asyncio.sleep(0.02)
                await store.close()
                closed_at = loop.time()
                await asyncio.sleep(1.6)  # three renewal periods, the lock still held
                keeping = any(_named(t, "_keep_lock") for t in _renewals_running())
    finally:
        loop.set_task_factory(None)
    begun = [at for at in renewals if at >= closed_at]
    await store.close()
    assert len(begun) == 0, f"{len(begun)} renewal(s) begun after the store closed"
    assert not keeping
    told = [r.getMessage() for r in caplog.records if "renewals stop" in r.getMessage()]
    assert len(told) == 1
