"""A listener's hand-back whose record the conversation lock's fence refused undoes its queue step; the alert check's
completion of a hand-back or a transfer cut short, refused the same way, is not undone and is completed later (Redis).

On Redis a hand-back makes its queue step first (``store.requeue``, slot ``{queue}``, which cannot read the lock: the
entry waiting again at its place), then the message, the status and the record in the batch's last pipeline. The
lock's key lost before that pipeline reaches Redis (a failover to a replica the lock's ``SET`` had not reached), the
record is refused (``LockLost``) and the console answers 503 "try again shortly": nothing happened, as far as the
listener knows. Until 2026-12-07 the queue step stayed: the young person waited in the queue while the record said
held by Anne, the next alert check completed the hand-back (audited ``gateway hand_back``) and Anne's retry with the
same key was refused (409 ``not_yours``). Now the refused hand-back's entry is put back as the record says (taken by
Anne again, in her capacity; ``RedisStore._unqueue_refused``), as a refused transfer's is
(``tests/console/test_transfer_refused.py``).

The check's own completions go through the same queue steps (``Actions.complete_hand_back``) after an instance died
between the queue step and the record: their record refused is not undone, since the young person may have been told
their listener left, or their new place; the entry keeps waiting and the next check completes it. A waiting
conversation's transfer cut short is completed by the check from its listing (``Actions.complete_move``): refused,
that completion keeps the listing (``end_move`` and the audit line sent once the record was answered written, since
2026-12-07; until then both went with the refused record: the transfer unlisted, its entry left in the new queue
beside a record naming the old one, and a ``transfer_completed`` line for a completion not made). Until 2026-12-07
(that day's put-back of a refused transfer's entry, ``RedisStore._unqueue_refused``) a refused completion of a
transfer cut after its place's message was put back as the record said: the young person, told their place in the
queue, was held again by Anne and the transfer dropped.

Since 2026-12-07 (later that day) an automatic hand-back (``hand_back_absent``) refused the same way, its "your
listener was disconnected" message refused with its record, is completed by the next check with that message, told once
(until then completed untold); and a logout's hand-back refused so is no longer put back as held by the listener who
left: the check completes it, told once. No part of the gateway is patched: the store is wrapped (``FailingOver``,
``tests/console/refused_setup.py``), the lock's key deleted as the record is saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.conversation import Status
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Store
from tests.conftest import Clock
from tests.console.refused_setup import check_refused, completed_by_the_next_check, refused
from tests.console.test_handback_crash import (
    DISCONNECTED,
    DiesAfterRequeue,
    Killed,
    cut_while,
    held_by_anne,
    instance,
    redis_store,
    told_once_and_waiting,
)
from tests.console.test_take_crash import next_check
from tests.console.test_transfer_crash import on, one_waiting, told_place
from tests.store.conftest import redis_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("who", ["anne", "sam"], ids=["her-own", "a-supervisors"])
async def test_a_hand_back_refused_by_the_fence_leaves_anne_holding_and_nothing_to_complete(
    redis_store: Store, redis_url: str, clock: Clock, who: str
) -> None:
    conversation_id = await held_by_anne(redis_store, clock)
    before = await redis_store.queue_entry(conversation_id)
    assert before is not None and before.taken_by == "anne"
    supervisor = who != "anne"
    await refused(
        redis_store,
        redis_url,
        clock,
        lambda failing: failing.hand_back(conversation_id, who, supervisor=supervisor, key="h-1"),
    )
    waiting = [e.conversation_id for e in await redis_store.waiting()]
    assert waiting == [], "a refused hand-back left the young person waiting beside Anne's record"
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")
    entry = await redis_store.queue_entry(conversation_id)
    assert entry is not None and (entry.queue, entry.at, entry.taken_by) == (before.queue, before.at, "anne")
    assert await redis_store.held_by("anne") == 1  # in her capacity again
    clock.advance(seconds=10)
    await next_check(redis_store, clock)  # nothing to complete
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert ("gateway", "hand_back") not in lines, lines
    _, actions = instance(redis_store, clock)
    back = await actions.hand_back(conversation_id, who, supervisor=supervisor, key="h-1")  # the retry
    assert (back.status, back.listener) == (Status.QUEUED, None)  # before: 409 not_yours
    again = await actions.hand_back(conversation_id, who, supervisor=supervisor, key="h-1")
    assert again.status == Status.QUEUED  # made once: answered as it stands
    [entry] = await redis_store.waiting()
    assert (entry.conversation_id, entry.queue, entry.at) == (conversation_id, before.queue, before.at)
    assert await redis_store.held_by("anne") == 0
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines.count((who, "hand_back")) == (1 if supervisor else 0), lines
    assert ("gateway", "hand_back") not in lines, lines


async def test_a_hand_back_cut_short_whose_completion_the_fence_refused_is_completed_by_the_next_check(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne's hand-back cut right after its queue step (the instance died), then the check's completion refused by
    the fence: the entry keeps waiting (not put back as Anne's), and the next check completes the hand-back."""
    conversation_id = await held_by_anne(redis_store, clock)
    clock.advance(minutes=1)
    _, dying = instance(DiesAfterRequeue(redis_store), clock)
    with pytest.raises(Killed):
        await dying.hand_back(conversation_id, "anne", key="h-2")
    clock.advance(seconds=10)
    await check_refused(redis_store, redis_url, clock)  # its completion refused
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]  # not put back as Anne's
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.WITH_LISTENER
    await completed_by_the_next_check(redis_store, clock, conversation_id)
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines.count(("gateway", "hand_back")) == 1, lines


async def test_a_transfer_cut_after_its_place_whose_completion_the_fence_refused_is_completed_by_the_next_check(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne's transfer cut before its record, the young person's place written and listed to be sent; the check's
    completion (as that transfer) refused by the fence: the entry keeps waiting, the next check completes the
    transfer, the place told once. Before: the refused completion's entry was put back as held by Anne (the young
    person told their place, held again), nothing left for the next check."""
    conversation_id = await held_by_anne(redis_store, clock)
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.transfer(conversation_id, "anne", "listeners"))  # fmt: skip
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    await check_refused(redis_store, redis_url, clock)  # its completion refused
    waiting = [e.conversation_id for e in await redis_store.waiting()]
    assert waiting == [conversation_id], "a refused completion of a transfer told to the young person was undone"
    await completed_by_the_next_check(redis_store, clock, conversation_id)
    assert [e.action for e in await redis_store.audit_log() if e.subject == conversation_id].count(
        "transfer_completed"
    ) == 1
    assert await told_place(redis_store, conversation_id, since, clock()) == 1


async def test_a_waiting_conversations_transfer_cut_whose_completion_the_fence_refused_is_completed_later(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path
) -> None:
    """Sam's transfer of a waiting young person to ``lawyers`` cut before its record, their new place written; the
    check's completion (``complete_move``) refused by the fence: the entry keeps waiting in ``lawyers`` and the next
    check completes the transfer. Before: the refused completion put the entry back in ``listeners`` (the young
    person told a place in ``lawyers``), and the next check unlisted the transfer, nothing completed."""
    flows, _, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    await check_refused(redis_store, redis_url, clock, flows=flows)  # its completion refused
    [entry] = await redis_store.waiting()
    assert entry.queue == "lawyers", "a refused completion of a transfer told to the young person was undone"
    clock.advance(seconds=10)
    await next_check(redis_store, clock, flows=flows)
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.queue) == (Status.QUEUED, "lawyers")
    [entry] = await redis_store.waiting()
    assert (entry.queue, entry.at) == ("lawyers", conversation.queued_at)
    audited = [e.action for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert audited.count("transfer_completed") == 1, audited
    assert await redis_store.moves_begun() == {}


async def test_an_automatic_hand_back_refused_by_the_fence_is_completed_and_told_once(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne's console gone too long, the check's hand-back (``hand_back_absent``) has its record refused by the fence,
    its "your listener left" message with it (one pipeline); its queue step stays (not a console's action) and the
    next check completes it: the young person is told, once. Before: completed without the message (only one the
    refused try had written was written again), the young person back in the queue without a word."""
    conversation_id = await held_by_anne(redis_store, clock)
    await refused(redis_store, redis_url, clock,
                  lambda failing: failing.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    assert not [e for e in await redis_store.transcript(conversation_id) if DISCONNECTED in e.text]  # refused
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]  # left to the check
    clock.advance(seconds=10)
    await next_check(redis_store, clock)
    await told_once_and_waiting(redis_store, conversation_id)  # before: told 0 times
    clock.advance(seconds=10)
    await next_check(redis_store, clock)  # nothing more
    await told_once_and_waiting(redis_store, conversation_id)
    assert await redis_store.moves_begun() == {}
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines.count(("gateway", "hand_back")) == 1, lines


async def test_a_logouts_hand_backs_refused_by_the_fence_are_completed_never_left_held_by_the_leaver(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne logs out holding two young people, every record refused by the fence (a failover): neither is left held
    by her (she is gone), each is completed by the next check and told once that their listener left. Before: the
    first refused hand-back was put back as held by Anne (``locked_batch(undo_queue_step=True)``) and the second never
    tried (the logout ended at the first ``LockLost``): both waited ``GATEWAY_HELD_HANDBACK_SECONDS`` for her."""
    first = await held_by_anne(redis_store, clock)
    dispatcher, actions = instance(redis_store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-held-2", f"mid.b{number}", text))
    [entry] = await redis_store.waiting()
    await actions.take(entry.conversation_id, "anne", 3)
    held = [first, entry.conversation_id]
    # her logout: the 503 the page goes past
    await refused(redis_store, redis_url, clock, lambda failing: failing.hand_back_all("anne", lambda name: False))
    clock.advance(seconds=10)
    await next_check(redis_store, clock)
    for conversation_id in held:
        conversation = await redis_store.get_conversation(conversation_id)
        assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None), (
            "a logout's refused hand-back left the young person held by the listener who left"
        )
        await told_once_and_waiting_among(redis_store, conversation_id)
    assert await redis_store.held_by("anne") == 0
    clock.advance(seconds=10)
    await next_check(redis_store, clock)  # nothing more
    for conversation_id in held:
        await told_once_and_waiting_among(redis_store, conversation_id)
    assert await redis_store.moves_begun() == {}


async def told_once_and_waiting_among(store: Store, conversation_id: str) -> None:
    """Told once that their listener left, to be sent once; waiting in the queue (others may wait too)."""
    told = [e for e in await store.transcript(conversation_id) if e.author is Author.BOT and DISCONNECTED in e.text]
    assert len(told) == 1, f"told {len(told)} times"
    assert await store.outbox_get(conversation_id, told[0].id) is not None
    assert conversation_id in [e.conversation_id for e in await store.waiting()]


async def test_a_logouts_hand_back_cut_by_a_redis_fault_leaves_the_others_handed_back(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne logs out holding two young people; the connection to Redis is reset in the middle of the first one's
    hand-back (its record's pipeline: a socket reset, not the lock's fence). The second is handed back all the same,
    the logout answered with the error (the console's 503); the first, its queue step made, is completed by the next
    check, told once. Before: the loop stopped at the first error that was not ``LockLost``, the second young person
    left held by the listener who had left until the automatic hand-back (``GATEWAY_HELD_HANDBACK_SECONDS``)."""
    await held_by_anne(redis_store, clock)
    dispatcher, actions = instance(redis_store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-held-2", f"mid.b{number}", text))
    [entry] = await redis_store.waiting()
    await actions.take(entry.conversation_id, "anne", 3)
    tried = [c.id for c in await redis_store.conversations_by_status(Status.WITH_LISTENER) if c.listener == "anne"]
    assert len(tried) == 2
    first, second = tried  # the order the logout tries them in: the first one cut
    await cut_while(redis_url, clock, first, "put_conversation",
                    lambda cut: cut.hand_back_all("anne", lambda name: False))  # fmt: skip
    conversation = await redis_store.get_conversation(second)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None), (
        "a store error on one conversation left the leaver's others held by her"
    )
    await told_once_and_waiting_among(redis_store, second)
    clock.advance(seconds=10)
    await next_check(redis_store, clock)
    for conversation_id in tried:
        conversation = await redis_store.get_conversation(conversation_id)
        assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None)
        await told_once_and_waiting_among(redis_store, conversation_id)
    assert await redis_store.held_by("anne") == 0


async def test_an_automatic_hand_backs_listing_left_behind_does_not_tell_a_later_hold_its_listener_left(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne left her console: the automatic hand-back tells the young person and puts them back in line, but the
    connection is reset before its listing as begun is ended (``end_move``). Before any check, Bob takes them, then
    hands them back on purpose, his instance dying right after the queue step. The next check completes Bob's
    hand-back: back in line, told their place, never "your listener was disconnected" a second time (Bob did not
    disconnect). Before: the listing left behind (mover ``gateway``, no hold) made the check take Bob's hand-back for
    an automatic one whose message was refused, and write it under Bob's hold (told twice)."""
    conversation_id = await held_by_anne(redis_store, clock)
    await cut_while(redis_url, clock, conversation_id, "end_move",
                    lambda cut: cut.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    assert conversation_id in await redis_store.moves_begun()  # the listing left behind
    _, actions = instance(redis_store, clock)
    clock.advance(seconds=2)
    await actions.take(conversation_id, "bob", 3)
    _, dying = instance(DiesAfterRequeue(redis_store), clock)
    with pytest.raises(Killed):
        await dying.hand_back(conversation_id, "bob")
    clock.advance(seconds=10)
    await next_check(redis_store, clock)
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None)
    told = [
        e for e in await redis_store.transcript(conversation_id) if e.author is Author.BOT and DISCONNECTED in e.text
    ]
    assert len(told) == 1, f"told {len(told)} times that their listener was disconnected"


async def test_an_automatic_hand_back_whose_first_completion_the_fence_refused_is_still_told_once(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne's console gone too long, the check's hand-back refused by the fence (its message with its record), then
    the next check's completion refused the same way (a ``LockLost`` skips that conversation only, and the round goes
    on to the transfers listed): the listing that says the young person is owed "your listener was disconnected" is
    kept for the check after, which completes it with that message, told once. Before (2026-12-07): the same round's
    ``complete_move`` found the record still held, unlisted it, and the check after completed the hand-back untold."""
    conversation_id = await held_by_anne(redis_store, clock)
    await refused(redis_store, redis_url, clock,
                  lambda failing: failing.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    clock.advance(seconds=10)
    await check_refused(redis_store, redis_url, clock)  # its completion refused
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.WITH_LISTENER
    assert conversation_id in await redis_store.moves_begun(), "the listing owing the message was dropped"
    clock.advance(seconds=10)
    await next_check(redis_store, clock)
    await told_once_and_waiting(redis_store, conversation_id)  # before: told 0 times
    clock.advance(seconds=10)
    await next_check(redis_store, clock)  # nothing more
    await told_once_and_waiting(redis_store, conversation_id)
    assert await redis_store.moves_begun() == {}
