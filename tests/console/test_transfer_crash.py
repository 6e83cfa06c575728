"""A transfer cut short tells the young person their place once (issue 8: nothing lost, nothing twice).

On Redis a transfer is steps: the queue step first, alone (the entry waiting in the new queue, the place read), then
one pipeline with the young person's message (their place), the queue's timers, the status and the record. An
instance dying in that pipeline leaves a held record beside a waiting entry, which the next alert check completes
(``Actions.complete_hand_back``). Before, it was always completed as a hand-back, whose queue timer tells the young
person their place at once: told twice when the transfer's message had been written. Now the message's ids derive
from the transfer (``_transfer_key``): the check finds it and completes the transfer itself (the message written
again with its id, which the store ignores; the queue's timer not due before its usual time); cut before it, a
hand-back, their place told by the timer. Either way told once.

Real cuts, no part of the gateway changed: a Redis connection reset before a chosen command of the transfer's
pipeline (``tests/cutting_proxy.py``), the prefix a dying instance leaves; then the real check and the real timers.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.console.actions import Actions
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Author, QueueEntry, Store
from gateway.timers import Timers
from tests.conftest import ROOT, AppFactory, Clock, add_listener, login
from tests.console.test_flow_reload import add_to_the_flow
from tests.console.test_handback_crash import cut_while, instance, redis_store
from tests.console.test_take_crash import JOINED, next_check, told, waiting_young_person
from tests.store.conftest import redis_cluster_url, redis_url, store, store_url
from tests.test_app import flow_copy, with_flow
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_cluster_url", "redis_store", "redis_url", "store", "store_url"]  # fixtures used below

PLACE = "en position"  # flows.yaml's queued, queued_offline and reassurance, in French


async def told_place(store: Store, conversation_id: str, since: int, now: datetime) -> int:
    """How many times the young person was told their place after the transcript's first ``since`` entries."""
    return await told(store, conversation_id, PLACE, now, since)


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_transfer_pipeline_cut_is_completed_by_the_next_check_place_told_once(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """Anne transfers the young person she holds; the transfer's pipeline is cut before their place's message
    (``put_entry_item``), after it and before it is listed to be sent (``outbox_list``), or before the record
    (``put_conversation``). Then the next check and the timers' next pass: the young person waits in the queue,
    takeable, told their place once, the completion audited as a transfer (listed with its mover: the first cut too,
    its place told by the queue's timer). Before, the last two were told twice (the transfer's message, then the
    queue's timer of the hand-back the check made of it)."""
    conversation_id = await waiting_young_person(redis_store, clock)
    _, actions = instance(redis_store, clock)
    await actions.take(conversation_id, "anne", 3)
    since = len(await redis_store.transcript(conversation_id))
    # later than the arrival, as any transfer is: one to the same queue at the arrival's very µs leaves, cut before
    # its message, the state a hand-back's cut leaves, field for field (its entry at the record's place), and is
    # completed as one (tests/console/test_transfer_listing_stale.py)
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.transfer(conversation_id, "anne", "listeners"))  # fmt: skip
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.WITH_LISTENER  # the gap: held, and waiting in the queue
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    timers = Timers(Dispatcher(redis_store, flows, clock=clock), redis_store, flows, Metrics(), clock=clock)
    await timers.fire_due()  # the queue's timer, when the check armed it for now
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    assert (conversation.status, conversation.listener, conversation.queue) == (Status.QUEUED, None, "listeners")
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]
    assert await redis_store.held_by("anne") == 0
    audited = [e for e in await redis_store.audit_log() if e.action in ("hand_back", "transfer_completed")]
    assert len(audited) == 1 and "anne" in audited[0].detail, audited
    assert await told_place(redis_store, conversation_id, since, clock()) == 1
    assert audited[0].action == "transfer_completed"  # listed as a transfer: cut before its message too
    _, second = instance(redis_store, clock)
    assert (await second.take(conversation_id, "bruno", 3)).listener == "bruno"


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_supervisors_transfer_cut_short_is_audited_naming_the_supervisor(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, cut: str
) -> None:
    """Sam, a supervisor, transfers to ``lawyers`` the young person Anne holds; the transfer is cut after its queue
    step: before their place's message, before its listing, or before the record. After the next check (and the
    queue's timer): in ``lawyers``, Anne's no more, told their place once, and the audit log says Sam transferred
    them from Anne, once (his own line, written before the record, or the check's completion naming him). Before,
    his line was written by the console's API after the transfer returned, so a cut lost it, and the check's
    completion named Anne only (a hand-back by Anne, for the first cut): a transfer nobody was seen to make."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    await actions.take(conversation_id, "anne", 3)
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)  # nothing more
    timers = Timers(Dispatcher(redis_store, flows, clock=clock), redis_store, flows, Metrics(), clock=clock)
    await timers.fire_due()  # the queue's timer, when the check armed it for now
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    assert (conversation.status, conversation.listener, conversation.queue) == (Status.QUEUED, None, "lawyers")
    lines = [e for e in await redis_store.audit_log() if e.subject == conversation_id]
    by_sam = [e for e in lines if (e.actor, e.action) == ("sam", "transfer") or " by sam" in e.detail]
    assert by_sam and all("from anne" in e.detail for e in by_sam), lines
    assert [e.action for e in lines if e.actor == "sam"] in ([], ["transfer"]), lines
    [entry] = await redis_store.waiting()
    assert (entry.queue, entry.at) == ("lawyers", conversation.queued_at)  # nothing left for a second completion
    assert await redis_store.held_by("anne") == 0
    assert await told_place(redis_store, conversation_id, since, clock()) == 1
    assert await redis_store.moves_begun() == {}


def with_a_second_queue(tmp_path: Path) -> FlowSet:
    """The shipped flow with a second queue (``lawyers``, open at the tests' clock), as ops may add one."""
    path = flow_copy(tmp_path)
    add_to_the_flow(path)
    flows = FlowSet(path)
    flows.reload()
    return flows


def on(store: object, clock: Clock, flows: FlowSet) -> tuple[Dispatcher, Actions]:
    """The dispatcher and the listeners' actions of one gateway instance, on ``store``, with ``flows``."""
    dispatcher = Dispatcher(cast(Store, store), flows, clock=clock)
    return dispatcher, Actions(dispatcher, cast(Any, store), flows, clock=clock)


async def one_waiting(store: Store, clock: Clock, tmp_path: Path) -> tuple[FlowSet, Actions, QueueEntry]:
    """One instance on ``store`` with a second queue, and a young person who walked the flow to the queue: their
    entry in ``listeners``."""
    flows = with_a_second_queue(tmp_path)
    dispatcher, actions = on(store, clock, flows)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-moved", f"mid.{number}", text))
    [before] = await store.waiting()
    return flows, actions, before


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_waiting_conversations_transfer_cut_is_completed_by_the_next_check_in_the_new_queue(
    redis_store: Store,
    redis_url: str,
    clock: Clock,
    tmp_path: Path,
    make_client: AppFactory,
    settings: Settings,
    cut: str,
) -> None:
    """A supervisor transfers a young person who waits (queued, held by nobody) to another queue; the transfer's
    pipeline is cut before their place's message, before its listing or before the record, its queue step made (the
    entry waits in the new queue). Then the next check: the record, the queue entry, the console and the young person
    agree on the new queue, told their place there once. Before, the record kept the old queue's name: nothing found
    it (its id waits in a queue, as its record's status says), the console showed the old queue, and a cut before the
    message left the young person never told."""
    flows, _, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    cut_short = await redis_store.get_conversation(conversation_id)
    [entry] = await redis_store.waiting()
    assert cut_short is not None and (cut_short.queue, entry.queue) == ("listeners", "lawyers")  # the gap
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)  # nothing more
    timers = Timers(Dispatcher(redis_store, flows, clock=clock), redis_store, flows, Metrics(), clock=clock)
    await timers.fire_due()  # whatever is due now
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    [entry] = await redis_store.waiting()
    assert (conversation.status, conversation.listener, conversation.queue) == (Status.QUEUED, None, "lawyers")
    assert (entry.conversation_id, entry.queue, entry.at) == (conversation_id, "lawyers", conversation.queued_at)
    assert await told_place(redis_store, conversation_id, since, clock()) == 1
    audited = [e.action for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert audited.count("transfer_completed") == 1, audited
    assert await redis_store.moves_begun() == {}  # listed no more: the next checks read nothing of it

    client = await make_client(with_flow(settings.replace(store=redis_url), flows.path))  # the console's view
    await add_listener(client, "bruno")
    await login(client, "bruno")
    listed = (await (await client.get("/api/queue")).json())["waiting"]
    assert [(c["id"], c["queue"]) for c in listed] == [(conversation_id, "lawyers")]
    shown = await (await client.get(f"/api/conversations/{conversation_id}")).json()
    assert (shown["status"], shown["queue"]) == ("queued", "lawyers")
    assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200


async def test_a_waiting_conversations_transfer_made_whole_leaves_no_move_listed(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """SQLite, Redis, Cluster: a waiting conversation's transfer, not cut, leaves the record and the entry in the new
    queue, the young person told their place there, and no move listed for the check (``moves_begun``)."""
    flows, actions, before = await one_waiting(store, clock, tmp_path)
    since = len(await store.transcript(before.conversation_id))
    clock.advance(minutes=1)
    await actions.transfer(before.conversation_id, "anne", "lawyers")
    conversation = await store.get_conversation(before.conversation_id)
    [entry] = await store.waiting()
    assert conversation is not None and (conversation.queue, entry.queue) == ("lawyers", "lawyers")
    assert entry.at == conversation.queued_at == clock()
    assert await told_place(store, before.conversation_id, since, clock()) == 1
    assert await store.moves_begun() == {}
    await next_check(store, clock, flows=flows)
    assert [e.action for e in await store.audit_log() if e.action == "transfer_completed"] == []


async def test_a_supervisors_transfer_made_whole_is_audited_once_and_leaves_no_move_listed(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """SQLite, Redis, Cluster: Sam's transfer of the young person Anne holds, not cut, writes his audit line once (in
    the transfer's batch: the console's API no longer writes it), names nobody as the listener, and leaves no move
    listed; the check then completes nothing."""
    flows, actions, before = await one_waiting(store, clock, tmp_path)
    await actions.take(before.conversation_id, "anne", 3)
    clock.advance(minutes=1)
    await actions.transfer(before.conversation_id, "sam", "lawyers", supervisor=True)
    conversation = await store.get_conversation(before.conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None)
    lines = [(e.actor, e.action, e.detail) for e in await store.audit_log() if e.subject == before.conversation_id]
    assert lines == [("sam", "transfer", f"{conversation.pseudonym}: from anne")]
    assert await store.moves_begun() == {}
    await next_check(store, clock, flows=flows)
    assert [e.action for e in await store.audit_log() if e.subject == before.conversation_id] == ["transfer"]


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_waiting_conversations_transfer_cut_then_taken_before_the_check_names_the_new_queue(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, cut: str
) -> None:
    """A supervisor's transfer of a waiting young person to ``lawyers`` is cut after its queue step, and Bruno takes
    them from ``lawyers`` (where the console lists their entry) before the next check: the held record names
    ``lawyers``, the queue he took them from, and the checks after leave it so, with no move left listed. Before,
    the take kept the record's old queue (``listeners``) and the check, finding the conversation held, only
    unlisted the move: held in ``lawyers``, named ``listeners`` for good (the console, the statistics by queue)."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    [entry] = await redis_store.waiting()
    assert entry.queue == "lawyers"  # the gap: the record still names listeners
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    taken = await actions.take(conversation_id, "bruno", 3)
    assert (taken.status, taken.listener, taken.queue) == (Status.WITH_LISTENER, "bruno", "lawyers")
    await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    assert (conversation.status, conversation.listener, conversation.queue) == (
        Status.WITH_LISTENER,
        "bruno",
        "lawyers",
    )
    assert conversation.queued_at == entry.at  # its wait counted in the queue it was taken from
    held = await redis_store.queue_entry(conversation_id)
    assert held is not None and (held.queue, held.taken_by) == ("lawyers", "bruno")
    assert await redis_store.moves_begun() == {}
    assert await redis_store.takes_since("lawyers", entry.at) == 1


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_waiting_conversations_transfer_cut_then_taken_sends_its_place_once_before_the_joining(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, cut: str
) -> None:
    """A supervisor's transfer of a waiting young person to ``lawyers`` is cut after its queue step: before their
    place's message (``put_entry_item``), after it and before it is listed to be sent (``outbox_list``), or before
    the record (``put_conversation``); Bruno takes them from ``lawyers`` before the next check. Every message written
    is listed to be sent once, in the order it was written: their place and the emergency numbers (they are urgent)
    when the transfer wrote them, then that a listener joined, as a transfer and a take not cut would have told them.
    Before, the place written and not listed was never sent (its item in no outbox line, the check finding the
    conversation held): its transcript entry shown pending for good on the console."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    await actions.take(conversation_id, "bruno", 3)
    await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)
    said = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert len([e for e in said if PLACE in e.text]) == (0 if cut == "put_entry_item" else 1)
    assert [e for e in said if JOINED in e.text] == said[-1:]  # and before it, with the place, the emergency numbers
    listed = [item.id for item in await redis_store.outbox_due(clock(), 10, run=100)]
    assert [i for i in listed if i in {e.id for e in said}] == [e.id for e in said], "not listed once, in order"
    assert await redis_store.moves_begun() == {}


@pytest.mark.redis
@pytest.mark.parametrize("held", [False, True], ids=["waiting", "held"])
async def test_a_transfer_cut_before_its_queue_step_moves_nothing_and_may_be_made_again(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, held: bool
) -> None:
    """A transfer to ``lawyers`` cut before its queue step (the ``enqueue`` script: a waiting conversation's move
    listed, nothing else written): nothing moved, nothing told, nothing left listed once the check has been; the
    young person still waits in their old queue at their place (or is still Anne's), and the transfer made again
    moves them."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    if held:
        await actions.take(conversation_id, "anne", 3)
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "enqueue",
                    lambda first: first.transfer(conversation_id, "anne", "lawyers"),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    assert await redis_store.moves_begun() == {conversation_id: "anne"}  # listed with the queue step, its mover
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock, flows=flows)
    conversation = await redis_store.get_conversation(conversation_id)
    entry = await redis_store.queue_entry(conversation_id)
    assert conversation is not None and entry is not None
    if held:
        assert (conversation.status, conversation.listener, conversation.queue) == (Status.WITH_LISTENER, "anne",
                                                                                    "listeners")  # fmt: skip
        assert (entry.queue, entry.taken_by) == ("listeners", "anne") and await redis_store.waiting() == []
    else:
        assert (conversation.status, conversation.queue, conversation.queued_at) == (Status.QUEUED, "listeners",
                                                                                     before.at)  # fmt: skip
        assert await redis_store.waiting() == [before]
    assert await redis_store.moves_begun() == {}
    assert len(await redis_store.transcript(conversation_id)) == since  # nothing told
    audited = [e.action for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert not [a for a in audited if a in ("transfer_completed", "hand_back", "back_in_line")], audited
    await actions.transfer(conversation_id, "anne", "lawyers")  # made again
    conversation = await redis_store.get_conversation(conversation_id)
    [entry] = await redis_store.waiting()
    assert conversation is not None and (conversation.status, conversation.queue) == (Status.QUEUED, "lawyers")
    assert (entry.conversation_id, entry.queue, entry.at) == (conversation_id, "lawyers", clock())
    assert await told_place(redis_store, conversation_id, since, clock()) == 1
    assert await redis_store.moves_begun() == {}
