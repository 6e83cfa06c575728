"""Who may see what of a conversation in the console: the access walls of the listener side.

* A **supervisor** sees every conversation. Each time one reads a conversation they do not hold (the
  conversation, its attachments, its notices), an audit entry says who, which conversation and when; never a text.
* A **listener** sees in full the conversations they hold and those they held until they ended (their history);
  holding a young person's conversation, also that young person's earlier ones that no other listener held
  (:func:`earlier_sight`: opened from the held one, ``?via=<its id>``).
* A **waiting** conversation (queued) shows every listener its card and first-contact summary, never the
  transcript: enough to choose whom to take, and to take, transfer, close or block it.
* Anything else (another listener's conversation and its private notes, a conversation still in the bot) is not
  shown: 403 ``forbidden``.

Live events follow the same rule (:func:`may_receive`): queue changes, statuses and presence go to every console;
a conversation's entries, notes, typing, flags, deliveries and notices go to its holder and the supervisors only
(an erasure's notice to the listener it names, its holder when it was erased); alerts to the supervisors only.
"""

from __future__ import annotations

from enum import IntEnum

from gateway.conversation import Conversation, Status
from gateway.events import Erased, Event
from gateway.store import Listener


class Sight(IntEnum):
    NONE = 0  # not shown at all
    CARD = 1  # the card and first-contact summary (a waiting conversation)
    FULL = 2  # the transcript, the notes, the attachments, the notices


# Events every console gets: they carry no words of a young person (a status and a language are on the card too).
BROADCAST = frozenset({"queue", "status", "language", "presence", "hello", "resync"})


def holds(listener: Listener, conversation: Conversation) -> bool:
    """The listener holds it now, or held it until it ended (it is in their history)."""
    return conversation.listener == listener.name and conversation.status != Status.QUEUED


def sight(listener: Listener, conversation: Conversation) -> Sight:
    if listener.supervisor or holds(listener, conversation):
        return Sight.FULL
    return Sight.CARD if conversation.status == Status.QUEUED else Sight.NONE


def earlier_sight(listener: Listener, target: Conversation, via: Conversation) -> Sight:
    """What ``listener`` sees of ``target`` reached from ``via``: in full when they hold ``via``, ``target`` is an
    earlier conversation of the same young person (same channel identity) and no other listener held it."""
    same_person = target.channel == via.channel and target.sender == via.sender and target.id != via.id
    earlier = target.created_at <= via.created_at
    # Its record names its holder, or whoever closed it; a hand-back or a transfer names nobody, but keeps when it was
    # last taken: one taken once and named by nobody was another's (or one's own, given back: hidden too), with their
    # replies and private notes.
    unheld = target.listener == listener.name or (target.listener is None and target.taken_at is None)
    return Sight.FULL if holds(listener, via) and same_person and earlier and unheld else Sight.NONE


def audited(listener: Listener, conversation: Conversation) -> bool:
    """A read that goes to the audit log: a supervisor's, of a conversation they do not hold."""
    return listener.supervisor and not holds(listener, conversation)


def conversation_of(event: Event) -> str | None:
    """The id of the conversation whose holder decides who gets this event; None when nobody's does."""
    conversation_id = getattr(event, "conversation_id", None)
    return conversation_id if event.type not in BROADCAST and isinstance(conversation_id, str) else None


def may_receive(viewer: Listener, event: Event, conversation: Conversation | None) -> bool:
    """Whether the console socket of ``viewer`` gets ``event``; ``conversation`` is the record of the event's
    conversation when it has one (:func:`conversation_of`; None when it no longer exists)."""
    if event.type in BROADCAST:
        return True
    if viewer.supervisor:
        return True
    if isinstance(event, Erased):  # the record is gone: its holder at the erasure is told
        return event.listener is not None and event.listener == viewer.name
    if conversation_of(event) is not None:
        return conversation is not None and sight(viewer, conversation) == Sight.FULL
    return False
