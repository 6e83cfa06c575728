"""A close's goodbye cut before its listing, then the conversation ended another way: withdrawn, never sent, never
left pending (issue 8: nothing twice, nothing stuck).

On Redis a close writes the young person's goodbye (its id derived from the close and its category), then lists it
to be sent (``outbox_list``), then the record. Cut in between, the next alert check completes the close (a waiting
one's: ``Actions.back_in_line``; a held one's: ``Actions.complete_close``), the goodbye listed then. But ended
another way before that check (a waiting young person's quick exit or idle close, abandoned; a close made again
with another category, whose goodbye has another id), no completion looks at it any more: the first goodbye stayed
pending for good, and sending it would tell goodbye twice (or anything after a quick exit). The close is listed as
begun, a waiting one's too (``store.begin_close``), and the check withdraws what it wrote and never listed
(``Actions.complete_close``): failed with its reason, an audit line and a log line, no text.

Real cuts, no part of the gateway changed: a Redis connection reset before the close's ``outbox_list``
(``tests/cutting_proxy.py``); then the real quick exit, idle timer or close, and the real check.
"""

from __future__ import annotations

import logging

import pytest

from gateway.conversation import Status
from gateway.store import Author, Delivery, OutboxStatus, Store
from tests.conftest import Clock
from tests.console.test_close_crash import ENDED
from tests.console.test_handback_crash import cut_while, instance, redis_store
from tests.console.test_take_crash import next_check, waiting_young_person
from tests.console.test_transfer_withdrawn import end_before_the_check
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below


@pytest.mark.redis
@pytest.mark.parametrize("held", [False, True], ids=["waiting", "held"])
@pytest.mark.parametrize("ending", ["closed_again", "quick_exit", "idle_close"])
async def test_a_close_cut_before_its_listing_then_ended_otherwise_is_withdrawn_not_left_pending(
    redis_store: Store, redis_url: str, clock: Clock, caplog: pytest.LogCaptureFixture, held: bool, ending: str
) -> None:
    """Sam (a supervisor) closes a waiting young person, or one Anne holds, as ``cyberbullying``; the close is cut
    after the goodbye was written and before it was listed to be sent. Before the next check the conversation ends
    another way: closed again as ``family`` (another goodbye id), the young person's quick exit, the idle close. The
    check then withdraws the first goodbye: failed (its entry shows failed), not handed to the outbox, one audit line
    and one log line without its text, nothing listed as begun; the goodbye of the close that ended it, if any, is
    the outbox's, told once. A held conversation is not abandoned by a quick exit (it stays its listener's): there
    the check completes the close, the goodbye listed, nothing withdrawn."""
    conversation_id = await waiting_young_person(redis_store, clock)
    dispatcher, actions = instance(redis_store, clock)
    if held:
        await actions.take(conversation_id, "anne", 3)
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.close(conversation_id, "sam", "cyberbullying", supervisor=True))  # fmt: skip
    written = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [ENDED in e.text for e in written] == [True]  # the gap: written, listed nowhere
    [cut] = written
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    await end_before_the_check(ending, actions, dispatcher, redis_store, clock, conversation_id)
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None
    if not after.active:
        assert after.status in (Status.CLOSED, Status.ABANDONED)

    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    item = await redis_store.outbox_get(conversation_id, cut.id)
    assert item is not None
    ended_before = not after.active
    handed_out = {i.id for i in await redis_store.outbox_due(clock(), 10, run=100)}
    transcript = await redis_store.transcript(conversation_id)
    goodbyes = [e for e in transcript if e.author is Author.BOT and ENDED in e.text]
    if not ended_before:  # held, quick exit: still Anne's, the check completed the close, told once
        assert item.status is OutboxStatus.PENDING and cut.id in handed_out
        assert [e.id for e in goodbyes] == [cut.id]
        assert not [e for e in await redis_store.audit_log() if e.action.endswith("_withdrawn")]
    else:
        assert item.status is OutboxStatus.FAILED and "withdrawn" in (item.last_error or ""), item
        assert cut.id not in handed_out, "a withdrawn goodbye handed to the outbox"
        assert [e.delivery for e in transcript if e.id == cut.id] == [Delivery.FAILED]
        others = {e.id for e in goodbyes} - {cut.id}
        assert others <= handed_out  # the close that ended it: its goodbye is the outbox's
        assert len(others) == (1 if ending == "closed_again" else 0)
        lines = [e for e in await redis_store.audit_log() if e.action == "close_withdrawn"]
        assert [e.subject for e in lines] == [conversation_id], lines
        assert all(ENDED not in e.detail for e in lines) and "sam" in lines[0].detail
        said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
        assert len(said) == 1 and ENDED not in said[0], said
    assert await redis_store.closes_begun() == {}
