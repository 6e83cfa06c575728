"""A hand-back tells the young person once, even when the instance dies halfway (issue 8: nothing lost, nothing twice).

A conversation held by a listener who left their console goes back to the queue by itself, the young person told
that the listener was disconnected (``Actions.hand_back_absent``). The instance doing it dies between writing that
message and saving the conversation's new status; the next check (another instance, or this one restarted) hands
it back again. Afterwards the young person got the message once (one transcript entry, one outbox item) and the
conversation is consistent: waiting in the queue, nobody holding it.

Two real crashes, no part of the gateway changed:

* the instance dies once the message is written and before the status is saved (a store that kills its task at that
  save, ``DiesAtSave``: a ``BaseException``, so nothing of the gateway's catches it), on SQLite and on Redis,
  standalone and Cluster. Before, the message was written at once, and told again by the next try;
* the instance dies in the middle of the Redis pipeline that carries the hand-back: Redis ran the message's writes
  and not the record's (``tests/cutting_proxy.py``), the prefix a real crash leaves. The next try, with its ids
  derived from the hold, rewrites the same message, which the store ignores; and it completes the hand-back even if
  the listener is back meanwhile, since the young person was told.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from gateway import leaving
from gateway.console.actions import Actions
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Delivery, OutboxStatus, Store, open_store
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import emptied, redis_cluster_url, redis_url, store, store_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_cluster_url", "redis_url", "store", "store_url"]  # fixtures used below

DISCONNECTED = "a été déconnecté·e"  # flows.yaml's listener_disconnected, in French


class Killed(BaseException):
    """The instance died: nothing after this point runs (no ``except Exception`` of the gateway catches it)."""


class Dying:
    """The real store, whose instance dies at a point a subclass chooses (``died`` counts it)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.died = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class DiesAtSave(Dying):
    """The real store, whose instance dies when it saves a conversation handed back to the queue: after the hand-back's
    message was handed to the store, before its new status is saved."""

    async def save_conversation(self, conversation: Conversation, **options: Any) -> None:
        if conversation.status == Status.QUEUED and conversation.listener is None and not self.died:
            self.died += 1
            raise Killed
        await self._store.save_conversation(conversation, **options)


class DiesAfterRequeue(Dying):
    """The real store, whose instance dies right after a hand-back's queue step (``requeue``) was asked of it:
    before the message, the status and the record."""

    async def requeue(self, conversation_id: str, **options: Any) -> Any:
        entry = await self._store.requeue(conversation_id, **options)
        self.died += 1
        raise Killed
        return entry  # pragma: no cover


class DiesAtAudit(Dying):
    """The real store, whose instance dies when the hand-back's audit line is handed to it."""

    async def audit(self, entry: Any) -> None:
        self.died += 1
        raise Killed


def instance(store: object, clock: Clock) -> tuple[Dispatcher, Actions]:
    """The dispatcher and the listeners' actions of one gateway instance, on ``store``."""
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(cast(Store, store), flows, clock=clock)
    return dispatcher, Actions(dispatcher, cast(Any, store), flows, clock=clock)


async def cut_while(
    url: str,
    clock: Clock,
    conversation_id: str,
    cut: str,
    act: Callable[[Actions], Awaitable[object]],
    make: Callable[[Any, Clock], tuple[Dispatcher, Actions]] = instance,
) -> None:
    """``act`` made by an instance (``make``) whose Redis connection is reset before the first command of script
    ``cut`` that names the conversation, the prefix a dying instance leaves: it fails with a StoreError, and the
    reset happened once."""
    async with cutting_proxy(url) as proxy:
        through = await open_store(proxy.url, keys=store_keys(url))
        try:
            _, first = make(through, clock)
            proxy.cut_before(script_text(cut), conversation_id.encode())
            with pytest.raises(StoreError):
                await act(first)
        finally:
            await through.close()
    assert proxy.cut == 1


async def held_by_anne(store: Store, clock: Clock) -> str:
    """A young person on Messenger walked to the queue, and taken by Anne (who then left her console)."""
    dispatcher, actions = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-held", f"mid.{number}", text))
    [entry] = await store.waiting()
    await actions.take(entry.conversation_id, "anne", 3)
    return entry.conversation_id


async def told_once_and_waiting(store: Store, conversation_id: str) -> None:
    told = [e for e in await store.transcript(conversation_id) if e.author is Author.BOT and DISCONNECTED in e.text]
    assert len(told) == 1, f"told {len(told)} times"
    items = [await store.outbox_get(conversation_id, e.id) for e in told]
    assert all(item is not None for item in items)  # to be sent, once: one item, the entry's id
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED and conversation.listener is None
    assert [e.conversation_id for e in await store.waiting()] == [conversation_id]


async def test_an_instance_dying_between_the_message_and_the_save_does_not_tell_it_twice(
    store: Store, clock: Clock
) -> None:
    conversation_id = await held_by_anne(store, clock)
    dying = DiesAtSave(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        await first.hand_back_absent(conversation_id, "anne", lambda name: True)
    assert dying.died == 1
    # the message and the status are one batch: the instance died before it left, so neither was written
    assert not [e for e in await store.transcript(conversation_id) if DISCONNECTED in e.text]
    _, second = instance(store, clock)  # the next check: another instance, or this one restarted
    assert await second.hand_back_absent(conversation_id, "anne", lambda name: True)
    await told_once_and_waiting(store, conversation_id)
    assert not await second.hand_back_absent(conversation_id, "anne", lambda name: True)  # done: nothing more
    await told_once_and_waiting(store, conversation_id)


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[Store]:
    emptied(redis_url)
    opened = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.redis
@pytest.mark.parametrize("back", [False, True], ids=["still-away", "back-meanwhile"])
async def test_a_pipeline_cut_after_the_message_is_completed_by_the_next_try_told_once(
    redis_store: Store, redis_url: str, clock: Clock, back: bool
) -> None:
    conversation_id = await held_by_anne(redis_store, clock)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    told = [e for e in await redis_store.transcript(conversation_id) if DISCONNECTED in e.text]
    assert len(told) == 1  # the prefix: the message was written, the status not
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.WITH_LISTENER
    _, second = instance(redis_store, clock)
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    assert await second.hand_back_absent(conversation_id, "anne", lambda name: not back)
    await told_once_and_waiting(redis_store, conversation_id)


@pytest.mark.parametrize("how", ["automatic", "logout"])
async def test_an_instance_dying_right_after_the_queue_step_leaves_the_young_person_takeable(
    store: Store, store_url: str, clock: Clock, how: str
) -> None:
    """The hand-back's queue step was made and nothing after it: its queue entry waits while its record says held,
    so nobody may take the young person (and a listener back at their console answers one the queue lists as
    waiting). SQLite makes the queue step in the batch's one transaction: nothing was written. Redis makes it alone
    (the queue is another slot than the record): the next alert check (the app's wiring, ``next_check``) completes
    the hand-back within its period, whether Anne is back (here) or not, with no grace to wait, the young person told
    once that their listener left: both hand-backs are listed as begun by the gateway before their queue step.
    ``logout`` drives the logout's own function (``Actions.hand_back_all``, what ``Api.logout`` calls, nobody else at
    a console); until 2026-12-07 it called a plain ``hand_back`` (no ``leaving``, no ``gone``), which is not the
    logout's path, and the completion was not checked to tell the young person."""
    from tests.console.test_take_crash import next_check  # a cycle at import time otherwise

    conversation_id = await held_by_anne(store, clock)
    dying = DiesAfterRequeue(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        if how == "automatic":
            await first.hand_back_absent(conversation_id, "anne", lambda name: True)
        else:  # her logout's: what the console's POST /api/logout calls
            await first.hand_back_all("anne", lambda name: False)
    assert dying.died == 1
    if store_url.startswith("sqlite"):  # one transaction: dropped whole
        assert await store.waiting() == []
    await next_check(store, clock)  # another instance, or this one restarted; Anne back: nothing taken for absence
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    waiting = [e.conversation_id for e in await store.waiting()]
    state = (conversation.status, conversation.listener, waiting)
    if store_url.startswith("sqlite"):  # nothing was written: still hers, the automatic hand-back's to give back
        assert state == (Status.WITH_LISTENER, "anne", []), state
        return
    assert state == (Status.QUEUED, None, [conversation_id]), state  # completed
    await told_once_and_waiting(store, conversation_id)  # "your listener left", once (the hold's id)
    [audited] = [e for e in await store.audit_log() if e.action == "hand_back"]
    assert "cut short" in audited.detail
    await next_check(store, clock)  # nothing more
    await told_once_and_waiting(store, conversation_id)
    _, second = instance(store, clock)  # another listener may take the young person
    await second.take(conversation_id, "bruno", 3)


async def test_an_instance_dying_at_the_audit_line_does_not_lose_it(store: Store, clock: Clock) -> None:
    """The line that tells the supervisors whose absence it was is written with the hand-back (in its batch): dying
    when it is handed to the store leaves nothing written, and the next check writes the hand-back and its line.
    Before, it was written after the batch: the conversation went back to the queue and the line was lost."""
    conversation_id = await held_by_anne(store, clock)
    dying = DiesAtAudit(store)
    _, first = instance(dying, clock)
    with pytest.raises(Killed):
        await first.hand_back_absent(conversation_id, "anne", lambda name: True)
    assert dying.died == 1
    _, second = instance(store, clock)
    await second.hand_back_absent(conversation_id, "anne", lambda name: True)
    await told_once_and_waiting(store, conversation_id)
    [audited] = [e for e in await store.audit_log() if e.action == "hand_back"]
    assert audited.subject == conversation_id and "from anne" in audited.detail


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["outbox_list", "put_conversation"])
async def test_an_automatic_hand_back_cut_after_its_message_is_completed_by_the_check_its_message_sent_once(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """The automatic hand-back's queue step made, its message ("your listener was disconnected") written, then its
    pipeline cut before that message was listed to be sent (``outbox_list``) or before the record
    (``put_conversation``). The next alert check finds the held record beside a waiting entry and completes the
    hand-back (``Actions.complete_hand_back``) before any new try: the message written again with its id (the store
    keeps the entry and item, and lists one not listed yet), so it is listed once and sent once, never left pending
    for good. Before, the check made it as a plain hand-back: cut before the listing, the message stayed pending,
    its entry shown pending on the console, while the young person was back in line."""
    from tests.console.test_take_crash import next_check, told  # a cycle at import time otherwise

    conversation_id = await held_by_anne(redis_store, clock)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    written = [e for e in await redis_store.transcript(conversation_id) if DISCONNECTED in e.text]
    assert len(written) == 1  # the prefix: the message was written, the record not
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    assert await told(redis_store, conversation_id, DISCONNECTED, clock()) == 1  # listed once: it will be sent
    await told_once_and_waiting(redis_store, conversation_id)
    [audited] = [e for e in await redis_store.audit_log() if e.action == "hand_back"]
    assert "cut short" in audited.detail


@pytest.mark.redis
async def test_an_automatic_hand_back_cut_before_its_listing_then_closed_has_its_message_withdrawn(
    redis_store: Store, redis_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The automatic hand-back cut after its message was written and before it was listed (its queue step made, the
    record still held by Anne); Anne, back at her console, closes the conversation before the next check. The close
    leaves its listing to the check, which withdraws the message: failed, its entry shown failed, not handed to the
    outbox, one audit line and one log line without its text; the goodbye is the outbox's; nothing left listed or
    waiting. Before, the message stayed pending for good (nothing looked at a closed conversation)."""
    from tests.console.test_close_crash import ENDED
    from tests.console.test_take_crash import next_check  # a cycle at import time otherwise

    conversation_id = await held_by_anne(redis_store, clock)
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    [cut] = [e for e in await redis_store.transcript(conversation_id) if DISCONNECTED in e.text]
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    _, actions = instance(redis_store, clock)
    await actions.close(conversation_id, "anne", "cyberbullying")
    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    item = await redis_store.outbox_get(conversation_id, cut.id)
    assert item is not None and item.status is OutboxStatus.FAILED and "withdrawn" in (item.last_error or ""), item
    handed_out = {i.id for i in await redis_store.outbox_due(clock(), 10, run=100)}
    transcript = await redis_store.transcript(conversation_id)
    assert cut.id not in handed_out and [e.delivery for e in transcript if e.id == cut.id] == [Delivery.FAILED]
    assert {e.id for e in transcript if ENDED in e.text} <= handed_out  # the goodbye: the outbox's
    lines = [e for e in await redis_store.audit_log() if e.action.endswith("_withdrawn")]
    assert [e.subject for e in lines] == [conversation_id] and DISCONNECTED not in lines[0].detail, lines
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(said) == 1 and DISCONNECTED not in said[0], said
    assert await redis_store.closes_begun() == {} and await redis_store.waiting() == []


@pytest.mark.redis
@pytest.mark.parametrize("ending", ["idle_close", "ended", "quick_exit"])
async def test_an_automatic_hand_back_cut_before_its_listing_then_ended_otherwise_has_its_message_withdrawn(
    redis_store: Store, redis_url: str, clock: Clock, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    """The automatic hand-back cut after its message ("your listener was disconnected") was written and before it was
    listed (its queue step made, the record still held by Anne); before the next check the conversation ends another
    way than a close from the console: the idle timer closes it, or the young person ends it ("Terminer",
    ``leaving.ended``). The check then withdraws the message: failed, its entry shown failed, not handed to the
    outbox, one ``hand_back_withdrawn`` line and one log line without its text; the ending's own goodbye is the
    outbox's; nothing left listed or waiting. Before, only ``Actions.close`` looked for that message: it stayed
    pending for good. ``quick_exit`` is the control: a held conversation stays its listener's, the check completes
    the hand-back, the message listed and told once, nothing withdrawn."""
    from tests.console.test_take_crash import next_check, told  # a cycle at import time otherwise
    from tests.console.test_transfer_withdrawn import end_before_the_check

    conversation_id = await held_by_anne(redis_store, clock)
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.hand_back_absent(conversation_id, "anne", lambda name: True))  # fmt: skip
    [cut] = [e for e in await redis_store.transcript(conversation_id) if DISCONNECTED in e.text]
    since = len(await redis_store.transcript(conversation_id))
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    dispatcher, actions = instance(redis_store, clock)
    if ending == "ended":
        await leaving.ended(dispatcher, redis_store, conversation_id, clock())
    else:
        await end_before_the_check(ending, actions, dispatcher, redis_store, clock, conversation_id)
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and after.active == (ending == "quick_exit"), after.status

    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    lines = [e for e in await redis_store.audit_log() if e.action.endswith("_withdrawn")]
    if ending == "quick_exit":  # still held by Anne: the check completes the hand-back, its message told once
        assert await told(redis_store, conversation_id, DISCONNECTED, clock()) == 1
        await told_once_and_waiting(redis_store, conversation_id)
        assert not lines and await redis_store.moves_begun() == {}
        return
    item = await redis_store.outbox_get(conversation_id, cut.id)
    assert item is not None and item.status is OutboxStatus.FAILED and "withdrawn" in (item.last_error or ""), item
    handed_out = {i.id for i in await redis_store.outbox_due(clock(), 10, run=100)}
    transcript = await redis_store.transcript(conversation_id)
    assert cut.id not in handed_out and [e.delivery for e in transcript if e.id == cut.id] == [Delivery.FAILED]
    goodbye = [e.id for e in transcript[since:] if e.author is Author.BOT]
    assert goodbye and set(goodbye) <= handed_out  # the ending's goodbye: the outbox's
    assert [(e.action, e.subject) for e in lines] == [("hand_back_withdrawn", conversation_id)], lines
    assert DISCONNECTED not in lines[0].detail
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(said) == 1 and DISCONNECTED not in said[0], said
    assert await redis_store.moves_begun() == {} and await redis_store.closes_begun() == {}
    assert await redis_store.waiting() == []
