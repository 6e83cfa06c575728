"""A take's "listener joined" cut before its listing, then the conversation ended: withdrawn, never sent, never left
pending (issue 8: nothing lost, nothing twice, nothing stuck).

On Redis a take makes its queue step alone, then one pipeline: the timer, the status, the young person's "listener
joined" message (its entry and outbox item), its listing to be sent (``outbox_list``), the record. Cut after the
message was written and before it was listed, the record still says queued beside a taken entry: the next alert check
completes the take (``Actions.back_in_line``, the message written again with its id, listed). But ended before that
check (a supervisor's close of the waiting young person, the idle close, the quick exit), the record no longer says
queued and no check looked at it: the message stayed pending for good (its console entry, its outbox item), and
"a listener joined" is no news to send after a goodbye, nor anything after a quick exit. The take is now listed as
begun (``store.begin_take``, first in its pipeline, until its record is written) and the check withdraws what it
wrote and never listed (``Actions.complete_take``): failed with its reason, an audit line and a log line, no text.

Real cuts, no part of the gateway changed: a Redis connection reset before the take's ``outbox_list``
(``tests/cutting_proxy.py``); then the real close, idle timer or quick exit, and the real check.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.conversation import Status
from gateway.store import Author, Delivery, OutboxStatus, Store
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, redis_store
from tests.console.test_take_crash import JOINED, next_check
from tests.console.test_transfer_crash import on, one_waiting
from tests.console.test_transfer_withdrawn import end_before_the_check
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below


@pytest.mark.redis
@pytest.mark.parametrize("ending", ["close", "idle_close", "quick_exit"])
async def test_a_take_cut_before_its_listing_then_ended_is_withdrawn_not_left_pending(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    """Anne takes a waiting young person; the take is cut after the "listener joined" message was written and
    before it was listed to be sent. Before the next check the conversation ends: Sam (a supervisor) closes it, the
    idle timer closes it (abandoned, it waited), or the young person leaves by the quick exit. The check then
    withdraws the message: its item failed (its entry shows failed), not handed to the outbox, one audit line without
    its text, one log line without it, nothing left listed as begun; a second check adds nothing. Before, the message
    stayed pending for good, its entry shown pending on the console."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.take(conversation_id, "anne", 3),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    written = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [JOINED in e.text for e in written] == [True]  # the gap: written, listed nowhere
    [cut] = written
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status is Status.QUEUED  # the record not written

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    dispatcher, _ = on(redis_store, clock, flows)
    await end_before_the_check(ending, actions, dispatcher, redis_store, clock, conversation_id)
    ended = await redis_store.get_conversation(conversation_id)
    assert ended is not None and ended.status in (Status.CLOSED, Status.ABANDONED), ended

    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)  # nothing more

    item = await redis_store.outbox_get(conversation_id, cut.id)
    assert item is not None and item.status is OutboxStatus.FAILED, item
    assert "withdrawn" in (item.last_error or "")
    handed_out = {i.id for i in await redis_store.outbox_due(clock(), 10, run=100)}
    assert cut.id not in handed_out, "a withdrawn message handed to the outbox"
    transcript = await redis_store.transcript(conversation_id)
    assert [e.delivery for e in transcript if e.id == cut.id] == [Delivery.FAILED]
    others = [await redis_store.outbox_get(conversation_id, e.id) for e in transcript if e.id != cut.id]
    assert not [i for i in others if i is not None and "withdrawn" in (i.last_error or "")]  # the goodbye: the outbox's
    lines = [e for e in await redis_store.audit_log() if e.action == "take_withdrawn"]
    assert [e.subject for e in lines] == [conversation_id], lines
    assert all(JOINED not in e.detail for e in lines)  # what was withdrawn, never its text
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(said) == 1 and JOINED not in said[0], said
    assert await redis_store.takes_begun() == {}
