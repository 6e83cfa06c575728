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
  ``member``, WhatsApp ``START``) or a new message from the young person lifts the mark, with an entry.
* ``gone``: no web chat socket for :data:`GONE_AFTER` while queued or with a listener (the tab was closed, or the
  network lost that long): the entry only. When the same browser comes back to the conversation, an entry says so
  and the mark is lifted.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Literal, Protocol

from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.flows.lifecycle import Trigger
from gateway.ids import derived_id, derived_ids
from gateway.language import language_of
from gateway.messages import Departure, Reply
from gateway.store import Author, ConversationStore, LockStore, TimerKind, TimerStore

Leaving = Literal["quick_exit", "ended", "gone", "blocked"]
ENDING: tuple[Leaving, ...] = ("quick_exit", "ended")  # the leavings that end a waiting conversation

GONE_AFTER = timedelta(seconds=90)


class LeavingRoles(ConversationStore, LockStore, TimerStore, Protocol):
    """What leaving needs of the store (the caller's, injected; the dispatcher writes the entries)."""


async def mark_left(
    dispatcher: Dispatcher, conversation: Conversation, how: Leaving, now: datetime, *, ending: bool = False
) -> None:
    """Mark ``conversation`` as left and tell the listeners; the caller holds its lock and saves it. ``ending``: this
    leaving ends the conversation, so it happens once: its note's id derives from it (:func:`begun`)."""
    conversation.left_at, conversation.left_how = now, how
    conversation.updated_at = now
    with derived_ids(_key(conversation.id, how)) if ending else contextlib.nullcontext():
        await dispatcher.system_note(conversation, f"left.{how}", now, channel=conversation.channel.value)


def _key(conversation_id: str, how: Leaving) -> str:
    return f"left:{conversation_id}:{how}"


def begun(conversation_id: str) -> dict[str, Leaving]:
    """The id the note of each leaving that ends a waiting conversation (quick exit, "Terminer") has → that leaving.

    Such a leaving writes, under the lock and one step at a time: its note, the queue step (on Redis alone, another
    slot than the record), the record (abandoned). Cut between the last two, the record says queued while no entry
    waits, which the alert check takes for a take cut short (``Actions.back_in_line``): it finds the note's id in the
    transcript (``entries_written``) and completes the leaving (:func:`complete`), never puts them back in line."""
    return {derived_id(_key(conversation_id, how), 1): how for how in ENDING}


async def complete(dispatcher: Dispatcher, store: LeavingRoles, conversation: Conversation, how: Leaving,
                   now: datetime) -> None:  # fmt: skip
    """A waiting young person's leaving cut after its queue step (:func:`begun`), made whole under the caller's lock:
    marked as left that way (the note written again with its id, which the store keeps once), abandoned, saved.
    Nothing is written to the young person (a "Terminer" said its goodbye before its queue step)."""
    await mark_left(dispatcher, conversation, how, now, ending=True)
    await dispatcher.transition(conversation, Trigger.ABANDON, now)
    await store.save_conversation(conversation)


async def quick_exit(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The quick exit: marked as left; out of the bot or the queue, since nobody is there to answer any more (cut
    after the queue step on Redis: completed by the alert check, :func:`begun`)."""
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active or conversation.left_how == "quick_exit":
            return
        ending = conversation.status in (Status.BOT, Status.QUEUED)
        await mark_left(dispatcher, conversation, "quick_exit", now, ending=ending)
        if ending:
            await dispatcher.transition(conversation, Trigger.ABANDON, now)
        await store.save_conversation(conversation)


async def ended(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The young person ends the conversation ("Terminer"): a goodbye, then closed (abandoned while waiting)."""
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active:
            return
        engine = dispatcher.flows.for_version(conversation.flow_version)
        goodbye = engine.message("ended", language_of(conversation, engine.flow))
        await dispatcher.emit(conversation, [Reply(goodbye)], Author.BOT, now)
        await mark_left(dispatcher, conversation, "ended", now, ending=True)  # before the queue step: :func:`begun`
        trigger = {Status.BOT: Trigger.END, Status.QUEUED: Trigger.ABANDON}.get(conversation.status, Trigger.CLOSE)
        if trigger == Trigger.CLOSE:
            conversation.outcome = conversation.outcome or "ended_by_young_person"
        await dispatcher.transition(conversation, trigger, now)
        await store.save_conversation(conversation)


async def socket_closed(store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """A web chat socket closed at ``now``: unless the young person comes back within GONE_AFTER, they are gone.

    Not when a page has opened the conversation again since (``Conversation.page_opened_at``): the instance that
    held the socket may arm its timer late (its store was down when the socket closed: it tries again until it
    answers), after the page came back on another instance, whose :func:`returned` it would undo. The lock orders
    the two: either the timer is armed first and the return cancels it, or the return is seen here."""
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is not None and conversation.page_opened_at is not None and conversation.page_opened_at > now:
            return
        await store.set_timer(conversation_id, TimerKind.WEBCHAT_GONE, now + GONE_AFTER)


async def gone(dispatcher: Dispatcher, conversation: Conversation, now: datetime) -> None:
    """The page-gone timer fired (under the lock): tell a listener, or the queue, that nobody reads."""
    if conversation.status in (Status.QUEUED, Status.WITH_LISTENER) and conversation.left_at is None:
        await mark_left(dispatcher, conversation, "gone", now)


async def returned(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The young person's browser is back on the conversation: nothing more to wait for (a socket closed before
    ``now`` arms no timer any more, :func:`socket_closed`); lift a ``gone`` mark."""
    async with store.lock(conversation_id):
        await store.cancel_timers(conversation_id, TimerKind.WEBCHAT_GONE)
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active:
            return
        conversation.page_opened_at = now
        if conversation.left_how == "gone":
            conversation.left_at, conversation.left_how = None, None
            await dispatcher.system_note(conversation, "left.back", now)
        await store.save_conversation(conversation)


async def blocked(dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, now: datetime) -> None:
    """The young person blocked the line or unsubscribed: messages no longer reach them. Told once."""
    await _set_blocked(dispatcher, store, conversation_id, True, now)


async def provider_says(dispatcher: Dispatcher, store: LeavingRoles, departure: Departure, now: datetime) -> None:
    """A provider's webhook: the active conversation of this sender on this channel, if any, is (un)blocked."""
    conversation = await store.find_active_conversation(departure.channel, departure.sender)
    if conversation is not None:
        await _set_blocked(dispatcher, store, conversation.id, departure.left, now)


async def _set_blocked(
    dispatcher: Dispatcher, store: LeavingRoles, conversation_id: str, left: bool, now: datetime
) -> None:
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active or (conversation.left_how == "blocked") == left:
            return
        if left:
            await mark_left(dispatcher, conversation, "blocked", now)
        else:
            conversation.left_at, conversation.left_how = None, None
            await dispatcher.system_note(conversation, "left.unblocked", now, channel=conversation.channel.value)
        await store.save_conversation(conversation)
