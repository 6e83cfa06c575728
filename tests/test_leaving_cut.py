"""A young person's leaving cut short on Redis after its queue step is completed as that leaving, never put back in
line (issue 8: nothing sent after a quick exit; nothing stuck).

A waiting young person's quick exit (the beacon of a page hidden because someone may be looking at the screen) and
"Terminer" write one step at a time under the conversation's lock: the note for the listeners ("left …"), the queue
step (the waiting entry leaves, alone: another slot than the record), then the record, abandoned. An instance dying
between the queue step and the record left a record that says queued with no entry waiting, which the next alert
check took for a take cut short and put back in line (``Actions.back_in_line``): a listener could then take the
conversation and write to the page after a quick exit, or after the young person ended it. The leaving's note now has
an id derived from the conversation and the leaving (``leaving.begun``): the check finds it and completes the leaving
instead, abandoned, marked as left that way, nothing written to the young person.

Cut before its queue step (the note written, the entry still waiting beside a record that says queued), nothing
found it: no comparison of ids sees a young person who waits, and a listener could take them after their quick exit.
Such an ending is now listed as begun (``store.begin_leaving``, first in its pipeline, until its record is written):
the check completes it as that ending (``Actions.complete_leaving``), and until then the take's script refuses the
conversation. The idle timer's close of a waiting conversation is one of those endings (``leaving.idle_close``): cut
before or after its queue step (its goodbye written, every timer of the conversation cancelled with it, so no retry
of the timer comes), the check put the young person back in line after the goodbye, or never found them; it is now
completed as the idle close, the goodbye told once (its id derives from the conversation).

Real cuts, no part of the gateway changed: a Redis connection reset before the queue step (``remove_from_queue``,
sent alone) or the record's write (``put_conversation``), ``tests/cutting_proxy.py``, the prefix a dying instance
leaves; then the real check, the real timers, and a listener's real take.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from gateway import leaving
from gateway.console.actions import Actions
from gateway.conversation import Conversation, Status
from gateway.errors import ActionRefused, StoreError
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, Store, TimerKind, open_store
from gateway.timers import Timers
from tests.conftest import Clock
from tests.console.test_handback_crash import Dying, Killed, cut_while, held_by_anne, instance, redis_store, store_keys
from tests.console.test_take_crash import next_check
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_sha, script_text
from tests.store.conftest import redis_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below

TOKEN = "page-token-0123456789abcdef"  # a web chat page's token: its sender


async def waiting_on_the_web_chat(store: Store, clock: Clock) -> str:
    """A young person on the web chat walked to the queue: their conversation's id."""
    dispatcher, _ = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, TOKEN, f"m{number}", text))
    [entry] = await store.waiting()
    return entry.conversation_id


@pytest.mark.redis
@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_a_leaving_cut_after_its_queue_step_is_completed_never_put_back_in_line(
    redis_store: Store, redis_url: str, clock: Clock, how: str
) -> None:
    """The young person leaves (quick exit, or "Terminer") while waiting; the instance dies after the waiting entry
    left and before the record was written. After the next check: abandoned, marked as left that way, in no queue,
    nobody may take them, and nothing more is written to them (only the listeners' note). A second check changes
    nothing. Before, the check put them back in line and Anne's take told the page a listener joined."""
    conversation_id = await waiting_on_the_web_chat(redis_store, clock)
    clock.advance(minutes=1)

    async def leave(first: Actions) -> None:
        dispatcher = first.dispatcher  # the cut instance's, on its cut store
        if how == "quick_exit":
            await leaving.quick_exit(dispatcher, first.store, conversation_id, clock())
        else:
            await leaving.ended(dispatcher, first.store, conversation_id, clock())

    since = len(await redis_store.transcript(conversation_id))
    await cut_while(redis_url, clock, conversation_id, "put_conversation", leave)
    cut = await redis_store.get_conversation(conversation_id)
    assert cut is not None and cut.status is Status.QUEUED and cut.left_how is None  # the record not written
    assert await redis_store.waiting() == []  # the queue step made: the gap

    clock.advance(seconds=10)  # the next check; the lost release made again by token (or lapsed in 6 s)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.left_how) == (Status.ABANDONED, how), after
    assert await redis_store.waiting() == []
    _, actions = instance(redis_store, clock)
    with pytest.raises(ActionRefused):
        await actions.take(conversation_id, "anne", 3)
    written = (await redis_store.transcript(conversation_id))[since:]
    to_the_page = [e for e in written if e.author is not Author.SYSTEM]
    assert len(to_the_page) == (0 if how == "quick_exit" else 1), to_the_page  # "Terminer": its goodbye, once
    assert [e.system.code for e in written if e.system] == [f"left.{how}"]  # told the listeners once


async def cut_at(url: str, clock: Clock, conversation_id: str, marker: bytes,
                 act: Callable[[Store], Awaitable[object]]) -> None:  # fmt: skip
    """``act`` made on a store whose Redis connection is reset before the first command holding ``marker`` (a script's
    text, in a pipeline, or its sha, sent alone) and naming the conversation: it fails with a StoreError, once."""
    async with cutting_proxy(url) as proxy:
        through = await open_store(proxy.url, keys=store_keys(url))
        try:
            proxy.cut_before(marker, conversation_id.encode())
            with pytest.raises(StoreError):
                await act(through)
        finally:
            await through.close()
    assert proxy.cut == 1


async def refused(store: Store, clock: Clock, conversation_id: str) -> str:
    """Anne's take of the conversation, refused: its code."""
    _, actions = instance(store, clock)
    with pytest.raises(ActionRefused) as refusal:
        await actions.take(conversation_id, "anne", 3)
    return refusal.value.code


@pytest.mark.redis
@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_a_leaving_cut_before_its_queue_step_is_never_taken_and_completed_by_the_check(
    redis_store: Store, redis_url: str, clock: Clock, how: str
) -> None:
    """The young person leaves (quick exit, or "Terminer") while waiting; the instance dies after the leaving's note
    (and "Terminer"'s goodbye) and before the queue step: the entry still waits, the record says queued, not left.
    Anne's take is refused at once (the leaving is listed as begun: the take's script looks); after the next check:
    abandoned, marked as left that way, in no queue, nothing more written to the young person, the listeners' note
    once, one ``leaving_completed`` line, nothing listed. Before, nothing found it: Anne took them, and the page was
    told a listener joined after the quick exit."""
    conversation_id = await waiting_on_the_web_chat(redis_store, clock)
    clock.advance(minutes=1)
    since = len(await redis_store.transcript(conversation_id))

    async def leave(store: Store) -> None:
        dispatcher, _ = instance(store, clock)  # the cut instance's, on its cut store
        if how == "quick_exit":
            await leaving.quick_exit(dispatcher, store, conversation_id, clock())
        else:
            await leaving.ended(dispatcher, store, conversation_id, clock())

    await cut_at(redis_url, clock, conversation_id, script_sha("remove_from_queue"), leave)
    cut = await redis_store.get_conversation(conversation_id)
    assert cut is not None and cut.status is Status.QUEUED and cut.left_how is None  # the record not written
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]  # the queue step not made
    written = (await redis_store.transcript(conversation_id))[since:]
    assert [e.system.code for e in written if e.system] == [f"left.{how}"]  # the gap: the note written

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    assert await refused(redis_store, clock, conversation_id) == "not_active"  # before the check: not taken
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.left_how) == (Status.ABANDONED, how), after
    assert await redis_store.waiting() == []
    assert await refused(redis_store, clock, conversation_id) == "not_active"
    written = (await redis_store.transcript(conversation_id))[since:]
    to_the_page = [e for e in written if e.author is not Author.SYSTEM]
    assert len(to_the_page) == (0 if how == "quick_exit" else 1), to_the_page  # "Terminer": its goodbye, once
    assert [e.system.code for e in written if e.system] == [f"left.{how}"]  # told the listeners once
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines == [("leaving_completed", conversation_id)], lines
    assert await redis_store.leavings_begun() == {}


async def waiting_on_messenger(store: Store, clock: Clock) -> str:
    """A young person on Messenger walked to the queue (their replies go through the outbox): the conversation's id."""
    dispatcher, _ = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-idle", f"mid.{number}", text))
    [entry] = await store.waiting()
    return entry.conversation_id


def timers_of(store: Store, clock: Clock) -> Timers:
    dispatcher, actions = instance(store, clock)
    return Timers(dispatcher, store, actions.flows, Metrics(), clock=clock)


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["before_listing", "before_queue_step", "after_queue_step"])
async def test_an_idle_close_of_a_waiting_conversation_cut_short_is_completed_never_back_in_line(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """Nobody took the young person for a day: the idle timer closes the conversation (abandoned: it waited), and the
    instance dies after the goodbye was written (with every timer of the conversation cancelled: no retry of the
    timer comes), before its queue step or after it (before the record). After the next check: abandoned, in no
    queue, nobody may take them, told goodbye once (one entry, listed to be sent once), nothing told after it (no
    place in a queue), one ``idle_close_completed`` line, nothing listed. Before: cut after its queue step, the check
    put them back in line after their goodbye; cut before it, nothing found them, still waiting, takeable. Cut before
    the goodbye's listing (its timer left for a retry: the cancellation comes after the listing), the check comes first
    and completes it: until 2026-12-04 (rel30) the goodbye, found written, was not listed, pending for good."""
    conversation_id = await waiting_on_messenger(redis_store, clock)
    [idle] = [t for t in await redis_store.due_timers(clock() + timedelta(days=2)) if t.kind is TimerKind.IDLE_CLOSE]
    clock.now = idle.due_at - timedelta(minutes=1)
    await timers_of(redis_store, clock).fire_due()  # the queue's reassurance, due first, told: only the idle close next
    clock.now = idle.due_at
    since = len(await redis_store.transcript(conversation_id))

    markers = {"before_listing": script_text("outbox_list"), "before_queue_step": script_sha("remove_from_queue")}
    marker = markers.get(cut, script_text("put_conversation"))
    await cut_at(redis_url, clock, conversation_id, marker, lambda store: timers_of(store, clock).fire_due())
    before = await redis_store.get_conversation(conversation_id)
    assert before is not None and before.status is Status.QUEUED  # the record not written
    waits = [e.conversation_id for e in await redis_store.waiting()]
    assert waits == ([] if cut == "after_queue_step" else [conversation_id])
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    assert await refused(redis_store, clock, conversation_id) in ("not_active", "taken")  # before the check too
    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left: nothing more told
    await next_check(redis_store, clock)

    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and after.status is Status.ABANDONED, after
    assert await redis_store.waiting() == []
    assert await refused(redis_store, clock, conversation_id) == "not_active"
    told = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [e.id for e in told] == [goodbye.id], [e.text for e in told]  # the goodbye once, nothing after it
    due = [i.id for i in await redis_store.outbox_due(clock(), 10, run=100)]  # the walk's replies, none sent here
    assert due.count(goodbye.id) == 1 and due[-1] == goodbye.id, due  # listed to be sent once, last
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines == [("idle_close_completed", conversation_id)], lines
    assert await redis_store.leavings_begun() == {}


class DiesAtTheRecord(Dying):
    """The real store, whose instance dies as an ending's record is handed to it (abandoned, closed or ended)."""

    async def save_conversation(self, conversation: Conversation, **options: Any) -> None:
        if not conversation.active and not self.died:
            self.died += 1
            raise Killed
        await self._store.save_conversation(conversation, **options)


@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_a_leaving_whose_instance_dies_on_sqlite_writes_none_of_it(
    tmp_path: Path, clock: Clock, how: str
) -> None:
    """SQLite writes a quick exit or a "Terminer" in one transaction (the conversation's batch): an instance dying as
    it hands the record over leaves nothing of it, neither the note nor the queue step (as a crash before the request
    would), so nothing is half made for a check to find; the store lists nothing (``leavings_begun``: Redis only).
    Before, each write was its own transaction: the note written and the entry gone beside a queued record."""
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    try:
        conversation_id = await waiting_on_the_web_chat(store, clock)
        since = len(await store.transcript(conversation_id))
        dying = DiesAtTheRecord(store)
        dispatcher, _ = instance(dying, clock)
        with pytest.raises(Killed):
            if how == "quick_exit":
                await leaving.quick_exit(dispatcher, cast(Any, dying), conversation_id, clock())
            else:
                await leaving.ended(dispatcher, cast(Any, dying), conversation_id, clock())
        assert dying.died == 1
        after = await store.get_conversation(conversation_id)
        assert after is not None and (after.status, after.left_how) == (Status.QUEUED, None)
        assert [e.conversation_id for e in await store.waiting()] == [conversation_id]
        assert (await store.transcript(conversation_id))[since:] == []
        assert await store.leavings_begun() == {}
    finally:
        await store.close()


@pytest.mark.redis
@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_a_leaving_from_the_bot_cut_short_is_completed_by_the_check(
    redis_store: Store, redis_url: str, clock: Clock, how: str
) -> None:
    """The young person leaves (quick exit, or "Terminer") while the bot asks its questions; the instance dies after
    the note (and "Terminer"'s goodbye), before the record (its timers cancelled with the note's pipeline: no bot
    timer fires any more). After the next check: no longer active, marked as left that way, the note once, nothing
    more written to them, one ``leaving_completed`` line, nothing listed. Before, no check looked at a record with
    the bot: it stayed active, not marked as left."""
    dispatcher, _ = instance(redis_store, clock)
    assert await dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, TOKEN, "m0", WALK_TO_QUEUE[0]))
    [conversation_id] = await redis_store.conversation_ids_by_status(Status.BOT)
    clock.advance(minutes=1)
    since = len(await redis_store.transcript(conversation_id))

    async def leave(store: Store) -> None:
        cut_dispatcher, _ = instance(store, clock)
        if how == "quick_exit":
            await leaving.quick_exit(cut_dispatcher, store, conversation_id, clock())
        else:
            await leaving.ended(cut_dispatcher, store, conversation_id, clock())

    await cut_at(redis_url, clock, conversation_id, script_text("put_conversation"), leave)
    cut = await redis_store.get_conversation(conversation_id)
    assert cut is not None and cut.status is Status.BOT and cut.left_how is None  # the record not written

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and not after.active and after.left_how == how, after
    written = (await redis_store.transcript(conversation_id))[since:]
    to_the_page = [e for e in written if e.author is not Author.SYSTEM]
    assert len(to_the_page) == (0 if how == "quick_exit" else 1), to_the_page  # "Terminer": its goodbye, once
    assert [e.system.code for e in written if e.system] == [f"left.{how}"]
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines == [("leaving_completed", conversation_id)], lines
    assert await redis_store.leavings_begun() == {}


async def timers_armed(store: Store, clock: Clock, conversation_id: str) -> list[TimerKind]:
    """The kinds of the conversation's timers armed, however far ahead."""
    due = await store.due_timers(clock() + timedelta(days=400))
    return [t.kind for t in due if t.conversation_id == conversation_id]


async def close_refused(store: Store, clock: Clock, conversation_id: str) -> str | None:
    """Anne closes the conversation from her console: the refusal's code, or None when it was closed."""
    _, actions = instance(store, clock)
    try:
        await actions.close(conversation_id, "anne", "cyberbullying")
    except ActionRefused as refusal:
        return refusal.code
    return None


@pytest.mark.redis
@pytest.mark.parametrize(("cut", "then"), [
    ("put_conversation", "anne_closes"), ("put_conversation", "nobody"), ("outbox_list", "anne_closes"),
    ("outbox_list", "nobody"),  # passed before the fix: the timer's retry (cut before the cancellation) completed it
])  # fmt: skip
async def test_an_idle_close_of_a_held_conversation_cut_short_is_completed_told_goodbye_once(
    redis_store: Store, redis_url: str, clock: Clock, caplog: pytest.LogCaptureFixture, cut: str, then: str
) -> None:
    """Anne holds a Messenger conversation and nobody writes for a day: the idle timer closes it (closed, ``idle``),
    its writes in one pipeline, the goodbye, its listing and the cancellation of every timer first, then the record;
    the instance dies before the record (no timer left: nothing would end it) or before the goodbye's listing (the
    timer left at its lease's end, for a retry). The record still says held by Anne, the goodbye written. Anne then
    closes it from her console (``anne_closes``), or nobody does anything. After the next checks and a timers' pass:
    closed as an idle close, once (``idle``; audited ``idle_close_completed`` once, with one WARNING line naming the
    conversation, never the sender or the text), told goodbye once (one bot entry since the firing, handed out by the
    outbox once, last), Anne's capacity free, no timer armed, nothing listed; Anne's close refused before the check
    and after it (``not_active``: no second goodbye). Cut before the listing with nobody acting, the timer's retry
    may complete it before the check does (then no audit line)."""
    conversation_id = await held_by_anne(redis_store, clock)
    assert await timers_armed(redis_store, clock, conversation_id) == [TimerKind.IDLE_CLOSE]  # the take's cancelled
    [idle] = await redis_store.due_timers(clock() + timedelta(days=2))  # the idle close, its only timer
    clock.now = idle.due_at
    since = len(await redis_store.transcript(conversation_id))

    await cut_at(redis_url, clock, conversation_id, script_text(cut), lambda store: timers_of(store, clock).fire_due())
    before = await redis_store.get_conversation(conversation_id)
    assert before is not None and (before.status, before.listener) == (Status.WITH_LISTENER, "anne")  # no record
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    armed = await timers_armed(redis_store, clock, conversation_id)  # cut before the record: cancelled, no retry
    assert armed == ([] if cut == "put_conversation" else [TimerKind.IDLE_CLOSE]), armed

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    refusal = await close_refused(redis_store, clock, conversation_id) if then == "anne_closes" else "not_active"
    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left: nothing more told
    await next_check(redis_store, clock)  # nothing more

    told = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [e.id for e in told] == [goodbye.id], [e.text for e in told]  # the goodbye once, no close's after it
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.outcome) == (Status.CLOSED, "idle"), after
    assert refusal == "not_active"  # before the check: refused, not a second goodbye
    assert await close_refused(redis_store, clock, conversation_id) == "not_active"
    assert await redis_store.held_by("anne") == 0 and await redis_store.queue_entry(conversation_id) is None
    assert await timers_armed(redis_store, clock, conversation_id) == []
    due = [i.id for i in await redis_store.outbox_due(clock(), 10, run=100)]  # the walk's replies, none sent here
    assert due.count(goodbye.id) == 1 and due[-1] == goodbye.id, due  # listed to be sent once, last
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    by_the_check = [("idle_close_completed", conversation_id)]
    assert lines == by_the_check or (lines == [] and cut == "outbox_list" and then == "nobody"), lines  # or the retry
    said = [r.getMessage() for r in caplog.records if conversation_id in r.getMessage()]
    assert len(said) == len(lines), said  # the check's one WARNING line when it completed it
    assert not [r for r in caplog.records if "psid-held" in r.getMessage() or goodbye.text in r.getMessage()]
    assert await redis_store.leavings_begun() == {} and await redis_store.closes_begun() == {}
