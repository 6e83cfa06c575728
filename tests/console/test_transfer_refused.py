"""A transfer whose record the conversation lock's fence refused undoes its queue step: nothing happened (Redis).

On Redis a transfer makes its queue step first (slot ``{queue}``, which cannot read the lock: the entry waiting in
the new queue, the transfer listed as begun, ``store.begin_move``), then the message, the status and the record in
the batch's last pipeline. The lock's key lost before that pipeline reaches Redis (a failover to a replica the lock's
``SET`` had not reached), the record is refused (``LockLost``) and the console answers 503 "try again shortly". Until
2026-12-07 the queue step stayed (``RedisStore._unqueue_refused`` keeps an entry beside a held or queued record) with
its listing: the young person showed as waiting in the new queue while the record said held by Anne (or waiting in
the old queue), then the next alert check completed the transfer (``transfer_completed``): a transfer Sam was told
had failed happened anyway, and his retry with the same key was refused ``same_queue``. Now the refused commit's
queue step is undone under the lock taken again, as the record says (held by Anne: her entry taken by her again;
waiting: back in the old queue at its place) and its listing removed: the check has nothing to complete and the
retry is made, once. No part of the gateway is patched: the store is wrapped (``FailingOver``), the lock's key
deleted as the record is saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.conversation import Status
from gateway.errors import LockLost
from gateway.store import Store
from gateway.store import redis_keys as K
from tests.conftest import Clock
from tests.console.refused_setup import CountBehind, refused, seen_through
from tests.console.test_handback_crash import held_by_anne, instance, redis_store
from tests.console.test_take_crash import next_check
from tests.console.test_transfer_crash import on, one_waiting
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis


async def test_a_supervisors_transfer_refused_by_the_fence_leaves_anne_holding_and_nothing_to_complete(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    conversation_id = await held_by_anne(redis_store, clock)
    before = await redis_store.queue_entry(conversation_id)
    assert before is not None and before.taken_by == "anne"
    await refused(
        redis_store,
        redis_url,
        clock,
        lambda failing: failing.transfer(conversation_id, "sam", "listeners", supervisor=True, key="t-1"),
    )
    assert [e.conversation_id for e in await redis_store.waiting()] == []  # before: [the id], waiting in listeners
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")
    entry = await redis_store.queue_entry(conversation_id)
    assert entry is not None and (entry.queue, entry.at, entry.taken_by) == ("listeners", before.at, "anne")
    assert await redis_store.held_by("anne") == 1
    assert conversation_id not in await redis_store.moves_begun()
    clock.advance(seconds=10)
    await next_check(redis_store, clock)  # nothing to complete
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")
    assert "transfer_completed" not in [e.action for e in await redis_store.audit_log() if e.subject == conversation_id]
    _, actions = instance(redis_store, clock)
    moved = await actions.transfer(conversation_id, "sam", "listeners", supervisor=True, key="t-1")  # the retry
    assert (moved.status, moved.listener) == (Status.QUEUED, None)  # before: 409 same_queue
    again = await actions.transfer(conversation_id, "sam", "listeners", supervisor=True, key="t-1")
    assert again.status == Status.QUEUED  # made once: answered as it stands
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines.count(("sam", "transfer")) == 1 and ("gateway", "transfer_completed") not in lines, lines
    assert await redis_store.moves_begun() == {}


async def test_a_waiting_conversations_transfer_refused_by_the_fence_leaves_it_in_its_queue_at_its_place(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path
) -> None:
    flows, _, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    await refused(redis_store, redis_url, clock,
                  lambda failing: failing.transfer(conversation_id, "sam", "lawyers", supervisor=True, key="t-2"),
                  make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    [entry] = await redis_store.waiting()
    assert (entry.queue, entry.at, entry.priority) == (before.queue, before.at, before.priority)  # before: lawyers
    assert conversation_id not in await redis_store.moves_begun()
    clock.advance(seconds=10)
    await next_check(redis_store, clock, flows=flows)  # nothing to complete
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.queue) == (Status.QUEUED, "listeners")
    [entry] = await redis_store.waiting()
    assert (entry.queue, entry.at) == (before.queue, before.at)
    _, actions = on(redis_store, clock, flows)
    moved = await actions.transfer(conversation_id, "sam", "lawyers", supervisor=True, key="t-2")  # the retry
    assert moved.queue == "lawyers"
    [entry] = await redis_store.waiting()
    assert entry.queue == "lawyers"
    audited = [e.action for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert "transfer_completed" not in audited, audited


async def test_a_transfer_refused_with_its_lock_still_its_own_is_undone_at_once(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Until 2026-12-07 the refused commit kept its own lock (the record's pipeline refused, the release in the
    next one never sent) and ``_unqueue_refused`` waited ``UNQUEUE_WAIT_SECONDS`` (6 s) for it, in vain: the entry
    stayed waiting in "listeners" beside a record held by Anne, the listing kept for the check to complete."""
    conversation_id = await held_by_anne(redis_store, clock)
    before = await redis_store.queue_entry(conversation_id)
    assert before is not None and before.taken_by == "anne"
    with seen_through(redis_store, redis_url, CountBehind) as (behind, client):
        _, failing = instance(behind, clock)
        clock.advance(minutes=1)
        with pytest.raises(LockLost):
            await failing.transfer(conversation_id, "sam", "listeners", supervisor=True, key="t-3")
        assert client.get(K.lock(conversation_id)) is None  # let go: before, the holder's for 11 s more
    assert [e.conversation_id for e in await redis_store.waiting()] == []  # before: [the id], waiting in listeners
    entry = await redis_store.queue_entry(conversation_id)
    assert entry is not None and (entry.queue, entry.at, entry.taken_by) == ("listeners", before.at, "anne")
    assert conversation_id not in await redis_store.moves_begun()
