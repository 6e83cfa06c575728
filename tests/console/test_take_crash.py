"""A take cut short never leaves the young person listed in no queue and held by no one (issue 8: nothing lost).

Taking a conversation writes its queue entry (taken) and its record (held by the listener). The instance doing it
dies in between (kill -9, out of memory, a deploy): before, the entry said taken while the record said queued, so the
young person was in no queue's list, on no listener's console, and nothing repaired it. Now, on SQLite, the take is
one transaction (nothing of it is written); on Redis, where the queue and the record are in different Cluster slots,
the queue step comes first, alone, and the next alert check (every 10 s, ``Actions.back_in_line``) puts a queued
record listed in no queue back in line, at its place, under the conversation's lock, audited. The young person ends
waiting (takeable, their place kept and told) or held by the listener who took them, never neither.

Real crashes, no part of the gateway changed: a store whose instance dies right after the take's queue step
(``DiesAfterTake``), on SQLite, Redis and a Cluster; and a Redis connection reset in the middle of the take's
pipeline, before the record's write (``tests/cutting_proxy.py``), the prefix a dying instance leaves.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import pytest
import redis.asyncio

from gateway.alerts import Watch
from gateway.console.actions import Actions
from gateway.conversation import Priority, Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, Store
from tests.conftest import Clock
from tests.console.test_handback_crash import Dying, Killed, cut_while, instance, redis_store
from tests.store.conftest import redis_cluster_url, redis_url, store, store_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_cluster_url", "redis_store", "redis_url", "store", "store_url"]  # fixtures used below

JOINED = "vient de te rejoindre"  # flows.yaml's listener_joined, in French


class DiesAfterTake(Dying):
    """The real store, whose instance dies right after a take's queue step (``take``) was asked of it: before the
    timers, the message, the status and the record."""

    async def take(self, conversation_id: str, listener: str, at: datetime) -> Any:
        await self._store.take(conversation_id, listener, at)
        self.died += 1
        raise Killed


async def waiting_young_person(store: Store, clock: Clock) -> str:
    """A young person on Messenger walked to the queue: their conversation's id."""
    dispatcher, _ = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-take", f"mid.{number}", text))
    [entry] = await store.waiting()
    return entry.conversation_id


async def next_check(
    store: Store, clock: Clock, asked: asyncio.Event | None = None, *, flows: FlowSet | None = None
) -> None:
    """The alert check of another instance (or of this one restarted), as its worker runs it every 10 s; ``asked``
    set when it asks for a young person to be put back in line; ``flows``: the instance's (the shipped flow's)."""
    if flows is None:
        _, actions = instance(store, clock)
    else:
        actions = Actions(Dispatcher(store, flows, clock=clock), cast(Any, store), flows, clock=clock)

    async def back_in_line(conversation_id: str) -> bool:
        if asked is not None:
            asked.set()
        return await actions.back_in_line(conversation_id)

    watch = Watch(store, Metrics(), clock=clock, outbox_alert_seconds=60, listener_present=lambda name: True,
                  complete=actions.complete_hand_back, back_in_line=back_in_line,
                  complete_close=actions.complete_close, complete_move=actions.complete_move,
                  complete_take=actions.complete_take, complete_leaving=actions.complete_leaving)  # fmt: skip
    await watch.check()


async def waiting_or_held_by_anne(store: Store, clock: Clock, conversation_id: str, before: Any) -> None:
    """Either in the queue, at their place, takeable by another listener, Anne's capacity free; or held by Anne."""
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    waiting = await store.waiting()
    state = (conversation.status, conversation.listener, [e.conversation_id for e in waiting])
    assert state in [(Status.WITH_LISTENER, "anne", []), (Status.QUEUED, None, [conversation_id])], state
    if state[0] is Status.WITH_LISTENER:
        return
    assert (waiting[0].at, waiting[0].priority, waiting[0].queue) == (before.at, before.priority, before.queue)
    assert await store.held_by("anne") == 0  # her capacity is not taken by a young person she does not hold
    _, actions = instance(store, clock)
    taken = await actions.take(conversation_id, "bruno", 3)
    assert taken.status == Status.WITH_LISTENER and taken.listener == "bruno"


async def test_an_instance_dying_right_after_the_take_step_leaves_the_young_person_takeable(
    store: Store, store_url: str, clock: Clock
) -> None:
    conversation_id = await waiting_young_person(store, clock)
    [before] = await store.waiting()
    dying = DiesAfterTake(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        await first.take(conversation_id, "anne", 3)
    assert dying.died == 1
    if store_url.startswith("sqlite"):  # one transaction: dropped whole, still waiting before any check
        assert [e.conversation_id for e in await store.waiting()] == [conversation_id]
    await next_check(store, clock)
    await waiting_or_held_by_anne(store, clock, conversation_id, before)
    if not store_url.startswith("sqlite"):  # Redis: put back in line by the check, audited, their place told
        [audited] = [e for e in await store.audit_log() if e.action == "back_in_line"]
        assert audited.subject == conversation_id and "cut short" in audited.detail


async def told(store: Store, conversation_id: str, words: str, now: datetime, since: int = 0) -> int:
    """How many times the young person was told ``words`` after the transcript's first ``since`` entries: each such
    bot entry with one outbox item listed to be sent (``outbox_due`` hands out every listed item once)."""
    entries = (await store.transcript(conversation_id))[since:]
    said = {e.id for e in entries if e.author is Author.BOT and words in e.text}
    listed = [item.id for item in await store.outbox_due(now, 10, run=100) if item.id in said]
    assert sorted(listed) == sorted(said), "an entry written and not listed to be sent (or listed twice)"
    return len(said)


async def told_joined(store: Store, conversation_id: str, now: datetime) -> int:
    """How many times the young person was told a listener joined."""
    return await told(store, conversation_id, JOINED, now)


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_take_pipeline_cut_is_settled_by_the_next_check_told_once(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """The take's queue step made, then its pipeline cut (the prefix a dying instance leaves) before the young
    person's "listener joined" message (``put_entry_item``), after it and before it is listed to be sent
    (``outbox_list``), or before the record (``put_conversation``). Before, the last two left the young person told a
    listener joined while the next check put them back in line, nobody holding them (and told again by the next
    take). Now: told, the check completes the take (held by Anne, told once); not told, back in line, the audit
    naming who had taken them. A second check finds nothing to do."""
    conversation_id = await waiting_young_person(redis_store, clock)
    [before] = await redis_store.waiting()
    await cut_while(redis_url, clock, conversation_id, cut, lambda first: first.take(conversation_id, "anne", 3))
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.QUEUED and await redis_store.waiting() == []  # the gap
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    audited = [e for e in await redis_store.audit_log() if e.action in ("back_in_line", "take_completed")]
    assert len(audited) == 1 and "anne" in audited[0].detail, audited  # who had taken them
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    if cut == "put_entry_item":  # not told: back in line, at their place, takeable
        assert await told_joined(redis_store, conversation_id, clock()) == 0
        assert audited[0].action == "back_in_line"
        await waiting_or_held_by_anne(redis_store, clock, conversation_id, before)
        return
    assert (conversation.status, conversation.listener) == (Status.WITH_LISTENER, "anne"), conversation
    assert audited[0].action == "take_completed" and await redis_store.waiting() == []
    assert await redis_store.held_by("anne") == 1
    assert await told_joined(redis_store, conversation_id, clock()) == 1


async def commands_during(url: str, work: Any) -> list[str]:
    """The commands Redis ran while ``work`` was awaited (``MONITOR``; a script's own calls included), up to a
    marker sent after it."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        async with client.monitor() as monitor:
            await work
            await client.echo("end-of-work")
            seen: list[str] = []
            async with asyncio.timeout(10):  # a safety net against a hang, not a timing assumption
                while "end-of-work" not in (command := (await monitor.next_command())["command"]):
                    seen.append(command)
            return seen
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_check_reads_no_record_of_a_young_person_waiting_in_line(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """The check compares ids (the queued status's index against the queues' order): with 40 young people waiting
    in line it reads none of their records nor their entries, only the one whose take was cut short, which it puts
    back in line. Before, it read every queued record and every waiting entry every 10 s on each instance."""
    ids = []
    for n in range(41):
        conversation, _ = await redis_store.active_conversation(ChannelName.TELEGRAM, f"sender-{n}", clock())
        await redis_store.enqueue(conversation.id, "listeners", Priority.NORMAL, clock())
        await redis_store.save_conversation(replace(conversation, status=Status.QUEUED, queue="listeners"))
        ids.append(conversation.id)
    cut = ids.pop()
    await redis_store.take(cut, "anne", clock())  # a take cut short after its queue step
    commands = await commands_during(redis_url, next_check(redis_store, clock))
    assert not [c for c in commands if any(i in c for i in ids)], "a waiting young person's record or entry read"
    assert [c for c in commands if f"hg:c:{{{cut}}}" in c]  # the one to repair: its record read
    assert await redis_store.waiting_ids() == {cut, *ids}
    [audited] = [e for e in await redis_store.audit_log() if e.action == "back_in_line"]
    assert audited.subject == cut


class PausesAfterTake(Dying):
    """The real store, whose take stops right after its queue step until ``go`` is set: the take under way."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.stopped, self.go = asyncio.Event(), asyncio.Event()

    async def take(self, conversation_id: str, listener: str, at: datetime) -> Any:
        entry = await self._store.take(conversation_id, listener, at)
        self.stopped.set()
        await self.go.wait()
        return entry


async def test_a_check_during_a_take_leaves_it_to_the_listener(store: Store, clock: Clock) -> None:
    """The check finds the young person's record queued while the take's queue step is made: it waits for the
    conversation's lock, which the take holds, finds the take done, and leaves the young person with Anne."""
    conversation_id = await waiting_young_person(store, clock)
    pausing = PausesAfterTake(store)
    _, first = instance(pausing, clock)
    take = asyncio.create_task(first.take(conversation_id, "anne", 3))
    await pausing.stopped.wait()
    asked = asyncio.Event()
    check = asyncio.create_task(next_check(store, clock, asked))
    asking = asyncio.create_task(asked.wait())  # it found the record queued, no entry waiting: it waits for the lock
    await asyncio.wait([asking, check], return_when=asyncio.FIRST_COMPLETED)  # (SQLite: the entry still waits)
    asking.cancel()
    pausing.go.set()
    await asyncio.gather(take, check)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.WITH_LISTENER, "anne")
    assert await store.waiting() == [] and not [e for e in await store.audit_log() if e.action == "back_in_line"]


class DiesAfterLeavingTheQueue(Dying):
    """The real store, whose instance dies right after a close's queue step (``remove_from_queue``) was asked of it:
    before the status and the record."""

    async def remove_from_queue(self, conversation_id: str) -> bool:
        await self._store.remove_from_queue(conversation_id)
        self.died += 1
        raise Killed


async def test_an_instance_dying_in_a_close_after_its_queue_step_leaves_the_young_person_waiting_or_closed(
    store: Store, store_url: str, clock: Clock
) -> None:
    """A listener closes a waiting conversation (a duplicate, say), and the instance dies right after its entry left
    the queue, before its record says closed: before, the record said queued with no entry, the young person in no
    queue's list and held by no one. SQLite: one transaction, nothing written. Redis: the next check puts them back
    in line (their close is to be made again)."""
    conversation_id = await waiting_young_person(store, clock)
    [before] = await store.waiting()
    dying = DiesAfterLeavingTheQueue(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        await first.close(conversation_id, "anne", "cyberbullying")
    assert dying.died == 1
    if store_url.startswith("sqlite"):  # one transaction: dropped whole, still waiting before any check
        assert [e.conversation_id for e in await store.waiting()] == [conversation_id]
    await next_check(store, clock)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED, conversation
    [entry] = await store.waiting()
    assert (entry.conversation_id, entry.at, entry.priority, entry.queue) == (
        conversation_id, before.at, before.priority, before.queue)  # fmt: skip


class DiesAfterEnqueue(Dying):
    """The real store, whose instance dies right after a transfer's queue step (``enqueue``) was asked of it: before
    the status, the message and the record."""

    async def enqueue(self, *args: Any, **options: Any) -> None:
        await self._store.enqueue(*args, **options)
        self.died += 1
        raise Killed


async def test_an_instance_dying_in_a_transfer_after_its_queue_step_leaves_the_young_person_takeable(
    store: Store, clock: Clock
) -> None:
    """Anne transfers the young person she holds to a queue (the flow has one), and the instance dies right after
    the queue step (the entry waits in it; the record still says held): nobody may take them, while the queue lists
    them. The next check completes it as a hand-back cut short (``Actions.complete_hand_back``): waiting in that
    queue, takeable; or, nothing written, still Anne's."""
    conversation_id = await waiting_young_person(store, clock)
    _, actions = instance(store, clock)
    await actions.take(conversation_id, "anne", 3)
    dying = DiesAfterEnqueue(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        await first.transfer(conversation_id, "anne", "listeners")
    assert dying.died == 1
    await next_check(store, clock)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    waiting = [(e.conversation_id, e.queue) for e in await store.waiting()]
    state = (conversation.status, conversation.listener, waiting)
    assert state in [(Status.WITH_LISTENER, "anne", []), (Status.QUEUED, None, [(conversation_id, "listeners")])], state
    if waiting:
        assert conversation.queue == "listeners" and await store.held_by("anne") == 0
        _, second = instance(store, clock)
        assert (await second.take(conversation_id, "bruno", 3)).listener == "bruno"


class DiesAtTransferSave(Dying):
    """The real store, whose instance dies when a transfer's record is handed to it (its status: queued again):
    after the queue step, the place read and the young person's message, before the record."""

    async def save_conversation(self, conversation: Any, **options: Any) -> None:
        if conversation.status == Status.QUEUED:
            self.died += 1
            raise Killed
        await self._store.save_conversation(conversation, **options)


async def test_an_instance_dying_at_a_transfers_record_leaves_it_whole_or_takeable(
    store: Store, store_url: str, clock: Clock
) -> None:
    """Anne transfers the young person she holds, and the instance dies when the record is saved, its queue step and
    the young person's message (their place in the new queue) made before. SQLite: one transaction (the place read
    with the queue step held, not committed), nothing written: still Anne's, nothing told. Before, each write was its
    own transaction: the entry waited, the young person told their place, the record said held. Redis: the queue
    step sent with the place's read; the check completes it as a hand-back cut short. Either way told at most once."""
    conversation_id = await waiting_young_person(store, clock)
    _, actions = instance(store, clock)
    await actions.take(conversation_id, "anne", 3)
    told_before = len(await store.transcript(conversation_id))
    dying = DiesAtTransferSave(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        await first.transfer(conversation_id, "anne", "listeners")
    assert dying.died == 1
    if store_url.startswith("sqlite"):  # one transaction: dropped whole, before any check
        assert await store.waiting() == [] and len(await store.transcript(conversation_id)) == told_before
    await next_check(store, clock)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    waiting = [(e.conversation_id, e.queue) for e in await store.waiting()]
    state = (conversation.status, conversation.listener, waiting)
    assert state in [(Status.WITH_LISTENER, "anne", []), (Status.QUEUED, None, [(conversation_id, "listeners")])], state
    placed = [e for e in (await store.transcript(conversation_id))[told_before:] if "position" in e.text]
    assert len(placed) <= 1, placed
