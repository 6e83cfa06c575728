"""An ending cut short on Redis (listed as begun, ``store.begin_leaving``; the young person told goodbye) refuses what a
listener would do before the check completes it: never a second goodbye, nothing told after the goodbye.

Three gaps that docs/guarantees.md listed as "still not swept" (read from the code, not tested) until branch rel31:

* "Terminer" on a held conversation, cut after its goodbye and before its record (the record still says held by
  Anne), then closed by Anne before the check: her close told its own goodbye beside "Terminer"'s (both listed).
* A waiting conversation's idle close, cut after its goodbye and before its queue step (still waiting), then closed by
  a supervisor before the check: the same, two goodbyes. Refused too now, as a held one's close is since rel30
  (``Actions._cut_before`` looks for either ending's goodbye in the one read it makes already).
* A held conversation's idle close cut before its record, then Anne's reply, hand-back or transfer before the check:
  the reply was sent after the goodbye; the hand-back or transfer put the young person in a queue after it. Refused
  (``not_active``): the hand-back's and the transfer's queue steps read the leaving list in their scripts (no round
  trip more); the reply reads it (one ``HGETALL`` more a reply: no script of the reply's slots could hold it); so does
  a referral. The automatic hand-back (a listener gone from their console) is not made either.

* The supervision page's bulk close (``POST /api/floods/close``, ``Safety._close``) of a waiting conversation whose idle
  close was cut after its goodbye: it told its own goodbye (``ended``) beside the idle one until branch rel33 (found on
  rel32). Skipped now (not closed, nothing told) while the ending is listed as begun, counted in its answer
  (``ending``); the check completes the idle close.

What the check still does for an ending closed first by an instance of before rel31 (a rolling deploy: its close of a
waiting conversation was allowed once the idle goodbye was written) is tested here too: the idle goodbye never listed
is withdrawn (``Actions.complete_leaving``, audited ``leaving_withdrawn``), the old close's goodbye the only one sent.

Real cuts: ``tests/cutting_proxy.py`` resets the Redis connection before a chosen command, the prefix a dying
instance leaves; then the real check and the real timers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest

from gateway import leaving
from gateway.app import SUPERVISOR
from gateway.channels.messenger import MessengerChannel
from gateway.console.actions import Actions
from gateway.conversation import Status
from gateway.errors import ActionRefused
from gateway.flows.lifecycle import Trigger
from gateway.ids import derived_ids
from gateway.language import language_of
from gateway.messages import ChannelName, Inbound, Reply
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import Author, Delivery, OutboxStatus, Store, TimerKind, TranscriptEntry
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_handback_crash import held_by_anne, instance, redis_store
from tests.console.test_take_crash import next_check
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_sha, script_text
from tests.store.conftest import redis_url
from tests.test_leaving_cut import (
    close_refused,
    cut_at,
    timers_armed,
    timers_of,
    waiting_on_messenger,
    waiting_on_the_web_chat,
)
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below


@pytest.mark.redis
async def test_a_terminer_of_a_held_conversation_cut_before_its_record_then_closed_is_refused_told_goodbye_once(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne holds a web chat conversation; the young person presses "Terminer": its goodbye and its note written (and
    shown), the instance dies before the record (still held by Anne, not marked as left; the ending listed as begun).
    Anne closes it from her console before the check: refused (``not_active``), before the check and after it. After
    the check: closed ``ended_by_young_person``, marked as left that way, told goodbye once (one bot entry since
    "Terminer"), one ``leaving_completed`` line, Anne's capacity free, nothing listed. Before, Anne's close told its
    own goodbye after "Terminer"'s: two goodbyes."""
    conversation_id = await waiting_on_the_web_chat(redis_store, clock)
    _, actions = instance(redis_store, clock)
    await actions.take(conversation_id, "anne", 3)
    clock.advance(minutes=1)
    since = len(await redis_store.transcript(conversation_id))

    async def terminer(store: Store) -> None:
        dispatcher, _ = instance(store, clock)  # the cut instance's, on its cut store
        await leaving.ended(dispatcher, store, conversation_id, clock())

    await cut_at(redis_url, clock, conversation_id, script_text("put_conversation"), terminer)
    before = await redis_store.get_conversation(conversation_id)
    assert before is not None and (before.status, before.listener, before.left_how) == (
        Status.WITH_LISTENER, "anne", None)  # fmt: skip
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    refusal = await close_refused(redis_store, clock, conversation_id)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    told = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [e.id for e in told] == [goodbye.id], [e.text for e in told]  # "Terminer"'s goodbye once
    assert refusal == "not_active"  # before the check: refused, not a second goodbye
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None, after
    assert (after.status, after.outcome, after.left_how) == (Status.CLOSED, "ended_by_young_person", "ended"), after
    assert await close_refused(redis_store, clock, conversation_id) == "not_active"
    assert await redis_store.held_by("anne") == 0 and await redis_store.queue_entry(conversation_id) is None
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines == [("leaving_completed", conversation_id)], lines
    assert await redis_store.leavings_begun() == {} and await redis_store.closes_begun() == {}


async def delivered_to_the_young_person(redis_store: Store, clock: Clock, settings: Settings) -> list[str]:
    """The texts the outbox delivers to the young person of :func:`waiting_on_messenger` (a fake Graph API), every
    reply due, the walk's and the goodbye(s), until nothing is left."""
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        configured = settings.replace(messenger_api_url=graph.url, messenger_page_access_token="token")
        outbox = Outbox(redis_store, {ChannelName.MESSENGER: MessengerChannel(configured, session)}, clock=clock)
        for _ in range(10):
            if not await outbox.deliver_due():
                break
        return [r.body["message"]["text"] for r in graph.accepted() if r.body["recipient"]["id"] == "psid-idle"]


async def idle_close_cut_while_waiting(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> tuple[str, int, TranscriptEntry]:
    """A young person waiting on Messenger for a day, their idle close's pipeline cut at ``cut`` (before its goodbye's
    listing, ``outbox_list``, or before the queue step, ``remove_from_queue``): the conversation's id, its transcript's
    length before the idle close, and the idle goodbye's entry, checked written once, still waiting, the ending listed
    as begun."""
    conversation_id = await waiting_on_messenger(redis_store, clock)
    [idle] = [t for t in await redis_store.due_timers(clock() + timedelta(days=2)) if t.kind is TimerKind.IDLE_CLOSE]
    clock.now = idle.due_at - timedelta(minutes=1)
    await timers_of(redis_store, clock).fire_due()  # the queue's reassurance, due first: only the idle close next
    clock.now = idle.due_at
    since = len(await redis_store.transcript(conversation_id))
    marker = script_text(cut) if cut == "outbox_list" else script_sha(cut)
    await cut_at(redis_url, clock, conversation_id, marker, lambda store: timers_of(store, clock).fire_due())
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert goodbye.id == leaving.goodbye_id(conversation_id, "idle_close")
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]
    assert await redis_store.leavings_begun() == {conversation_id: "idle_close"}
    return conversation_id, since, goodbye


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["outbox_list", "remove_from_queue"])
@pytest.mark.parametrize("action", ["close", "transfer"])
async def test_an_idle_close_of_a_waiting_conversation_cut_after_its_goodbye_then_closed_is_refused_told_goodbye_once(
    redis_store: Store, redis_url: str, clock: Clock, cut: str, action: str
) -> None:
    """Nobody took the young person (Messenger) for a day: the idle timer closes the conversation, its goodbye written,
    and the instance dies before the goodbye's listing (``outbox_list``: its timer left for a retry) or after it,
    before the queue step (``remove_from_queue``: every timer cancelled): still waiting, the ending listed as begun.
    Sam, a supervisor, closes it before the check: refused (``not_active``), as a held conversation's close is since
    rel30; so is his transfer (``transfer``: to the back of its queue; its queue step's script reads the list). After
    the checks and a timers' pass: abandoned (the idle close), in no queue, told goodbye once, that goodbye listed to
    be sent once and last, one ``idle_close_completed`` line (or none when the timer's retry completed it), nothing
    listed. Before: ``[close-remove_from_queue]`` Sam's goodbye was sent after the idle one (both listed);
    ``[close-outbox_list]`` the idle one was withdrawn by the check and Sam's told (rel28's behaviour); the transfer
    was made, the young person told their place after the goodbye."""
    conversation_id, since, goodbye = await idle_close_cut_while_waiting(redis_store, redis_url, clock, cut)

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    _, actions = instance(redis_store, clock)
    with pytest.raises(ActionRefused) as refusal:
        if action == "close":
            await actions.close(conversation_id, "sam", "cyberbullying", supervisor=True)
        else:
            await actions.transfer(conversation_id, "sam", "listeners", supervisor=True)
    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left: nothing more told
    await next_check(redis_store, clock)

    told = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [e.id for e in told] == [goodbye.id], [e.text for e in told]  # the idle goodbye once, no close's
    assert refusal.value.code == "not_active"
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and after.status is Status.ABANDONED, after
    assert await redis_store.waiting() == [] and await redis_store.queue_entry(conversation_id) is None
    due = [i.id for i in await redis_store.outbox_due(clock(), 10, run=100)]  # the walk's replies, none sent here
    assert due.count(goodbye.id) == 1 and due[-1] == goodbye.id, due  # listed to be sent once, last
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines in ([("idle_close_completed", conversation_id)], []), lines  # [] only when the timer's retry did it
    assert await redis_store.leavings_begun() == {} and await redis_store.closes_begun() == {}
    assert await redis_store.moves_begun() == {} and await timers_armed(redis_store, clock, conversation_id) == []


async def closed_as_before_rel31(store: Store, clock: Clock, conversation_id: str, closer: str, outcome: str) -> None:
    """A supervisor's close of a waiting conversation made by an instance of before rel31 (a rolling deploy), which
    did not refuse a conversation whose idle close had written its goodbye: ``Actions.close``'s steps as that instance
    made them (rel31 added the refusal only), with the store's and the dispatcher's public methods. Under the
    conversation's lock, in its batch: out of the queue (alone, first), listed as begun with its closer, the goodbye
    (``ended``, its id derived from the close and its category, as ``_close_key`` names it), the category, the record
    closed, unlisted (no earlier close's goodbye nor hand-back's message was written: nothing left to the check)."""
    dispatcher, _ = instance(store, clock)
    async with store.locked_batch(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        assert conversation is not None and conversation.status is Status.QUEUED, conversation
        await store.remove_from_queue(conversation_id)
        await store.begin_close(conversation_id, closer)
        engine = dispatcher.flows.for_version(conversation.flow_version)
        ended = engine.message("ended", language_of(conversation, engine.flow))
        with derived_ids(f"close:{conversation_id}:{outcome}"):
            await dispatcher.emit(conversation, [Reply(ended)], Author.BOT, clock())
        conversation.outcome = outcome
        await dispatcher.transition(conversation, Trigger.CLOSE, clock())
        await store.save_conversation(conversation)
        await store.end_close(conversation_id)


@pytest.mark.redis
async def test_an_idle_close_cut_before_its_listing_then_closed_by_a_pre_rel31_instance_has_its_goodbye_withdrawn(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings
) -> None:
    """The idle close of a young person waiting on Messenger is cut after its goodbye was written and before it was
    listed to be sent (``outbox_list``): still waiting, the ending listed as begun. Sam (a supervisor) closes it from
    an instance of before rel31, which allowed that close (:func:`closed_as_before_rel31`; rel31's refuses it, the
    test above). The check then finds the conversation closed and withdraws the idle goodbye (``complete_leaving``):
    failed with its reason, its entry shown failed, one ``leaving_withdrawn`` line, nothing listed; a timers' pass
    and a second check tell nothing more. The outbox then delivers what is due to the fake Graph API: the young person
    is told one goodbye, Sam's, never the idle one. This path had no test since rel31 (rel28's, which reached it with
    a close rel31 refuses, was removed); with the withdrawal removed, the idle goodbye stays pending for good."""
    conversation_id, since, goodbye = await idle_close_cut_while_waiting(redis_store, redis_url, clock, "outbox_list")

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    await closed_as_before_rel31(redis_store, clock, conversation_id, "sam", "cyberbullying")
    [closing] = [e for e in (await redis_store.transcript(conversation_id))[since:]
                 if e.author is Author.BOT and e.id != goodbye.id]  # fmt: skip
    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left (the idle close's retry): nothing more told
    await next_check(redis_store, clock)

    item = await redis_store.outbox_get(conversation_id, goodbye.id)
    assert item is not None and item.status is OutboxStatus.FAILED and "withdrawn" in (item.last_error or ""), item
    entries = {e.id: e for e in await redis_store.transcript(conversation_id)}
    assert entries[goodbye.id].delivery is Delivery.FAILED
    told = [e.id for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert told == [goodbye.id, closing.id], told  # nothing written after Sam's goodbye
    lines = [(e.action, e.subject) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert lines == [("leaving_withdrawn", conversation_id)], lines
    assert await redis_store.leavings_begun() == {} and await redis_store.closes_begun() == {}
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.outcome) == (Status.CLOSED, "cyberbullying"), after
    assert await redis_store.waiting() == [] and await redis_store.queue_entry(conversation_id) is None

    sent = await delivered_to_the_young_person(redis_store, clock, settings)
    goodbyes = [text for text in sent if text in (goodbye.text, closing.text)]
    assert goodbyes == [closing.text] and sent[-1] == closing.text, sent  # one goodbye, Sam's, last; no idle one
    item = await redis_store.outbox_get(conversation_id, goodbye.id)
    assert item is not None and item.status is OutboxStatus.FAILED, item  # still not sent


async def acted(actions: Actions, action: str, conversation_id: str) -> object:
    """Anne's ``action`` on the conversation from her console."""
    if action == "reply":
        return await actions.reply(conversation_id, "anne", "Tu es toujours là ?", key="reply-1")
    if action == "refer":
        return await actions.refer(conversation_id, "anne", "119")
    if action == "hand_back":
        return await actions.hand_back(conversation_id, "anne")
    return await actions.transfer(conversation_id, "anne", "listeners")


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_conversation", "outbox_list"])
@pytest.mark.parametrize("action", ["reply", "refer", "hand_back", "transfer"])
async def test_a_listeners_action_on_a_held_conversation_whose_idle_close_was_cut_is_refused(
    redis_store: Store, redis_url: str, clock: Clock, action: str, cut: str
) -> None:
    """Anne holds a Messenger conversation and nobody writes for a day: the idle timer closes it, its goodbye written,
    the instance dies before the record (still held by Anne) or before the goodbye's listing. Within those seconds,
    before the check, Anne replies, refers them to a partner, hands it back or transfers it: refused (``not_active``;
    the console shows the request refused), nothing written nor moved. After the checks and a timers' pass: closed as
    the idle close, told goodbye once and nothing after it (no reply, no place in a queue), in no queue, nothing
    listed. Before: the reply (or referral) was written and listed after the goodbye; the hand-back and the transfer
    put the young person in a queue, the transfer telling their place after the goodbye."""
    conversation_id = await held_by_anne(redis_store, clock)
    [idle] = await redis_store.due_timers(clock() + timedelta(days=2))  # the idle close, its only timer
    clock.now = idle.due_at
    since = len(await redis_store.transcript(conversation_id))
    fire: Callable[[Store], Awaitable[object]] = lambda store: timers_of(store, clock).fire_due()  # noqa: E731
    await cut_at(redis_url, clock, conversation_id, script_text(cut), fire)
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    _, actions = instance(redis_store, clock)
    with pytest.raises(ActionRefused) as refusal:
        await acted(actions, action, conversation_id)
    assert refusal.value.code == "not_active", refusal.value
    still = await redis_store.get_conversation(conversation_id)
    assert still is not None and (still.status, still.listener) == (Status.WITH_LISTENER, "anne"), still
    assert await redis_store.waiting() == [] and await redis_store.moves_begun() == {}  # nothing moved

    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left: nothing more told
    await next_check(redis_store, clock)

    written = (await redis_store.transcript(conversation_id))[since:]
    to_them = [e for e in written if e.author in (Author.BOT, Author.LISTENER)]
    assert [e.id for e in to_them] == [goodbye.id], [e.text for e in to_them]  # the goodbye once, nothing after it
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.outcome) == (Status.CLOSED, "idle"), after
    assert await redis_store.held_by("anne") == 0 and await redis_store.queue_entry(conversation_id) is None
    due = [i.id for i in await redis_store.outbox_due(clock(), 10, run=100)]
    assert due.count(goodbye.id) == 1 and due[-1] == goodbye.id, due  # listed to be sent once, last
    assert await redis_store.leavings_begun() == {} and await redis_store.moves_begun() == {}
    assert await timers_armed(redis_store, clock, conversation_id) == []


@pytest.mark.redis
async def test_an_automatic_hand_back_of_a_held_conversation_whose_idle_close_was_cut_is_not_made(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne holds a Messenger conversation and left her console; the idle timer's close is cut before its record (still
    held by Anne, the goodbye written and listed). Another instance's check, deciding before that close is completed,
    hands Anne's conversations back (``hand_back_absent``): not made (False), nothing told, nothing moved nor listed;
    the check then completes the idle close: the goodbye the only message since, no "listener disconnected" after it.
    Before, the young person was told a listener left, and put in the queue, after their goodbye."""
    conversation_id = await held_by_anne(redis_store, clock)
    [idle] = await redis_store.due_timers(clock() + timedelta(days=2))
    clock.now = idle.due_at
    since = len(await redis_store.transcript(conversation_id))
    fire: Callable[[Store], Awaitable[object]] = lambda store: timers_of(store, clock).fire_due()  # noqa: E731
    await cut_at(redis_url, clock, conversation_id, script_text("put_conversation"), fire)
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    _, actions = instance(redis_store, clock)
    assert await actions.hand_back_absent(conversation_id, "anne", lambda listener: True) is False
    assert await redis_store.waiting() == [] and await redis_store.moves_begun() == {}  # nothing moved nor listed
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)

    told = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [e.id for e in told] == [goodbye.id], [e.text for e in told]  # the goodbye once, nothing after it
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.outcome) == (Status.CLOSED, "idle"), after
    assert await redis_store.leavings_begun() == {} and await redis_store.moves_begun() == {}


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["outbox_list", "remove_from_queue"])
async def test_a_bulk_close_of_a_waiting_conversation_whose_idle_close_was_cut_skips_it_told_goodbye_once(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory, cut: str
) -> None:
    """A young person waits on Messenger, nobody takes them for a day: the idle timer's close writes its goodbye, and
    the instance dies before the goodbye's listing (``outbox_list``) or after it, before the queue step
    (``remove_from_queue``): still waiting, shown on the supervision page, the ending listed as begun. Sam, a
    supervisor, closes the flood from that page (``POST /api/floods/close`` on a real gateway on the same Redis, its
    workers stopped: the test runs the check and the timers) before the check: skipped, counted as ending
    (``{"closed": 0, "ending": 1}``), nothing told. After the checks and a timers' pass: abandoned (the idle close),
    in no queue, one ``idle_close_completed`` line (or none when the timer's retry completed it), nothing listed; the
    outbox then delivers to the fake Graph API one goodbye, the idle one, last. Before (found on rel32): closed
    ``closed_in_bulk`` with a goodbye of its own (``ended``, listed): two goodbyes sent (``remove_from_queue``), or
    the idle one withdrawn by the check and the bulk close's told (``outbox_list``)."""
    client = await make_client(settings.replace(store=redis_url), worker_poll_seconds=3600)
    await client.app[SUPERVISOR].stop()  # its timers, check and outbox: run below, in order
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    conversation_id, since, goodbye = await idle_close_cut_while_waiting(redis_store, redis_url, clock, cut)
    rows = (await (await client.get("/api/floods")).json())["conversations"]
    assert [r["id"] for r in rows] == [conversation_id], rows  # shown: Sam may select it

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    # even closing deliberately the ones at risk (the walk's young person said they are in danger now: urgent)
    closed = await client.post("/api/floods/close", json={"ids": [conversation_id], "include_flagged": True})
    assert closed.status == 200, await closed.text()
    answer = await closed.json()
    told_then = [e.id for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left (the idle close's retry): nothing more told
    await next_check(redis_store, clock)

    sent = await delivered_to_the_young_person(redis_store, clock, settings)
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None
    engine = instance(redis_store, clock)[1].flows.engine()
    bulk = engine.message("ended", language_of(after, engine.flow))  # the bulk close's goodbye, said another way
    goodbyes = [text for text in sent if text in (goodbye.text, bulk)]
    assert goodbyes == [goodbye.text] and sent[-1] == goodbye.text, sent  # one goodbye, the idle one, last
    told = [e.id for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert told == told_then == [goodbye.id], told  # the bulk close told nothing
    assert answer == {"closed": 0, "ending": 1, "flagged_kept": 0, "flagged_kept_ids": []}, answer
    assert after.status is Status.ABANDONED, after  # the idle close completed, not closed in bulk
    assert await redis_store.waiting() == [] and await redis_store.queue_entry(conversation_id) is None
    lines = [e.action for e in await redis_store.audit_log() if e.subject == conversation_id]
    asked = ["bulk_close_asked"]  # Sam's request, audited before any close
    assert lines in (["idle_close_completed", *asked], asked), lines  # asked alone only when the timer's retry did it
    assert not [e for e in await redis_store.audit_log() if e.action == "bulk_close"]  # nothing was closed
    assert await redis_store.leavings_begun() == {} and await redis_store.closes_begun() == {}
    assert await timers_armed(redis_store, clock, conversation_id) == []


@pytest.mark.redis
async def test_a_bulk_close_skips_a_conversation_whose_idle_close_is_cut_while_it_closes_the_ones_before(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory
) -> None:
    """Why the bulk close reads the leaving list under each conversation's lock, not once for the request: Sam closes
    two waiting conversations at once (Messenger), Alex's then Yan's. Once the request has begun, its first close's
    lock (``locked_batch``'s ``lock_read``) held at the wire (``tests/cutting_proxy.py``, ``hold_before``: nothing of
    the gateway patched), Yan's idle close fires on another instance and is cut
    after its goodbye was listed, before its queue step: listed as begun after the request began. The bulk close then
    reaches Yan's: skipped (``{"closed": 1, "ending": 1}``); after the checks Yan was told the idle goodbye only, once,
    abandoned; Alex closed in bulk. Read once before the first lock (tried on rel33), Yan's close told a second goodbye:
    ``{"closed": 2, "ending": 0}``."""
    dispatcher, _ = instance(redis_store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):  # Yan first: his idle close is due an hour before Alex's
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-yan", f"mid.y{number}", text))
    [yan] = [e.conversation_id for e in await redis_store.waiting()]
    clock.advance(hours=1)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-alex", f"mid.a{number}", text))
    [alex] = [e.conversation_id for e in await redis_store.waiting() if e.conversation_id != yan]
    due = await redis_store.due_timers(clock() + timedelta(days=2))
    [idle] = [t for t in due if t.kind is TimerKind.IDLE_CLOSE and t.conversation_id == yan]
    clock.now = idle.due_at - timedelta(minutes=1)
    await timers_of(redis_store, clock).fire_due()  # the queues' reassurances, due first: only Yan's idle close next
    clock.now = idle.due_at
    since = len(await redis_store.transcript(yan))

    cut: list[dict[str, str]] = []

    async def yan_idle_close_cut() -> None:  # on another instance, its own connections: listed, then cut
        fire: Callable[[Store], Awaitable[object]] = lambda cut_store: timers_of(cut_store, clock).fire_due()  # noqa: E731
        await cut_at(redis_url, clock, yan, script_sha("remove_from_queue"), fire)
        cut.append(await redis_store.leavings_begun())

    async with cutting_proxy(redis_url) as proxy:
        client = await make_client(settings.replace(store=proxy.url), worker_poll_seconds=3600)
        await client.app[SUPERVISOR].stop()  # its timers, check and outbox: run below, in order
        await add_listener(client, "sam", supervisor=True)
        await login(client, "sam")
        # the request has begun (its first close about to take Alex's lock): Yan's idle close, cut, meanwhile
        proxy.hold_before(script_text("lock_read"), alex.encode(), meanwhile=yan_idle_close_cut)
        # the walk's young people say they are in danger now (urgent hand-offs): at risk, closed deliberately
        closed = await client.post("/api/floods/close", json={"ids": [alex, yan], "include_flagged": True})
        assert closed.status == 200, await closed.text()
        answer = await closed.json()
    assert (proxy.held, proxy.failures) == (1, []), proxy.failures
    assert cut == [{yan: "idle_close"}], cut  # listed after the request began, before its close reached Yan
    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()
    await next_check(redis_store, clock)

    told = [e for e in (await redis_store.transcript(yan))[since:] if e.author is Author.BOT]
    assert [e.id for e in told] == [leaving.goodbye_id(yan, "idle_close")], [e.text for e in told]  # once, idle
    assert answer == {"closed": 1, "ending": 1, "flagged_kept": 0, "flagged_kept_ids": []}, answer
    after_yan, after_alex = await redis_store.get_conversation(yan), await redis_store.get_conversation(alex)
    assert after_yan is not None and after_yan.status is Status.ABANDONED, after_yan
    assert after_alex is not None and (after_alex.status, after_alex.outcome) == (Status.CLOSED, "closed_in_bulk")
    assert await redis_store.waiting() == [] and await redis_store.leavings_begun() == {}
