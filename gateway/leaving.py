"""The young person leaves: the quick exit, "Terminer", or a web chat page gone for good.

Listeners see it at once: a system entry (French, then English), and the conversation is marked as left
(``Conversation.left_at`` and ``left_how``, shown by the console).

* ``ended`` ("Terminer"): ``gateway.webchat.end_by_young_person`` says goodbye and closes it (abandoned while
  waiting); the entry tells the listener it was the young person's choice.
* ``quick_exit``: nothing more is sent to the page (it is gone, and someone else may be looking at the screen).
  With the bot or in the queue nobody is there to answer: abandoned, out of the queue. With a listener it stays
  theirs, to close with an outcome.
* ``gone``: no web chat socket for :data:`GONE_AFTER` while queued or with a listener (the tab was closed, or the
  network lost that long): the entry only. When the same browser comes back to the conversation, an entry says so
  and the mark is lifted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.flows import lifecycle
from gateway.store import TimerKind

Leaving = Literal["quick_exit", "ended", "gone"]

GONE_AFTER = timedelta(seconds=90)

TEXTS: dict[str, str] = {
    "quick_exit": "Le ou la jeune a quitté le chat avec la sortie rapide : il ou elle ne lit plus cette conversation."
    " · The young person left with the quick exit: they no longer read this conversation.",
    "ended": "Le ou la jeune a terminé la conversation. · The young person ended the conversation.",
    "gone": "Le ou la jeune a fermé le chat (plus connecté·e depuis 90 s). · The young person closed the chat (not"
    " connected for 90 s).",
    "back": "Le ou la jeune est revenu·e sur le chat. · The young person is back on the chat.",
}


async def mark_left(dispatcher: Dispatcher, conversation: Conversation, how: Leaving, now: datetime) -> None:
    """Mark ``conversation`` as left and tell the listeners; the caller holds its lock and saves it."""
    conversation.left_at, conversation.left_how = now, how
    conversation.updated_at = now
    await dispatcher.system_note(conversation, TEXTS[how], now)


async def quick_exit(dispatcher: Dispatcher, conversation_id: str) -> None:
    """The quick exit: marked as left; out of the bot or the queue, since nobody is there to answer any more."""
    store = dispatcher.store
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active or conversation.left_how == "quick_exit":
            return
        now = dispatcher.clock()
        await mark_left(dispatcher, conversation, "quick_exit", now)
        if conversation.status in (Status.BOT, Status.QUEUED):
            await dispatcher.set_status(conversation, lifecycle.advance(conversation.status, "abandon"), now)
        await store.save_conversation(conversation)


async def socket_closed(dispatcher: Dispatcher, conversation_id: str) -> None:
    """A web chat socket closed: unless the young person comes back within GONE_AFTER, they are gone."""
    await dispatcher.store.set_timer(conversation_id, TimerKind.WEBCHAT_GONE, dispatcher.clock() + GONE_AFTER)


async def gone(dispatcher: Dispatcher, conversation: Conversation, now: datetime) -> None:
    """The page-gone timer fired (under the lock): tell a listener, or the queue, that nobody reads."""
    if conversation.status in (Status.QUEUED, Status.WITH_LISTENER) and conversation.left_at is None:
        await mark_left(dispatcher, conversation, "gone", now)


async def returned(dispatcher: Dispatcher, conversation_id: str) -> None:
    """The young person's browser is back on the conversation: nothing more to wait for; lift a ``gone`` mark."""
    store = dispatcher.store
    await store.cancel_timers(conversation_id, TimerKind.WEBCHAT_GONE)
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active or conversation.left_how != "gone":
            return
        now = dispatcher.clock()
        conversation.left_at, conversation.left_how = None, None
        await dispatcher.system_note(conversation, TEXTS["back"], now)
        await store.save_conversation(conversation)
