"""What the gateway tells its live surfaces (the console, the web chat, the other instances) through the store.

One frozen dataclass per event type; :data:`Event` is their union. :func:`encode` gives the JSON form, the same
on every wire: Redis pub/sub between instances and the console socket's frames (``console/static/*.js`` reads
it); :func:`decode` reads it back. Producers build the dataclasses; consumers ``match`` on them.

    type        class            what happened                                    who listens
    queue       QueueChanged     the waiting queue changed                        console
    entry       EntryAdded       a transcript entry was written                   console, web chat
    note        NoteAdded        a listener's private note                        console
    flag        FlagRaised       a risk was read in a young person's message      console
    status      StatusChanged    a conversation's status changed                  console, web chat
    language    LanguageChanged  a conversation's language changed (chosen, read) console, web chat
    delivery    DeliveryChanged  a sent message's delivery (sent, read, failed)   console
    typing      Typing           someone is typing (``who``: user or listener)    console, web chat, channels
    notices     NoticesChanged   a conversation's notices or referrals changed    console
    alert       Alert            something a supervisor should see                console
    presence    ListenersOnline  the listeners online on one instance (hashed)    other instances
    sessions_ended SessionsEnded console sessions ended: close their sockets         every instance's console
    resync      Resync           events may have been missed: reload              every subscriber
    erased      Erased           the conversation was erased (its last entry,     console, web chat
                                 never stored: ``gateway/erasure.py``)

Each event has a scope (:func:`scope`): every subscription gets presence, typing and sessions ended; a
conversation's events go to the subscriptions following it or every conversation, the queue's changes and
alerts only to the latter (the console). On Redis an instance is sent only what its subscriptions follow.

Events never carry a sender's address (a PSID, a phone number): entries carry the transcript's own fields; an
attachment's provider URL is removed before the console sees it (``console/media.py``). Decoding is lenient, for a
newer instance during a rolling deploy: an event of a type this version does not know decodes to None and is
skipped by the subscriptions; in one it knows, keys it does not know are ignored and an author or a delivery it
does not know reads as a safe default (``Author.read``, ``Delivery.read``); one of a known type that still
cannot be read (a status this version does not know) is logged and decodes to :class:`Resync`: its subscribers
reload what it was about from the store, rather than miss it without a word.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from gateway.conversation import RiskFlag, Status
from gateway.messages import Attachment, Choice
from gateway.store import Author, Delivery, SystemText, TranscriptEntry

log = logging.getLogger(__name__)
JSON = dict[str, Any]
Who = Literal["user", "listener"]


def entry_json(entry: TranscriptEntry) -> JSON:
    """The JSON form of a transcript entry, for events, the web chat and the console."""
    return {
        "id": entry.id,
        "author": entry.author.value,
        "text": entry.text,
        "choices": [{"value": c.value, "label": c.label} for c in entry.choices],
        "attachments": [asdict(a) for a in entry.attachments],
        "at": entry.at.isoformat(),
        "delivery": entry.delivery.value,
        "flag": entry.flag.to_dict() if entry.flag else None,
        "system": {"code": entry.system.code, "params": dict(entry.system.params)} if entry.system else None,
    }


def entry_from_json(conversation_id: str, data: JSON) -> TranscriptEntry:
    return TranscriptEntry(
        id=str(data["id"]), conversation_id=conversation_id, at=datetime.fromisoformat(data["at"]),
        author=Author.read(data["author"]), text=str(data["text"]),
        choices=tuple(Choice(str(c["value"]), str(c["label"])) for c in data["choices"]),
        attachments=tuple(Attachment.known(a) for a in data["attachments"]),
        delivery=Delivery.read(data["delivery"]), flag=RiskFlag.from_dict(data["flag"]),
        system=_system(data.get("system")),
    )  # fmt: skip


def _system(data: JSON | None) -> SystemText | None:
    if not data:
        return None
    return SystemText(str(data["code"]), tuple((str(k), str(v)) for k, v in dict(data["params"]).items()))


@dataclass(frozen=True, slots=True)
class QueueChanged:
    type: ClassVar[str] = "queue"

    def to_json(self) -> JSON:
        return {"type": self.type}

    @classmethod
    def from_json(cls, data: JSON) -> QueueChanged:
        return cls()


@dataclass(frozen=True, slots=True)
class EntryAdded:
    type: ClassVar[str] = "entry"
    conversation_id: str
    entry: TranscriptEntry

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "entry": entry_json(self.entry)}

    @classmethod
    def from_json(cls, data: JSON) -> EntryAdded:
        return cls(data["conversation_id"], entry_from_json(data["conversation_id"], data["entry"]))


@dataclass(frozen=True, slots=True)
class NoteAdded:
    type: ClassVar[str] = "note"
    conversation_id: str
    entry: TranscriptEntry

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "entry": entry_json(self.entry)}

    @classmethod
    def from_json(cls, data: JSON) -> NoteAdded:
        return cls(data["conversation_id"], entry_from_json(data["conversation_id"], data["entry"]))


@dataclass(frozen=True, slots=True)
class FlagRaised:
    type: ClassVar[str] = "flag"
    conversation_id: str
    entry_id: str
    flag: RiskFlag

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "entry_id": self.entry_id,
                "flag": self.flag.to_dict()}  # fmt: skip

    @classmethod
    def from_json(cls, data: JSON) -> FlagRaised:
        flag = RiskFlag.from_dict(data["flag"])
        if flag is None:
            raise ValueError("a flag event without its flag")
        return cls(data["conversation_id"], data["entry_id"], flag)


@dataclass(frozen=True, slots=True)
class StatusChanged:
    type: ClassVar[str] = "status"
    conversation_id: str
    status: Status
    queue: str | None

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "status": self.status.value,
                "queue": self.queue}  # fmt: skip

    @classmethod
    def from_json(cls, data: JSON) -> StatusChanged:
        return cls(data["conversation_id"], Status(data["status"]), data.get("queue"))


@dataclass(frozen=True, slots=True)
class LanguageChanged:
    type: ClassVar[str] = "language"
    conversation_id: str
    language: str

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "language": self.language}

    @classmethod
    def from_json(cls, data: JSON) -> LanguageChanged:
        language = data["language"]
        if not isinstance(language, str):
            raise ValueError("a language event without its language")
        return cls(data["conversation_id"], language)


@dataclass(frozen=True, slots=True)
class DeliveryChanged:
    type: ClassVar[str] = "delivery"
    conversation_id: str
    id: str  # the transcript entry's (and the outbox item's) id
    delivery: Delivery
    reason: str | None = None  # why it failed, shown to the listener

    def to_json(self) -> JSON:
        data: JSON = {"type": self.type, "conversation_id": self.conversation_id, "id": self.id,
                      "delivery": self.delivery.value}  # fmt: skip
        if self.reason:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_json(cls, data: JSON) -> DeliveryChanged:
        return cls(data["conversation_id"], data["id"], Delivery(data["delivery"]), data.get("reason"))


@dataclass(frozen=True, slots=True)
class Typing:
    type: ClassVar[str] = "typing"
    conversation_id: str
    who: Who

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "who": self.who}

    @classmethod
    def from_json(cls, data: JSON) -> Typing:
        who = data["who"]
        if who not in ("user", "listener"):
            raise ValueError(f"typing by {who!r}")
        return cls(data["conversation_id"], who)


@dataclass(frozen=True, slots=True)
class NoticesChanged:
    type: ClassVar[str] = "notices"
    conversation_id: str

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id}

    @classmethod
    def from_json(cls, data: JSON) -> NoticesChanged:
        return cls(data["conversation_id"])


@dataclass(frozen=True, slots=True)
class Alert:
    type: ClassVar[str] = "alert"
    kind: str  # login_locked, notice_overdue
    subject: str  # a listener's name, a notice's reference: never a young person's identity
    detail: str

    def to_json(self) -> JSON:
        return {"type": self.type, "kind": self.kind, "subject": self.subject, "detail": self.detail}

    @classmethod
    def from_json(cls, data: JSON) -> Alert:
        return cls(str(data["kind"]), str(data["subject"]), str(data["detail"]))


@dataclass(frozen=True, slots=True)
class ListenersOnline:
    type: ClassVar[str] = "presence"
    instance: str
    listeners: tuple[str, ...]  # hashed names (``console/presence.py``)
    troubled: tuple[str, ...] = ()  # the instance's background workers down or restarting too often (their names)

    def to_json(self) -> JSON:
        data: JSON = {"type": self.type, "instance": self.instance, "listeners": list(self.listeners)}
        if self.troubled:  # absent when none: what an instance of an earlier version sends and reads
            data["troubled"] = list(self.troubled)
        return data

    @classmethod
    def from_json(cls, data: JSON) -> ListenersOnline:
        instance, listeners, troubled = data["instance"], data["listeners"], data.get("troubled", [])
        if not isinstance(instance, str) or not isinstance(listeners, list) or not isinstance(troubled, list):
            raise ValueError("a malformed presence event")
        if not all(isinstance(name, str) for name in [*listeners, *troubled]):
            raise ValueError("a malformed presence event")
        return cls(instance, tuple(listeners), tuple(troubled))


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """Console sessions ended (``console/sessions.py``): one (``session``, its key: a keyed hash, logout) or every
    one of a listener (``listener``, a digest of the name). Never forwarded to a socket."""

    type: ClassVar[str] = "sessions_ended"
    session: str | None = None
    listener: str | None = None

    def to_json(self) -> JSON:
        return {"type": self.type, "session": self.session, "listener": self.listener}

    @classmethod
    def from_json(cls, data: JSON) -> SessionsEnded:
        session, listener = data.get("session"), data.get("listener")
        if not isinstance(session, str | None) or not isinstance(listener, str | None):
            raise ValueError("a malformed sessions_ended event")
        return cls(session, listener)


@dataclass(frozen=True, slots=True)
class Erased:
    type: ClassVar[str] = "erased"
    conversation_id: str
    entry: TranscriptEntry  # a system entry for the listeners, shown live and never stored
    # Who held it when it was erased: the record is gone by the time the event is fanned out, so the access
    # walls (console/access.py) decide on this name instead.
    listener: str | None = None

    def to_json(self) -> JSON:
        return {"type": self.type, "conversation_id": self.conversation_id, "entry": entry_json(self.entry),
                "listener": self.listener}  # fmt: skip

    @classmethod
    def from_json(cls, data: JSON) -> Erased:
        listener = data.get("listener")
        return cls(data["conversation_id"], entry_from_json(data["conversation_id"], data["entry"]),
                   listener if isinstance(listener, str) else None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed since the previous one (see :class:`~gateway.store.Subscription`)."""

    type: ClassVar[str] = "resync"

    def to_json(self) -> JSON:
        return {"type": self.type}

    @classmethod
    def from_json(cls, data: JSON) -> Resync:
        return cls()


Event = (
    QueueChanged
    | EntryAdded
    | NoteAdded
    | FlagRaised
    | StatusChanged
    | LanguageChanged
    | DeliveryChanged
    | Typing
    | NoticesChanged
    | Alert
    | ListenersOnline
    | SessionsEnded
    | Resync
    | Erased
)

_DECODERS: dict[str, Callable[[JSON], Event]] = {
    kind.type: kind.from_json
    for kind in (QueueChanged, EntryAdded, NoteAdded, FlagRaised, StatusChanged, LanguageChanged, DeliveryChanged,
                 Typing, NoticesChanged, Alert, ListenersOnline, SessionsEnded, Resync, Erased)
}  # fmt: skip


_EVERY_SUBSCRIPTION = (Typing, ListenersOnline, SessionsEnded, Resync)
_CONSOLE_ONLY = (QueueChanged, Alert)
ANY_CONVERSATION = ""  # the scope of the events only a subscription following every conversation gets


def scope(event: Event) -> str | None:
    """Which subscriptions get an event (``Subscription.follow``): None, every one (presence, typing, sessions
    ended: each instance's workers need them); :data:`ANY_CONVERSATION`, those following every conversation (the
    console's queue and alerts); else the id of the conversation it is about, its followers and those following
    every conversation."""
    if isinstance(event, _EVERY_SUBSCRIPTION):
        return None
    if isinstance(event, _CONSOLE_ONLY):
        return ANY_CONVERSATION
    return event.conversation_id


def encode(event: Event) -> JSON:
    """The JSON form of an event (the store's wire and the console's frames)."""
    return event.to_json()


def decode(data: object) -> Event | None:
    """An event from its JSON form; None for a type this version does not know; :class:`Resync` for one of a
    known type that cannot be read (logged: its subscribers reload from the store instead of missing it)."""
    if not isinstance(data, dict):
        return None
    decoder = _DECODERS.get(str(data.get("type")))
    if decoder is None:
        return None
    try:
        return decoder(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        log.warning("events: a %s event cannot be read (%s): resync", data.get("type"), type(error).__name__)
        return Resync()
