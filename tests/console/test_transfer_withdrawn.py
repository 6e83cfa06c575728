"""A transfer's place message cut before its listing, then the conversation ended: withdrawn, never sent, never
left pending (issue 8: nothing lost, nothing twice).

On Redis a waiting conversation's transfer writes the young person's place (and an urgent one's emergency numbers)
in its pipeline, then lists it to be sent (``outbox_list``), then the record. Cut in between, the message is written
and listed nowhere: a take before the next check lists it again before its "joined" (``Actions._told_of_move``), the
check completes the transfer (``Actions.complete_move``). But closed, idle-closed or abandoned before the check, the
young person is in no queue any more: their place in one is no news to send after a goodbye (nor anything at all
after a quick exit), and before this the message stayed pending for good (the console's entry, the outbox item).
The check now withdraws it: failed, with its reason, an audit line and a log line, nothing sent.

Real cuts, no part of the gateway changed: a Redis connection reset before the transfer's ``outbox_list``
(``tests/cutting_proxy.py``); then the real close, idle timer or quick exit, and the real check.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway import leaving
from gateway.console.actions import Actions
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.metrics import Metrics
from gateway.store import Author, Delivery, OutboxStatus, Store
from gateway.timers import Timers
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, redis_store
from tests.console.test_take_crash import next_check
from tests.console.test_transfer_crash import PLACE, on, one_waiting
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below


@pytest.mark.redis
@pytest.mark.parametrize("ending", ["close", "idle_close", "quick_exit"])
async def test_a_transfer_cut_before_its_listing_then_ended_is_withdrawn_not_left_pending(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    """Sam transfers a waiting young person to ``lawyers``; the transfer is cut after their place's message was
    written and before it was listed to be sent. Before the next check the conversation ends: Sam closes it, the
    idle timer closes it (abandoned, it waited), or the young person leaves by the quick exit (abandoned). The check
    then withdraws what the transfer wrote: each item failed (its entry shows failed), none handed to the outbox,
    one audit line without any text, nothing left listed as moving; a second check adds nothing. Before, the
    messages stayed pending for good, their entries shown pending on the console."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    written = (await redis_store.transcript(conversation_id))[since:]
    assert written and all(e.author is Author.BOT for e in written) and PLACE in written[0].text  # the gap:
    assert [(await redis_store.outbox_get(conversation_id, e.id)) is not None for e in written] == [True] * len(written)
    cut_ids = {e.id for e in written}  # written, listed nowhere

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    dispatcher, _ = on(redis_store, clock, flows)
    await end_before_the_check(ending, actions, dispatcher, redis_store, clock, conversation_id)
    ended = await redis_store.get_conversation(conversation_id)
    assert ended is not None and ended.status in (Status.CLOSED, Status.ABANDONED)

    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)  # nothing more

    handed_out = {item.id for item in await redis_store.outbox_due(clock(), 10, run=100)}
    assert not cut_ids & handed_out, "a withdrawn message handed to the outbox"
    for entry_id in sorted(cut_ids):
        item = await redis_store.outbox_get(conversation_id, entry_id)
        assert item is not None and item.status is OutboxStatus.FAILED, item
    transcript = await redis_store.transcript(conversation_id)
    assert {e.id: e.delivery for e in transcript if e.id in cut_ids} == dict.fromkeys(cut_ids, Delivery.FAILED)
    others = [await redis_store.outbox_get(conversation_id, e.id) for e in transcript if e.id not in cut_ids]
    assert not [i for i in others if i is not None and "withdrawn" in (i.last_error or "")]  # the goodbye: the outbox's
    lines = [e for e in await redis_store.audit_log() if e.action == "transfer_withdrawn"]
    assert [e.subject for e in lines] == [conversation_id], lines
    assert all(PLACE not in e.detail for e in lines)  # what was withdrawn, never its text
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(said) == 1 and PLACE not in said[0], said
    assert await redis_store.moves_begun() == {}


async def end_before_the_check(
    ending: str, actions: Actions, dispatcher: Dispatcher, store: Store, clock: Clock, conversation_id: str
) -> None:
    """The conversation ended another way before the next check: Sam (a supervisor) closes it (``close``, or
    ``closed_again`` with another category than a first close's), the idle timer closes it (``idle_close``), or the
    young person leaves by the quick exit (``quick_exit``)."""
    if ending in ("close", "closed_again"):
        category = "cyberbullying" if ending == "close" else "family"
        await actions.close(conversation_id, "sam", category, supervisor=True)
    elif ending == "idle_close":
        clock.advance(hours=24)
        await Timers(dispatcher, store, actions.flows, Metrics(), clock=clock).fire_due()
    else:
        await leaving.quick_exit(dispatcher, store, conversation_id, clock())


@pytest.mark.redis
@pytest.mark.parametrize("held", [False, True], ids=["waiting", "held"])
async def test_a_transfer_cut_before_its_listing_then_transferred_again_is_withdrawn_not_left_pending(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture, held: bool
) -> None:
    """Sam (a supervisor) transfers a young person who waits in ``listeners`` (or whom Anne holds) to ``lawyers``; the
    transfer is cut after their place's message was written and before it was listed to be sent (its queue step made:
    the entry waits in ``lawyers``, the record still names ``listeners``). Before the next check Sam transfers them
    again, back to ``listeners``. The first place ("your place in lawyers") is no longer true and would reach the young
    person after the second's: it is withdrawn by the second transfer, before its own writes (failed, its entry shown
    failed, never handed to the outbox), one ``transfer_withdrawn`` line naming Sam and one log line, no text; the
    second transfer's place is listed and told once; the check then finds nothing to do, nothing listed as moving.
    Before, the second transfer's ``end_move`` unlisted the first, whose message stayed pending for good in an active
    conversation (its entry shown pending on the console)."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    if held:
        await actions.take(conversation_id, "anne", 3)
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    written = (await redis_store.transcript(conversation_id))[since:]
    assert written and all(e.author is Author.BOT for e in written) and PLACE in written[0].text  # the gap
    cut_ids = {e.id for e in written}  # written, listed nowhere
    [entry] = await redis_store.waiting()
    assert entry.queue == "lawyers"

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    _, again = on(redis_store, clock, flows)
    with caplog.at_level(logging.WARNING):
        await again.transfer(conversation_id, "sam", "listeners", supervisor=True)
    await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)  # nothing more

    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.queue) == (Status.QUEUED, "listeners")
    assert [(e.conversation_id, e.queue) for e in await redis_store.waiting()] == [(conversation_id, "listeners")]
    handed_out = {item.id for item in await redis_store.outbox_due(clock(), 10, run=100)}
    assert not cut_ids & handed_out, "the first transfer's stale place handed to the outbox"
    for entry_id in sorted(cut_ids):
        item = await redis_store.outbox_get(conversation_id, entry_id)
        assert item is not None and item.status is OutboxStatus.FAILED and "withdrawn" in (item.last_error or ""), item
    transcript = await redis_store.transcript(conversation_id)
    assert {e.id: e.delivery for e in transcript if e.id in cut_ids} == dict.fromkeys(cut_ids, Delivery.FAILED)
    places = [e.id for e in transcript[since:] if e.author is Author.BOT and PLACE in e.text and e.id not in cut_ids]
    assert len(places) == 1 and set(places) <= handed_out, "the second transfer's place: told once"
    pending = [e for e in transcript if e.delivery is Delivery.PENDING and e.id not in handed_out]
    assert not pending, "an entry left pending, listed nowhere"
    lines = [e for e in await redis_store.audit_log() if e.action.endswith("_withdrawn")]
    assert [(e.action, e.subject) for e in lines] == [("transfer_withdrawn", conversation_id)], lines
    assert "sam" in lines[0].detail and PLACE not in lines[0].detail
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(said) == 1 and PLACE not in said[0], said
    assert await redis_store.moves_begun() == {}
