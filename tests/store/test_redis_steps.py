"""The Redis store between the steps of an operation that spans slots (``gateway/store/redis.py``'s docstring):
each test writes, with a raw client, the state a crash between two steps leaves, and checks that the store reads
it as the guarantee says, on a standalone Redis and on a Cluster."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.conversation import Conversation, Status
from gateway.crypto import DataKeys
from gateway.dispatcher import Dispatcher
from gateway.errors import LockLost
from gateway.events import QueueChanged
from gateway.flowset import FlowSet
from gateway.ids import seen_digest
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import (
    Author,
    Claim,
    ClaimState,
    Delivery,
    DoneMark,
    OutboxItem,
    Store,
    TimerKind,
    TranscriptEntry,
    open_store,
)
from gateway.store import redis_keys as K
from gateway.store.codec import to_us
from gateway.store.identities import OneMessage
from gateway.testing import DATA_KEY, SECRET_KEY, store_keys
from tests.conftest import ROOT

pytestmark = pytest.mark.redis

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
TG = ChannelName.TELEGRAM
KEY = "in:telegram:5001"


@pytest.fixture(params=["redis_url", "redis_cluster_url"])
async def opened(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, redis.Redis]]:
    url: str = request.getfixturevalue(request.param)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    store = await open_store(url, keys=store_keys(url))
    try:
        yield store, client
    finally:
        await store.close()
        client.close()


@pytest.mark.parametrize("locking", ["lock", "locked_batch"])
async def test_a_claim_that_lapsed_between_its_save_and_the_global_mark_is_done(
    opened: tuple[Store, redis.Redis], locking: str
) -> None:
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-1", T0)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with getattr(store, locking)(conversation.id):  # a claim under the lock names the conversation
        assert await store.claim(KEY, "dead", 10, now=long_ago) is ClaimState.CLAIMED
        claimed = client.get(K.seen_claim(KEY))
        await store.save_conversation(conversation, done=DoneMark(KEY, 3600))
    [marks] = [name for name in client.keys(K.SEEN + "*") if client.hexists(name, seen_digest(KEY))]
    client.hdel(marks, seen_digest(KEY))  # the owner died before the last step (the global mark): its claim lapsed
    client.set(K.seen_claim(KEY), str(claimed))
    assert await store.claim(KEY, "alive", 10) is ClaimState.DONE  # the conversation's mark decides
    assert client.hexists(marks, seen_digest(KEY)) and not client.exists(K.seen_claim(KEY))  # the global mark repaired


async def test_a_claim_that_names_no_conversation_goes_with_its_lease(opened: tuple[Store, redis.Redis]) -> None:
    """A claim made before the lock (its owner may die there, reading the model) names no conversation, so an
    erasure cannot find it: its key (the provider's message id) expires with its lease, not 8 days later."""
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-8", T0)
    assert await store.claim(KEY, "dead", 10) is ClaimState.CLAIMED
    assert 0 < client.pttl(K.seen_claim(KEY)) <= 10_000
    async with store.lock(conversation.id):  # named: kept past its lease, for its conversation's mark to decide
        assert await store.claim(KEY, "dead", 10) is ClaimState.CLAIMED
    assert client.ttl(K.seen_claim(KEY)) > 7 * 24 * 3600


async def test_a_claim_riding_with_the_lock_names_the_conversation(opened: tuple[Store, redis.Redis]) -> None:
    """``locked_batch(claim=...)`` renews the claim in the round trip that takes the lock: it must name the
    conversation, whose mark decides once the claim lapses between the save and the global mark."""
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-3", T0)
    assert await store.claim(KEY, "dead", 10) is ClaimState.CLAIMED  # before the lock: names no conversation
    async with store.locked_batch(conversation.id, claim=Claim(KEY, "dead", 10)) as state:
        assert state is ClaimState.CLAIMED
        claimed = str(client.get(K.seen_claim(KEY)))
        await store.save_conversation(conversation, done=DoneMark(KEY, 3600))
    _, _, named, owner = claimed.split(":", 3)
    assert named == conversation.id
    [marks] = [name for name in client.keys(K.SEEN + "*") if client.hexists(name, seen_digest(KEY))]
    client.hdel(marks, seen_digest(KEY))  # died before the last step (the global mark): its lease lapsed
    client.set(K.seen_claim(KEY), f"c:1:{named}:{owner}")
    assert await store.claim(KEY, "alive", 10) is ClaimState.DONE  # the conversation's mark decides


async def test_an_address_read_with_the_claim_that_went_stale_finds_the_conversation_of_now(
    opened: tuple[Store, redis.Redis],
) -> None:
    """The claim reads the sender's address along (``claim(sender=...)``), for the lookup that follows; meanwhile
    the conversation it named may end and another instance start the next one: that one is found, none is made."""
    store, _ = opened

    async def elsewhere(then: Status | None) -> Conversation:  # another task: not this one's address read
        found, _ = await store.active_conversation(TG, "chat-4", T0)
        if then is not None:
            found.status = then
            await store.save_conversation(found)
        return found

    first = await asyncio.create_task(elsewhere(None))
    assert await store.claim(KEY, "me", 10, sender=(TG, "chat-4")) is ClaimState.CLAIMED  # reads: first
    await asyncio.create_task(elsewhere(Status.CLOSED))  # first ends
    second = await asyncio.create_task(elsewhere(None))  # and the next one starts
    found, created = await store.active_conversation(TG, "chat-4", T0)
    assert (found.id, created) == (second.id, False) and second.id != first.id

    assert await store.claim(KEY + "1", "me", 10, sender=(TG, "chat-5")) is ClaimState.CLAIMED  # reads: none
    started, _ = await asyncio.create_task(store.active_conversation(TG, "chat-5", T0))
    found, created = await store.active_conversation(TG, "chat-5", T0)
    assert (found.id, created) == (started.id, False)

    assert await store.claim(KEY + "2", "me", 10, sender=(TG, "chat-7")) is ClaimState.CLAIMED  # reads: none
    started, _ = await asyncio.create_task(store.active_conversation(TG, "chat-7", T0))
    async with store.locked_active(TG, "chat-7", T0) as (locked, _):  # the lookup starts from "none"
        assert locked.id == started.id


async def test_locked_active_lets_an_ended_conversation_left_on_the_address_go(
    opened: tuple[Store, redis.Redis],
) -> None:
    """The lock is taken on the conversation the address holds, its record read in the same step: an ended one (a
    crash left the address on it) is let go, unlocked and unchanged, and a new conversation is opened."""
    store, client = opened
    first, _ = await store.active_conversation(TG, "chat-6", T0)
    address = next(iter(client.scan_iter(match=K.key("active", "*"))))
    first.status = Status.CLOSED
    await store.save_conversation(first)
    client.set(address, first.id)  # died before the step that frees the address
    assert await store.claim(KEY, "me", 10, sender=(TG, "chat-6")) is ClaimState.CLAIMED  # reads: first
    async with store.locked_active(TG, "chat-6", T0, claim=Claim(KEY, "me", 10)) as (found, state):
        assert state is ClaimState.CLAIMED and found.id != first.id and found.active
    assert await store.get_conversation(first.id) == first
    async with store.lock(first.id, timeout=1):  # let go
        pass


async def test_a_lapsed_claim_whose_conversation_has_no_mark_is_claimed_again(
    opened: tuple[Store, redis.Redis],
) -> None:
    store, _ = opened
    conversation, _ = await store.active_conversation(TG, "chat-1", T0)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with store.lock(conversation.id):
        assert await store.claim(KEY, "dead", 10, now=long_ago) is ClaimState.CLAIMED  # died before its save
    assert await store.claim(KEY, "alive", 10) is ClaimState.CLAIMED
    assert await store.claim(KEY, "dead", 10) is ClaimState.BUSY


async def test_an_address_left_on_an_ended_conversation_counts_as_none(opened: tuple[Store, redis.Redis]) -> None:
    store, client = opened
    first, _ = await store.active_conversation(TG, "chat-2", T0)
    address = next(iter(client.scan_iter(match=K.key("active", "*"))))
    first.status = Status.CLOSED
    await store.save_conversation(first)
    client.set(address, first.id)  # died before the step that frees the address
    assert await store.find_active_conversation(TG, "chat-2") is None
    second, created = await store.active_conversation(TG, "chat-2", T0)
    assert created and second.id != first.id
    client.set(address, "a-record-that-expired")  # a new conversation whose first save never came
    third, created = await store.active_conversation(TG, "chat-2", T0)
    assert created and third.id not in (first.id, second.id)


def _item(item_id: str, conversation_id: str) -> OutboxItem:
    return OutboxItem(item_id, conversation_id, {"text": item_id}, T0, T0)


async def test_a_line_naming_an_item_resolved_already_drops_it_and_the_next_goes_out(
    opened: tuple[Store, redis.Redis],
) -> None:
    store, client = opened
    for item_id in ("a1", "a2"):
        await store.append_transcript(TranscriptEntry(item_id, "c1", T0, Author.BOT, item_id))
        await store.outbox_put(_item(item_id, "c1"))
    (first,) = await store.outbox_due(T0, 10)
    assert await store.outbox_mark_sent(first.conversation_id, first.id, "mid-1", lease=first.next_attempt_at)
    client.zadd(K.outbox_line("c1"), {"a1": 0})  # died between the item step and the line step
    client.zadd(K.OUTBOX + "heads", {"c1": 0})
    handed = [i.id for i in await store.outbox_due(T0, 10)] + [i.id for i in await store.outbox_due(T0, 10)]
    assert handed == ["a2"]  # a1 is dropped from its line, never sent twice
    await store.outbox_put(_item("a1", "c1"))  # a retried processing puts the sent item again: ignored
    assert (await store.transcript("c1"))[0].delivery is Delivery.SENT
    assert [i.id for i in await store.outbox_due(T0 + timedelta(hours=1), 10)] == ["a2"]  # its lease lapsed


async def test_an_item_whose_line_step_was_lost_is_listed_when_its_processing_is_retried(
    opened: tuple[Store, redis.Redis],
) -> None:
    store, client = opened
    await store.outbox_put(_item("b1", "c2"))
    client.delete(K.outbox_line("c2"))  # died between the item step and the line step (nothing marked done)
    client.zrem(K.OUTBOX + "heads", "c2")
    assert await store.outbox_due(T0, 10) == []
    await store.outbox_put(_item("b1", "c2"))  # the message's processing is retried: the same id is put again
    assert [i.id for i in await store.outbox_due(T0, 10)] == ["b1"]


async def test_a_conversation_joins_its_status_set_before_its_record_and_readers_check_the_record(
    opened: tuple[Store, redis.Redis],
) -> None:
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-3", T0)
    client.sadd(K.status(str(Status.QUEUED)), conversation.id)  # died after joining, before the record's step
    assert await store.conversations_by_status(Status.QUEUED) == []
    assert [c.id for c in await store.conversations_by_status(Status.BOT)] == [conversation.id]
    assert isinstance(await store.get_conversation(conversation.id), Conversation)


def _hexists_calls(client: redis.Redis) -> int:
    found = client.info("commandstats").get("cmdstat_hexists")
    return int(found["calls"]) if found else 0


async def test_renewing_ones_own_claim_reads_no_processed_marks(opened: tuple[Store, redis.Redis]) -> None:
    """A claim is renewed twice a message at least (under the lock, then every third of the lease): while its
    owner's claim is held no mark can hold the id (a mark's script deletes the claim), so the days' marks (33
    HEXISTS) are read only by a claim that is not the owner's own."""
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-9", T0)
    before = _hexists_calls(client)
    assert await store.claim(KEY, "me", 10) is ClaimState.CLAIMED
    first = _hexists_calls(client) - before
    assert first >= K.SEEN_DAYS  # a new claim reads every day's marks
    async with store.locked_batch(conversation.id, claim=Claim(KEY, "me", 10)) as state:
        assert state is ClaimState.CLAIMED
        assert await store.claim(KEY, "me", 10) is ClaimState.CLAIMED
    assert _hexists_calls(client) - before == first  # the two renewals read none
    assert await store.claim(KEY, "other", 10) is ClaimState.BUSY  # another owner still reads them
    assert _hexists_calls(client) - before == 2 * first


async def test_an_owner_renewing_after_another_saved_the_message_finds_it_done(
    opened: tuple[Store, redis.Redis],
) -> None:
    """Its lease lapsed, another owner claimed the message and saved it: the first owner's renewal finds its
    claim gone and the mark there, so it is told DONE, never CLAIMED (the message would be processed twice)."""
    store, _ = opened
    conversation, _ = await store.active_conversation(TG, "chat-10", T0)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await store.claim(KEY, "slow", 10, now=long_ago) is ClaimState.CLAIMED  # lapsed long ago
    async with store.lock(conversation.id):
        assert await store.claim(KEY, "fast", 10) is ClaimState.CLAIMED
        await store.save_conversation(conversation, done=DoneMark(KEY, 3600))
    assert await store.claim(KEY, "slow", 10) is ClaimState.DONE


def _calls(client: redis.Redis, command: str) -> int:
    found = client.info("commandstats").get(f"cmdstat_{command}")
    return int(found["calls"]) if found else 0


EIGHT_DAYS = 8 * 24 * 3600  # the dispatcher's DEDUPE_TTL_SECONDS


async def test_a_claim_told_how_long_its_mark_is_kept_looks_only_where_such_a_mark_can_be(
    opened: tuple[Store, redis.Redis],
) -> None:
    """A message's processed mark is kept 8 days (``DEDUPE_TTL_SECONDS``), in the hash of the day it expires on:
    saved at or before now, that day is at most 8 days from today, one more for an instance whose clock ran ahead.
    The dispatcher's claim says so (``kept_seconds``): it reads those 10 days' marks, not the 33 of the
    longest-kept mark (a notice's code), and finds a mark on each of them."""
    store, client = opened
    digest = seen_digest(KEY)
    before = _calls(client, "hexists")
    assert await store.claim(KEY, "first", 10, kept_seconds=EIGHT_DAYS) is ClaimState.CLAIMED
    assert _calls(client, "hexists") - before == 10
    await store.release(KEY, "first")
    for ahead in range(10):
        today = to_us(datetime.now(UTC)) // 86_400_000_000
        marks = K.seen_marks(today + ahead, K.seen_shard(digest))
        client.hset(marks, digest, "1")
        found = await store.claim(KEY, f"again-{ahead}", 10, kept_seconds=EIGHT_DAYS)
        if to_us(datetime.now(UTC)) // 86_400_000_000 == today:  # (midnight, UTC, between the two: not this time)
            assert found is ClaimState.DONE, ahead
        client.hdel(marks, digest)


async def test_a_mark_saved_is_found_by_a_claim_told_how_long_it_is_kept(opened: tuple[Store, redis.Redis]) -> None:
    store, _ = opened
    conversation, _ = await store.active_conversation(TG, "chat-12", T0)
    async with store.locked_batch(conversation.id, claim=Claim(KEY, "me", 10, EIGHT_DAYS)) as state:
        assert state is ClaimState.CLAIMED
        await store.save_conversation(conversation, done=DoneMark(KEY, EIGHT_DAYS))
    assert await store.claim(KEY, "redelivered", 10, kept_seconds=EIGHT_DAYS) is ClaimState.DONE


async def test_a_save_under_the_lock_leaves_the_other_status_sets_only_when_its_status_changed(
    opened: tuple[Store, redis.Redis],
) -> None:
    """Most messages change neither the status nor the flag: their save joins the status's set (before the record:
    an index lists more, never less) and no longer leaves the others (six commands in a script), which the save of
    the record read under the lock left already. A crash's leftover (the id in a set it left) stays until the
    status next changes, read past by every reader as before (they check the record)."""
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-11", T0)
    client.sadd(K.status(str(Status.QUEUED)), conversation.id)  # a crash's leftover
    before = _calls(client, "srem")
    async with store.locked_batch(conversation.id):
        current = await store.get_conversation(conversation.id)
        assert current is not None
        await store.save_conversation(current)  # still with the bot
    assert _calls(client, "srem") == before  # the other sets not left again
    assert client.sismember(K.status(str(Status.BOT)), conversation.id)
    assert await store.conversations_by_status(Status.QUEUED) == []  # the leftover read past
    for status in (Status.QUEUED, Status.WITH_LISTENER):
        async with store.locked_batch(conversation.id):
            current = await store.get_conversation(conversation.id)
            assert current is not None
            await store.save_conversation(replace(current, status=status, queue="listeners"))
        assert _calls(client, "srem") > before  # changed: the others left
        members = {s: client.sismember(K.status(str(s)), conversation.id) for s in Status}
        assert members == {s: s == status for s in Status}
        before = _calls(client, "srem")


def _scripts(client: redis.Redis) -> int:
    return _calls(client, "eval") + _calls(client, "evalsha")


async def test_the_lock_goes_with_the_record_when_its_save_is_the_batchs_last_write(
    opened: tuple[Store, redis.Redis],
) -> None:
    """A message's batch ends with its record's save: the record's script releases the lock (one script less a
    message), checking the token as ``unlock`` does, so a lock that lapsed and is somebody else's now is left alone.
    Another write after the save, or an event (published by a script fenced by the lock since 2026-12-07: until then
    the record released the lock before the events that followed it): the release stays the batch's last step,
    alone."""
    store, client = opened
    conversation, _ = await store.active_conversation(TG, "chat-13", T0)
    before = _scripts(client)
    async with store.locked_batch(conversation.id):
        current = await store.get_conversation(conversation.id)
        assert current is not None
        await store.save_conversation(current)
    assert _scripts(client) - before == 3  # the lock taken, the status set joined, the record with the release
    assert not client.exists(K.lock(conversation.id))
    before = _scripts(client)
    async with store.locked_batch(conversation.id):
        current = await store.get_conversation(conversation.id)
        assert current is not None
        await store.save_conversation(current)
        await store.publish(QueueChanged())  # an event after the record: published while the lock holds
    assert _scripts(client) - before == 5  # taken, joined, the record, the event's script, then the release alone
    assert not client.exists(K.lock(conversation.id))
    before = _scripts(client)
    async with store.locked_batch(conversation.id):
        current = await store.get_conversation(conversation.id)
        assert current is not None
        await store.save_conversation(current)
        await store.cancel_timers(conversation.id, TimerKind.IDLE_CLOSE)  # a write after the record
    assert _scripts(client) - before == 5  # taken, joined, the record, the timers, then the release alone
    assert not client.exists(K.lock(conversation.id))
    with pytest.raises(LockLost):  # since 2026-12-07 the record's write is fenced by the lock too: refused
        async with store.locked_batch(conversation.id):
            current = await store.get_conversation(conversation.id)
            assert current is not None
            client.set(K.lock(conversation.id), "somebody-else")  # this holder's lease lapsed, another took the lock
            await store.save_conversation(replace(current, engine={"step": "late"}))
    assert client.get(K.lock(conversation.id)) == "somebody-else"  # not freed by the record's script
    found = await store.get_conversation(conversation.id)
    assert found is not None and found.engine != {"step": "late"}  # nor written on top of the next holder's


async def test_a_script_called_alone_is_loaded_again_when_redis_has_forgotten_it(redis_url: str) -> None:
    """A script called alone goes as EVALSHA; after a SCRIPT FLUSH (or on a Redis that never saw it) the NOSCRIPT
    answer ran nothing, so the store loads the script and sends the EVALSHA once more, as redis-py's ``Script``
    did: the call's answer is the script's."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        await store.keep_receipt("m.noscript", Delivery.READ)
        client.script_flush()
        assert await store.take_receipt("m.noscript") == Delivery.READ
        assert await store.take_receipt("m.noscript") is None  # taken: the script ran once
    finally:
        await store.close()
        client.close()


class _IdentitiesCounted(DataKeys):
    """The tests' data keys, counting the keyed hashes of identities they make."""

    made = 0

    def identity(self, channel: str, sender: str) -> str:
        self.made += 1
        return super().identity(channel, sender)


async def test_a_message_hashes_its_senders_identity_once(redis_url: str) -> None:
    """A message's claim (its address read along), its lock and its save each need the sender's address key: one
    keyed hash of the identity for the three, in the message's scope as the dispatcher opens it (``OneMessage``;
    until 2026-12-07, late: three, 1.2 µs each). Another sender in the same task gets its own address, and another
    message hashes its own."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    client.close()
    keys = _IdentitiesCounted.from_settings(Settings(store=redis_url, data_key=DATA_KEY, secret_key=SECRET_KEY))
    store = await open_store(redis_url, keys=keys)
    try:
        earlier = await asyncio.create_task(store.active_conversation(TG, "chat-9", T0))

        async def message(sender: str, key: str) -> tuple[str, int]:
            with OneMessage():
                return await processed(sender, key)

        async def processed(sender: str, key: str) -> tuple[str, int]:
            made = keys.made
            assert await store.claim(key, "me", 10, sender=(TG, sender)) is ClaimState.CLAIMED
            async with store.locked_active(TG, sender, T0, claim=Claim(key, "me", 10)) as (current, state):
                assert state is ClaimState.CLAIMED
                current.updated_at = T0
                await store.save_conversation(current, done=DoneMark(key, 3600))
            return current.id, keys.made - made

        assert await asyncio.create_task(message("chat-9", KEY)) == (earlier[0].id, 1)  # 3 before
        found, made = await asyncio.create_task(message("chat-10", KEY + "1"))
        assert found != earlier[0].id and made == 1
        assert await store.claim(KEY, "me", 10) is ClaimState.DONE  # saved with its mark
        again, _ = await store.active_conversation(TG, "chat-9", T0)
        other, _ = await store.active_conversation(TG, "chat-10", T0)
        assert (again.id, other.id) == (earlier[0].id, found)
    finally:
        await store.close()


def _holding(value: object, text: str, seen: set[int] | None = None) -> bool:
    """Whether ``value`` is ``text`` or holds it: in a tuple, list, set, dict or an object's attributes (slots
    too), however deep."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, str):
        return value == text
    if isinstance(value, dict):
        return any(_holding(k, text, seen) or _holding(v, text, seen) for k, v in value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        return any(_holding(item, text, seen) for item in value)
    if isinstance(value, asyncio.Task):
        return False
    names = [*getattr(type(value), "__slots__", ()), *getattr(value, "__dict__", {})]
    return any(_holding(getattr(value, name, None), text, seen) for name in names)


def _context_holding(text: str) -> list[str]:
    """The names of the variables of the calling task's context whose value holds ``text``."""
    return [var.name for var, value in contextvars.copy_context().items() if _holding(value, text)]


async def test_no_task_keeps_a_senders_plain_identity_in_its_context_after_its_message(redis_url: str) -> None:
    """A long-lived task (the timers' loop, the erasure worker, a supervised worker) that asks the store about a
    sender and goes on keeps nothing of that sender in its context, nor does a task made inside a message that
    outlives it (a timer, a renewal); the message still makes one keyed hash. Until 2026-12-08 the store kept the
    last (channel, sender, keyed hash) a task made in its context (``identity_made``) for the task's whole life:
    the plain sender (a phone number, a platform user id) with it, after an erasure too."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    client.close()
    keys = _IdentitiesCounted.from_settings(Settings(store=redis_url, data_key=DATA_KEY, secret_key=SECRET_KEY))
    store = await open_store(redis_url, keys=keys)
    sender = "+33612345678"
    try:

        async def worker() -> list[str]:  # asks, then goes on: what its context holds from then on
            conversation, _ = await store.active_conversation(TG, sender, T0)
            assert await store.find_active_conversation(TG, sender) is not None
            async with store.locked_active(TG, sender, T0) as (current, _):
                current.updated_at = T0
                await store.save_conversation(current)
            await store.erase_conversation(conversation.id)
            return _context_holding(sender)

        assert await asyncio.create_task(worker()) == []
        later: list[asyncio.Task[list[str]]] = []
        go_on = asyncio.Event()

        async def outliving() -> list[str]:  # made inside the message, asking after its end
            await go_on.wait()
            assert await store.find_active_conversation(TG, sender) is not None
            return _context_holding(sender)

        async def message() -> tuple[list[str], int]:
            made = keys.made
            with OneMessage():
                assert await store.claim(KEY, "me", 10, sender=(TG, sender)) is ClaimState.CLAIMED
                later.append(asyncio.create_task(outliving()))
                async with store.locked_active(TG, sender, T0, claim=Claim(KEY, "me", 10)) as (current, _):
                    current.updated_at = T0
                    await store.save_conversation(current, done=DoneMark(KEY, 3600))
                hashed = keys.made - made
            return _context_holding(sender), hashed

        assert await asyncio.create_task(message()) == ([], 1)
        go_on.set()
        assert await later[0] == []
    finally:
        await store.close()


async def test_the_dispatchers_message_hashes_its_senders_identity_once(redis_url: str) -> None:
    """The message path as it runs: ``Dispatcher._handle_inbound`` opens the message's scope (``OneMessage``), so
    a message's claim, lock and save make one keyed hash of the identity, a new conversation's person index too;
    after it, the caller's context holds nothing of the sender (since 2026-12-08)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    client.close()
    keys = _IdentitiesCounted.from_settings(Settings(store=redis_url, data_key=DATA_KEY, secret_key=SECRET_KEY))
    store = await open_store(redis_url, keys=keys)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    sender = "tg-77001"
    try:
        dispatcher = Dispatcher(store, flows, clock=lambda: T0)
        for number, text in enumerate(["Bonjour", "ça va pas"]):
            made = keys.made
            assert await dispatcher.handle_inbound(Inbound(TG, sender, f"m{number}", text=text)) is True
            assert (keys.made - made, _context_holding(sender)) == (1, [])
    finally:
        await store.close()
