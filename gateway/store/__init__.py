"""The durable store: one :class:`Store` Protocol, two implementations.

``open_store(url)`` picks the implementation from the URL:

* ``sqlite:///var/gateway.sqlite3`` (relative) or ``sqlite:////abs/path.sqlite3``: embedded, one gateway
  process (:mod:`gateway.store.sqlite`);
* ``redis://host:port/db``: several gateway instances sharing one Redis, standalone or Cluster (its keys are
  slot-safe: :mod:`gateway.store.redis_keys`) (:mod:`gateway.store.redis`); ``unix:///path/redis.sock?db=0``:
  the same, to a standalone Redis on the same machine through its unix socket;
  ``redis+sentinel://host1:26379,host2:26379/mymaster?db=0``: the primary the Sentinels name, followed through a
  failover (:mod:`gateway.store.redis_url`).

The Protocol is split into small role Protocols, one per concern, and each component declares the roles it
uses (``timers.py``'s ``TimersRoles``: :class:`TimerStore`, :class:`LockStore`, :class:`ConversationStore`,
:class:`QueueStore`, :class:`BatchStore`); only ``app.py`` and the CLI hold the whole :class:`Store`. Both
implementations seal what identifies or quotes a young person (``gateway/crypto.py``, through ``codec.py``) and
find a sender by a keyed hash, never by the identity itself. Every datetime passed in or returned is aware
and in UTC; "now" is always passed in, so tests never sleep. Errors are :class:`~gateway.errors.StoreError`
(unreachable, corrupt) or :class:`~gateway.errors.Conflict` (an exclusive operation lost a race). No error
message contains a sender address or message text.

Delivery guarantees the dispatcher and the outbox rely on:

* :meth:`DedupeStore.claim` is atomic: of many concurrent owners of one key, exactly one gets ``CLAIMED``; the
  others get ``BUSY`` until its lease lapses (a dead owner) or it is released, then ``DONE`` once the processing
  was saved (:meth:`ConversationStore.save_conversation` with ``done``: the state and the mark in one commit).
* :meth:`QueueStore.take` is exclusive: of two listeners racing for one conversation, one gets Conflict.
* :meth:`OutboxStore.outbox_due` hands out a conversation's oldest pending item and, at most ``run`` in all,
  the pending items that follow it while each is due (a *run*, in order), and *claims* them for a lease, so two
  outbox workers never send the same item and a conversation's messages go out in the order they were put: an
  item is handed out only once every item put before it in its conversation is resolved or in the same run. The
  lease's end is a fencing token: the holder renews it while sending (:meth:`OutboxStore.outbox_renew`), and a
  holder whose lease was taken over can no longer record the item.
* :meth:`LockStore.lock` serialises the processing of one conversation, across instances with Redis.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, runtime_checkable

from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.errors import ConfigError
from gateway.messages import PART_SEPARATOR, Attachment, ChannelName, Choice
from gateway.notices.record import Evidence, Notice, Referral

if TYPE_CHECKING:  # gateway.events builds on this module's records (TranscriptEntry): no import at run time
    from gateway.crypto import DataKeys
    from gateway.events import Event
    from gateway.sealing import Sealing
    from gateway.store.texts import OwnTexts

__all__ = [
    "ANYONE",
    "ASKED_BY",
    "CLIENT_OPEN",
    "INDEXED_DAYS",
    "LISTED_IDENTITY",
    "LISTED_IDENTITY_KIND",
    "PERSON_LISTED",
    "RELEASE_OUTCOMES",
    "RESEAL_CHANGED",
    "Anyone",
    "AuditEntry",
    "AuditStore",
    "Author",
    "BatchStore",
    "Block",
    "BlockStore",
    "CaseworkStore",
    "ClaimState",
    "ClientLimits",
    "ConsoleSession",
    "ConversationStore",
    "DedupeStore",
    "Delivery",
    "DoneMark",
    "EventStore",
    "HasClientLimits",
    "HasWorkers",
    "HeldIndex",
    "InboxItem",
    "InboxStore",
    "LateStore",
    "Listener",
    "ListenerStore",
    "LockStore",
    "OutboxItem",
    "OutboxStatus",
    "OutboxStore",
    "PendingLate",
    "QueueEntry",
    "QueueStore",
    "RetentionStore",
    "RetriesReleases",
    "SealStore",
    "SealingStore",
    "SessionStore",
    "Store",
    "Subscription",
    "Timer",
    "TimerStore",
    "TranscriptEntry",
    "TranscriptStore",
    "WaitingPage",
    "checked_holder",
    "open_store",
]


CLIENT_OPEN = frozenset({Status.BOT, Status.QUEUED})  # a client's conversations these count against its cap
INDEXED_DAYS = 31
"""How long the index of a listener's ended conversations keeps an entry, counted back from the latest entry of the
same index (``ConversationStore.ended_with``): the console reads 30 days back (``console/api.py``, ``HISTORY_DAYS``).
A young person's (``conversations_of``) keeps every conversation still naming them (until 2026-12-06, as long)."""
READ_LATE_HOURS = 48  # how long an ended conversation with a risk read late stays on the supervision board
READ_LATE_KEPT = 200  # the most of them listed (the latest): a bound on the list, whatever happens in a night


class Author(StrEnum):
    USER = "user"
    BOT = "bot"
    LISTENER = "listener"
    NOTE = "note"  # a listener's private note, never sent
    SYSTEM = "system"  # "Loutre-2291 was taken by Anne"
    # the page's message sent from outside the gateway (messages.Echo): recorded, never sent. PAGE: not known to be a
    # person's (maybe one of Meta's automated responses; every such entry written before 2026-12-06, when all were
    # labelled an admin's answer); PAGE_HUMAN: a person's, its app in MESSENGER_HUMAN_ECHO_APPS (``Echo.human``)
    PAGE = "page"
    PAGE_HUMAN = "page_human"

    @classmethod
    def read(cls, value: str) -> Author:
        """An author as stored or published; one a newer version added (a rolling deploy) reads as SYSTEM: shown
        to the listeners, never to the young person (it may be private, like a note)."""
        try:
            return cls(value)
        except ValueError:
            return cls.SYSTEM


class Delivery(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"

    @classmethod
    def read(cls, value: str) -> Delivery:
        """A delivery as stored or published; one a newer version added (a rolling deploy) reads as PENDING, which
        claims nothing (never the page's own receipts: those are checked)."""
        try:
            return cls(value)
        except ValueError:
            return cls.PENDING


RECEIPT_KEPT_SECONDS = 600  # a receipt that came before its send's record waits this long for it (10 minutes)
OPENING_KEPT_SECONDS = 600  # a web chat page's opening key finds the conversation it opened this long (10 minutes)
_DELIVERY_RANK = {Delivery.PENDING: 0, Delivery.SENT: 1, Delivery.DELIVERED: 2, Delivery.READ: 3, Delivery.FAILED: 4}


def furthest(deliveries: Iterable[Delivery]) -> Delivery | None:
    """The furthest of several receipts' statuses (a failure above all): the one a reply is left with."""
    return max(deliveries, key=_DELIVERY_RANK.__getitem__, default=None)


def sent_shown(receipt: Delivery | None) -> Delivery:
    """What a reply's entry shows once its send is recorded with ``receipt``, one kept for it, applied in the same
    step (:meth:`OutboxStore.outbox_mark_sent`): sent, or the receipt when it goes further (or failed)."""
    return max(Delivery.SENT, receipt or Delivery.SENT, key=_DELIVERY_RANK.__getitem__)


# A reply sent in parts keeps each part's provider id on its entry, ``"<id 1> <id 2> …"`` (:data:`PART_SEPARATOR`),
# each followed by ``~`` and its furthest receipt's code once one came (``~d``, ``~r``, ``~f``; none: sent)
_PART_CODES = {Delivery.SENT: "s", Delivery.DELIVERED: "d", Delivery.READ: "r", Delivery.FAILED: "f"}
_PART_STATES = {code: delivery for delivery, code in _PART_CODES.items()}


def provider_ids(provider_message_id: str | None) -> list[str]:
    """The provider ids an entry's ``provider_message_id`` holds: one, or each part's of a reply sent in parts."""
    return [_part(token)[0] for token in (provider_message_id or "").split(PART_SEPARATOR) if token]


def _part(token: str) -> tuple[str, str]:
    """A part's provider id and its receipt's code (``~d``: "d"; none: "")."""
    return (token[:-2], token[-1]) if len(token) > 2 and token[-2] == "~" else (token, "")


DIGEST_MARK = "#"  # begins a provider id's digest (:func:`provider_digest`): no provider's id begins so


def provider_digest(provider_id: str) -> str:
    """A provider id as a store may keep it on its entry (Redis, since 2026-12-07): ``#`` and the URL-safe base64 of
    its SHA-256's first 12 bytes, 17 characters where a Messenger mid has some 88 (the digest of its day index's
    field, ``redis_providers``). Two ids of one conversation sharing a digest: some 1 in 10^25."""
    digest = hashlib.sha256(provider_id.encode()).digest()[:12]
    return DIGEST_MARK + base64.urlsafe_b64encode(digest).decode()


def provider_digests(provider_message_id: str | None) -> str:
    """An entry's ``provider_message_id`` with each id (each part's) as its :func:`provider_digest`; "" for none."""
    return PART_SEPARATOR.join(provider_digest(p) for p in provider_ids(provider_message_id))


def holds_provider_id(provider_message_id: str | None, provider_id: str) -> bool:
    """Whether an entry read from the store names ``provider_id`` (one of its parts', of a reply in parts): whole
    (SQLite, and Redis's entries written before 2026-12-07) or as its digest (Redis's since)."""
    held = provider_ids(provider_message_id)
    return provider_id in held or provider_digest(provider_id) in held


def in_parts(provider_message_id: str | None) -> bool:
    """Whether an entry's ``provider_message_id`` is a reply's sent in parts (entries of one part: one id)."""
    return provider_message_id is not None and PART_SEPARATOR in provider_message_id


def part_advanced(
    provider_message_id: str, shown: Delivery, part: str, delivery: Delivery
) -> tuple[str, Delivery] | None:
    """A reply in parts after ``part``'s receipt: its ids with that part's status (forward only, a failure final),
    and what its entry shows then: the worst part's (failed if one failed, else the least far), never back from
    ``shown``. None when no part has that id, or the receipt is no status a part keeps."""
    if delivery not in _PART_CODES:
        return None
    states: list[tuple[str, Delivery]] = []
    for token in provider_message_id.split(PART_SEPARATOR):
        pid, code = _part(token)
        state = _PART_STATES.get(code, Delivery.SENT)
        if pid == part and state is not Delivery.FAILED and _DELIVERY_RANK[delivery] > _DELIVERY_RANK[state]:
            state = delivery
        states.append((pid, state))
    if all(pid != part for pid, _ in states):
        return None
    ids = PART_SEPARATOR.join(pid if state is Delivery.SENT else f"{pid}~{_PART_CODES[state]}" for pid, state in states)
    worst = Delivery.FAILED if any(state is Delivery.FAILED for _, state in states) else min(
        (state for _, state in states), key=_DELIVERY_RANK.__getitem__)  # fmt: skip
    if shown is Delivery.FAILED or (worst is not Delivery.FAILED and _DELIVERY_RANK[worst] <= _DELIVERY_RANK[shown]):
        worst = shown
    return ids, worst


class ClaimState(StrEnum):
    """What :meth:`DedupeStore.claim` found for an inbound message id."""

    CLAIMED = "claimed"  # the caller owns it now (or still): process it
    BUSY = "busy"  # another live owner is processing it: wait, or answer "retry later"
    DONE = "done"  # processed and saved already: a duplicate


@dataclass(frozen=True, slots=True)
class Claim:
    """An inbound message's claim (:meth:`DedupeStore.claim`), renewed once a lock is held (``locked_batch``)."""

    key: str
    owner: str
    lease_seconds: float
    kept_seconds: int | None = None  # how long its processed mark is kept (``DedupeStore.claim``)


@dataclass(frozen=True, slots=True)
class DoneMark:
    """Saved with a conversation: the inbound message ``key`` is processed, for ``ttl_seconds``."""

    key: str
    ttl_seconds: int


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of a conversation's transcript. For an outgoing message, ``id`` is the Outbound's id."""

    id: str
    conversation_id: str
    at: datetime
    author: Author
    text: str = field(repr=False)
    choices: tuple[Choice, ...] = ()
    attachments: tuple[Attachment, ...] = field(default=(), repr=False)
    delivery: Delivery = Delivery.PENDING
    provider_message_id: str | None = None  # on Redis since 2026-12-07 each id's digest: ``holds_provider_id``
    flag: RiskFlag | None = None  # a young person's message in which a risk was read
    system: SystemText | None = None  # a server-written entry (author system): worded in the console's language


@dataclass(frozen=True, slots=True)
class SystemText:
    """What a server-written entry says, as a code and parameters (``gateway/system_entries.py``)."""

    code: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A conversation in the waiting queue. ``taken_by`` is set once a listener took it. ``flag``: the risk its
    priority was raised for, written with the priority (its class, score and source; never a message's words: an
    entry is not sealed), so that the queue's card never shows the priority without it (:meth:`QueueStore.enqueue`)."""

    conversation_id: str
    queue: str
    priority: Priority
    at: datetime  # arrival in the queue; kept when a listener hands the conversation back
    taken_by: str | None = None
    flag: RiskFlag | None = None


@dataclass(frozen=True, slots=True)
class WaitingPage:
    """What the console's queue and the supervision board show of the waiting entries, whatever their number
    (:meth:`QueueStore.waiting_page`): the first ones in the queue's order, how many wait (and how many of them are
    urgent), the earliest arrivals (the earliest first) and the latest one; ``counts``, how many wait per queue and
    priority (none listed with 0; since 2026-12-07, for ``/metrics``, which read every waiting entry until then)."""

    first: tuple[QueueEntry, ...]
    total: int
    urgent: int
    earliest: tuple[QueueEntry, ...]
    newest: QueueEntry | None
    counts: tuple[tuple[str, Priority, int], ...] = ()


@dataclass(frozen=True, slots=True)
class HeldIndex:
    """Who holds how many (:meth:`QueueStore.held_index`, since 2026-12-07): ``counts``, per listener, the queue
    entries they have taken (none listed with 0); ``whole``, when the index does not account for every held record
    (a record held whose entry names no holder: a step cut short; a take or hand-back between its two steps; an index
    behind an instance of before it), :meth:`QueueStore.holders` read as before, else None."""

    counts: dict[str, int]
    whole: dict[str, str | None] | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    """A listener's console account. ``password_hash`` is opaque to the store (argon2 in ``console/auth``)."""

    name: str
    password_hash: str = field(repr=False)
    supervisor: bool = False
    capacity: int = 1  # conversations at once
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A console login, kept server-side so that it can be ended. ``key`` is the keyed hash of the cookie's random
    token (the store never holds a token that would open the console); ``name`` is the listener's; ``account`` the
    fingerprint of the account it was opened on (``console/sessions.py``, :func:`account_of`: its password hash),
    ``""`` for a session stored before 2026-12-07."""

    key: str
    name: str
    expires: datetime
    account: str = ""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A message waiting for delivery. ``payload`` is JSON-able (the serialised Outbound)."""

    id: str
    conversation_id: str
    payload: dict[str, Any] = field(repr=False)
    created_at: datetime
    next_attempt_at: datetime | None = None  # None: as soon as it heads its conversation (created_at)
    attempts: int = 0
    last_error: str | None = None
    status: OutboxStatus = OutboxStatus.PENDING
    provider_message_id: str | None = None
    parts_sent: int = 0  # parts of a split message already accepted by the provider: the next try starts there
    # a reply of a channel whose read receipts are watermarks (Messenger): put, its transcript entry awaits one
    # (``TranscriptStore.mark_until``); not stored with the item
    awaits_read: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """A sender kept away from the bot and the queue. ``key`` is the keyed hash of the channel identity (never
    the identity); ``until`` None means permanent; ``pseudonym`` is the conversation it was decided from."""

    key: str
    channel: ChannelName
    until: datetime | None
    reason: str
    by: str
    at: datetime
    pseudonym: str = ""

    def active(self, now: datetime) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what, when: blocks, unblocks, login locks, bulk closes. Never a message text or an identity."""

    at: datetime
    actor: str  # a listener's name, or "gateway"
    action: str
    subject: str = ""  # a block key, a listener's name, conversation pseudonyms
    detail: str = ""


@dataclass(frozen=True, slots=True)
class InboxItem:
    """An inbound message acknowledged to its provider and not processed yet. ``id`` is its de-duplication key;
    ``sender_key`` (a hash of channel and sender) orders the items: one sender's messages are processed in turn."""

    id: str
    sender_key: str
    payload: dict[str, Any] = field(repr=False)  # the serialised Inbound
    received_at: datetime
    next_attempt_at: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class PendingLate:
    """A young person's message waiting for its late reading (``gateway/understanding/late.py``): its conversation
    and its transcript entry (the text is read there again, never kept here), ``windows`` when only its windows are
    left to read (its start was read when it came), when it was queued, and how many times it was claimed after its
    holder let it go (:meth:`LateStore.late_claim`)."""

    conversation_id: str
    entry_id: str
    windows: bool
    queued_at: datetime
    claims: int = 0


class TimerKind(StrEnum):
    """What a timer does when it fires: ``gateway/timers.py`` has one handler per kind. The value is stored."""

    BOT_REMINDER = "bot_reminder"
    BOT_ABANDON = "bot_abandon"
    QUEUE_REASSURE = "queue_reassure"
    WEBCHAT_GONE = "webchat_gone"
    IDLE_CLOSE = "idle_close"


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer of one ``kind`` on one conversation."""

    conversation_id: str
    kind: TimerKind
    due_at: datetime

    @classmethod
    def read(cls, conversation_id: str, kind: str, due_at: datetime) -> Timer | None:
        """The stored timer, or None for a kind this version does not know (armed by a newer version during a
        rolling deploy): it is left in the store for an instance that knows it."""
        try:
            return cls(conversation_id, TimerKind(kind), due_at)
        except ValueError:
            return None


class ConversationStore(Protocol):
    async def active_conversation(self, channel: ChannelName, sender: str, now: datetime) -> tuple[Conversation, bool]:
        """The sender's active conversation on this channel, or a new one (saved); True when created.

        Atomic: two concurrent first messages of one sender yield one conversation.
        """
        ...

    async def find_active_conversation(self, channel: ChannelName, sender: str) -> Conversation | None:
        """The sender's active conversation on this channel, or None; never creates one (receipts)."""
        ...

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        """Write the whole record (insert or replace).

        With ``done``, the same commit marks that inbound message processed (:meth:`DedupeStore.claim` then
        answers ``DONE``): the conversation's state and the mark are never saved one without the other.
        """
        ...

    async def conversations_by_status(self, status: Status) -> list[Conversation]:
        """Conversations in this status, oldest first."""
        ...

    async def conversation_ids_by_status(self, status: Status) -> set[str]:
        """The ids of the conversations in this status, read from the store's index of statuses: no record read or
        decoded, its cost that of the ids. Every conversation in this status is there; on Redis one whose status
        just changed may be too (its index lists more, never less: a save joins the new status's set before the
        record and leaves the others after it). For a check that reads only the few records it must look at
        (``gateway/alerts.py``), each read again under its lock."""
        ...

    async def flagged_conversations(self, limit: int) -> list[Conversation]:
        """The open conversations (bot, queued, with a listener) with a risk flag, the most recently flagged first
        (``Conversation.flagged_at``), ``limit`` at most: read from the store's index of them, kept by
        :meth:`save_conversation` and erasure (a conversation leaves it when it ends or is erased), never from the
        open conversations: its cost is that of the ones it returns, however many are open. A store written before
        the index has it made once (SQLite: when the file is opened; Redis: at the first read)."""
        ...

    async def told_closed_waiting(self) -> int:
        """How many waiting conversations were told, in this wait, that the line is closed and where to turn
        (``codec.told_rank``; the supervision board's count): from the store's index of them, kept by
        :meth:`save_conversation` and erasure, no record read (Redis ``hg:{index}:told``, its mark made once from the
        waiting records of a store written before it; SQLite the ``told_us`` column, filled once when the file is
        opened). On Redis a crash between a record's save and the step after it may leave one more listed until
        that conversation's next save, as the status sets. Until 2026-12-07 the board read and decrypted every
        waiting record for it, on the event loop (``GET /api/supervision`` 81 ms at 2,000 waiting, 328 at 5,000)."""
        ...

    async def note_read_late(self, conversation_id: str, at: datetime) -> None:
        """An ended conversation in which a risk was read late, at ``at`` (``Dispatcher._late_after_end``): listed
        for the supervision board (:meth:`read_late`) until a supervisor marks it seen (:meth:`forget_read_late`),
        its erasure, ``READ_LATE_HOURS`` after ``at`` or ``READ_LATE_KEPT`` later ones; listed again, it moves to
        ``at``. A bounded list of ids and times (Redis ``hg:{index}:read-late``, SQLite ``read_late``)."""
        ...

    async def read_late(self, since: datetime, limit: int) -> list[Conversation]:
        """The conversations :meth:`note_read_late` listed at or after ``since`` and not seen since, the latest
        first, ``limit`` at most: the list's ids, their records read (an erased one is left out)."""
        ...

    async def forget_read_late(self, conversation_id: str) -> bool:
        """Take the conversation off :meth:`read_late`'s list (a supervisor saw it): whether it was listed."""
        ...

    async def list_conversations(self, since: datetime, until: datetime) -> list[Conversation]:
        """Conversations created in ``[since, until)``, oldest first (for statistics)."""
        ...

    async def ended_with(self, listener: str, since: datetime, until: datetime, limit: int) -> list[Conversation]:
        """The ended conversations whose record names ``listener`` (their history), created in ``[since, until)``, the
        latest ended first (``closed_at``, else ``updated_at``; then as :meth:`list_conversations` orders them),
        ``limit`` at most: read from the store's index of each listener's ended conversations, kept by
        :meth:`save_conversation` and erasure, never from every conversation. The index keeps :data:`INDEXED_DAYS`
        of endings (``since`` further back may miss some). A store written before it has it made once (SQLite: when
        the file is opened; Redis: at the first read), from the conversations created in the last
        :data:`INDEXED_DAYS` before its latest."""
        ...

    async def conversations_of(
        self, channel: ChannelName, sender: str, since: datetime, until: datetime, limit: int
    ) -> list[Conversation]:
        """The conversations of this channel identity (a purged one has none: nobody's), created in ``[since,
        until)``, the latest created first (as :meth:`list_conversations` orders them, reversed), ``limit`` at most:
        read from the store's index by the identity's keyed hash (``DataKeys.identity``), never the identity in a key
        name, kept as :meth:`ended_with`'s but never trimmed: every conversation still naming the person, however
        old (an erasure reads it alone; the purge strips the identity after ``closed_days``, maybe over 31 days). A
        store written before it has it made once at the first read (Redis: from every record)."""
        ...

    async def conversations_keyed(self, identity: str, limit: int) -> list[Conversation]:
        """The conversations still naming the channel identity whose keyed hash (``DataKeys.identity``) is
        ``identity``, the latest created first, ``limit`` at most: :meth:`conversations_of`'s index, for a caller
        that holds the hash alone (``gateway erase --again KEY``). Since 2026-12-07; before, that caller read and
        decoded every record the store kept."""
        ...

    async def keep_opening(self, digest: str, conversation_id: str, ttl_seconds: float = OPENING_KEPT_SECONDS) -> None:
        """Remember for ``ttl_seconds`` from now (again: from now) that the web chat opening key of this digest (a
        keyed hash, never the key) opened this conversation, in place of what it named before: a page that sends
        its first ``hello`` again with the same key, having never learnt its token, resumes the conversation
        (docs/webchat-protocol.md). Kept alone, expiring by itself; nothing else names it."""
        ...

    async def opening(self, digest: str) -> str | None:
        """The conversation the opening key of this digest opened (:meth:`keep_opening`), while kept; else None."""
        ...

    async def open_conversations_of_client(self, client: str) -> int:
        """How many conversations of this web chat client (``Conversation.client``, a keyed hash of its address)
        are in the bot or the queue (:data:`CLIENT_OPEN`): counted from an index kept by ``save_conversation``,
        never by loading every open conversation."""
        ...

    async def client_at_cap(self, client: str, cap: int) -> bool:
        """Whether at least ``cap`` of this client's conversations are open: :meth:`open_conversations_of_client`
        ``>= cap``, as cheaply as the store can answer it (the gate asks this for every new web chat and every held
        page's try). Redis: the client's set lists more, never fewer, so a set shorter than ``cap`` answers False
        alone (one ``SMEMBERS``); its records are read only when it lists ``cap`` or more. Since 2026-12-07; until then
        the gate counted every time (``SMEMBERS`` and one ``GET`` per listed id)."""
        ...


class TranscriptStore(Protocol):
    async def append_transcript(self, entry: TranscriptEntry) -> None:
        """Add an entry at the end of its conversation's transcript; an id already present is ignored."""
        ...

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The entries in the order they were appended."""
        ...

    async def entries_written(self, conversation_id: str, entry_ids: Sequence[str]) -> set[str]:
        """Which of ``entry_ids`` the conversation's transcript holds, no entry opened (whether an operation cut
        short wrote its message: ids derived from the operation, ``gateway/ids.py``). Redis: one script of the
        conversation's slot, the transcript's index or its list's heads; SQLite: the ids' unique index."""
        ...

    async def set_delivery(
        self, conversation_id: str, entry_id: str, delivery: Delivery, provider_message_id: str | None = None
    ) -> bool:
        """Record a delivery status (and the provider's id when given). False if the conversation has no such
        entry."""
        ...

    async def advance_delivery(self, conversation_id: str, entry_id: str, delivery: Delivery) -> bool:
        """A receipt's delivery status, recorded only when it goes further than the entry's (sent, delivered,
        read) or is a failure, in one step of the store: two receipts of one reply at once (a ``delivery`` and a
        ``read`` on two instances) never take it back from read to delivered. True when the entry changed."""
        ...

    async def advance_part(
        self, conversation_id: str, entry_id: str, provider_message_id: str, delivery: Delivery
    ) -> Delivery | None:
        """A receipt naming ``provider_message_id``, in one step of the store: for an entry of one part as
        :meth:`advance_delivery`; for a reply sent in parts (:func:`in_parts`), that part's status goes forward and
        the entry shows the worst part's (:func:`part_advanced`: failed if one part failed, read once every part is).
        What the entry shows when it changed, else None."""
        ...

    async def mark_until(self, conversation_id: str, until: datetime, delivery: Delivery) -> list[str]:
        """A watermark's receipt (Messenger's ``read``, or a ``delivery`` without message ids: every reply sent up to
        ``until``): every entry sent, or delivered when ``delivery`` is READ, whose time is ``until`` or earlier (the
        time the outbox got the provider's answer, for a send recorded with ``answered_at``: the provider may have
        accepted it after an earlier watermark; else the entry's own time) takes ``delivery`` (DELIVERED or READ only);
        the ids changed, in the transcript's order. An entry already as far never changes again (the same receipt twice
        changes nothing the second time); one still pending (not recorded sent yet: Meta may have accepted it, its
        record still on its way) is left as it is, and the watermark is kept on the conversation for
        ``RECEIPT_KEPT_SECONDS`` (the newest of each delivery, never moved back; erased with the conversation): the
        send's record shows it when the outbox got the provider's answer at or before it
        (:meth:`OutboxStore.outbox_mark_sent`'s ``answered_at``). Its cost is that of the entries awaiting the receipt,
        not of the transcript: only the replies put with an outbox item that awaits a read (``OutboxItem.awaits_read``:
        Messenger's) and not yet read or failed are read, and only those are marked."""
        ...

    async def flag_entry(self, conversation_id: str, entry_id: str, flag: RiskFlag) -> bool:
        """Keep a risk read after the fact (a late reading) on a young person's entry, like one read when it came:
        the entry's flag becomes ``flag`` unless it holds a stronger one (:meth:`RiskFlag.replaces`), so the
        same flag twice writes the same thing. Only that entry's content changes, in its conversation's place (on
        Redis its transcript's slot); nothing is created. False if the conversation has no such entry of a young
        person (a bot's, a listener's, an erased one)."""
        ...

    async def find_by_provider_id(self, provider_message_id: str) -> TranscriptEntry | None:
        """The entry a provider receipt talks about."""
        ...

    async def keep_receipt(
        self, provider_message_id: str, delivery: Delivery, ttl_seconds: float = RECEIPT_KEPT_SECONDS
    ) -> None:
        """Keep, for ``ttl_seconds``, a receipt whose provider id no entry holds yet: it may have come
        before the send it concerns was recorded (the id is recorded after the provider's API answered; a fast
        callback, or a store outage retried, lets the receipt win). :meth:`take_receipt` gives it when the send is
        recorded. Several receipts of one id are kept together (the furthest is the one applied)."""
        ...

    async def kept_receipt(self, provider_message_id: str) -> Delivery | None:
        """The furthest receipt kept for this provider id and not expired, left kept; None if none. Read just before
        the send's record, which applies it in its own step (``outbox_mark_sent(receipt=...)``): an instance dying
        after the record, or a store failure at the take, no longer loses it."""
        ...

    async def kept_receipts_waiting(self, kept_before: datetime, limit: int) -> list[str]:
        """The provider ids of up to ``limit`` receipts kept before ``kept_before`` (the wall clock), neither taken
        nor expired, the newest first (ids no send will ever hold, kept until they expire, never starve the newer
        ones): those whose send's record may have come without taking them (the outbox's
        instance died between its record and its take, or the take failed, with the receipt kept in the round trip
        between the outbox's read and its record). The outbox looks each up again (``Outbox``'s sweep)."""
        ...

    async def take_receipt(self, provider_message_id: str) -> Delivery | None:
        """The furthest receipt kept for this provider id (:func:`furthest`) and not expired, removed; None if
        none. Called once the send is recorded: a receipt kept writes then looks for the record, a record
        writes then looks for a kept receipt, so whichever comes second sees the other (one kept after
        :meth:`kept_receipt` was read; the rest was applied with the record already)."""
        ...


class DedupeStore(Protocol):
    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, now: datetime | None = None,
        sender: tuple[ChannelName, str] | None = None, kept_seconds: int | None = None, take_over: bool = False,
    ) -> ClaimState:  # fmt: skip
        """Claim the inbound message ``key`` for ``owner`` for ``lease_seconds`` from ``now`` (default: the clock).

        ``CLAIMED`` when the key is free, its lease lapsed (the owner died), or ``owner`` holds it already (the
        lease is then renewed: call again while processing); ``BUSY`` while another owner's lease runs; ``DONE``
        once it was saved as processed. Atomic across concurrent callers and, with Redis, across instances.

        ``sender``: whose active conversation this task looks up next (``active_conversation``, ``locked_active``);
        Redis reads the sender's address in the same round trip, SQLite the id of their active conversation in the
        same hop to its thread. Changes nothing else.

        ``kept_seconds``: how long a processed mark of ``key`` is kept, the ``DoneMark.ttl_seconds`` every save of
        such a key gives (the dispatcher's ``DEDUPE_TTL_SECONDS`` for an inbound message). Redis then looks for the
        mark only on the days one can expire on (from today to the day ``kept_seconds`` from now, one more for the
        instances' clocks: 10 days for 8 days kept, not the 33 of the longest-kept mark); None: every day a mark
        may be kept (``redis_keys.SEEN_DAYS``). SQLite reads the one row either way.

        ``take_over``: only for a caller holding the lock under which every claim of ``key`` is made, and saved done
        or released (a console's reply key, ``Actions._claim_reply``, under its conversation's): another owner's claim
        still within its lease then has no owner alive and writing (its instance died: Redis's lock lapsed, SQLite's
        file lock went with the process; or its lock lapsed while it stalled, its writes refused by the lock's fence),
        so it is settled as a lapsed one: DONE when it was saved, else ``CLAIMED`` by the caller, never ``BUSY`` for
        the rest of a dead owner's lease. Since 2026-12-07 (until then a console's retry of a reply whose instance
        died mid-send was refused ``409 sending`` for up to ``CLAIM_SECONDS``).
        """
        ...

    async def release(self, key: str, owner: str) -> None:
        """Give up ``owner``'s claim (its processing failed): the provider's retry gets through at once.

        Harmless when the key is not (or no longer) held by ``owner``.
        """
        ...


class Anyone(Enum):
    """:meth:`QueueStore.enqueue`'s and :meth:`QueueStore.requeue`'s ``holder`` unchecked (:data:`ANYONE`): the entry
    replaced, or handed back, whoever holds it. Since 2026-12-08 ``requeue`` says it so too: until then its unchecked
    ``holder`` was None, which ``enqueue`` reads as "nobody may hold it"."""

    ANYONE = "anyone"


ANYONE: Final = Anyone.ANYONE


def checked_holder(holder: str | Anyone) -> str | None:
    """:meth:`QueueStore.requeue`'s ``holder`` as a store checks it: the listener's name, or None for :data:`ANYONE`
    (unchecked). Anything else (None, an empty name: what meant unchecked until 2026-12-08) is refused, ValueError."""
    if holder is ANYONE:
        return None
    if not isinstance(holder, str) or not holder:
        raise ValueError("requeue's holder is a listener's name, or ANYONE (unchecked)")
    return holder


class QueueStore(Protocol):
    async def enqueue(
        self, conversation_id: str, queue: str, priority: Priority, at: datetime, *, flag: RiskFlag | None = None,
        unless_leaving: bool = False, holder: str | Anyone | None = ANYONE,
    ) -> None:  # fmt: skip
        """Put a conversation in a queue as waiting (replacing any entry it had, e.g. a new priority), with the
        risk ``flag`` its priority was raised for in the same write (one script, one statement): a reader of
        :meth:`waiting` never finds the priority without its flag, whatever the conversation's record says yet.
        The flag is kept without its ``words`` (an entry is not sealed); taking and handing back keep it.
        ``unless_leaving`` (a transfer): Conflict, nothing changed, when the conversation's ending is listed as begun
        (:meth:`begin_leaving`; Redis reads it in the same script; in a batch, raised when the batch is sent).
        ``holder`` (since 2026-12-08; :data:`ANYONE`: unchecked): the listener expected to hold the entry replaced
        (None: none, the conversation waiting or without an entry; a transfer's, the record's, read under its lock;
        the alert check's, the holder it read): an entry another listener holds is left to them, Conflict, nothing
        changed. Until then a Redis transfer's step landing after its lock lapsed (an instance stalled) replaced the
        next holder's entry by a waiting one (``tests/console/test_transfer_late_enqueue.py``)."""
        ...

    async def waiting(self, queue: str | None = None) -> list[QueueEntry]:
        """Waiting (not taken) entries, urgent before high before normal, then by arrival."""
        ...

    async def waiting_page(self, limit: int) -> WaitingPage:
        """The first ``limit`` waiting entries in :meth:`waiting`'s order, how many wait in all and how many of them
        are urgent, the ``limit`` earliest arrivals and the latest arrival: read from the queues' order, the entries
        of those only, whatever the number waiting (Redis: each queue's sorted set, ``ZRANGE``/``ZLEXCOUNT`` per
        priority in one pipeline, then one ``HMGET``; SQLite: the queue's index, ``LIMIT``, and the waiting counts
        its triggers keep). An entry whose id the order lists without its entry (a crash between two writes) is
        left out of the lists, and counted. Since 2026-12-07: until then the console and the board read every entry
        (:meth:`waiting`) at each reload."""
        ...

    async def waiting_ids(self) -> set[str]:
        """The ids of the conversations with an entry waiting (not taken) in any queue, read from the queues' order
        without reading the entries."""
        ...

    async def holders(self) -> dict[str, str | None]:
        """The conversations whose record says held (``WITH_LISTENER``), each with the listener its queue entry is
        taken by (None: its entry waits, or it has none), without reading their records: the alert check's view
        every 10 s (``gateway/alerts.py``), whatever the number held. A take makes its queue step (``taken_by``)
        before the record; a hand-back or a close changes the record first, or the entry first when cut short, which
        the check completes. Redis: the status's set, which may list more (an id whose record left the status: a
        crash before the set was left), and one ``HMGET`` of the queue's entries; SQLite: one query on the status's
        index. Whoever acts on an id checks its record under the lock."""
        ...

    async def held_index(self) -> HeldIndex:
        """How many each listener holds, from an index kept by the queue's steps (take, hand-back, transfer, close),
        no entry or record read, and the number of held records (``WITH_LISTENER``) compared with their sum: equal,
        that is all (``whole`` None); not, :meth:`holders` is read too (``whole``). Redis: one ``ZRANGE`` of
        ``{queue}:holding`` (listener, count), one ``SCARD`` of the status's set; SQLite: two counts on the queue's
        and the status's indexes. A store written before the index has it made once, from the entries. Until
        2026-12-07 the console read :meth:`holders` (every held entry decoded) at each reload."""
        ...

    async def held_ids(self, listeners: Sequence[str]) -> dict[str, list[str]]:
        """The ids of the queue entries each of ``listeners`` has taken, sorted (a listener holding none: absent);
        their records unread (one may have ended: a crash between the record and its entry). Redis: one
        ``SMEMBERS`` of ``held:<listener>`` each, in one pipeline; SQLite: one query on the index of the holder."""
        ...

    async def position(self, conversation_id: str) -> int | None:
        """1-based rank among the waiting entries of its queue; None when not waiting."""
        ...

    async def take(self, conversation_id: str, listener: str, at: datetime) -> QueueEntry:
        """Claim a waiting conversation for ``listener`` at ``at``; Conflict if it is not waiting (any more).

        Only the queue entry is claimed: the caller then records the listener on the conversation. The take is
        counted for :meth:`takes_since` (a conversation taken again counts once, at its last take).
        """
        ...

    async def queue_entry(self, conversation_id: str) -> QueueEntry | None:
        """Its entry, waiting or taken (``taken_by``: by whom); None when it has none. What a repair reads of a move
        cut short (``Actions.back_in_line``: who had taken a young person whose record still says queued)."""
        ...

    async def list_waiting(self, conversation_id: str) -> bool:
        """Its entry waiting (not taken): listed where every reader of the line looks, at its place, in one step;
        whether anything was missing. Redis: its member in its queue's order (``waiting:<queue>``) and its queue among
        the queues' names (``names``), either lost with its key (evicted by a Redis not under ``noeviction``, deleted,
        written over by a migration), which left it waiting unseen by any listener: :meth:`waiting_ids` and
        :meth:`waiting_page` read only those. SQLite reads its rows themselves: nothing to list, False. The alert
        check's repair (``Actions.back_in_line``, since 2026-12-08)."""
        ...

    async def takes_since(self, queue: str, since: datetime) -> int:
        """Conversations of ``queue`` last taken at or after ``since`` (up to a day back): the pace listeners
        keep, read from an index kept by :meth:`take`, never from the conversations."""
        ...

    async def held_by(self, listener: str) -> int:
        """Conversations ``listener`` holds now (taken and not handed back, transferred or finished)."""
        ...

    async def requeue(
        self, conversation_id: str, *, unless_leaving: bool = False, holder: str | Anyone = ANYONE
    ) -> QueueEntry:
        """A listener hands the conversation back: waiting again, at its original arrival time.

        Conflict if it has no queue entry, or (``unless_leaving``: a hand-back begun now, not one completed) when its
        ending is listed as begun (:meth:`begin_leaving`; Redis reads it in the same script), or (``holder``: the
        listener it is handed back from; :data:`ANYONE`: whoever holds it) when another listener holds the entry,
        nothing changed (since 2026-12-08: a Redis hand-back's step landing after its lock lapsed un-took the next
        holder's). An entry waiting passes whatever ``holder``. Since 2026-12-08 the unchecked ``holder`` is
        :data:`ANYONE`, as :meth:`enqueue`'s, and None is refused (the type; ValueError, as an empty name): until then
        None meant unchecked here and "nobody may hold it" for :meth:`enqueue`.
        """
        ...

    async def remove_from_queue(self, conversation_id: str) -> bool:
        """Drop the entry, waiting or taken (abandon, close). False if there was none."""
        ...

    async def begin_move(self, conversation_id: str, mover: str) -> None:
        """A transfer by ``mover`` (the holder, a supervisor, or anyone moving a waiting conversation) to another queue
        (or to the back of its own), or an automatic hand-back (mover ``gateway``: ``Actions.hand_back_absent``) begins:
        listed with its mover (:meth:`moves_begun`) until :meth:`end_move`, which the transfer writes after its record.
        Redis makes a transfer in steps, the queue step (slot ``{queue}``) before the record: one cut in between leaves
        the entry waiting in the new queue beside a record that names the old one (a waiting conversation's: no
        comparison of ids finds it, both say waiting) or says held (a held one's), and whose mover only the unwritten
        record's audit line would have named; the alert check finds it in this list (``Actions.complete_move``,
        ``Actions.complete_hand_back``) and names the mover. In a batch: held, sent with the queue step. SQLite writes a
        transfer in one transaction: nothing to list, nothing written."""
        ...

    async def moves_begun(self) -> dict[str, str | None]:
        """The conversations whose transfer began (:meth:`begin_move`) and was not seen ended, each with its mover
        (None: unknown, listed by an instance of before 2026-12-03 on Redis, whose list was a set of ids): Redis, one
        ``HGETALL`` (empty but for a transfer under way or cut short); SQLite, none."""
        ...

    async def end_move(self, conversation_id: str) -> None:
        """The transfer's record is written (or a cut one completed): no longer listed. In a batch: held."""
        ...

    async def begin_close(self, conversation_id: str, closer: str) -> None:
        """A held conversation's close by ``closer`` (its holder, or a supervisor) begins: listed with its closer
        (:meth:`closes_begun`) until :meth:`end_close`, which the close writes after its record. Redis writes a held
        conversation's goodbye before its record: one cut in between leaves a record that says held beside a goodbye
        told, which only a look at each held conversation's transcript would find, and whose closer only that record,
        unwritten, would have named; the alert check finds it in this list (``Actions.complete_close``), at a cost that
        does not grow with the conversations held. In a batch: held, sent before the goodbye in the close's own round
        trip. SQLite writes a close in one transaction: nothing to list, nothing written."""
        ...

    async def closes_begun(self) -> dict[str, str]:
        """The conversations whose close began (:meth:`begin_close`) and was not seen ended, each with its closer:
        Redis, one ``HGETALL`` (empty but for a close under way or cut short); SQLite, none."""
        ...

    async def end_close(self, conversation_id: str) -> None:
        """The close's record is written (or a cut one completed, or found not told goodbye): no longer listed. In a
        batch: held."""
        ...

    async def begin_take(self, conversation_id: str, listener: str) -> None:
        """A take by ``listener`` begins: listed with its taker (:meth:`takes_begun`) until :meth:`end_take`, which the
        take writes after its record. Redis makes a take's queue step alone, then writes the young person's "listener
        joined" message and lists it to be sent before the record: one cut between the message and its listing,
        then the conversation ended (closed, idle-closed, abandoned) before the check that completes a take
        (``Actions.back_in_line`` reads queued records only), leaves a message written, never listed, that no look at
        the queue finds; the alert check finds it in this list (``Actions.complete_take``). In a batch: held, sent
        first in the take's pipeline, after its queue step, before the message. SQLite writes a take in one
        transaction: nothing to list, nothing written."""
        ...

    async def takes_begun(self) -> dict[str, str]:
        """The conversations whose take began (:meth:`begin_take`) and was not seen ended, each with its taker: Redis,
        one ``HGETALL`` (empty but for a take under way or cut short); SQLite, none."""
        ...

    async def end_take(self, conversation_id: str) -> None:
        """The take's record is written (or a cut one settled): no longer listed. In a batch: held."""
        ...

    async def begin_leaving(self, conversation_id: str, how: str) -> None:
        """An ending of a conversation with the bot or in the queue begins (``how``: the young person's quick exit,
        "Terminer", or the idle timer's close, ``gateway/leaving.py``; the last two also with a listener, whose record
        a cut before it leaves held after the goodbye): listed (:meth:`leavings_begun`) until
        :meth:`end_leaving`, which the ending writes after its record. Redis makes such an ending in steps: its
        first writes (the note for the listeners, a goodbye), the queue step alone (another slot), the record. One
        cut before the queue step leaves the entry waiting beside a record that says queued, which no comparison of
        ids finds, while the young person left or was told goodbye; the alert check finds it in this list
        (``Actions.complete_leaving``) and completes it as that ending, never back in line. Until then a take of the
        conversation is refused (Redis: the take's script looks at this list, no round trip more). In a batch: held,
        first in the ending's pipeline, before anything it writes. SQLite writes such an ending in one transaction:
        nothing to list, nothing written."""
        ...

    async def leavings_begun(self) -> dict[str, str]:
        """The conversations whose ending began (:meth:`begin_leaving`) and was not seen ended, each with how: Redis,
        one ``HGETALL`` (empty but for an ending under way or cut short); SQLite, none."""
        ...

    async def end_leaving(self, conversation_id: str) -> None:
        """The ending's record is written (or a cut one completed): no longer listed. In a batch: held."""
        ...

    async def begin_erasure(self, conversation_id: str, key: str) -> None:
        """The young person confirmed their erasure in this conversation with the message of ``key`` (its
        de-duplication key, kept through the erasure so that a redelivery is still a duplicate): listed
        (:meth:`erasures_begun`) until :meth:`end_erasure`, which the erasure writes once done and the young person
        told. Written in the confirming message's batch, before its record and processed mark (SQLite: the same
        transaction; Redis: the step before), so a confirmation marked processed is always listed: an erasure cut
        short (the instance killed midway) is finished by the alert check (``Eraser.complete``), whose redelivery
        of the message, a duplicate, would finish nothing. A supervisor's or the CLI's is listed the same way (key
        ``erasure.asked_by``). One already listed is merged with, never replaced (:func:`erasure_listed`: a young
        person's confirmation and a supervisor's kept both; until 2026-12-07 the second replaced the first, the
        supervisor's name or the young person's goodbye lost when the two raced). In a batch: held."""
        ...

    async def erasures_begun(self) -> dict[str, str]:
        """The conversations whose erasure was confirmed (:meth:`begin_erasure`) and not seen done, each with the
        confirming message's key: Redis, one ``HGETALL``; SQLite, one small table (both empty but for an erasure
        under way or cut short)."""
        ...

    async def end_erasure(self, conversation_id: str) -> None:
        """The erasure is done and the young person told: no longer listed. In a batch: held."""
        ...

    async def ending_begun(self, conversation_id: str) -> str | None:
        """How the conversation's ending is listed as begun (:meth:`begin_leaving`), or None. Under the lock of a
        message's processing (``locked_active`` with a claim) Redis answers what the lock's script read with the
        record (the ending's how is also kept in the conversation's slot): no round trip; else one ``GET``. SQLite:
        None (nothing is listed)."""
        ...


class ListenerStore(Protocol):
    async def add_listener(self, listener: Listener) -> None:
        """Create an account; Conflict if the name exists."""
        ...

    async def get_listener(self, name: str) -> Listener | None: ...

    async def list_listeners(self) -> list[Listener]:
        """All accounts, by name."""
        ...

    async def update_listener(self, listener: Listener, *, audit: AuditEntry | None = None) -> bool:
        """Replace an account (same name); False if there is none. ``audit``: the change's audit line, written with
        the account and only if it was there: in its transaction (SQLite), in its script (one Redis node); a
        Cluster, whose listeners and audit log are two slots, writes it right after, a step of its own. Until
        2026-12-07 a password change wrote its line apart, after: a store failure between the two left the change
        with no line (``tests/console/test_sessions_account.py``)."""
        ...

    async def remove_listener(self, name: str) -> bool: ...


class SessionStore(Protocol):
    async def put_session(self, session: ConsoleSession, now: datetime) -> None:
        """Record a new console session (sessions expired at ``now`` may be purged meanwhile)."""
        ...

    async def get_session(self, key: str, now: datetime) -> ConsoleSession | None:
        """The session, or None when it was ended or has expired."""
        ...

    async def end_session(self, key: str) -> bool:
        """End one session (logout); False if there was none."""
        ...

    async def end_sessions(self, name: str) -> int:
        """End every session of the listener ``name`` (log out everywhere); how many there were."""
        ...

    async def live_sessions(self, name: str, now: datetime) -> list[ConsoleSession]:
        """The sessions of the listener ``name`` live at ``now`` (neither ended nor expired), with the account each
        was opened on (``ConsoleSession.account``): the console counts those that serve the account of now. Until
        2026-12-07 ``sessions_of`` counted them all, stale ones included; once the console read this instead, it was
        removed (nothing else read it)."""
        ...


class OutboxStore(Protocol):
    takes_kept_receipts: bool
    """True when :meth:`outbox_mark_sent` reads, applies and takes the receipt kept for a send with a provider id in
    its own step, and answers the delivery the entry shows (Redis on one node); False when the caller reads the kept
    receipt before the record and takes it after (SQLite, Redis Cluster)."""

    async def outbox_put(self, item: OutboxItem) -> None:
        """Add a pending item after the conversation's others; an id already present is ignored. An item due before
        it was written (a risky turn's reply, ``Dispatcher.emit``) takes its conversation's earlier items that wait
        (due, not leased nor backing off) ahead with it: the conversation's line is handed out before the ordinary
        ones, still in order."""
        ...

    async def outbox_due(
        self,
        now: datetime,
        limit: int,
        *,
        lease_seconds: int = 60,
        run: int = 1,
        claim: str | None = None,
        answered: str | None = None,
    ) -> list[OutboxItem]:
        """Claim items to deliver now for up to ``limit`` conversations: each conversation's oldest pending item,
        then the conversation's next pending items in order as long as each is due, ``run`` items at most (a
        *run*: the caller sends them one after the other, with no claim between).

        Due means ``next_attempt_at <= now``; a conversation's items are consecutive in the list, in order, the
        conversations earliest first, and each item is returned with ``next_attempt_at`` set to the end of its
        lease (the same for all items of one call).
        A claimed item is not due again for ``lease_seconds`` unless it is rescheduled: a worker that dies
        mid-send lets another retry it later; two workers never get it at once.

        The lease's end is also the claim's *fencing token*: the holder renews it (:meth:`outbox_renew`) and
        passes it as ``lease`` to resolve the item; after another claim (the lease lapsed) those calls are
        refused, so a holder that lost its lease never changes what the new holder does.

        ``claim``: a token the caller chose before the call (unique to it). A call made again with the same token,
        ``now`` and ``lease_seconds`` (the first one's answer lost: a connection dropped after Redis ran it) hands out
        what the first one claimed, still leased to it (and anything due since in those conversations' runs),
        instead of leaving it held for the lease by a claim nobody knows of.
        ``answered``: the token of the caller's previous claim, whose answer arrived: it is never made again, and
        what the store kept under it is dropped now rather than at its lease's end.
        """
        ...

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        """Extend a claim held until ``lease`` to ``until`` (a send still in flight). False when the item is no
        longer pending or was claimed again since (the caller lost its lease)."""
        ...

    async def outbox_get(self, conversation_id: str, item_id: str) -> OutboxItem | None:
        """The item of the conversation, pending or resolved (every call below names the item by its conversation
        and its id: on Redis the item lives in its conversation's slot); a sent item's ``payload`` may be empty (the
        transcript keeps the text) and resolved items are forgotten after a while (Redis: sent at once when a
        transcript entry of the same id records it, else an hour, failed 7 days; SQLite: 7 days).
        :meth:`outbox_put` still ignores their ids."""
        ...

    async def outbox_mark_sent(
        self,
        conversation_id: str,
        item_id: str,
        provider_message_id: str | None,
        *,
        lease: datetime | None = None,
        next_lease: datetime | None = None,
        receipt: Delivery | None = None,
        answered_at: datetime | None = None,
    ) -> bool | Delivery:
        """Delivered to the provider: the conversation's next item becomes due. False if not pending, or if
        ``lease`` is given and the item's claim is no longer that one (see :meth:`outbox_due`); likewise below.
        True, changing nothing, when this send was recorded already under ``lease`` (a retry of a call whose
        answer was lost after the store made it: the item is sent, the line goes on; with or without a provider
        id: on Redis a sent item whose send gave none keeps its hash, and its lease's end, until it expires).

        In the same commit, the transcript entry of the same id (if any) shows ``sent`` and the provider's id: a
        crash never leaves a message sent but shown pending. ``receipt``: a receipt kept for this provider id
        (:meth:`TranscriptStore.kept_receipt`), shown on the entry in that same commit when it goes further than
        ``sent`` (:func:`sent_shown`). A store whose ``takes_kept_receipts`` is true (Redis on one node) reads the
        receipt kept for a send with a provider id itself, in the record's own step, applies it, takes it and writes
        the id where a receipt's keeper looks it up, all in that step (``receipt`` is then not read): its answer is
        then the delivery the entry shows (sent or further) instead of True, and nothing is read before the record
        nor after it.

        ``answered_at``: when the outbox got the provider's answer to this send. A watermark kept for the
        conversation (:meth:`TranscriptStore.mark_until` met the reply pending) at or after it is shown on a reply
        awaiting a read receipt in the same commit, forward only (the provider accepted the reply before it answered,
        so such a watermark certainly covers it; one before the answer may not, and is not applied); the answer is
        then the delivery shown. Such a reply then awaits its read receipt from ``answered_at`` (a later
        watermark marks it only from then on, for the same reason). None: not known, no watermark applied, the
        entry's own time kept.

        ``next_lease``: the caller holds the conversation's next item too (the rest of its run), under a lease
        ending then; the store may take it as when that item is due (Redis times its line's head with it instead
        of leaving a claim to find the item leased; SQLite reads the item's own time). Likewise below.
        """
        ...

    async def outbox_reschedule(
        self,
        conversation_id: str,
        item_id: str,
        next_attempt_at: datetime,
        attempts: int,
        last_error: str,
        parts_sent: int = 0,
        *,
        lease: datetime | None = None,
    ) -> bool:
        """Failed for now: try again at ``next_attempt_at`` (the conversation's next items wait). False as
        :meth:`outbox_mark_sent`; True, changing nothing, when the item is rescheduled so already (pending, due at
        ``next_attempt_at`` after ``attempts``) although no longer under ``lease``: a retry of this very call whose
        answer was lost after the store made it (the outbox gives a run's items back so too, due now).

        ``parts_sent`` records how far a split message got; it never goes back (the larger value is kept).
        """
        ...

    async def outbox_mark_failed(
        self,
        conversation_id: str,
        item_id: str,
        reason: str,
        *,
        lease: datetime | None = None,
        next_lease: datetime | None = None,
    ) -> bool:
        """Given up: the conversation's next item becomes due; its transcript entry shows ``failed`` (same
        commit). False if not pending; True, changing nothing, when it was recorded failed already under ``lease``
        (a retry of a call whose answer was lost), as :meth:`outbox_mark_sent`."""
        ...

    async def outbox_oldest_pending(self) -> datetime | None:
        """When the oldest item still pending was put (None when nothing waits): for the outbox delay alert."""
        ...

    async def outbox_withdraw(self, conversation_id: str, item_ids: Sequence[str], reason: str) -> list[str]:
        """Of ``item_ids``, each item still pending and listed in no line to be sent (written by an operation cut
        before its listing, on Redis: the line is another slot than the item) given up as :meth:`outbox_mark_failed`
        does, with ``reason``, its entry shown failed: which were. An item listed is the outbox's, left as it is (it
        may be in a provider's hands). For a conversation that ended before the operation was made whole, so that
        nothing will list it any more (``Actions.complete_move``); the caller holds the conversation's lock, under
        which only a put lists an item. SQLite lists every item in its put's transaction: none, nothing changed."""
        ...


class InboxStore(Protocol):
    async def inbox_put(self, items: Sequence[InboxItem]) -> None:
        """Add the items in one commit, each after its sender's others; an id already present is ignored. An item
        due before it was received (a risky message, ``Inbox.accept``) takes its sender's earlier items that wait
        (due, not leased nor backing off) ahead with it: they become due at its time, so the sender's line is
        handed out before the ordinary senders' and still in order."""
        ...

    async def inbox_waiting(self, sender_key: str) -> bool:
        """Whether this sender has items in the inbox (a newer message must then queue behind them)."""
        ...

    async def inbox_due(self, now: datetime, limit: int, *, lease_seconds: int = 30) -> list[InboxItem]:
        """Claim up to ``limit`` items to process now, each the oldest of its sender, for ``lease_seconds``
        (a worker that dies lets another take them then), like :meth:`OutboxStore.outbox_due`."""
        ...

    async def inbox_done(self, item_id: str) -> bool:
        """Processed (or set aside): removed; the sender's next item becomes due. False if absent."""
        ...

    async def inbox_retry(
        self, item_id: str, next_attempt_at: datetime, attempts: int, *, lease: datetime | None = None
    ) -> bool:
        """Not processed for now: due again at ``next_attempt_at`` (the sender's next items wait). ``lease``: the
        item's ``next_attempt_at`` as :meth:`inbox_due` handed it out (the end of its lease, the holder's token):
        changed only while it still holds (False otherwise: the lease lapsed and another worker may hold the item
        now), so a retry recorded late (the store was away) never shortens somebody else's lease."""
        ...

    async def inbox_set_aside(self, item_id: str, at: datetime) -> bool:
        """An item that keeps failing: out of its sender's line (the next item becomes due) but kept, for an
        operator to look at (never silently dropped). False if absent."""
        ...

    async def inbox_set_aside_count(self) -> int:
        """How many inbox items are set aside (for the alert and ``/readyz``)."""
        ...


class TimerStore(Protocol):
    async def set_timer(self, conversation_id: str, kind: TimerKind, due_at: datetime) -> None:
        """Arm (or re-arm, replacing) the conversation's timer of this kind."""
        ...

    async def cancel_timers(self, conversation_id: str, kind: TimerKind | None = None) -> None:
        """Disarm one kind, or every timer of the conversation when ``kind`` is None."""
        ...

    async def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]:
        """Timers with ``due_at <= now``, earliest first, of the kinds this version knows. Reading does not remove
        them."""
        ...

    async def timer_postpone(self, timer: Timer, until: datetime) -> bool:
        """Move a timer still armed as read (not re-armed, handled or cancelled since) to ``until``: the lease of
        its handling, so that a handling that fails or dies leaves it armed for a retry. True for exactly one
        caller; call it under the conversation's lock, then :meth:`timer_done` with the moved timer."""
        ...

    async def timer_done(self, timer: Timer) -> bool:
        """Remove a handled timer if it is still armed as read (not re-armed since).

        True for exactly one caller: call it under the conversation's lock and act only when True.
        """
        ...


class LateStore(Protocol):
    """Messages waiting for their late reading, each held by one gateway process at a time (a lease it renews)."""

    async def late_put(self, pending: PendingLate, owner: str, until: datetime) -> None:
        """Record a message waiting for its late reading, held by ``owner`` (a process's token) until ``until``;
        one already recorded is left as it is. A write held inside ``batch`` (with the message's own writes)."""
        ...

    async def late_hold(self, owner: str, held: Sequence[tuple[str, str]], until: datetime) -> set[tuple[str, str]]:
        """Renew ``owner``'s hold on these records, (conversation id, entry id), to ``until``: those it still held
        (the others were done, erased, or claimed by another process after their hold lapsed)."""
        ...

    async def late_claim(self, owner: str, now: datetime, until: datetime, limit: int) -> list[PendingLate]:
        """Claim up to ``limit`` records whose hold lapsed at ``now`` (their holder died, or never kept them in
        memory), the longest lapsed first: held by ``owner`` until ``until``, each claim counted. Exclusive: of
        several processes claiming at once, one gets each record."""
        ...

    async def late_done(self, conversation_id: str, entry_id: str) -> None:
        """Forget the record: its reading was applied (flagged or not), or given up."""
        ...

    async def late_waiting(self) -> int:
        """How many records wait (held or not)."""
        ...


class BlockStore(Protocol):
    async def put_block(self, block: Block) -> None:
        """Add a block, or replace the block with the same key."""
        ...

    async def get_block(self, key: str, now: datetime) -> Block | None:
        """The block on ``key`` if it is still in force at ``now``."""
        ...

    async def list_blocks(self, now: datetime) -> list[Block]:
        """Blocks in force at ``now``, newest first."""
        ...

    async def remove_block(self, key: str) -> bool:
        """Lift a block; False if there was none."""
        ...


@dataclass(frozen=True, slots=True)
class Counter:
    """A rate limit's fixed-window counter kept in the store's Redis (``RateLimits.counter``): its key, as the
    ``limits`` library names it (the library's own hits share it), and its window in seconds. ``once``: one
    message's mark on it (a keyed hash of the message's de-duplication key: ``RateLimits.counter``), a field of the
    window's marks (:attr:`marks`), which keeps the count that message's first hit brought: every later hit of the
    same message (a provider's redelivery, a retry after a 503) changes nothing and answers that count again, so a
    message is counted once and decided as it was the first time; None: every hit counts. ``allowed``: the limit's
    amount: a hit past it leaves no mark (a refused message's next attempt is past it too), so one sender's marks
    are bounded by the limit, not by a flood's size."""

    key: str
    window_seconds: int
    once: str | None = None
    allowed: int = 0

    @property
    def marks(self) -> str:
        """The window's marks: one hash (field: a message's ``once``, value: its count), hash-tagged by the
        counter's key (one slot on a Cluster), ending with the window. Until 2026-12-06 one key per message:
        1.36 KB per handed-off conversation in ``bench/load.py --bytes`` (6.8 keys of 200 B), now one hash."""
        return "{" + self.key + "}:once"


@runtime_checkable
class CountingBlockStore(Protocol):
    """A store whose Redis also keeps the rate limits' counters: the gate's two reads in one round trip."""

    async def get_block_and_hit(self, key: str, now: datetime, counter: Counter) -> tuple[Block | None, int]:
        """:meth:`BlockStore.get_block`, and ``counter`` hit once (as ``limits`` hits it: the window starts with
        its first hit): the block, and the count now. Redis: one pipeline (the blocks' slot, then the counter's),
        which also reads whether ``key`` (a sender's keyed hash, as the inbox knows it too) has messages waiting
        in the inbox, for this task's next ``inbox_waiting(key)`` (the webhook's next step)."""
        ...

    async def hit(self, counter: Counter) -> int:
        """``counter`` hit once (as :meth:`get_block_and_hit` hits it, its ``once`` mark too): the count now."""
        ...

    async def once_marked(self, counter: Counter) -> bool:
        """Whether ``counter``'s window holds its ``once``'s mark (that message was let on under it), without a
        hit."""
        ...


ASKED_BY = "asked-by:"  # begins an erasure listed for a supervisor or the CLI (``erasure.asked_by``), not a message's
# Begins the id of an erasure listed for a person with no conversation left (``erasure.PERSON``, the keyed identity
# after it; since 2026-12-07): not a conversation's id.
PERSON_LISTED = "person-"
# The second part of a person's listing (``PERSON_LISTED``): their channel identity sealed as records are (kind
# ``LISTED_IDENTITY_KIND``), in base64 after this (``erasure.IDENTITY``, ``Eraser.erase_identity``). Resealed with the
# records by ``gateway data-key rotate`` (:func:`reseal_listing`) since 2026-12-07; before, a listing still there when
# the old key was forgotten never opened again (the erasure stuck, ``DataKeyError`` at every alert check).
LISTED_IDENTITY = "sealed-identity:"
LISTED_IDENTITY_KIND = "erasure-identity"
# In :meth:`SealStore.reseal`'s counts: records found under an older key, rewritten meanwhile before the pass
# could replace them (a compare-and-set lost), and so perhaps still under that key (since 2026-12-07).
RESEAL_CHANGED = "changed meanwhile"
ASKERS_MOST = 5  # the actors one listing names at most (the first asker, those who asked too: :func:`erasure_listed`)


def erasure_listed(listed: str | None, key: str) -> str:
    """What :meth:`QueueStore.begin_erasure` leaves listed when ``key`` comes on ``listed`` (None: nothing yet): a
    supervisor's or the CLI's (:data:`ASKED_BY`) and a young person's confirmation (their message's key) are kept
    both, the asker's first, then a newline and the message's key (a newline never occurs in the asker's JSON:
    ``json.dumps`` escapes it); an asker over an asker keeps the first, the second's actor added to it
    (:func:`erasure_askers`: at most :data:`ASKERS_MOST` names); a message's key replaces another's. Each part of
    ``key`` is merged so, whether ``key`` holds one part or both (an erasure taking over another's listing). Until
    2026-12-07 the second listing replaced the first, whatever each was; and, until the same day's later fix, a
    listing holding both parts merged onto an asker's alone was dropped (the young person's confirmation lost), onto
    a message's alone made three parts, and an asker over an asker kept the first only (the second named in the
    audit line from the erasure's memory: lost when it was cut before its line). The Redis script
    ``erasure_listed`` does the same inside Redis."""
    if listed is None:
        return key
    asked, confirmed = _listing_parts(listed)
    new_asked, new_confirmed = _listing_parts(key)
    asker = asked or new_asked if asked is None or new_asked is None else _askers_merged(asked, new_asked)
    return "\n".join(part for part in (asker, new_confirmed or confirmed) if part)


def _listing_parts(listed: str) -> tuple[str | None, str | None]:
    """A listing's asker line (:data:`ASKED_BY`) and its young person's confirmation (a message's key), each or
    None."""
    if not listed.startswith(ASKED_BY):
        return None, listed or None
    asker, _, confirmed = listed.partition("\n")
    return asker, confirmed or None


def reseal_listing(keys: DataKeys, listed: str) -> str | None:
    """An erasure listing (``QueueStore.erasures_begun``'s value) with the identity it keeps sealed
    (``LISTED_IDENTITY``) sealed again with the current data key; None when it keeps none, or is sealed so already.
    ``DataKeyError`` when it does not open with these keys, as for any record (the rotation stops, naming the key);
    one whose base64 is malformed is left as it is (the alert check says it does not open)."""
    asker, _, sealed = listed.partition("\n")
    if not sealed.startswith(LISTED_IDENTITY):
        return None
    try:
        raw = base64.b64decode(sealed.removeprefix(LISTED_IDENTITY), validate=True)
    except ValueError:  # binascii.Error
        return None
    new = keys.reseal(LISTED_IDENTITY_KIND, raw)
    return None if new is None else asker + "\n" + LISTED_IDENTITY + base64.b64encode(new).decode("ascii")


def erasure_askers(asker: str) -> list[str] | None:
    """An asker line's ``[actor, how, *also]`` (``erasure.asked_by``, and the actors of those who asked too, added
    by :func:`erasure_listed` since 2026-12-07); None when it is not one (malformed)."""
    try:
        found = json.loads(asker.partition("\n")[0].removeprefix(ASKED_BY))
    except ValueError:
        return None
    if not isinstance(found, list) or len(found) < 2 or not all(isinstance(part, str) for part in found):
        return None
    return found


def _askers_merged(first: str, second: str) -> str:
    """The first asker line, with the actors of the second that it lacks added, up to :data:`ASKERS_MOST` names
    (the first line kept byte for byte when nothing is added, or either is malformed)."""
    kept, more = erasure_askers(first), erasure_askers(second)
    if kept is None or more is None:
        return first
    added = False
    for actor in (more[0], *more[2:]):
        if len(kept) - 1 < ASKERS_MOST and actor != kept[0] and actor not in kept[2:]:
            kept.append(actor)
            added = True
    return ASKED_BY + json.dumps(kept, ensure_ascii=False) if added else first


RELEASE_OUTCOMES = ("retried", "released", "gave_up")  # what :meth:`RetriesReleases.watch_releases` is told


@runtime_checkable
class RetriesReleases(Protocol):
    """A store that makes a lost release again in the background (Redis: a lock's or a claim's release that failed,
    ``gateway/store/redis_release.py``). The app counts the outcomes and ``/readyz`` shows a problem."""

    def watch_releases(
        self, on_outcome: Callable[[str], None], on_failure: Callable[[Exception], None] | None = None
    ) -> None:
        """``on_outcome`` is told each release's outcomes: ``retried`` (failed, made again), then ``released`` or
        ``gave_up`` (left to its lease); ``on_failure``, when given, each failure that starts a retry (the app's
        outage log: told once an outage, not a line a release)."""
        ...

    def releases_problem(self) -> dict[str, float] | None:
        """None while releases go well; else the releases pending, the oldest's age, those given up lately."""
        ...


@runtime_checkable
class HasWorkers(Protocol):
    """A store with work of its own to run while it is open (Redis behind Sentinel: asking the Sentinels every
    second whether the primary changed, ``gateway/store/redis_pool.py``). The app runs each under its supervisor,
    so a worker that dies is logged, restarted, counted and named by ``/readyz``: never a task of the store's own."""

    def workers(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """Worker name → the coroutine function to run until cancelled (none: an empty dict)."""
        ...


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """A Redis's cap on its clients (``maxclients``: CONFIG, else ``INFO clients``; None when neither answered, a
    managed Redis refusing both) and the clients connected now (None: unknown)."""

    maxclients: int | None
    connected: int | None


@runtime_checkable
class HasClientLimits(Protocol):
    """A store whose server caps its clients (Redis's ``maxclients``): read by ``gateway doctor`` (since
    2026-12-07) against the connections the instances may open."""

    async def client_limits(self) -> ClientLimits:
        """The cap and the clients connected now. StoreError when the store does not answer."""
        ...


@runtime_checkable
class HasTime(Protocol):
    """A store shared by several instances that keeps a time of its own (Redis's ``TIME``): the app sets its clock
    on it (``gateway.clock.Aligned``, since 2026-12-07), so that instances whose hosts' clocks disagree read the
    times they write each other alike."""

    async def server_time(self) -> datetime:
        """The store's time now (aware, UTC). StoreError when it does not answer."""
        ...

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        """The app's clock, set on :meth:`server_time`: what the store reads the time on where instances compare the
        times they write (an inbound message's claim). Since 2026-12-07 (until then this host's clock)."""
        ...


@runtime_checkable
class SealingStore(Protocol):
    """A store shared by several instances where each says which data key it seals with (``gateway/sealing.py``,
    since 2026-12-07: Redis; SQLite has one process, which the key rotation's passes see writing)."""

    async def advertise_sealing(self, advert: Sealing) -> list[Sealing]:
        """Record ``advert`` (its instance's entry replaced); every instance's adverts as they now are (those older
        than a day forgotten). StoreError when the store does not answer."""
        ...

    async def sealing_adverts(self) -> list[Sealing]:
        """Every instance's advert as recorded (live or not: ``gateway.sealing.live`` tells)."""
        ...

    async def forget_sealing(self, instance: str) -> None:
        """That instance stopped: its advert removed."""
        ...


PRESENT_KEPT_SECONDS = 30 * 86400  # when listeners were last at a console: kept this long after the last record


class PresentStore(Protocol):
    """When each listener was last at a console, on any instance: the automatic hand-back's grace is counted from it
    (``gateway/alerts.py``), not from when one instance happened to see them gone. It also keeps the end of the
    WhatsApp catch-up's last good pass, under a name no listener can have (``whatsapp_catchup.MARK``)."""

    async def mark_present(self, seen: dict[str, datetime]) -> None:
        """Listener name → a time they were at a console; each keeps the latest time recorded (by any instance)."""
        ...

    async def last_present(self, names: Iterable[str]) -> dict[str, datetime]:
        """When each of ``names`` was last recorded at a console; a name never recorded (or not for
        ``PRESENT_KEPT_SECONDS``) is left out."""
        ...


class ErasedStore(Protocol):
    """The young people erased lately on a channel whose provider lists their messages to the gateway again (the
    WhatsApp catch-up reads Twilio's list): a keyed hash of the identity (``KeyedHash.erased``, a purpose of its
    own: it matches no block, lookup or log line) with the erasure's instant, nothing else (no conversation, no
    pseudonym), kept for the catch-up's window and gone by itself (Redis a TTL, SQLite a dated row swept). The
    same for the web chat conversations erased lately, under a keyed hash of the id of another purpose
    (``KeyedHash.erased_conversation``, ``erasure.WEBCHAT_ERASED_FOR``): a page naming one the store lacks is told
    it ended only when it is kept (else lost: a new conversation)."""

    async def keep_erased(
        self, digest: str, at: datetime, ttl_seconds: float, *, conversation_id: str | None = None
    ) -> None:
        """Remember for ``ttl_seconds`` from now that the identity of this digest was erased at ``at`` (again: in
        place of what was kept). ``conversation_id``: the mark of that web chat conversation's erasure, which is also
        kept with the conversation (:meth:`erasing`) until its record is deleted (``erase_conversation``, the same
        step; since 2026-12-07)."""
        ...

    async def erasing(self, conversation_id: str) -> bool:
        """Whether this conversation's erasure was begun (:meth:`keep_erased` with it) while its record is still
        there: under its lock read with the record (Redis: the lock's script; SQLite: the same hop), so that a message
        waiting for the lock of a conversation whose erasure was cut before its record is written nowhere
        (``locked_active``'s ``only``), and a closing page arms no timer on it (``leaving.socket_closed``)."""
        ...

    async def erased_at(self, digest: str) -> datetime | None:
        """When the identity of this digest was erased (:meth:`keep_erased`), while kept; else None."""
        ...

    async def forget_lapsed_erased(self) -> None:
        """Delete what :meth:`keep_erased` kept whose time is over (the purge's daily pass: on a line with no
        erasure after it, nothing else would). Redis: nothing, its TTLs do it."""
        ...


class AuditStore(Protocol):
    async def audit(self, entry: AuditEntry) -> None:
        """Append an entry to the audit log."""
        ...

    async def audit_once(self, entry: AuditEntry, key: str, kept_seconds: int) -> bool:
        """Append ``entry`` unless a line was appended under ``key`` within ``kept_seconds``: the key and the line in
        one step (SQLite: one transaction; one Redis node: one script), so a cut leaves both or neither, and a line
        asked again (a retry completing a request cut before its line) is written once, two retries at once too. A
        Redis Cluster (the key and the log two slots) sets the key first: a cut between them leaves the line
        unwritten, never written twice. Not held in a batch. Whether it was written now. Since 2026-12-07: a
        partner's referral cut before its ``referral_received`` line (``gateway/notices/inbound.py``)."""
        ...

    async def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        """The latest ``limit`` entries, newest first."""
        ...


class RetentionStore(Protocol):
    """Retention and erasure (``gateway/retention.py``, ``gateway/erasure.py``): what a conversation leaves."""

    async def purge_conversation(self, stripped: Conversation) -> int:
        """Retention over for an ended conversation: delete its transcript (messages, notes, attachments, provider
        ids), web chat uploads, outbox items, timers, late readings waiting and queue entry, and save ``stripped``
        (the record without content) in their place. The number of transcript entries deleted."""
        ...

    async def erase_conversation(self, conversation_id: str) -> int:
        """Erasure: delete the conversation record and everything stored under its id (transcript, outbox items
        of any status, timers, queue and take entries, late readings waiting, web chat uploads, the evidence files
        of its notices). Works
        on an id without a record too (the gate's notices to a sender, ``notice-<key>``). The number of transcript
        entries deleted."""
        ...

    async def first_created(self) -> datetime | None:
        """When the oldest conversation kept was created (None: there is none), where a purge starts."""
        ...

    async def inbox_drop_aside(self, before: datetime) -> int:
        """Retention over for the inbound messages the inbox set aside at or before ``before`` (their sender's
        address and words, in no conversation): delete them. How many there were."""
        ...

    async def expire_transcript(self, conversation_id: str, ttl_seconds: int) -> None:
        """Let the store itself forget the conversation's transcript ``ttl_seconds`` from now (Redis: TTLs on its
        keys, a backstop of the purge; SQLite: nothing, the purge does it). A write held inside ``batch``."""
        ...

    async def forget_freed(self) -> None:
        """After deletions: make what was deleted unreadable in the store's files too (SQLite overwrites deleted
        rows, ``secure_delete``, and this empties the write-ahead log, which still holds their old pages; Redis:
        nothing, its persistence files are rewritten by Redis)."""
        ...

    async def seen_keys(self) -> list[str]:
        """The processed marks of inbound messages (kept a few days): the digest of each de-duplication key
        (``ids.seen_digest``; ``ids.entry_id_of_seen`` gives the entry id of its message)."""
        ...

    async def marks_of(self, conversation_id: str) -> list[str]:
        """The processed marks saved with this conversation's record (``save_conversation(done=...)``: its young
        person's messages', its listeners' replies' (``Actions.reply``), kept 8 days), as digests (as ``seen_keys``
        lists them): what an erasure forgets with the conversation. Read before the conversation is erased."""
        ...

    async def forget_seen(self, keys: Sequence[str]) -> None:
        """Delete these processed marks (digests, as ``seen_keys`` lists them)."""
        ...

    async def inbox_forget(self, sender_key: str) -> int:
        """Delete a sender's items waiting in the inbox, and those it set aside (an erasure: they hold the sender's
        address and words); how many there were."""
        ...


class CaseworkStore(Protocol):
    """Takedown notices (with their evidence files) and warm referrals (``gateway/notices/``)."""

    async def put_notice(self, notice: Notice) -> None:
        """Insert or replace a notice."""
        ...

    async def get_notice(self, notice_id: str) -> Notice | None: ...

    async def list_notices(self, conversation_id: str | None = None) -> list[Notice]:
        """Every notice (or a conversation's), oldest first."""
        ...

    async def put_evidence(self, notice_id: str, files: list[Evidence]) -> None:
        """Keep copies of a notice's evidence files (replacing any it had)."""
        ...

    async def get_evidence(self, notice_id: str) -> list[Evidence]: ...

    async def drop_evidence(self, notice_id: str) -> int:
        """Delete a notice's evidence files (retention over); how many there were."""
        ...

    async def put_referral(self, referral: Referral) -> None:
        """Insert or replace a referral."""
        ...

    async def get_referral(self, referral_id: str) -> Referral | None: ...

    async def list_referrals(self, conversation_id: str | None = None) -> list[Referral]:
        """Every referral (or a conversation's), oldest first."""
        ...


class Subscription(Protocol):
    """Events published after :meth:`EventStore.subscribe` returned, in order (on a Redis Cluster of several nodes,
    in order per conversation: each conversation's channel may reach this instance through another node). Close
    it when done.

    A :class:`~gateway.events.Resync` event means events may have been missed since the previous one
    (Redis: the connection was lost and the subscription restored; in-process: a subscriber so slow that its
    oldest events were dropped): a consumer reloads what it shows from the store.

    Which events (:func:`~gateway.events.scope`): those for every subscription (presence, typing, sessions
    ended) always; a conversation's only while it follows that conversation or every one (the console's queue
    and alerts: every one only). On Redis an instance none of whose subscriptions follows a conversation is
    not sent its events at all.
    """

    async def follow(self, conversation_id: str) -> None:
        """Get this conversation's events too, from the moment this returns (Redis confirmed it)."""
        ...

    async def unfollow(self, conversation_id: str) -> None: ...

    async def follow_all(self, on: bool) -> None:
        """Get every conversation's events (on), from the moment this returns; or only those followed (off)."""
        ...

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> Event:
        """The next event, waiting for it; StopAsyncIteration once closed."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class UploadStore(Protocol):
    """Files a young person sent from the web chat (a cleaned image), kept as attachments are (``upload:<key>``)."""

    async def put_upload(self, key: str, content_type: str, data: bytes) -> None:
        """Keep a file under ``key`` (replacing any file it had)."""
        ...

    async def get_upload(self, key: str) -> tuple[str, bytes] | None:
        """The file's content type and bytes, or None."""
        ...


class EventStore(Protocol):
    async def publish(self, event: Event) -> None:
        """Send an event to every subscriber (every gateway instance with Redis, in its JSON form)."""
        ...

    async def subscribe(self, *, everything: bool = True) -> Subscription:
        """Events published after this returned: every conversation's (``everything``), or only those of the
        conversations it will follow (:meth:`Subscription.follow`)."""
        ...


class LockStore(Protocol):
    def lock(self, conversation_id: str, timeout: float = 10.0) -> AbstractAsyncContextManager[None]:
        """Hold while processing one message of the conversation, so messages never interleave.

        Not re-entrant: a holder that asks again for the same conversation waits for itself until the
        timeout. StoreError if it cannot be had within ``timeout`` seconds.
        """
        ...


class BatchStore(Protocol):
    def batch(self) -> AbstractAsyncContextManager[None]:
        """Inside, this task's writes that answer nothing (``save_conversation``, ``append_transcript``,
        ``outbox_put``, ``set_timer``, ``cancel_timers``, ``enqueue``, ``publish``, ``audit``; and SQLite's
        ``requeue``, its entry read at once) are held, then sent together when the block ends: one Redis pipeline
        (one round trip; single-slot steps in a crash-safe order, see :mod:`gateway.store.redis`), one SQLite
        transaction. Any other call made inside sends the held writes first, so a read sees every write before it.
        A Conflict of a held ``save_conversation`` is raised when the writes are sent. When the block raises, the
        held writes are dropped: none of them was made. A batch inside a batch is the outer one.
        """
        ...

    def locked_active(
        self, channel: ChannelName, sender: str, now: datetime, *, claim: Claim | None = None, timeout: float = 10.0,
        only: str | None = None, erased: Callable[[], str] | None = None,
    ) -> AbstractAsyncContextManager[tuple[Conversation, ClaimState]]:  # fmt: skip
        """The sender's active conversation on this channel (a new one, saved, when there is none, as
        ``active_conversation`` makes it) under its lock, with a batch inside as ``locked_batch`` (``claim`` as
        there): the conversation as read once the lock is held, and the claim's state. ``only`` (a web chat
        message's ``Inbound.written_in``): when the sender's active conversation is not that one (none, or a newer
        one another tab began after the erasure) and that one is no longer kept (erased while the message waited
        for its lock), ConversationEnded, nothing opened or written (read only then: nothing more for a message whose
        conversation is open; until 2026-12-07 a newer one took the message). Ended, not erased: into a newer one
        the sender has open; none: EndedMeanwhile (a ConversationEnded), nothing opened, the caller opening the next
        one within the web chat's new-chat limits (until 2026-12-07 it was opened here, past them).
        ``erased``: the erasure's mark of ``only`` (``KeyedHash.erased_conversation``, :meth:`keep_erased`): kept, the
        same ConversationEnded while its record is still there (an erasure cut before the record, the sender's address
        gone with a Cluster's steps or a cut on one Redis): the mark decides, read on those same paths only. Until
        2026-12-07 only the record was read: the message opened a new conversation for the erased young person.
        A callable giving the mark, called on those paths only (an HMAC: nothing computed for a message whose
        conversation is open; until 2026-12-07 the mark itself, computed for every web chat message).

        Redis looks the sender's address up (read along with the claim: ``claim(sender=...)``), then takes that
        conversation's lock with its record read in the same round trip, the record's liveness checked there: a
        record that is no longer active (ended meanwhile, or left behind by a crash) is let go and the sender's
        conversation looked up again. One round trip less than the lookup, then the lock. SQLite does the same
        with the conversation's id read along with the claim, then the claim renewed and the record read in one hop.
        """
        ...

    def locked_batch(
        self, conversation_id: str, timeout: float = 10.0, *, claim: Claim | None = None, undo_queue_step: bool = False
    ) -> AbstractAsyncContextManager[ClaimState]:
        """``lock`` with a ``batch`` inside, the lock left only once the writes are made: Redis sends the writes
        and the release in one pipeline (one round trip less per message than the two apart). When the block
        raises, the writes are dropped and the lock released. Inside a batch already: ``lock`` alone.

        With ``claim``, the message's claim is renewed once the lock is held, naming the conversation (Redis: in
        the round trip that takes the lock, when it is free), and its state is what the block gets; without,
        ``CLAIMED``.

        ``undo_queue_step``: the block is an action whose caller is told it failed when its commit is refused (a
        console's transfer or hand-back, answered 503 "try again": ``Actions._once``): Redis then puts the queue entry
        it wrote back as the record says (``RedisStore._unqueue_refused``). Otherwise (a message, processed again; the
        alert check's completions, made again by the next check, whose young person may have been told already) the
        entry a refused commit wrote beside a queued or held record is kept. Since 2026-12-07; earlier that day every
        commit's entry was put back, the check's refused completion of a transfer too (the young person, told their
        place, held again by their listener). SQLite: one transaction, nothing to undo.
        """
        ...


class SealStore(Protocol):
    def share_texts(self, own: OwnTexts) -> None:
        """``own``: flows.yaml's strings (``FlowSet.own_texts``). From then on a bot entry made only of such
        strings (or of a template of them filled) is stored by reference to one shared copy of its content
        (``gateway/store/texts.py``); until then every entry keeps its content."""
        ...

    async def reseal(self) -> dict[str, int]:
        """One pass sealing every record with the current data key (records sealed with an old key, or written in
        clear before encryption); the number resealed by record kind, and under :data:`RESEAL_CHANGED` those found
        under an older key but rewritten before they could be replaced (left as written, by whoever wrote them).
        Safe while the gateway runs; a record written meanwhile by an instance still sealing with an old key stays
        under it: ``gateway data-key rotate`` passes again until a pass finds none (since 2026-12-07; until then
        one pass, said to leave every record under the current key)."""
        ...

    async def compact(self) -> None:
        """After the passes of :meth:`reseal`: SQLite rewrites its file so that no free page keeps an old sealing
        (``VACUUM``, once; until 2026-12-07 at the end of every pass); nothing on Redis."""
        ...


class Store(
    BatchStore,
    ConversationStore,
    TranscriptStore,
    DedupeStore,
    QueueStore,
    ListenerStore,
    SessionStore,
    OutboxStore,
    InboxStore,
    TimerStore,
    LateStore,
    EventStore,
    LockStore,
    BlockStore,
    AuditStore,
    PresentStore,
    CaseworkStore,
    RetentionStore,
    ErasedStore,
    SealStore,
    UploadStore,
    Protocol,
):
    async def ping(self) -> None:
        """Raise StoreError unless the store answers and takes writes (readiness probe, the alert checks)."""
        ...

    async def eviction_policy(self) -> str | None:
        """How the store may drop keys by itself once full (Redis's ``maxmemory-policy`` when not ``noeviction``:
        a record, a lock or a processed mark gone without an error); None when it never does (SQLite)."""
        ...

    async def close(self) -> None:
        """Release connections and threads; safe to call twice."""
        ...


async def open_store(
    url: str,
    *,
    keys: DataKeys | None = None,
    max_connections: int = 100,
    pool_timeout: float = 10.0,
    health_check_interval: float = 30.0,
    socket_timeout: float = 5.0,
    cluster: bool = False,
) -> Store:
    """Open (and for SQLite create) the store named by ``url``; ConfigError for an unknown scheme.

    ``keys`` seal and open what the store keeps about young people (:mod:`gateway.crypto`); by default the
    embedded key file beside a SQLite file, and for Redis a ConfigError (it needs ``GATEWAY_DATA_KEY``).

    Redis: at most ``max_connections`` connections; a caller finding them all busy waits up to ``pool_timeout``
    seconds for one (then StoreError) rather than failing at once; a connection idle for ``health_check_interval``
    seconds is checked (PING) before it is used again, so one cut meanwhile is replaced rather than failing a call;
    an answer (or a connection) not come within ``socket_timeout`` seconds fails its call and drops its connection
    (a silent path: no close, no reset); ``cluster``: ``url`` names a node of a Redis Cluster (a Cluster client
    follows the slots).
    """
    from gateway.store.redis_url import is_redis, is_sentinel

    if url.startswith("sqlite:///"):
        from gateway.store.sqlite import SqliteStore

        return await SqliteStore.open(url, keys)
    if is_redis(url):
        if cluster and (is_sentinel(url) or url.startswith("unix://")):
            raise ConfigError("a Redis Cluster is reached by a redis:// or rediss:// URL naming one of its nodes")
        from gateway.crypto import DataKeys
        from gateway.store.redis import RedisStore

        keys = keys or DataKeys.for_store(url)
        return await RedisStore.open(url, keys, max_connections=max_connections, pool_timeout=pool_timeout,
                                     health_check_interval=health_check_interval, socket_timeout=socket_timeout,
                                     cluster=cluster)  # fmt: skip
    raise ConfigError("the store URL must start with sqlite:///, redis://, rediss://, unix:// or redis+sentinel://")
