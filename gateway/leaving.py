"""The young person leaves: the quick exit, "Terminer", or a web chat page gone for good.

Listeners see it at once: a system entry (``left.<how>`` in ``gateway/system_entries.py``), and the conversation is
marked as left (``Conversation.left_at`` and ``left_how``, shown by the console).

* ``ended`` ("Terminer", ``WebChatHub.end_by_young_person`` in ``gateway/webchat.py``): :func:`ended` says goodbye
  and closes it (abandoned while waiting); the entry tells the listener it was the young person's choice.
* ``quick_exit``: nothing more is sent to the page (it is gone, and someone else may be looking at the screen).
  With the bot or in the queue nobody is there to answer: abandoned, out of the queue. With a listener it stays
  theirs, to close with an outcome.
* ``blocked``: the provider says the young person blocked the line or unsubscribed (Telegram's ``my_chat_member``
  ``kicked``, WhatsApp's ``STOP`` opt-out, or a send refused for that reason on any channel): the entry only, the
  conversation keeps its status (nothing a provider says ends it; a listener closes it). Unblocking (Telegram
  ``member``, WhatsApp ``START``) or a new message from the young person lifts the mark, with an entry (on WhatsApp
  START only: Twilio refuses every message until then, so nothing is sent while marked, ``Dispatcher.emit``: a "not
  sent" entry in its place, a listener's reply refused ``unsubscribed``).
* ``gone``: no web chat socket for :data:`GONE_AFTER` while queued or with a listener (the tab was closed, or the
  network lost that long): the entry only, and the queue's consoles read again (its card says the page is gone). When
  the same browser comes back to the conversation, an entry says so and the mark is lifted (the card too).

The idle timer's close (``idle_close``, ``gateway/timers.py``) ends a conversation with the bot or in the queue as
the quick exit and "Terminer" do, so it is made here the same way; so is the supervision page's bulk close
(``closed_in_bulk``, :func:`close_in_bulk`, since rel34: the ``ended`` goodbye, closed ``closed_in_bulk``). Each
such ending runs in the conversation's batch (one SQLite transaction) and, on Redis, is listed as begun first
(``store.begin_leaving``, until its record): cut short, before or after its queue step, the alert check completes it
as that ending (:func:`complete`), never puts the young person back in line, and no listener may take them meanwhile
(the take's script reads the list). An ending that closes a conversation a listener holds ("Terminer", the idle
close) is listed too: cut before its record, the record still says held while the young person was told goodbye (and
the idle close cancelled every timer, its own retry included); the check completes it. Meanwhile a close from the
console of a conversation, held or waiting, whose idle close, "Terminer" or bulk close was cut after its goodbye is
refused (``Actions.close`` finds that goodbye, :data:`SAYING_GOODBYE`), and the supervision page's bulk close skips
any conversation whose ending is listed (``Safety._close``, ``gateway/console/safety.py``): never a second goodbye.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Literal, Protocol

from gateway.conversation import Conversation, Status
from gateway.dispatcher import BLOCK_DATE_SLACK, Dispatcher, unblocked_since
from gateway.events import QueueChanged
from gateway.flows.lifecycle import Trigger
from gateway.ids import derived_id, derived_ids
from gateway.language import language_of
from gateway.messages import ChannelName, Departure, Reply
from gateway.store import (
    Author,
    BatchStore,
    ConversationStore,
    ErasedStore,
    LockStore,
    OutboxStatus,
    OutboxStore,
    QueueStore,
    TimerKind,
    TimerStore,
    TranscriptStore,
    holds_provider_id,
)

Leaving = Literal["quick_exit", "ended", "gone", "blocked"]
# What ends a conversation with the bot or in the queue: the young person's (a quick exit, "Terminer"), the idle
# timer's, and a supervisor's bulk close from the supervision page (``closed_in_bulk``, ``Safety._close``: a flood).
Ending = Literal["quick_exit", "ended", "idle_close", "closed_in_bulk"]
ENDINGS: tuple[Ending, ...] = ("quick_exit", "ended", "idle_close", "closed_in_bulk")
SAYING_GOODBYE: tuple[Ending, ...] = ("ended", "idle_close", "closed_in_bulk")  # the endings that tell goodbye
log = logging.getLogger(__name__)
WAITING = (Status.BOT, Status.QUEUED)  # the statuses such an ending abandons (or ends, "Terminer" with the bot)

GONE_AFTER = timedelta(seconds=90)


class LeavingRoles(ConversationStore, TranscriptStore, QueueStore, LockStore, TimerStore, BatchStore, Protocol):
    """What leaving needs of the store (the caller's, injected; the dispatcher writes the entries): the conversation's
    lock with a batch (a quick exit or a "Terminer" is one SQLite transaction), the endings listed as begun (Redis)."""


class ClosingRoles(LeavingRoles, ErasedStore, Protocol):
    """What a web chat socket's closing needs more (:func:`socket_closed`): whether an erasure was begun."""


class CompletionRoles(LeavingRoles, OutboxStore, Protocol):
    """What completing an ending cut short needs more (:func:`complete`): the outbox, to list a goodbye written and
    never listed to be sent."""


async def mark_left(
    dispatcher: Dispatcher, conversation: Conversation, how: Leaving, now: datetime, *, ending: bool = False,
    note: bool = True,
) -> None:  # fmt: skip
    """Mark ``conversation`` as left and tell the listeners; the caller holds its lock and saves it. ``ending``: this
    leaving ends the conversation, so it happens once: its note's id derives from it (:func:`begun`). ``note``:
    False when that note is written already (a completion, :func:`complete`)."""
    conversation.left_at, conversation.left_how = now, how
    conversation.updated_at = now
    if not note:
        return
    if ending:
        with derived_ids(_key(conversation.id, how)):
            await dispatcher.system_note(conversation, f"left.{how}", now, channel=conversation.channel.value)
    else:
        await dispatcher.system_note(conversation, f"left.{how}", now, channel=conversation.channel.value)


def _key(conversation_id: str, how: Leaving | Ending) -> str:
    return f"left:{conversation_id}:{how}"


def _goodbye_key(conversation_id: str, how: Ending) -> str:
    """What the id of an ending's goodbye to the young person derives from ("Terminer"'s, the idle close's): the
    conversation and the ending, as it ends once; the same for the ending, its retries and its completion."""
    return _key(conversation_id, how) + (":goodbye" if how == "ended" else "")


def begun(conversation_id: str) -> dict[str, Ending]:
    """The id of the first entry each ending of a conversation with the bot or in the queue writes → that ending:
    the note of a quick exit and of a "Terminer", the idle close's and the bulk close's goodbye (its ids derive from
    the conversation and the ending, which happens once).

    Such an ending writes, under the lock: that entry, the queue step (on Redis alone, another slot than the
    record), the record. Cut between the last two, the record says queued while no entry waits, which the alert
    check takes for a take cut short (``Actions.back_in_line``): it finds this id in the transcript
    (``entries_written``) and completes the ending (:func:`complete`), never puts them back in line. Cut before the
    queue step, the entry still waits: the ending is found listed as begun (``store.leavings_begun``)."""
    return {derived_id(_key(conversation_id, how), 1): how for how in ENDINGS}


def goodbye_id(conversation_id: str, how: Ending) -> str:
    """The id of the goodbye ``how`` tells the young person ("Terminer"'s, the idle close's), derived from the ending:
    the same for the ending, its retries and its completion; written, the conversation was ended that way (or such an
    ending was cut short: the alert check completes it)."""
    return derived_id(_goodbye_key(conversation_id, how), 1)


def _firsts(conversation_id: str) -> list[str]:
    """The ids :func:`complete` looks for: each ending's first entry, and "Terminer"'s note after its goodbye."""
    return [*begun(conversation_id), goodbye_id(conversation_id, "ended")]


async def complete(dispatcher: Dispatcher, store: CompletionRoles, conversation: Conversation, how: Ending,
                   now: datetime) -> None:  # fmt: skip
    """An ending cut short (listed as begun, or found by :func:`begun`), made whole under the caller's lock and in its
    batch: what it wrote is not written again (one read, ``entries_written``: the goodbye said once), what it did not
    write is (a quick exit's or a "Terminer"'s note, "Terminer"'s or the idle close's goodbye), then the status and
    the record; no longer listed. A goodbye written and never listed to be sent is listed (:func:`_listed`). Never back
    in line: the young person left, or was told goodbye."""
    written = await store.entries_written(conversation.id, _firsts(conversation.id))
    await _listed(store, conversation, how, written)
    await _ending(dispatcher, store, conversation, how, now, written)
    await store.save_conversation(conversation)
    await store.end_leaving(conversation.id)


async def _listed(store: CompletionRoles, conversation: Conversation, how: Ending, written: Collection[str]) -> None:
    """The ending's goodbye, written by the cut ending and maybe never listed to be sent (on Redis the outbox's line is
    another slot than the item, after it in the pipeline: an idle close cut there leaves its timer for a retry, which
    the check may come before), listed now while still pending (``outbox_put`` of the item kept: the store lists an id
    once, and drops one resolved). Not written again: the reply window may have closed since, which would write a "not
    sent" note in its place. The web chat has no outbox: nothing."""
    said = goodbye_id(conversation.id, how) if how != "quick_exit" else None
    if said is None or said not in written or conversation.channel == ChannelName.WEBCHAT:
        return
    item = await store.outbox_get(conversation.id, said)
    if item is not None and item.status is OutboxStatus.PENDING:
        await store.outbox_put(item)


async def _ending(dispatcher: Dispatcher, store: LeavingRoles, conversation: Conversation, how: Ending,
                  now: datetime, written: Collection[str] = ()) -> None:  # fmt: skip
    """An ending's writes but its record (the caller's, in its batch, under its lock): listed as begun when it ends the
    conversation, with the bot, in the queue or with a listener ("Terminer", the idle close; not a held conversation's
    quick exit, which leaves it its listener's) (``store.begin_leaving``: before anything it writes), its goodbye and
    its note (ids derived from the ending; not written again when in ``written``), then its status (a waiting one's
    queue step: on Redis alone, another slot). The caller then saves the record and unlists it
    (``store.end_leaving``)."""
    waiting = conversation.status in WAITING
    if waiting or how != "quick_exit":
        await store.begin_leaving(conversation.id, how)
    if how in SAYING_GOODBYE and goodbye_id(conversation.id, how) not in written:
        engine = dispatcher.flows.for_version(conversation.flow_version)
        said = "idle_closed" if how == "idle_close" else "ended"
        goodbye = engine.message(said, language_of(conversation, engine.flow))
        with derived_ids(_goodbye_key(conversation.id, how)):
            await dispatcher.emit(conversation, [Reply(goodbye)], Author.BOT, now)
    if how == "closed_in_bulk":  # a supervisor's: closed (ended with the bot), not left
        trigger = Trigger.END if conversation.status == Status.BOT else Trigger.CLOSE
        conversation.outcome = conversation.outcome or "closed_in_bulk"
    elif how == "idle_close":
        trigger = Trigger.ABANDON if waiting else Trigger.CLOSE
        if trigger == Trigger.CLOSE:
            conversation.outcome = conversation.outcome or "idle"
    elif how == "ended":
        await mark_left(dispatcher, conversation, how, now, ending=True,
                        note=derived_id(_key(conversation.id, how), 1) not in written)  # fmt: skip
        trigger = {Status.BOT: Trigger.END, Status.QUEUED: Trigger.ABANDON}.get(conversation.status, Trigger.CLOSE)
        if trigger == Trigger.CLOSE:
            conversation.outcome = conversation.outcome or "ended_by_young_person"
    else:
        await mark_left(dispatcher, conversation, how, now, ending=waiting,
                        note=derived_id(_key(conversation.id, how), 1) not in written)  # fmt: skip
        if not waiting:  # with a listener: theirs, to close with an outcome
            return
        trigger = Trigger.ABANDON
    await dispatcher.transition(conversation, trigger, now)


async def quick_exit(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The quick exit: marked as left; out of the bot or the queue, since nobody is there to answer any more. One
    batch (SQLite: one transaction); on Redis listed as begun first, so that one cut short is completed by the alert
    check and never taken meanwhile (:func:`_ending`)."""
    async with store.locked_batch(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active or conversation.left_how == "quick_exit":
            return
        await _ending(dispatcher, store, conversation, "quick_exit", now)
        await store.save_conversation(conversation)
        await store.end_leaving(conversation_id)


async def ended(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The young person ends the conversation ("Terminer"): a goodbye, then closed (abandoned while waiting). One
    batch, listed as begun, as :func:`quick_exit`."""
    async with store.locked_batch(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active:
            return
        await _ending(dispatcher, store, conversation, "ended", now)
        await store.save_conversation(conversation)
        await store.end_leaving(conversation_id)


async def idle_close(dispatcher: Dispatcher, store: LeavingRoles, conversation: Conversation, now: datetime) -> None:
    """The idle timer fired (under the lock, in the timer's batch, ``gateway/timers.py``): the goodbye, abandoned
    (closed, ``idle``, with a listener). Listed as begun (:func:`_ending`), held too: the timer saves the record, then
    unlists it (``store.end_leaving``).

    A waiting young person at risk (:attr:`Conversation.at_risk`) whom nobody took before the idle close is told the
    same goodbye (with where to turn), and it is an alert, never silent: one WARNING line (the id, the risk's class,
    the hours waited; never a word) and ``gateway_idle_closed_at_risk_total``."""
    if conversation.status in WAITING and conversation.at_risk:
        since = conversation.queued_at or conversation.created_at
        risk = conversation.risk_reason or "urgent"
        log.warning("leaving: %s: a young person at risk (%s) closed by the idle timer after %d h, never taken",
                    conversation.id, risk, (now - since).total_seconds() // 3600)  # fmt: skip
        dispatcher.metrics.idle_closed_at_risk.inc()
    await _ending(dispatcher, store, conversation, "idle_close", now)


async def close_in_bulk(dispatcher: Dispatcher, store: LeavingRoles, conversation: Conversation, now: datetime) -> None:
    """A supervisor's bulk close of a conversation with the bot or in the queue (``Safety._close``, under the lock, in
    the conversation's batch: one SQLite transaction): the ``ended`` goodbye, closed ``closed_in_bulk`` (ended with the
    bot), made as the other endings are (:func:`_ending`): listed as begun first, so that one cut short on Redis is
    never taken meanwhile and is completed by the alert check as this ending (``Actions.complete_leaving``; one cut
    after its queue step, by ``back_in_line``, which finds its goodbye by :func:`begun`); its goodbye's id derives
    from the conversation and the ending (:func:`goodbye_id`), so its completion tells it once; unlisted after the
    record. Made again while listed, the bulk close skips it (it reads the list): no second goodbye."""
    await _ending(dispatcher, store, conversation, "closed_in_bulk", now)
    await store.save_conversation(conversation)
    await store.end_leaving(conversation.id)


async def socket_closed(store: ClosingRoles, conversation_id: str, now: datetime) -> None:
    """A web chat socket closed at ``now``: unless the young person comes back within GONE_AFTER, they are gone.

    Not when a page has opened the conversation again since (``Conversation.page_opened_at``): the instance that
    held the socket may arm its timer late (its store was down when the socket closed: it tries again until it
    answers), after the page came back on another instance, whose return (:func:`came_back`) it would undo. The
    lock orders the two: either the timer is armed first and the return cancels it, or the return is seen here.

    Not either when the record is gone: erased (the erasure writes its mark and deletes the record under this lock,
    so a socket closing while it runs, its ``Erased`` event not arrived yet, finds it gone here) or lost. Until
    2026-12-07 a timer was armed on it all the same, naming the erased conversation until it fired (no read more:
    the record was read already). Nor when its erasure was begun with the record still there (cut before it, or
    under way on another instance before it takes this lock: ``store.erasing``, on Redis read by the lock's script
    with the record); until 2026-12-07 (night) a timer was armed on it, and 90 s later marked the page gone in the
    conversation being erased (``tests/test_webchat_erased_cut.py``)."""
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or await store.erasing(conversation_id):
            return
        if conversation.page_opened_at is not None and conversation.page_opened_at > now:
            return
        await store.set_timer(conversation_id, TimerKind.WEBCHAT_GONE, now + GONE_AFTER)


async def gone(dispatcher: Dispatcher, conversation: Conversation, now: datetime) -> None:
    """The page-gone timer fired (under the lock): tell a listener, or the queue, that nobody reads."""
    if conversation.status in (Status.QUEUED, Status.WITH_LISTENER) and conversation.left_at is None:
        await mark_left(dispatcher, conversation, "gone", now)


async def came_back(dispatcher: Dispatcher, conversation: Conversation, now: datetime) -> tuple[bool, bool]:
    """The young person's browser back on the conversation (a web chat hello, under the lock it opens or resumes
    it with: ``Dispatcher.start_conversation``'s ``under_lock``; until 2026-12-07 ``returned`` took a lock of its
    own after that one): the change of ``conversation``, read under its lock by the caller (who has cancelled its
    ``WEBCHAT_GONE`` timer): ``page_opened_at``, and a ``gone`` mark lifted with its system note. (whether the
    caller saves the record: an active one; whether it then tells the queue, ``QueueChanged``: a mark lifted)."""
    if not conversation.active:
        return False, False
    conversation.page_opened_at = now
    back = conversation.left_how == "gone"
    if back:
        conversation.left_at, conversation.left_how = None, None
        await dispatcher.system_note(conversation, "left.back", now)
    return True, back


async def blocked(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The young person blocked the line or unsubscribed: messages no longer reach them. Told once."""
    await _set_blocked(dispatcher, store, conversation_id, True, now)


async def provider_says(dispatcher: Dispatcher, store: LeavingRoles, departure: Departure, now: datetime) -> None:
    """A provider's webhook: the active conversation of this sender on this channel, if any, is (un)blocked; not by a
    refusal about a message of another conversation, or sent before its last START, or found nowhere (an erased
    conversation's, or a send not recorded yet: :func:`_stale_refusal`), nor by a
    block dated before it opened (Telegram's ``kicked`` delivered late: unblocked since, or they could not have written;
    until 2026-12-06 it marked it, its card saying nothing reached them) or before their last message in it
    (:func:`_wrote_since`), nor by a block or a WhatsApp STOP dated before the young person's last unblock or START, or
    within a minute after (``unblocked_at``, :func:`unblocked_since`: the last of the two wins, the unblock within
    it; until 2026-12-06 a Telegram block delivered after a newer unblock marked the conversation again), nor lifted
    by an unblock dated before the block it is marked with (:func:`_late_unblock`)."""
    conversation = await store.find_active_conversation(departure.channel, departure.sender)
    if conversation is None:
        return
    if departure.left and departure.at is not None and departure.at < conversation.created_at - BLOCK_DATE_SLACK:
        log.info("leaving: %s: a block dated before the conversation opened, not marked", conversation.id)
        return
    at = departure.at
    if at is None and departure.left and departure.about is None:  # WhatsApp's STOP: its webhook takes it now
        at = now
    await _set_blocked(dispatcher, store, conversation.id, departure.left, now, about=departure.about, at=at)


async def _set_blocked(
    dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, left: bool, now: datetime,
    *, about: str | None = None, at: datetime | None = None,
) -> None:  # fmt: skip
    """``at``: when the provider says it happened (Telegram's date; WhatsApp's STOP: when its webhook took it, START:
    Twilio's ``date_sent`` when caught up from its list). A block marks the conversation with it (its ``left_at``;
    ``now`` when undated), and a later one while marked moves it on (no entry: told once); an unblock dated before it
    is late and lifts nothing (:func:`_late_unblock`). An unblock (Telegram's ``member``, WhatsApp's START) is kept
    (``Conversation.unblocked_at``), lifting or not: a block or STOP dated before it, taken after (redelivered late, its
    message late from the inbox), marks nothing (the last of the two wins; ``Dispatcher._opted``)."""
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active:
            return
        if left and _wrote_since(conversation, at):
            log.info("leaving: %s: a block dated before the young person's last message, not marked", conversation_id)
            return
        if left and about is None and at is not None and unblocked_since(conversation, at):
            log.info("leaving: %s: a block dated before the young person's last unblock, not marked", conversation_id)
            return
        unblock = not left and (at is not None or conversation.channel == ChannelName.WHATSAPP)
        if unblock:  # a provider's unblock (Telegram's, dated) or START: kept, lifting or not
            dated = at or now
            conversation.unblocked_at = max(dated, conversation.unblocked_at or dated)
        if (conversation.left_how == "blocked") == left:
            if left and at is not None and (conversation.left_at is None or at > conversation.left_at):
                conversation.left_at = at  # blocked again since: an unblock dated between is late
                await store.save_conversation(conversation)
            elif unblock:
                await store.save_conversation(conversation)
            return
        stale = await _stale_refusal(store, conversation_id, about) if left and about is not None else None
        if stale is not None:
            log.info("leaving: %s: a refusal of %s, not marked", conversation_id, stale)
            return
        if not left and _late_unblock(conversation, at):
            log.info("leaving: %s: an unblock dated before the block marked, not lifted", conversation_id)
            if unblock:
                await store.save_conversation(conversation)
            return
        if left:
            await mark_left(dispatcher, conversation, "blocked", now)
            conversation.left_at = at or now
        else:
            conversation.left_at, conversation.left_how = None, None
            await dispatcher.system_note(conversation, "left.unblocked", now, channel=conversation.channel.value)
        await store.save_conversation(conversation)
    await dispatcher.store.publish(QueueChanged())  # its card says it, on every console


def _wrote_since(conversation: Conversation, at: datetime | None) -> bool:
    """Whether a block dated ``at`` (Telegram's ``kicked``) comes late, the young person having written since: dated
    more than :data:`BLOCK_DATE_SLACK` before their last message in this conversation (``last_inbound_at``, read under
    the lock: a message processed meanwhile is seen, or comes after the mark and lifts it). They could not have written
    while blocking the bot: they unblocked it since. Until 2026-12-06 such a block, delivered late (Telegram redelivers
    after an outage, in any order across update types), marked the conversation again: the listeners' replies refused
    until their next message. ``last_inbound_at`` is when the message was written as Telegram dates it
    (``gateway.dispatcher.written_at``): a genuine block made after a message taken late marks (until 2026-12-06 that
    message was dated when taken, and the block ignored until a send Telegram refused marked it). An undated one
    (WhatsApp's STOP, a refused send) always marks."""
    last = conversation.last_inbound_at
    return at is not None and last is not None and at < last - BLOCK_DATE_SLACK


def _late_unblock(conversation: Conversation, at: datetime | None) -> bool:
    """Whether an unblock dated ``at`` (Telegram's ``member``) comes late, after a newer block: dated more than
    :data:`BLOCK_DATE_SLACK` before the block the conversation is marked with (its ``left_at``: Telegram's date of the
    latest block, or when a refused send marked it). Until 2026-12-06 such an unblock lifted the mark: the card said
    reachable while the young person had blocked the line again, the listeners' replies refused until one marked it.
    An undated one (WhatsApp's START) always lifts it."""
    return at is not None and conversation.left_at is not None and at < conversation.left_at - BLOCK_DATE_SLACK


async def _stale_refusal(store: LeavingRoles, conversation_id: str, provider_message_id: str) -> str | None:
    """Why a refusal (a WhatsApp status callback with 21610, which may come minutes late) says nothing of the active
    conversation now, or None when it marks it. Read only on such a refusal, never on the message path: one lookup of
    the message, and the conversation's transcript when it is this conversation's or found nowhere.

    * A message of another conversation (an earlier one, ended since): that refusal was about then, and the active
      conversation's own sends, refused in turn while the person is still unsubscribed, mark it. Until 2026-12-06 it
      marked the active one: after a STOP and START in an ended conversation, a late refusal silenced the next one.
    * A message of this conversation written before its mark was last lifted (its ``left.unblocked`` entry: START):
      Twilio delivers since, whatever that refusal said then. Until 2026-12-06 it marked it again.
    * A message found nowhere (neither by its id's lookup nor in this conversation's transcript): a message of a
      conversation erased (or purged) since, or a send of this one whose record has not landed yet (a callback
      faster than the send's answer). It marks nothing: a young person who did unsubscribe is marked by Twilio's
      refusal of a send all the same (21610 answered to the send, ``RecipientGone``; or a callback about a message
      that is recorded), while a mark set wrongly silences them, every reply "not sent" until a START they have no
      reason to send. Until 2026-12-06 it marked the conversation (then, that day, while one of its replies was in
      flight): a late 21610 of an erased conversation silenced the young person's next one.

    The transcript is read after the lookup, so a record landing between the two is found there by its id."""
    entry = await store.find_by_provider_id(provider_message_id)
    if entry is not None and entry.conversation_id != conversation_id:
        return f"a message of another conversation ({entry.conversation_id})"
    transcript = await store.transcript(conversation_id)
    if entry is None:
        entry = next((e for e in transcript if holds_provider_id(e.provider_message_id, provider_message_id)), None)
    if entry is None:
        return "a message found nowhere (an erased or purged conversation's, or a send not recorded yet)"
    lifted = [e.at for e in transcript if e.system and e.system.code == "left.unblocked"]
    return "a message sent before the mark was lifted" if lifted and entry.at < max(lifted) else None
