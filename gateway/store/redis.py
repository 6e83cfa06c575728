"""The shared store: Redis, standalone or Cluster, behind several gateway instances.

Every key starts with ``hg:``; the layout and its Cluster hash tags are in :mod:`gateway.store.redis_keys` and in
docs/deployment.md (key, slot, TTL, what it holds). Each operation that reads then writes runs as Lua scripts
(:mod:`gateway.store.redis_lua`), each atomic in ONE slot. An operation that changes keys of several slots runs
as steps sent in order on one connection (Redis runs a connection's commands in order, so a crash leaves a prefix
of them done), ordered so that every prefix is safe:

* **an index lists more, never less**: a conversation joins its status set, the creation index and (web chat, in
  the bot or the queue) its client's set before its record is written, and leaves the other sets after (the status
  sets only when its status or flag changed since the record read with its lock: that record's save left them; a
  held conversation's taken queue entry once its record has ended: ``held_by`` drops one a crash left); an
  outbox item is written before it is listed in its conversation's line (a reply's item with its transcript entry
  when a batch holds both, one script of their slot, ``put_entry_item``, with the message's other replies of the
  conversation and the young person's entry held just before them, then their line's step, one script of slot
  ``{outbox}``: ``HeldReplies``); readers check the
  record or item they
  are pointed to and skip (or repair) the rest;
* **the record and its processed mark are one step**: a conversation's record and the inbound id it processed
  (``hg:d:{<id>}``) are written by one script, after the message's transcript entries and outbox items (each
  idempotent by id, so a retried processing rewrites the same ones) and before the global mark (the id in the
  hash ``hg:{seen}:<day>:<shard>`` of the day the mark expires, its claim deleted in the same script); a claim that
  lapsed in between names its conversation, whose mark decides (:meth:`RedisStore.claim`);
* **an item step, then a line step**: the outbox's item (fencing token, status) and the transcript entry's
  delivery (one slot: the conversation's) change first, its conversation's line and the heads after (with the
  provider id's day index, in one round trip); ``outbox_due`` drops a listed id whose item is resolved and
  re-times a head that is not due;
* **what a provider id points to exists first**: an entry's provider id joins its day index ``hg:p:<day>:<shard>`` after
  the entry records it (an erasure deletes both).

A conversation's sender finds it through ``hg:active:<keyed hash>`` (``DataKeys.identity``): a new conversation's
record is written (with a TTL of a day until its first save) before the address is claimed for it, so the address
never names a missing record but an ended or expired one, which counts as none.

An ended conversation's transcript (one list holding the entries, and the index of a long one: ``redis_lua``'s
``_ENTRIES``) gets a TTL of flows.yaml's ``retention.closed_days`` and the purge's period and a day, 2 days at least
(``expire_transcript``, ``dispatcher.backstop_seconds``); the daily purge strips
the record (``gateway/retention.py``, ``redis_retention.py``).

The conversation lock is a lease of ``LOCK_LEASE_MS`` (6 s) that its holder renews while it holds the lock:
processing one message takes milliseconds, a slow one keeps its lock, and a crashed instance blocks its
conversations for 6 s at most. A renewal may wait on its way as long as any call (the socket timeout, 5 s): it is
sent early enough to reach Redis within the lease all the same (``lock_timing``: every 0.5 s at the defaults; until
2026-12-07 every third of the lease, and a renewal held over 4 s on its way came after the lease's end, another
instance holding the lock meanwhile), each a period after the previous one was sent, not answered, overlapping
(``_keep_lock``, since 2026-12-07: an answer held on its way back no longer holds the next renewal back), every
lock's renewals pipelined on 2 connections of their own (``_renewing``, since 2026-12-07: N locks held cost a round
trip or two a period, not N). It is
redis-py's ``redis.asyncio.lock.Lock`` (SET NX PX, a random token
checked by Lua on renewal and release, so an expired holder never extends or frees somebody else's lock), renewed
by a task of ours with ``reacquire``; a waiter retries every ``LOCK_POLL_SECONDS``. Each attempt takes it with the
conversation's record read in the same script (``lock_read``, one slot), which answers the holder's reads of it.
A release lost to a Redis error (and an attempt whose answer was lost) is made again by token until Redis answers
(:mod:`gateway.store.redis_release`), instead of holding the conversation until the lease lapses. The writes of the
conversation's slot made under the lock (record, entries, items) are fenced by its token (``_Fence``, since
2026-12-07; until then a commit held on its way past the lease overwrote the next holder's record).

A message of an open conversation costs four round trips on one Redis: the gate's block check with the message
limit's hit and the inbox check (``get_block_and_hit``), the claim with the sender's address read along, the lock
with the record read and the claim renewed naming the conversation (``locked_active``), the batch with the
release (a Cluster client sends the slots of a pipeline one by one: more there). These are one message's own: on
one Redis, the commands and pipelines of the conversations processed at once share their round trips (the
batcher of :mod:`gateway.store.redis_batch`, through which ``_redis`` sends; pub/sub uses ``_client`` itself).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.lock import Lock
from redis.commands.core import AsyncScript
from redis.exceptions import LockNotOwnedError, NoScriptError, RedisError, ResponseError

from gateway.conversation import ACTIVE_STATUSES, Conversation, Priority, RiskFlag, Status
from gateway.crypto import DataKeys
from gateway.errors import (
    ConfigError,
    Conflict,
    ConversationEnded,
    EndedMeanwhile,
    LockLost,
    LockTimeout,
    StoreError,
)
from gateway.events import ANY_CONVERSATION, DeliveryChanged, Event, encode, scope
from gateway.ids import seen_digest
from gateway.later import Later
from gateway.messages import ChannelName
from gateway.notices.record import Evidence, Notice, Referral
from gateway.outage_log import error_class
from gateway.sealing import Sealing
from gateway.store import (
    ANYONE,
    ASKERS_MOST,
    CLIENT_OPEN,
    INDEXED_DAYS,
    OPENING_KEPT_SECONDS,
    PRESENT_KEPT_SECONDS,
    READ_LATE_HOURS,
    READ_LATE_KEPT,
    RECEIPT_KEPT_SECONDS,
    Anyone,
    AuditEntry,
    Author,
    Block,
    Claim,
    ClaimState,
    ClientLimits,
    ConsoleSession,
    Counter,
    Delivery,
    DoneMark,
    HeldIndex,
    InboxItem,
    Listener,
    OutboxItem,
    OutboxStatus,
    PendingLate,
    QueueEntry,
    Timer,
    TimerKind,
    TranscriptEntry,
    WaitingPage,
    checked_holder,
    furthest,
    identities,
    in_parts,
    provider_digest,
    provider_digests,
    provider_ids,
    redis_providers,
    redis_reseal,
    redis_retention,
    sent_shown,
)
from gateway.store import redis_keys as K
from gateway.store.codec import (
    PART,
    decode_audit,
    decode_block,
    decode_conversation,
    decode_entry_data,
    decode_listener,
    decode_queue_entry,
    decoded_in_parts,
    dumps,
    dumps_sealed,
    encode_audit,
    encode_block,
    encode_conversation,
    encode_entry_data,
    encode_listener,
    encode_queue_entry,
    ended_rank,
    flagged_entry_data,
    flagged_rank,
    from_us,
    loads,
    loads_sealed,
    to_us,
    told_rank,
)
from gateway.store.redis_batch import AutoPipeline
from gateway.store.redis_events import RedisEvents, SharedSubscription
from gateway.store.redis_lua import FENCED, SCRIPTS
from gateway.store.redis_pool import close_cluster, open_cluster, open_pool, primary_followers
from gateway.store.redis_release import Releases
from gateway.store.redis_replicas import ReplicaAcks
from gateway.store.redis_retention import Record
from gateway.store.redis_steps import ordered
from gateway.store.texts import OwnTexts, Reference, SharedText, SharedTexts, Stored
from gateway.supervisor import where

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)
PREFIX = K.PREFIX
EVENTS_CHANNEL = K.EVENTS_CHANNEL
LOCK_LEASE_MS = 6_000
UNQUEUE_WAIT_SECONDS = 6.0  # a refused commit's queue entry checked under the lock taken again (``_unqueue_refused``)
REDIS_OLDEST = (6, 2)  # ``ZADD … GT`` (redis_lua.py, ``index_conversation``): refused at the start below it
LOCK_MARGIN_SECONDS = 0.5  # a renewal reaches Redis this long before its lease's end at the latest (``lock_timing``)
# connections of the pool kept for the lock's renewals (``RedisStore.open``, since 2026-12-07): a renewal never waits
# behind the store's other callers for one of theirs; also how many renewals of one lock may be in flight at once
# (``_keep_lock``, since 2026-12-07), the store's locks sharing them, pipelined, one batch out on each connection at
# most (``RedisStore._renewing``, since 2026-12-07: until then each renewal held one for its round trip)
RENEWAL_CONNECTIONS = 2
LOCK_POLL_SECONDS = 0.01  # a waiting lock's retry pace (bench: redis.asyncio.lock.Lock's 0.1 s default doubled bursts)
FLAG_TRIES = 3  # reads of an entry whose data changes while its flag is written (a reseal) before giving up
RESOLVED_OUTBOX_KEPT = timedelta(days=7)  # failed outbox items expire after this
SENT_OUTBOX_KEPT = timedelta(hours=1)  # what is left of a sent item (no payload) expires after this
READY = PREFIX + "ready"  # never made: ``ping``'s write
NOEVICTION = "noeviction"  # the maxmemory-policy under which a full Redis refuses writes instead of dropping keys
_DELIVERY_CODES = {Delivery.PENDING: "p", Delivery.SENT: "s", Delivery.DELIVERED: "d", Delivery.READ: "r",
                   Delivery.FAILED: "f"}  # fmt: skip
_DELIVERIES = {code: delivery for delivery, code in _DELIVERY_CODES.items()}
# what awaits a read receipt: a reply (it had an outbox item), not read or failed yet
_REPLIES, _UNREAD = (Author.BOT, Author.LISTENER), (Delivery.PENDING, Delivery.SENT, Delivery.DELIVERED)
AUDIT_KEPT = 100_000
CLAIM_KEPT = timedelta(
    seconds=K.CLAIM_KEPT_SECONDS
)  # a claim naming its conversation outlives its lease (one naming none: see _CLAIM)
FORGET_AT_ONCE = 2_048  # processed marks forgotten a round trip: at most 33 × 128 HDELs of 16 fields or so each
INDEXED_US = INDEXED_DAYS * 24 * 3600 * 1_000_000  # how far back from its latest entry ``K.ended`` keeps
INDEXED_S = INDEXED_DAYS * 24 * 3600  # its TTL after its last join (``K.person``: neither, ``person_of``)
FRESH_KEPT = timedelta(days=1)  # a new conversation's record until its first save (a crash before it leaves no trace)
# for each status, the others (the status sets a saved record leaves): listed once, not at every save
_OTHER_STATUSES = {status: tuple(str(other) for other in Status if other != status) for status in Status}
_BY_RANK = {priority.rank: priority for priority in Priority}  # a queue member's rank, its priority
# a login drops from its listener's index the sessions ended a minute or more before its ``now``, not later ones: an
# instance whose clock is a little behind still takes them for live, and "log out everywhere" must still end them
_SESSIONS_KEPT_ENDED_US = 60 * 1_000_000
TAKES_KEPT_US = 24 * 3600 * 1_000_000  # takes older than a day leave takes:<queue> (takes_since looks an hour back)

_FENCED_BYTES = FENCED.encode()
Queue = Callable[[Pipeline], object]  # adds commands to a pipeline, each of one slot, in the order they must run
Check = Callable[[list[Any]], None]  # reads their answers (raises Conflict, say)
Before = Callable[[], Awaitable[Exception | None]]  # run at the flush first; an error drops the write, then is raised


@dataclass(slots=True)  # not frozen (about 7 a message: a frozen one's __init__ sets each field through
class HeldWrite:  # object.__setattr__); never changed once made, but for ``unlock``'s list, filled at the flush
    queue: Queue
    check: Check | None = None
    before: Before | None = None
    entry: HeldEntry | None = None  # a transcript entry's write, which its outbox item may join (``outbox_put``)
    # the conversation whose transcript or outbox line it adds to: a group of replies held earlier (``replies``) is
    # joined by a later reply only if nothing was added to either since (``outbox_put``), so both keep their order
    conversation: str | None = None
    replies: HeldReplies | None = None
    event: bool = False  # an event's publish: nothing is written, nothing waits for it (``outbox_put``)
    # a record's save (of the conversation ``record``) that may release its lock in its script (``locked_batch``):
    # the lock's key and its holder's token put in it at the flush
    unlock: list[str] | None = None
    record: str | None = None
    published: Published | None = None  # an event's publish, which the batch's next events on its channel join
    # sent only once the writes before it were answered, none of the conversation's refused (a fenced ending's
    # writes of other slots, ``save_conversation``; since 2026-12-07)
    cut: bool = False
    # held before the record but sent with the batch's ``cut`` part, after the record was answered written (an
    # ending's transcript expiry, ``expire_transcript``; since 2026-12-07); in place when the batch has no such part
    late: bool = False
    # a ``cut`` write sent in a pipeline of its own before the rest of the cut part, which is sent only if none of it
    # was refused (a split save's ``fenced_gate`` on a Cluster, since 2026-12-07: a pipeline is not conditional)
    gate: bool = False


class _Fence:
    """The lock a task holds on a conversation, which fences the writes of that conversation's slot it makes under it
    (since 2026-12-07): their scripts (``redis_lua.FENCED_SCRIPTS``) carry the lock's key and its holder's token and
    write nothing once the lock is no longer that token's (a commit held on its way past the lease, another instance
    holding the lock meanwhile): the flush then raises LockLost. The global processed mark, another slot, cannot
    read the lock: it carries ``deadline`` instead, the time (Redis's clock) until which the lease was surely held,
    so that it is written only after a record that was. Only the task that took the lock is fenced (a task it
    starts inherits the context, and may write after the lock is let go). A lock key lost before its lease ended
    (a failover to a replica it had not reached) refuses the record with the deadline not passed: the marks that
    ran then are taken back (``marks``, ``RedisStore._take_back``; since 2026-12-07, until then the message was
    taken for processed and recorded nowhere). Each fenced script also carries how many its holder sent before it
    under this lock (``made``, since 2026-12-07; ``redis_lua._FENCE``): one that reaches a server without all of them
    (a failover's new primary got the lock but not the writes sent to the old one after the switch) is refused, and
    the marks of its pipeline taken back; until then such a commit landed, its record and mark without the entries
    of the pipelines before it. A pipeline followed by another under the lock ends with the fence alone
    (``fenced_check``, since 2026-12-07) when it has writes after its last fenced script (``at``): a failover whose
    new primary got that script and not the writes after it (a reply's listing, a queue entry, the timers' removal)
    then refuses the next pipeline too; until then it passed, the reply's item kept and listed nowhere (never sent)
    and the message taken for processed (``tests/store/test_redis_fence_tail.py``). The lock's last pipeline
    (``closing``: the batch's, with its release) needs none: nothing follows that a lost tail could be taken under,
    what its replica got is a prefix, as a crash leaves one."""

    __slots__ = (
        "at", "closing", "conversation_id", "key", "lease", "made", "marks", "moved", "queued", "task", "token", "undo",
        "used", "writes", "wrote",
    )  # fmt: skip

    def __init__(self, conversation_id: str, lease: _Lease) -> None:
        self.conversation_id, self.key, self.lease = conversation_id, K.lock(conversation_id), lease
        self.writes = K.lock_writes(conversation_id)
        self.token = lease.local.token
        self.task = asyncio.current_task()
        self.used = False  # a fenced script was queued: the flush looks for FENCED in the answers
        self.made = 0  # fenced scripts queued so far under this lock, in the order they are sent
        self.marks: list[tuple[int, str, int]] = []  # each fenced mark queued: its place in the pipeline, key, until
        self.queued = False  # the conversation's queue entry written under it (``enqueue``): checked once refused
        self.wrote: tuple[str, str] | None = None  # the last such entry: its queue and its member's "<rank>:<at>:"
        # noted (``wrote``) only under a console's action, told it failed when refused (``locked_batch``'s
        # ``undo_queue_step``, since 2026-12-07): a message is processed again, the check's completion made again
        self.undo = False
        self.moved = False  # the conversation's transfer listed under it (``begin_move``): unlisted if put back
        self.at = 0  # the pipeline being queued: its length after its last fenced script (0: none yet)
        self.closing = False  # the lock's last pipeline is being sent (``_LockedBatch``: with the release)

    def head(self) -> tuple[list[str], list[Any]]:
        """A fenced script's last KEYS and ARGV (``redis_lua._FENCE``), counted: the scripts are queued in the order
        their pipelines are sent, each pipeline after the previous one's answer."""
        made, self.made = self.made, self.made + 1
        return [self.writes, self.key], [made, self.token]

    def fenced(self, pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
        """The fenced script ``name`` queued, its head last (``head``), its place noted (``at``)."""
        fence_keys, fence_args = self.head()
        _eval(pipe, name, [*keys, *fence_keys], [*args, *fence_args])
        self.at = len(pipe)

    def deadline(self) -> str:
        """Redis's time (ms) before which the lease is surely still held: its start (``lock_read``'s answer) and
        the lease, moved on by the time between that answer and the send of the last renewal that was answered (a
        renewal runs after it was sent: its lease ends a lease after that at the earliest), less the margin (the
        clocks of two Cluster nodes, a rate's drift)."""
        lease = self.lease
        moved = 0.0 if lease.renewed is None else max(0.0, lease.renewed - lease.answered)
        return str(lease.began_ms + lease.lease_ms + int(moved * 1000) - int(LOCK_MARGIN_SECONDS * 1000))


_FENCING: contextvars.ContextVar[_Fence | None] = contextvars.ContextVar("fencing", default=None)


# How long a full client network's check trusts its two sets (``client_at_cap``) before it reads the records again
# (since 2026-12-07): one reading a network a period while its held pages keep trying.
CLIENT_READ_MS = 30_000


def _fence_of(conversation_id: str) -> _Fence | None:
    """The fence of this task's lock on the conversation, if it holds it (``_Fence``), marked used."""
    fence = _FENCING.get()
    if fence is None or fence.conversation_id != conversation_id or fence.task is not asyncio.current_task():
        return None
    fence.used = True
    return fence


def _fenced(pipe: Pipeline, name: str, keys: list[str], args: list[Any], conversation_id: str) -> None:
    """``_eval`` of a write of the conversation's slot: fenced by this task's lock on it, when it holds it."""
    fence = _fence_of(conversation_id)
    if fence is None:
        _eval(pipe, name, keys, args)
    else:
        fence.fenced(pipe, "fenced_" + name, keys, args)


class Published:
    """Consecutive events of a batch on one channel, nothing written between them (a message's entry and its
    replies' entries, say): one ``PUBLISH`` of their JSON list, in order, at the place of the last, instead of one
    each (``redis_events.py`` reads either form). A reader learns nothing earlier or later than the data they tell
    of: no write of the batch comes between them. Made by a task holding a conversation's lock (``fence``), the
    publish is a script fenced by it (``fenced_publish``): refused with the conversation's writes (since 2026-12-07;
    until then a refused commit's events told a web chat page or a console of entries the store never kept, shown
    again under new ids when the message was processed again)."""

    __slots__ = ("channel", "fence", "messages")

    def __init__(self, channel: str, messages: list[str], fence: _Fence | None = None) -> None:
        self.channel, self.messages, self.fence = channel, messages, fence

    def queue(self, pipe: Pipeline) -> None:
        one = self.messages[0] if len(self.messages) == 1 else "[" + ",".join(self.messages) + "]"
        fence = self.fence
        if fence is None:
            pipe.publish(self.channel, one)
        else:
            fence.used = True  # the flush looks for its FENCED answer
            fence.fenced(pipe, "fenced_publish", [], [self.channel, one])


@dataclass(frozen=True, slots=True)
class HeldEntry:
    """A held ``append_transcript`` of an entry without a provider id: the entry's id, its conversation, the
    entry as stored, and its shared text."""

    id: str
    conversation_id: str
    value: bytes
    shared: Reference | None


class HeldReplies:
    """A message's replies of one conversation held in a batch (``Dispatcher.emit``: each reply's entry, then its
    outbox item): their entries and items in one script of the conversation's slot, the transcript read once, then
    their line's step in one script of slot ``{outbox}``, instead of two scripts a reply. Every item is still written
    before it is listed; the entries and the line keep the order of the puts (a group is joined only while nothing
    else was added to the conversation's transcript or line: ``HeldWrite.conversation``)."""

    __slots__ = ("conversation_id", "entries", "items", "lines", "texts")

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.texts: list[Reference] = []  # their shared texts: written first, never a reference to nothing
        self.entries: list[Any] = []  # per entry without an item, written before the replies: its id, the entry
        self.items: list[Any] = []  # per reply: entry id, the entry, sealed payload, created µs, due µs, unread
        self.lines: list[Any] = []  # per reply: id, due µs, created µs

    def add_entry(self, entry: HeldEntry) -> None:
        """An entry without an item held just before the first reply (the young person's message), written first."""
        if entry.shared is not None:
            self.texts.append(entry.shared)
        self.entries += [entry.id, entry.value]

    def add(self, entry: HeldEntry, item: OutboxItem, payload: bytes) -> None:
        due, created = to_us(item.next_attempt_at or item.created_at), to_us(item.created_at)
        if entry.shared is not None:
            self.texts.append(entry.shared)
        self.items += [item.id, entry.value, payload, created, due, _unread(item)]
        self.lines += [item.id, due, created]

    def queue(self, pipe: Pipeline) -> None:
        conversation_id = self.conversation_id
        for shared in self.texts:
            pipe.hsetnx(_key("texts"), shared.ref, shared.sealed)
        ids = self.lines[::3]
        keys = [*K.transcript_keys(conversation_id), *(K.outbox_item(conversation_id, item_id) for item_id in ids)]
        _fenced(
            pipe,
            "put_entry_item",
            keys,
            [conversation_id, len(self.entries) // 2, *self.entries, *self.items],
            conversation_id,
        )
        _eval(pipe, "outbox_list", _line_keys(conversation_id), [conversation_id, *self.lines])


def _channel(event: Event) -> str:
    """The channel of an event's scope (``redis_events.py``)."""
    about = scope(event)
    if about is None:
        return EVENTS_CHANNEL
    return K.CONVERSATION_EVENTS + about if about != ANY_CONVERSATION else K.ANY_CONVERSATION_EVENTS


def _unread(item: OutboxItem) -> int | str:
    """The score of an item's entry among those awaiting a read receipt (its time, µs), or '' when it awaits none."""
    return to_us(item.created_at) if item.awaits_read else ""


def _line_keys(conversation_id: str) -> list[str]:
    """The ``outbox_list`` script's keys: the conversation's line, the heads, the sequence, the pending set."""
    return [K.outbox_line(conversation_id), K.OUTBOX + "heads", K.OUTBOX + "seq", K.OUTBOX_PENDING]


class _Batch:
    """``RedisStore.batch``: this task's writes held, then sent when the block ends (dropped when it raises); inside a
    batch, the outer one. A class, not an ``asynccontextmanager``, which made an async generator each time (a reply's
    record is a batch: bench/README.md, "Twenty-fourth pass")."""

    __slots__ = ("_store", "_tokens")

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._tokens: tuple[contextvars.Token[Any], contextvars.Token[Any]] | None = None

    async def __aenter__(self) -> None:
        store = self._store
        if store._batch() is None:
            self._tokens = store._held.set([]), store._held_by.set(asyncio.current_task())

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._tokens is None:  # inside another batch: the outer one sends the writes
            return
        token, owner = self._tokens
        store = self._store
        try:
            if kind is None:
                try:
                    await store._flush()
                except RedisError as error:
                    raise StoreError(f"redis: {type(error).__name__}: {error}") from error
        finally:
            store._held_by.reset(owner)
            store._held.reset(token)


def _guarded(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """Refuse calls after close; send this task's held writes first (see ``batch``); map redis-py's errors to
    StoreError (they name no value or message text)."""
    return _wrapped(method, flush=True)


def _holdable(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """A write that answers nothing: held inside ``batch`` (the method goes through ``RedisStore._write``)."""
    return _wrapped(method, flush=False)


def _riding(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """A read sent at the end of this task's held writes, in their pipeline (one round trip, not two): it goes
    through ``RedisStore._write`` with a check that keeps its answer, then sends the batch (see ``position``)."""
    return _wrapped(method, flush=False)


def _uncounted(kind: str) -> None:
    """No one counts the indexes' failed passes (the CLI, a test's store): the log line still says each."""


def _wrapped(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]], *, flush: bool
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def guarded(store: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if store.closed:
            raise StoreError("the redis store is closed")
        try:
            if flush and store._held.get():  # a batch holding writes (``_flush`` does nothing otherwise)
                await store._flush()
            return await method(store, *args, **kwargs)
        except RedisError as error:
            raise StoreError(f"redis: {type(error).__name__}: {error}") from error

    return guarded


SEALING_KEPT_SECONDS = 86400  # an instance's advert not renewed for this long is removed (by the next advert)


def _adverts(flat: list[Any]) -> list[Sealing]:
    """``instance, "<key id> <µs>", …`` as Redis answers a hash; a malformed value is skipped."""
    adverts = []
    for instance, value in zip(flat[::2], flat[1::2], strict=True):
        key_id, _, at = str(value).partition(" ")
        if key_id and at.isdigit():
            adverts.append(Sealing(str(instance), key_id, from_us(int(at))))
    return adverts


def _eval(pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
    """A script in a pipeline: EVAL with its text (Redis caches it), since a NOSCRIPT in the middle of a pipeline
    could not be retried without repeating the commands after it, which ran already (out of the crash order). EVALSHA
    with the scripts loaded on each connection first was measured (bench/README.md, "Fifth pass"): no change in the
    gateway's CPU, a few % of Redis's: not worth that hole (a SCRIPT FLUSH on a live Redis). Queued with
    ``execute_command``, the command ``Pipeline.eval`` queues through two more calls (0.73 → 0.40 µs; eleven a
    message: bench/README.md, "Twenty-ninth pass")."""
    pipe.execute_command("EVAL", SCRIPTS[name], len(keys), *keys, *args)


def _hit(counter: Counter) -> tuple[str, list[str], list[Any]]:
    """The script that hits ``counter``, its KEYS and ARGV: once per message when it has a ``once`` mark."""
    if counter.once is None:
        return "hit", [counter.key], [counter.window_seconds, 1]
    return "hit_once", [counter.key, counter.marks], [counter.window_seconds, 1, counter.allowed, counter.once]


def _text(value: bytes | str) -> str:
    """redis-py types replies as bytes or str; with ``decode_responses`` they are str."""
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Any) -> dict[str, str]:
    """A Lua HGETALL reply (field, value, field, value…) as a dict."""
    values = _texts(flat)
    return dict(zip(values[::2], values[1::2], strict=True))


def _texts(values: Any) -> list[str]:
    return [_text(value) for value in values]


def _key(*parts: str) -> str:
    return K.key(*parts)


def _session(key: str, data: dict[str, Any]) -> ConsoleSession:
    """A session as stored (its JSON): ``account`` absent from those stored before 2026-12-07."""
    return ConsoleSession(key, str(data["name"]), from_us(int(data["expires_us"])), str(data.get("account", "")))


async def _get_each(client: Redis, keys: list[str]) -> list[Any]:
    """GET of each key, pipelined (MGET would need them all in one slot)."""
    if not keys:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for name in keys:
            pipe.get(name)
        return list(await pipe.execute())


class RedisStore:
    """The :class:`~gateway.store.Store` on Redis."""

    def __init__(
        self,
        client: Redis,
        keys: DataKeys,
        batcher: AutoPipeline | None = None,
        *,
        events_check: tuple[float, float] = (30.0, 5.0),
        renewals: Redis | None = None,
    ) -> None:
        """``batcher``: the store's commands go through it, coalesced with those of other tasks (``redis_batch.py``;
        ``client`` keeps the pub/sub connection); without one, they go on ``client`` alone (a Cluster client).
        ``events_check``: the pub/sub connection, quiet that many seconds, is asked a PING, answered within that many
        (``redis_events.py``): the socket timeout, which the conversation lock's lease and renewals follow
        (``lock_timing``). ``renewals``: a client of its own for the lock's renewals (``open``: a pool of
        ``RENEWAL_CONNECTIONS``), else they go as the store's other commands do. Since 2026-12-07 the renewals go
        through a batcher of their own on it (``_renewing``: every lock's renewals share its connections, pipelined),
        until then each took one of its connections for its round trip."""
        self._client, self._batcher, self._renewals = client, batcher, renewals
        # the lock's renewals pipelined on the renewals' connections, at most one batch out on each: the renewals
        # sent while both are out leave together when one comes back (``_keep_lock``)
        self._renewing = None if renewals is None else AutoPipeline(renewals, batches_out=RENEWAL_CONNECTIONS)
        self._redis = client if batcher is None else batcher.client
        self._keys = keys
        self._texts = SharedTexts(keys)
        self._scripts = {name: self._redis.register_script(source) for name, source in SCRIPTS.items()}
        self._closed = False
        self._told_closed_renewals = False  # a lock's renewals stopped by the close, said once (``_keep_lock``)
        self._clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # the app's, once it is set (``use_clock``)
        self._held: contextvars.ContextVar[list[HeldWrite] | None] = contextvars.ContextVar("held", default=None)
        # the task whose batch ``_held`` is: a task created inside a batch inherits the context, and its writes
        # must not join a batch that may be sent already (they would never be): see ``_batch``
        self._held_by: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
            "held_by", default=None
        )
        # the conversation whose lock this task holds: a claim made under it names it (see ``claim``)
        self._locked: contextvars.ContextVar[str] = contextvars.ContextVar("locked", default="")
        # (address, conversation id) this task found the sender's address holding (see ``save_conversation``)
        self._addressed: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
            "addressed", default=None
        )
        # (address, the conversation id it held or None) read with this task's last claim (see ``claim``)
        self._address_read: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
            "address_read", default=None
        )
        # the event a send's record made in this task's batch published itself (``_sent_taking_kept``): the caller's
        # publish of that same event next is then sent no more (``publish``)
        self._told: contextvars.ContextVar[DeliveryChanged | None] = contextvars.ContextVar("told", default=None)
        # (sender key, whether it had inbox items) read with this task's last gate check (``get_block_and_hit``)
        self._inbox_read: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
            "inbox_read", default=None
        )
        # conversation id → (the task holding its lock, the record read when the lock was taken): served to that
        # task's ``get_conversation`` until a write of the record (see ``_acquire``)
        self._read_under_lock: dict[str, tuple[asyncio.Task[Any] | None, str | None]] = {}
        # a message's lock: how its conversation's ending is listed as begun, read with the record (``ending_begun``)
        self._leaving_under_lock: dict[str, tuple[asyncio.Task[Any] | None, str | None]] = {}
        # under the lock, whether its erasure was begun (``K.erasing``), read with the record (``erasing``)
        self._erasing_under_lock: dict[str, tuple[asyncio.Task[Any] | None, bool]] = {}
        # under the lock, the status, flagged rank and told rank of the record read with it (``save_conversation``)
        # the record read under a lock: its status, ranks and client (``save_conversation``: which sets to leave, join)
        self._indexed_under_lock: dict[
            str, tuple[asyncio.Task[Any] | None, Status, int | None, int | None, str | None]
        ] = {}
        self._events = RedisEvents(client, *events_check)
        self._lock_lease_ms, self._lock_renew_seconds = lock_timing(events_check[1])  # the socket timeout
        self._releases = Releases()  # locks and claims whose release failed, released again (redis_release.py)
        self._people_known = False  # ``K.PEOPLE_MADE_2`` seen set (``_people_made``)
        self._people_making: asyncio.Future[None] | None = None  # the one pass every read waits for (``_people_made``)
        self._on_people_failure: Callable[[str], None] = _uncounted  # a failed pass's error class (``watch_people``)
        self._unread_since: int | None = None  # ``K.UNREAD_SINCE`` (None: unknown, every conversation is older)
        # every key on one node (standalone, Sentinel's primary; not a Cluster, nor a plain client to a node in
        # cluster mode, which refuses a script across slots): scripts may touch several slots. Set by ``open`` once
        # the server said so (``_one_node``). Then a send's record reads, applies and takes the receipt kept for it in
        # its own script (``outbox_sent``: ``takes_kept_receipts``, which the outbox reads), and an ending's listing
        # and its copy are one script (``begin_leaving``); else the record's steps apart, one slot each, and the
        # listing's two commands
        self.on_one_node = False
        self.takes_kept_receipts = False
        self._replica_acks: ReplicaAcks | None = None  # ``require_replicas``: acknowledgements wait for replicas

    @classmethod
    async def open(
        cls,
        url: str,
        keys: DataKeys,
        *,
        max_connections: int = 100,
        pool_timeout: float = 10.0,
        health_check_interval: float = 30.0,
        socket_timeout: float = 5.0,
        cluster: bool = False,
    ) -> RedisStore:
        """A blocking pool: under load a caller waits for a free connection (up to ``pool_timeout`` s) instead
        of failing at once with MaxConnectionsError (redis-py's default pool raises). A connection idle for
        ``health_check_interval`` s is checked with a PING before use, and replaced if the PING fails
        (``gateway/store/redis_pool.py``; the pub/sub connection is checked too). Replies are decoded as UTF-8 with
        ``surrogateescape``: sealed records are bytes (``gateway.crypto``), and the str of one gives its bytes back
        exactly (``DataKeys.open``). ``cluster`` (``GATEWAY_REDIS_CLUSTER``): ``url`` names a node of a Redis
        Cluster, and a Cluster client follows the slots to their nodes (up to ``max_connections`` per node)."""
        options: dict[str, Any] = {
            "decode_responses": True,
            "encoding_errors": "surrogateescape",
            "max_connections": max_connections,
            "health_check_interval": health_check_interval,
            "socket_timeout": socket_timeout,  # and the connect's (redis-py: the same when not given)
        }
        check = (health_check_interval, socket_timeout)  # the events connection's (redis_events.py)
        if cluster:  # its commands are Redis's: typed as a Redis client (redis_steps.ordered tells them apart)
            clustered = cast(Redis, open_cluster(url, **options))  # each command sent once (redis_pool.py)
            store = cls(clustered, keys, events_check=check)  # not batched (redis_batch.py)
        else:
            client = Redis(connection_pool=open_pool(url, timeout=pool_timeout, **options))
            # the lock's renewals on connections of their own (since 2026-12-07): with every connection of the
            # store's pool busy, a renewal waited for one up to ``pool_timeout`` (10 s), which ``lock_timing`` does
            # not allow for, and reached Redis after its lease (tests/test_lock_pool.py)
            # (since 2026-12-07) made at the start and never PINGed before use: a renewal leaves at once, a round
            # trip of a handshake or a health check's PING whose answer is held no longer holds it back; one on a
            # dead connection fails by its own socket timeout, the next one in flight on the other connection
            reserved = {**options, "max_connections": RENEWAL_CONNECTIONS, "health_check_interval": 0}
            # behind Sentinel, asked through the store pool's client of them (since 2026-12-07: ``open_pool``)
            shared = client.connection_pool
            renewals = Redis(connection_pool=open_pool(url, timeout=pool_timeout, sentinels_of=shared, **reserved))
            store = cls(client, keys, AutoPipeline(client), events_check=check, renewals=renewals)
        try:
            await store.ping()
            await store._ready_renewals()
            await store._check_version()
            store._unread_since = await store._since()
            await store._people_new()
            store.on_one_node = not cluster and await store._one_node()
            store.takes_kept_receipts = store.on_one_node
        except (StoreError, ConfigError):
            await store.close()
            raise
        return store

    @_guarded
    async def _ready_renewals(self) -> None:
        """The renewals' ``RENEWAL_CONNECTIONS`` connections made (their handshakes answered) and kept in their pool
        (since 2026-12-07): until then each was made at its first renewal, a handshake's round trip before that
        renewal left (with renewals overlapping, the second one's answer held as the first renewal's was, and the
        renewal behind it came after the lease's end)."""
        if self._renewals is None:
            return
        pool = self._renewals.connection_pool
        made = []
        try:
            for _ in range(RENEWAL_CONNECTIONS):
                made.append(await pool.get_connection())  # type: ignore[no-untyped-call]  # redis-py
        finally:
            for connection in made:
                await pool.release(connection)

    @_guarded
    async def _check_version(self) -> None:
        """Refuse a Redis older than ``REDIS_OLDEST`` (``ConfigError``, at the start): since 2026-12-07 the index
        script uses ``ZADD … GT`` (6.2), which an older Redis refuses at every message's commit (a ResponseError, the
        webhooks answered 503) instead of once, at the start, in words."""
        found: dict[str, Any] = await self._redis.info("server")
        # a Cluster's client answers per node ({node: INFO}): the oldest node's counts
        versions = [str(found.get("redis_version", ""))] if "redis_version" in found else [
            str(node.get("redis_version", "")) for node in found.values() if isinstance(node, dict)]  # fmt: skip
        version = next((v for v in versions if too_old(v)), "")
        if version:
            oldest = ".".join(map(str, REDIS_OLDEST))
            raise ConfigError(f"Redis {version} is too old: the gateway needs Redis {oldest}"
                              f" or later (its scripts use ZADD … GT)")  # fmt: skip

    @_guarded
    async def _one_node(self) -> bool:
        """Whether the server keeps every key itself (not in cluster mode: ``INFO cluster``)."""
        found = await self._redis.info("cluster")
        return not int(found.get("cluster_enabled", 0))

    @_guarded
    async def _since(self) -> int:
        """``K.UNREAD_SINCE``: set by the first instance of this version to open the store, read by every other."""
        await self._redis.set(K.UNREAD_SINCE, to_us(datetime.now(UTC)), nx=True)
        return int(await self._redis.get(K.UNREAD_SINCE) or 0)

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A script alone, as redis-py's ``Script`` calls it (EVALSHA; on NOSCRIPT, which ran nothing, SCRIPT LOAD
        then EVALSHA once more) without its per-call import and argument tuples (2.1 → 0.3 µs; four a message)."""
        script = self._scripts[name]
        try:
            return await self._redis.execute_command(  # type: ignore[no-untyped-call]  # redis-py
                "EVALSHA", script.sha, len(keys), *keys, *args
            )
        except NoScriptError:
            script.sha = await self._redis.script_load(script.script)
            return await self._redis.execute_command(  # type: ignore[no-untyped-call]  # redis-py
                "EVALSHA", script.sha, len(keys), *keys, *args
            )

    # Batches

    def _batch(self) -> list[HeldWrite] | None:
        """This task's batch, if it is in one (not one of the task that created it: see ``_held_by``)."""
        held = self._held.get()
        return held if held is not None and self._held_by.get() is asyncio.current_task() else None

    def batch(self) -> _Batch:
        return _Batch(self)

    async def _write(
        self,
        queue: Queue,
        check: Check | None = None,
        before: Before | None = None,
        entry: HeldEntry | None = None,
        conversation: str | None = None,
    ) -> None:
        """Hold the write in this task's batch, or send it now."""
        held = self._batch()
        write = HeldWrite(queue, check, before, entry, conversation)
        if held is not None:
            held.append(write)
        else:
            await self._send([write])

    async def _flush(self) -> None:
        held = self._batch()
        if held:
            writes = list(held)
            held.clear()
            await self._send(writes)

    async def _send(self, writes: list[HeldWrite]) -> None:
        """One pipeline, not a transaction: its commands run in order, each script atomic in its slot (a crash
        leaves a prefix done: see the module's docstring for why every prefix is safe). A write whose ``before``
        answers an error is left out; the first such error is raised once the others are sent."""
        refused: list[Exception] = []
        kept = []
        for write in writes:
            error = None if write.before is None else await write.before()
            if error is None:
                kept.append(write)
            else:
                refused.append(error)
        cut = next((i for i, write in enumerate(kept) if write.cut and i > 0), len(kept))
        if cut < len(kept) and any(write.late for write in kept[:cut]):  # after the record, with the cut part
            late = [write for write in kept[:cut] if write.late]
            kept = [write for write in kept[:cut] if not write.late] + [kept[cut], *late, *kept[cut + 1 :]]
            cut -= len(late)
        recorded = False  # a record of the first part was answered written: the parts after follow a kept record
        # a pipeline each (one unless a write is ``cut``); the cut part's gates first, alone (``HeldWrite.gate``,
        # since 2026-12-07): one refused raises LockLost, and the rest of the cut part is never sent
        gates = [write for write in kept[cut:] if write.gate]
        parts = (kept[:cut], gates, [write for write in kept[cut:] if not write.gate])
        for index, part in enumerate(parts):
            if part:  # one followed by another, under the lock (``_Fence.closing``)
                await self._send_part(part, recorded, followed=any(parts[index + 1 :]))
                recorded = recorded or any(write.record is not None for write in part)
        if refused:
            raise refused[0]

    async def _send_part(self, kept: list[HeldWrite], recorded: bool = False, *, followed: bool = False) -> None:
        # the fence of this task's lock only: a task started under the lock inherits the holder's fence (its
        # context) and may send while the holder's commit is on its way; until 2026-12-07 it took the holder's
        # ``used`` and marks as its own, found no refusal among its answers, and the holder's refused commit was
        # taken for written (its mark kept: the message recorded nowhere)
        fence = _FENCING.get()
        fence = fence if fence is not None and fence.task is asyncio.current_task() else None
        async with ordered(self._redis) as pipe:
            spans = []
            if fence is not None:
                fence.at = 0
            for write in kept:
                start = len(pipe)
                write.queue(pipe)
                spans.append((start, len(pipe), write.check))
            if fence is not None and (followed or not fence.closing) and fence.at != len(pipe):
                # writes after its last fenced script, and another pipeline under the lock to come: the fence alone
                # last (since 2026-12-07), so that the next one's count proves them on the server it reaches (one
                # replication stream, in order; ``_Fence``), outside the spans the checks read
                fence.used = True
                fence.fenced(pipe, "fenced_check", [], [])
            # this pipeline's note and marks, taken before it is sent (since 2026-12-07; until then after its answer:
            # a pipeline failed on its way left its marks' places to the next send under the lock, whose refusal
            # read them among its own answers, an IndexError or another command's answer taken for a mark)
            used, marks = (False, []) if fence is None else (fence.used, fence.marks)
            if fence is not None:
                fence.used, fence.marks = False, []
            answers = await pipe.execute()
        # a refused write of the conversation (scanned in C)
        # (the second pipeline of a save whose record was kept: its events published then, ``_told_after_record``)
        if (
            used
            and fence is not None
            and (FENCED in answers or _FENCED_BYTES in answers)
            and not (recorded and await self._told_after_record(kept, spans, answers))
        ):
            # the marks taken back before the lock goes (since 2026-12-07: ``_let_refused_go``)
            await self._take_back(fence.conversation_id, [m for m in marks if answers[m[0]] == 1])
            await self._let_refused_go(fence)
            if fence.queued:
                await self._unqueue_refused(fence.conversation_id, fence.wrote, fence.moved)
            raise LockLost("the conversation's lock lapsed before its writes reached the store")
        for start, end, check in spans:
            if check is not None:
                check(answers[start:end])

    async def _let_refused_go(self, fence: _Fence) -> None:
        """The lock of a commit the fence refused, released when it is still its holder's (token-checked ``unlock``;
        since 2026-12-07): refused by its count of fenced writes (a failover's new primary got the lock's ``SET`` and
        its renewals but not the writes before), the record's pipeline did not release it (the record's script, refused,
        or a split save's second pipeline, never sent) and it was held for the rest of its lease: the repair of its
        queue step (``_unqueue_refused``) waited for it ``UNQUEUE_WAIT_SECONDS`` and gave up past them (a lease of 11 s
        at a 10 s socket timeout), the entry left in the new queue beside the held record, the message's redelivery
        waiting as long (``tests/console/test_transfer_refused.py``). The lease's own token is left to its owner:
        ``lock``'s release after it is then answered "not owned", as for a lock another took. Failing, it is made
        again in the background (``redis_release``). Called once the commit's processed marks were taken back
        (``_take_back``, which never raises: a failing one is left to ``redis_release``); until 2026-12-07 (later that
        day) it was called before them: for the take-back's round trip the lock was free while the message's mark,
        landed beside the refused record, still said processed, and a redelivery arriving then took the lock, was
        answered DONE and the message, recorded nowhere, was lost (``tests/store/test_redis_fence_let_go.py``)."""
        unlock = [fence.key, fence.writes]
        try:
            await self._script("unlock", unlock, [fence.token])
        except RedisError as error:
            self._unlock_again("lock", fence.token, fence.conversation_id, error)

    async def _told_after_record(
        self, kept: list[HeldWrite], spans: list[tuple[int, int, Check | None]], answers: list[Any]
    ) -> bool:
        """The second part of a split save (``HeldWrite.cut``: an ending, a set left), its record answered written,
        whose only refused writes are events' publishes (the lock lost between the two pipelines): those events tell
        of writes that were kept (the record, the entries before it), so they are published now, unfenced, and the
        commit stands (True). Since 2026-12-07: until then the flush raised LockLost for an ending that was made, its
        events after the record (``FlagRaised``, ``QueueChanged``) never published, the console's cards stale until
        the next event (``tests/store/test_redis_fence_slots.py``). False, nothing done, when another write was
        refused (written nowhere: LockLost, as before)."""
        told: list[Published] = []
        for write, (start, end, _) in zip(kept, spans, strict=True):
            refused = any(answer in (FENCED, _FENCED_BYTES) for answer in answers[start:end])
            if refused and write.published is None:
                return False
            if refused and write.published is not None:
                told.append(write.published)
        async with ordered(self._redis) as pipe:
            for published in told:
                Published(published.channel, published.messages).queue(pipe)
            await pipe.execute()
        return True

    async def _unqueue_refused(
        self, conversation_id: str, wrote: tuple[str, str] | None = None, moved: bool = False
    ) -> None:
        """A queue entry written under a lock whose commit was then refused (a hand-off's, a transfer's, a hand-back's:
        its entry is sent before the record; slot ``{queue}``, which cannot read the lock), made to agree
        with the record again: under the conversation's lock taken again (every writer of a record holds it, and a
        record in the bot's flow or ended has no entry outside its holder's commit), the entry is removed when the
        record is in the bot's flow, ended or missing. A record queued or held: the entry ``wrote`` (noted only under a
        console's action, ``_Fence.undo``: a transfer's ``enqueue``, a hand-back's ``requeue``; the last the
        commit wrote: its queue, its member's rank and arrival), still waiting there, is put back as the record says
        (``put_back``, one script): held by its listener, its entry taken by them again in the queue and at the arrival
        the record names; waiting, at its place in the queue the record names. The move listed under that lock
        (``moved``: ``begin_move``, a transfer's, an automatic hand-back's) is unlisted in the same step, so the alert
        check has nothing to complete. A record whose entry moved on meanwhile (the next holder handed it back, took it
        or transferred it), or that agrees with the entry written (its move completed), keeps it: a young person is
        never left out of the queue. Since 2026-12-07: until then the entry stayed beside a record in the bot's flow
        (listed, counted in the wait estimate and the console's board, a listener's take refused ``not_active``) until
        the message was processed again, or the abandon timer when the redo ended otherwise
        (``tests/store/test_redis_fence_slots.py``); and (a later fix of that day) a refused transfer's entry waited in
        its new queue beside a record still held (or waiting in the old queue), its listing kept, until the next alert
        check completed the transfer the console had answered 503 "try again" (``transfer_completed``), the retry
        with the same key refused ``same_queue`` (``tests/console/test_transfer_refused.py``). In a task of its own
        (the refused holder's fence and batch are not its); the lock not had within ``UNQUEUE_WAIT_SECONDS`` or Redis
        failing, it is said and left to those, as before (the check completes the move)."""

        async def repair() -> str:
            async with self.lock(conversation_id, timeout=UNQUEUE_WAIT_SECONDS):
                found = await self.get_conversation(conversation_id)
                if found is None or not found.active or found.status == Status.BOT:
                    removed = await self._script(
                        "remove_from_queue", [K.QUEUE + "entries"], [K.QUEUE, conversation_id, "0"]
                    )
                    return "removed (its record not waiting)" if removed else ""
                held = found.status == Status.WITH_LISTENER
                if wrote is None or found.queue is None or found.queued_at is None or (held and not found.listener):
                    return ""
                rank, at = str(found.priority.rank), f"{to_us(found.queued_at):020d}"
                if not held and (found.queue, f"{rank}:{at}:") == wrote:
                    return ""  # the record names the entry written: its move was completed meanwhile
                taker = found.listener if held and found.listener else ""
                entry = QueueEntry(conversation_id, found.queue, found.priority, found.queued_at,
                                   taken_by=taker or None, flag=found.flag)  # fmt: skip
                keys = [K.QUEUE + "entries", K.QUEUE + "seq", K.QUEUE + "names", K.QUEUE + "moving"]
                args = [K.QUEUE, conversation_id, *wrote, dumps(encode_queue_entry(entry)), found.queue, rank, at,
                        taker, "1" if moved else "0"]  # fmt: skip
                put = await self._script("put_back", keys, args)
                return f"put back as its record says ({'held' if held else 'waiting'})" if put else ""

        try:
            done = await asyncio.create_task(repair())
        except (StoreError, RedisError) as error:
            log.warning("queue: conversation %s's entry written by a refused commit was not checked (%s): left to "
                        "the message's next processing or the alert check", conversation_id,
                        error_class(error))  # fmt: skip
            return
        if done:
            log.warning("queue: conversation %s's entry written by a refused commit %s", conversation_id, done)

    async def _take_back(self, conversation_id: str, marks: list[tuple[int, str, int]]) -> None:
        """The processed marks written by a commit whose conversation's writes were refused (fenced), taken back
        (``seen_unmark``; since 2026-12-07): the lock's key lost before its lease ended (a failover to a replica the
        lock's ``SET`` had not reached) refuses the record while the mark's deadline has not passed, and the mark
        (slot ``{seen}``, which cannot read the lock) landed: until then the message was taken for processed (a
        redelivery DONE) and recorded nowhere. Safe: a mark replaces its message's claim in one step and a claim is
        set only where no mark is, so nobody has claimed the message since this mark; the one taken back leaves a
        lapsed claim naming the conversation in its place, and the next delivery's claim reads that conversation's
        processed marks (its record's slot): DONE if another holder recorded the message meanwhile (its claim lost
        with the lock), else claimed and processed once. One that fails is made again in the background until Redis
        answers (``redis_release``: it refuses nothing, made twice it changes nothing); meanwhile a redelivery is
        answered DONE, as before this change."""
        for _, key, until_ms in marks:
            day, digest = until_ms // 86_400_000, seen_digest(key)
            keys = [K.seen_claim(key), K.seen_marks(day, K.seen_shard(digest))]
            args = [digest, conversation_id, int(CLAIM_KEPT.total_seconds()), K.SEEN]
            try:
                await self._script("seen_unmark", keys, args)
            except RedisError as error:
                self._releases.again(
                    "processed mark", error, functools.partial(self._script, "seen_unmark", keys, args)
                )

    @_guarded
    async def ping(self) -> None:
        """A write that writes nothing (``SET`` of a key never made, ``XX``), refused as every write is by a Redis
        that answers PING and reads: full under ``noeviction`` (OOM), a replica (READONLY)."""
        await self._redis.set(READY, "", xx=True)

    @_guarded
    async def server_time(self) -> datetime:
        """Redis's ``TIME`` (``HasTime``): the time every instance on this Redis sets its clock on."""
        seconds, micros = await self._redis.time()
        return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(micros))

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        """``HasTime``: an inbound message's claim (its lease's start and end) is read on ``clock``, the app's (set
        on Redis's ``TIME``). Until 2026-12-07 it read this host's clock: a host more than 2/3 of the claim's lease
        ahead took over a live claim (``tests/test_clock_skew.py``)."""
        self._clock = clock

    def require_replicas(
        self, replicas: int, timeout: float, on_outcome: Callable[[bool, int], None] | None = None
    ) -> None:
        """``GATEWAY_REDIS_REPLICA_ACKS``: :meth:`replicated` waits for ``replicas`` replicas, ``timeout`` s at most
        (``redis_replicas.py``); not for a Cluster client (a ``WAIT`` is one node's)."""
        if self._batcher is None:
            raise ConfigError("GATEWAY_REDIS_REPLICA_ACKS is not for a Redis Cluster")
        self._replica_acks = ReplicaAcks(self._client, replicas, timeout, on_outcome)

    @_guarded
    async def replicated(self) -> None:
        """Once everything written before the call reached the replicas :meth:`require_replicas` asked for (none
        asked: at once); ReplicasBehind when they did not confirm in time, StoreError when Redis did not answer."""
        if self._replica_acks is not None:
            await self._replica_acks.confirm()

    @_guarded
    async def eviction_policy(self) -> str | None:
        """Read from ``INFO memory`` (managed services often refuse ``CONFIG``); a Cluster's nodes each answer."""
        info = await self._redis.info("memory")
        answers = [info] if "maxmemory_policy" in info else [a for a in info.values() if isinstance(a, dict)]
        evicting = sorted({str(a.get("maxmemory_policy", NOEVICTION)) for a in answers} - {NOEVICTION})
        return ", ".join(evicting) or None

    @_guarded
    async def client_limits(self) -> ClientLimits:
        """``maxclients`` from ``CONFIG GET``, else (a managed Redis refusing CONFIG: NOPERM, renamed away) from
        ``INFO clients`` (Redis 7 and later); ``connected_clients`` from ``INFO clients``. A Cluster: neither (its
        nodes each have their own; ``gateway doctor`` does not check them). Since 2026-12-07."""
        if self._batcher is None:
            return ClientLimits(None, None)
        info = await self._client.info("clients")  # not batched: a refusal is this call's alone
        connected = info.get("connected_clients")
        try:
            told = (await self._client.config_get("maxclients")).get("maxclients")
        except ResponseError:  # refused (NoPermissionError among them) or unknown: the INFO line, if any
            told = info.get("maxclients")
        return ClientLimits(int(told) if told is not None else None, int(connected) if connected is not None else None)

    @property
    def closed(self) -> bool:
        return self._closed

    def watch_releases(
        self, on_outcome: Callable[[str], None], on_failure: Callable[[Exception], None] | None = None
    ) -> None:
        self._releases.on_outcome = on_outcome
        self._releases.on_failure = on_failure

    def releases_problem(self) -> dict[str, float] | None:
        return self._releases.problem()

    def workers(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """Behind Sentinel, the pool's check of the primary (``store-primary``, ``redis_pool.py``), the lock renewals'
        pool's in the same worker (since 2026-12-07); else nothing. A Cluster client has no such pool (it follows its
        nodes itself)."""
        renewals = getattr(self._renewals, "connection_pool", None)
        return primary_followers(getattr(self._client, "connection_pool", None), "store-primary", renewals)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._people_given_up()
            await self._releases.close()
            if self._replica_acks is not None:
                await self._replica_acks.close()
            await self._events.close()
            if self._batcher is not None:
                await self._batcher.close()
            if self._renewing is not None:
                await self._renewing.close()
            if self._renewals is not None:
                await self._renewals.aclose(close_connection_pool=True)
            # The pool is ours (``open``): redis-py closes only the pools it made, so without this every
            # connection stayed open after shutdown (tests/test_redis_connections.py)
            if isinstance(self._client, RedisCluster):  # see ``open``; its aclose alone may close nothing
                await close_cluster(self._client)
            else:
                await self._client.aclose(close_connection_pool=True)

    # Conversations

    @_guarded
    async def active_conversation(self, channel: ChannelName, sender: str, now: datetime) -> tuple[Conversation, bool]:
        address = self._active_key(channel, sender)
        read = self._address_read.get()  # read with this task's claim (see ``claim``), used once
        self._address_read.set(None)
        for _ in range(5):  # another instance may claim the address first: then its conversation is found
            current = read[1] if read is not None and read[0] == address else await self._redis.get(address)
            read = None
            if current is not None:
                found = await self._live(_text(current))
                if found is not None:
                    self._addressed.set((address, found.id))
                    return found, False
            fresh = Conversation.start(channel, sender, now)
            if await self._start(address, fresh, "" if current is None else _text(current)):
                self._addressed.set((address, fresh.id))
                return fresh, True
        raise Conflict("the sender's conversation kept changing while it was opened")

    async def _live(self, conversation_id: str) -> Conversation | None:
        raw = await self._redis.get(K.conversation(conversation_id))
        found = None if raw is None else self._conversation(raw)
        return found if found is not None and found.active else None

    async def _start(self, address: str, fresh: Conversation, expected: str) -> bool:
        """Record ``fresh`` (with a TTL until its first save), claim the sender's address for it if it still holds
        ``expected`` (none, or an ended or missing conversation), then index it. Lost to another: its record goes."""
        async with ordered(self._redis) as pipe:
            _eval(pipe, "put_conversation", [K.conversation(fresh.id), K.done(fresh.id)],
                  [self._sealed(fresh), "", 0, 0, int(FRESH_KEPT.total_seconds())])  # fmt: skip
            _eval(pipe, "claim_active", [address], [fresh.id, expected])
            claimed = bool((await pipe.execute())[1] == 1)
        if claimed:
            async with ordered(self._redis) as pipe:
                _eval(pipe, "index_conversation", [K.INDEX + "created", K.FLAGGED, K.TOLD],
                      [K.INDEX, fresh.id, to_us(fresh.created_at), str(fresh.status), "", ""])  # fmt: skip
                self._join_person(pipe, fresh)
                await pipe.execute()
        else:
            await self._redis.delete(K.conversation(fresh.id))
        return claimed

    def _active_key(self, channel: ChannelName, sender: str) -> str:
        return _key("active", self._identity(channel, sender))

    def _identity(self, channel: ChannelName, sender: str) -> str:
        """The keyed hash of the sender's identity (``DataKeys.identity``: the address's and the person index's key).
        A message's claim, lock and save each ask it (a new conversation's person index too): made as many keyed
        hashes of the same identity (3.4 a message, 1.2 µs each) until 2026-12-07 (late); now one, kept for the
        message's processing only (``identities.OneMessage``, opened by the dispatcher). From 2026-12-07 (late) to
        2026-12-08 the last one was kept in the calling task's context, the plain sender with it, for the task's whole
        life: a long-lived worker's context held the last identity it asked for, after an erasure too."""
        return identities.identity(self._keys, channel, sender)

    def _person_key(self, conversation: Conversation) -> str | None:
        """The index of the young person's conversations (``K.person``); None for a purged record (no identity)."""
        return K.person(self._identity(conversation.channel, conversation.sender)) if conversation.sender else None

    def _join_person(self, pipe: Pipeline, conversation: Conversation) -> None:
        person = self._person_key(conversation)
        if person is not None:
            _eval(pipe, "person_of", [person], [conversation.id, to_us(conversation.created_at)])

    def _indexes_of(self, conversation: Conversation) -> tuple[str, ...]:
        """The people's and listeners' indexes that may name the conversation (``K.person``, ``K.ended``)."""
        person = self._person_key(conversation)
        return (*([person] if person else []), *([K.ended(conversation.listener)] if conversation.listener else []))

    def _sealed(self, conversation: Conversation) -> bytes:
        return dumps_sealed(self._keys, "conversation", encode_conversation(conversation))

    def _conversation(self, raw: str | bytes) -> Conversation:
        return loads_sealed(self._keys, "conversation", raw, decode_conversation)

    @_guarded
    async def find_active_conversation(self, channel: ChannelName, sender: str) -> Conversation | None:
        conversation_id = await self._redis.get(self._active_key(channel, sender))
        return None if conversation_id is None else await self._live(_text(conversation_id))

    @_guarded
    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        """Under the conversation's lock, the record read when the lock was taken, until this process writes it:
        every writer of a record holds its lock, so nobody else changed it since (``_acquire``)."""
        read = self._read_under_lock.get(conversation_id)
        if read is not None and read[0] is asyncio.current_task():
            if read[1] is None:
                return None
            found = self._conversation(read[1])
            self._indexed_under_lock[conversation_id] = (
                read[0],
                found.status,
                flagged_rank(found),
                told_rank(found),
                found.client,
            )
            return found
        raw = await self._redis.get(K.conversation(conversation_id))
        return None if raw is None else self._conversation(raw)

    @_holdable
    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        """Steps (the module's docstring says why this order): the sender's address claimed (before the flush's
        pipeline, as its answer decides), the indexes joined, the record and its processed mark, the other status
        sets left, an ended conversation's queue entry removed (slot ``{queue}``: a held one's leaves only now, after
        its record, see ``held_by``) and its address freed, the global processed mark.

        The address is not claimed again when this task found it holding this conversation (``active_conversation``,
        the message path: one round trip less): an address moves off an active conversation only once that
        conversation ends, and an ended conversation never becomes active again (``lifecycle.FINAL``)."""
        c, address = conversation, self._active_key(conversation.channel, conversation.sender)
        self._read_under_lock.pop(c.id, None)
        indexed = self._indexed_under_lock.pop(c.id, None)
        now_ms = to_us(datetime.now(UTC)) // 1000
        done_until = now_ms + done.ttl_seconds * 1000 if done is not None else 0
        others = _OTHER_STATUSES[c.status]
        record, indexes = self._sealed(c), [K.INDEX + "created", K.FLAGGED, K.TOLD]
        rank, told = flagged_rank(c), told_rank(c)
        ended = ended_rank(c)
        # The other sets left only when the status or the flagged or told rank changed since the record was read
        # under the lock (most messages change none): that record's own save left them, after writing it. Skipped, a
        # crash's leftover (the id still in a set it left) stays until the next change: an index lists more,
        # never less, and its readers check the record. The join is always made: it is what keeps that rule.
        leave = indexed is None or indexed[:4] != (asyncio.current_task(), c.status, rank, told)
        # the exact set of the client's open ones joined by a save that changes the status or the flag, or marks the
        # client (a fresh conversation's greeting or first message, its status unchanged: since 2026-12-07)
        join = leave or indexed is None or indexed[4] != c.client
        held = not c.active or self._addressed.get() == (address, c.id)
        # Nothing of the conversation's lock's order after the record (no set to leave, no client's set, no address to
        # free, no claim before the flush that could drop the record's write): the lock may go with the record
        unlock: list[str] | None = (
            [] if held and c.active and not leave and (c.client is None or c.status in CLIENT_OPEN) else None
        )

        # An ending made under this task's lock: its writes of other slots after the record (its queue entry, the
        # sender's address, the sets it leaves, the global mark) are sent once the record was answered written, a
        # round trip more for an ending (since 2026-12-07: a record refused, the lock's key lost before its lease
        # ended, took the queue entry and the address of a conversation that still waits). So are an open one's
        # when it leaves a set (its status, flag or told rank changed: a round trip more then, most messages change
        # none): until 2026-12-07 a commit held on its way past the lease, its record refused, still took the
        # conversation out of the status and the flagged index the next holder had saved it in meanwhile
        # (``tests/store/test_redis_fenced_indexes.py``). On one node those writes are one script that runs the fence
        # first (``fenced_steps``, since 2026-12-07): refused, it writes none of them (a failover that lost the record);
        # on a Cluster they are sent only once that fence, sent alone, passed (``gate``, since 2026-12-07)
        split = (not c.active or leave) and _FENCING.get() is not None and _fence_of(c.id) is not None

        def queue(pipe: Pipeline) -> None:
            record_part(pipe)
            after_part(pipe)

        def record_part(pipe: Pipeline) -> None:
            _eval(pipe, "index_conversation", indexes,
                  [K.INDEX, c.id, to_us(c.created_at), str(c.status), "" if rank is None else rank,
                   "" if told is None else told])  # fmt: skip
            if leave:  # read under the lock unchanged, it was saved, so joined, before (``_start`` for a new one)
                self._join_person(pipe, c)
            if ended is not None and c.listener:  # its listener's history, before the record says it ended
                _eval(pipe, "index_of", [K.ended(c.listener)], [c.id, ended, INDEXED_US, INDEXED_S])
            client_open = c.client is not None and c.status in CLIENT_OPEN
            if client_open and c.client is not None:
                pipe.sadd(K.client(c.client), c.id)
            elif c.client is not None and leave:  # the exact set left before the record stops saying open
                pipe.srem(K.client_open(c.client), c.id)
            lock = [unlock[0], K.lock_writes(c.id)] if unlock else []  # the lock, and its count (``_Fence.head``)
            _fenced(pipe, "put_conversation", [K.conversation(c.id), K.done(c.id), *lock],
                    [record, "" if done is None else seen_digest(done.key), done_until, now_ms, 0,
                     *(unlock[1:] if unlock else [])], c.id)  # fmt: skip
            if client_open and c.client is not None:  # the exact set joined with the record (``K.client_open``)
                if self.on_one_node:  # only while the record is this one: a refused write adds nothing. Read under
                    # the lock unchanged (``join`` False: most messages), it was joined by the save before; a miss
                    # (an instance from before) is joined by the gate's read at the cap (``client_at_cap``)
                    if join:
                        digest = hashlib.sha1(record, usedforsecurity=False).hexdigest()
                        _eval(pipe, "client_open_add", [K.conversation(c.id), K.client_open(c.client)],
                              [digest, c.id])  # fmt: skip
                else:  # a Cluster: another slot, joined after, at each save (a crash between: they disagree, read)
                    pipe.sadd(K.client_open(c.client), c.id)

        def after_part(pipe: Pipeline) -> None:
            fence = _fence_of(c.id)
            steps: list[tuple[str, list[str], list[Any]]] = []
            if leave:
                out = ["-" if rank is None else "", "-" if told is None else ""]  # each index left, or as it is
                steps.append(("index_conversation", indexes, [K.INDEX, c.id, 0, "", *out, *others]))
            if not c.active:  # its queue entry after the record (a held one's: ``StatusEffects.finished``)
                steps.append(("remove_from_queue", [K.QUEUE + "entries"], [K.QUEUE, c.id, "0"]))
            if c.client is not None and c.status not in CLIENT_OPEN:
                steps.append(("srem", [K.client(c.client)], [c.id]))
            if not c.active:
                steps.append(("delete_if", [address], [c.id]))
            if done is not None:  # fenced: only while the lease surely held when the record was written
                deadline = "" if fence is None else fence.deadline()
                steps.append(("seen_mark", *_seen_mark(done.key, done_until, "", deadline)))
            # the mark's command's place: taken back if the record was refused all the same (``_take_back``)
            mark = None if fence is None or done is None else (done.key, done_until)
            if fence is not None and split and self.on_one_node:  # one script: refused, it writes none of them
                # (since 2026-12-07: ``redis_lua._FENCED_STEPS``; an ending's record's digest lets its steps run when
                # the lock lapsed but the server holds the ending), answering the mark's answer (the last step)
                keys = [key for _, step_keys, _ in steps for key in step_keys]
                args = [a for name, step_keys, step_args in steps for a in (name, len(step_keys), len(step_args),
                                                                            *step_args)]  # fmt: skip
                digest = "" if c.active else hashlib.sha1(record, usedforsecurity=False).hexdigest()
                if mark is not None:
                    fence.marks.append((len(pipe), *mark))
                fence.fenced(pipe, "fenced_steps", [*keys, K.conversation(c.id)], [len(steps), *args, digest])
                return
            # on a Cluster (no script spans their slots) the steps apart, sent only once the gate passed (``gate``,
            # since 2026-12-07: until then after ``fenced_check`` in this pipeline, which Redis ran all the same when
            # it refused: the waiting young person taken out of the queue, the address freed, by an ending a
            # failover lost; ``tests/store/test_redis_fence_slots.py``)
            for name, step_keys, step_args in steps:
                if name == "srem":
                    pipe.srem(step_keys[0], *step_args)
                else:
                    if name == "seen_mark" and mark is not None and fence is not None:
                        fence.marks.append((len(pipe), *mark))
                    _eval(pipe, name, step_keys, step_args)

        def gate(pipe: Pipeline) -> None:
            """On a Cluster, the fence alone before the writes of other slots (``redis_lua._FENCED_GATE``, since
            2026-12-07), which are sent only once it passed: refused, none of them is (a failover lost the record).
            It passes as ``fenced_steps`` does: the lock its holder's, or an ending's very record on the server (the
            lock lapsed between the two pipelines, the ending kept). What remains: the writes land a round trip
            after the gate's answer, on other nodes, which a failover of the conversation's node then cannot take
            back (as for any write a primary answered and lost before its replica got it: ``require_replicas``)."""
            fence = _fence_of(c.id)
            if fence is not None:
                digest = "" if c.active else hashlib.sha1(record, usedforsecurity=False).hexdigest()
                fence.fenced(pipe, "fenced_gate", [K.conversation(c.id)], [digest])

        # on a Cluster, the gate of the writes after the record (``HeldWrite.gate``): one node runs them in one script
        gated = [] if self.on_one_node else [gate]
        if held:
            gates = [HeldWrite(g, cut=True, gate=True) for g in gated]
            writes = (
                [HeldWrite(record_part, record=c.id), *gates, HeldWrite(after_part, cut=True)]
                if split
                else [HeldWrite(queue, unlock=unlock, record=c.id)]
            )
            batch = self._batch()
            if batch is not None:
                batch.extend(writes)
            else:
                await self._send(writes)
        elif split:  # the address claimed first, once for both parts: refused, neither is sent
            claimed: list[Exception | None] = []

            async def claim() -> Exception | None:
                if not claimed:
                    claimed.append(await self._claim_address(address, c.id))
                return claimed[0]

            gates = [HeldWrite(g, before=claim, cut=True, gate=True) for g in gated]
            writes = [HeldWrite(record_part, before=claim, record=c.id), *gates]
            writes.append(HeldWrite(after_part, before=claim, cut=True))
            batch = self._batch()
            if batch is not None:
                batch.extend(writes)
            else:
                await self._send(writes)
        else:
            await self._write(queue, before=lambda: self._claim_address(address, c.id))

    async def _claim_address(self, address: str, conversation_id: str) -> Exception | None:
        """The sender's address for an active conversation: claimed, unless another live conversation holds it."""
        held = await self._script("claim_active", [address], [conversation_id, ""])
        if held == 1:
            return None
        holder = _text(held)
        if await self._live(holder) is None and await self._script("claim_active", [address],
                                                                    [conversation_id, holder]) == 1:  # fmt: skip
            return None
        return Conflict("another conversation of this sender is already active")

    @_guarded
    async def conversations_by_status(self, status: Status) -> list[Conversation]:
        ids = _texts(await self._redis.smembers(K.status(str(status))))
        found = await self._conversations(sorted(ids))
        return sorted((c for c in found if c.status == status), key=lambda c: (c.created_at, c.id))

    @_guarded
    async def conversation_ids_by_status(self, status: Status) -> set[str]:
        """The status's set (``K.status``): one ``SMEMBERS``, no record read."""
        return set(_texts(await self._redis.smembers(K.status(str(status)))))

    @_guarded
    async def open_conversations_of_client(self, client: str) -> int:
        """The client's set lists more, never less (``save_conversation``): each record it names is checked, and
        the ids of ended or missing ones (a crash between a record's last save and its removal) are dropped."""
        return await self._open_of_client(client)

    @_guarded
    async def client_at_cap(self, client: str, cap: int) -> bool:
        """One script (``client_count``) reads the client's set (lists more, never fewer: shorter than ``cap``, it
        answers alone) and its exact set (``K.client_open``: lists fewer, never more): listing the same ids, that is
        the count, no record read. Since
        2026-12-07 (later that day); until then, from the same day, the set alone below the cap and at the cap one
        ``GET`` per listed id every try (a full school's held pages: ~cap ``GET`` a try; before, every try). The two
        disagree after a crash between a set's write and the record's, or an instance from before the exact set
        (which writes the set alone): the set shorter than the cap says "below" alone, else each record it or the
        exact set lists is read and decides, as :meth:`open_conversations_of_client` does, the leftovers dropped
        from both (and, on one node, the open ones the exact set misses joined, each only while its record is the
        one read): never a "full" that the records do not say, never a "below" when ``cap`` are open. At the cap the
        records are read too once every :data:`CLIENT_READ_MS` (``K.client_read``): what a fault left listed in both
        (a commit held past its lease on a Cluster: its set joined after its refused record) is counted that long
        at most."""
        keys = [K.client(client), K.client_open(client), K.client_read(client)]
        listed, exact = await self._script("client_count", keys, [cap, CLIENT_READ_MS])
        if exact >= 0:
            return bool(exact >= cap)
        if listed < cap:
            return False
        return await self._open_of_client(client, repair=True) >= cap

    async def _open_of_client(self, client: str, *, repair: bool = False) -> int:
        """The records the client's set lists, read: how many are open, the leftovers dropped. ``repair`` (the gate's
        read when the two sets disagree): the exact set's own ids read too, its leftovers dropped, and on one node
        the open ones it misses joined (``client_open_add``: only while the record is the one read)."""
        ids = sorted(_texts(await self._redis.smembers(K.client(client))))
        exact = sorted(_texts(await self._redis.smembers(K.client_open(client)))) if repair else []
        every = sorted({*ids, *exact})
        raws = await _get_each(self._redis, [K.conversation(i) for i in every]) if every else []
        found = {i: None if raw is None else self._conversation(raw) for i, raw in zip(every, raws, strict=True)}
        stale = [i for i in ids if (c := found[i]) is None or not c.active]
        if stale:  # an ended conversation never opens again: its id cannot be wanted back
            await self._redis.srem(K.client(client), *stale)
        opened = {i for i in every if (c := found[i]) is not None and c.client == client and c.status in CLIENT_OPEN}
        if repair:
            gone = [i for i in exact if i not in opened]
            if gone:
                await self._redis.srem(K.client_open(client), *gone)
            missed = [i for i in sorted(opened) if i not in exact] if self.on_one_node else []
            if missed:
                async with ordered(self._redis) as pipe:
                    for i, raw in zip(every, raws, strict=True):
                        if i in missed:
                            sealed = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
                            digest = hashlib.sha1(sealed, usedforsecurity=False).hexdigest()
                            _eval(pipe, "client_open_add", [K.conversation(i), K.client_open(client)], [digest, i])
                    await pipe.execute()
        return len(opened)

    @_guarded
    async def flagged_conversations(self, limit: int) -> list[Conversation]:
        """The flagged index's latest ids (``K.FLAGGED``), a page at a time, each record read and checked: an ended
        or missing one (a crash between a record's last save and the step after it) leaves the index (it never
        opens again), one not flagged yet is skipped (its record is being written, joined first). A store written
        before the index has it made first, once (``_make_flagged``)."""
        page = limit + 1  # the mark (score 0) comes last
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(K.FLAGGED, K.FLAGGED_MADE)
            pipe.zrevrange(K.FLAGGED, 0, page - 1)
            made, listed = await pipe.execute()
        if made is None:
            await self._make_flagged()
            listed = await self._redis.zrevrange(K.FLAGGED, 0, page - 1)
        shown: list[Conversation] = []
        start = 0
        while True:
            ids = [i for i in _texts(listed) if i != K.FLAGGED_MADE]
            found = await self._conversations_or_none(ids)
            shown += [c for c in found if c is not None and flagged_rank(c) is not None][: limit - len(shown)]
            if gone := [i for i, c in zip(ids, found, strict=True) if c is None or not c.active]:
                await self._redis.zrem(K.FLAGGED, *gone)
            if len(shown) >= limit or len(listed) < page:
                return shown
            start += len(listed) - len(gone)
            listed = await self._redis.zrevrange(K.FLAGGED, start, start + page - 1)

    async def _make_flagged(self) -> None:
        """The flagged index made from the open conversations (the scan the index spares every later read), then
        marked made: once per store. Made twice at once by two instances, it holds the same; a conversation that
        ends meanwhile may stay listed, and leaves at a read (``flagged_conversations``)."""
        for status in sorted(ACTIVE_STATUSES):
            ids = sorted(_texts(await self._redis.smembers(K.status(str(status)))))
            for n in range(0, len(ids), 500):
                ranks = {c.id: rank for c in await self._conversations(ids[n : n + 500])
                         if (rank := flagged_rank(c)) is not None}  # fmt: skip
                if ranks:
                    await self._redis.zadd(K.FLAGGED, ranks)
        await self._redis.zadd(K.FLAGGED, {K.FLAGGED_MADE: 0})

    @_guarded
    async def told_closed_waiting(self) -> int:
        """The told index's size (``K.TOLD``: one ``ZCARD``, its mark left out), no record read; a store written
        before the index has it made first, once (``_make_told``)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(K.TOLD, K.FLAGGED_MADE)
            pipe.zcard(K.TOLD)
            made, count = await pipe.execute()
        if made is None:
            await self._make_told()
            count = await self._redis.zcard(K.TOLD)
        return max(int(count) - 1, 0)

    async def _make_told(self) -> None:
        """The told index made from the waiting records (the scan the index spares every later count), then marked
        made: once per store, as ``_make_flagged``. One taken meanwhile may stay listed until its next save."""
        ids = sorted(_texts(await self._redis.smembers(K.status(str(Status.QUEUED)))))
        for n in range(0, len(ids), 500):
            ranks = {c.id: rank for c in await self._conversations(ids[n : n + 500])
                     if (rank := told_rank(c)) is not None}  # fmt: skip
            if ranks:
                await self._redis.zadd(K.TOLD, ranks)
        await self._redis.zadd(K.TOLD, {K.FLAGGED_MADE: 0})

    @_guarded
    async def note_read_late(self, conversation_id: str, at: datetime) -> None:
        """One transaction in slot ``{index}``: joined, those older than ``READ_LATE_HOURS`` and past the
        ``READ_LATE_KEPT`` latest dropped."""
        at_us = to_us(at)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(K.READ_LATE, {conversation_id: at_us})
            pipe.zremrangebyscore(K.READ_LATE, "-inf", f"({at_us - READ_LATE_HOURS * 3600 * 1_000_000}")
            pipe.zremrangebyrank(K.READ_LATE, 0, -READ_LATE_KEPT - 1)
            await pipe.execute()

    @_guarded
    async def read_late(self, since: datetime, limit: int) -> list[Conversation]:
        """The list's latest ids since ``since``, ``limit`` records read; one whose record is gone leaves it."""
        ids = _texts(await self._redis.zrevrangebyscore(K.READ_LATE, "+inf", to_us(since), start=0, num=limit))
        found = await self._conversations_or_none(ids)
        if gone := [i for i, c in zip(ids, found, strict=True) if c is None]:
            await self._redis.zrem(K.READ_LATE, *gone)
        return [c for c in found if c is not None]

    @_guarded
    async def forget_read_late(self, conversation_id: str) -> bool:
        return bool(await self._redis.zrem(K.READ_LATE, conversation_id))

    @_guarded
    async def ended_with(self, listener: str, since: datetime, until: datetime, limit: int) -> list[Conversation]:
        """The listener's index (``K.ended``), latest first, a page at a time, each record read and checked (the
        index lists more, never less: one whose record is gone leaves it); read until ``limit`` are found and the
        ids after them ended earlier (those ending at the same µs are ordered as the history orders them)."""
        await self._people_made()
        key, start, page = K.ended(listener), 0, limit + 1
        found: list[Conversation] = []
        while True:
            listed = cast(list[tuple[bytes | str, float]], await self._redis.zrevrangebyscore(
                key, "+inf", to_us(since), start=start, num=page, withscores=True
            ))  # fmt: skip
            if not listed or (len(found) >= limit and listed[0][1] < (ended_rank(found[limit - 1]) or 0)):
                break
            ids = [_text(i) for i, _ in listed]
            records = await self._conversations_or_none(ids)
            if gone := [i for i, c in zip(ids, records, strict=True) if c is None]:
                await self._redis.zrem(key, *gone)
            found += [c for c in records if c is not None and c.listener == listener and not c.active
                      and since <= c.created_at < until]  # fmt: skip
            found.sort(key=lambda c: (-(ended_rank(c) or 0), c.created_at, c.id))
            if len(listed) < page:
                break
            start += len(listed) - len(gone)
        return found[:limit]

    @_guarded
    async def conversations_of(
        self, channel: ChannelName, sender: str, since: datetime, until: datetime, limit: int
    ) -> list[Conversation]:
        """The person's index (``K.person``), latest first, a page at a time, each record read and checked: an id
        whose record is gone (erased) or names nobody (purged: a cut between its record and its leaving) leaves."""
        if not sender:
            return []
        return await self._of_person(self._keys.identity(channel, sender), f"({to_us(until)}", to_us(since), limit,
                                     lambda c: c.channel == channel and c.sender == sender)  # fmt: skip

    @_guarded
    async def conversations_keyed(self, identity: str, limit: int) -> list[Conversation]:
        """:meth:`conversations_of`'s index (``K.person``) under ``identity`` itself, each record checked."""
        return await self._of_person(identity, "+inf", "-inf", limit,
                                     lambda c: self._keys.identity(c.channel, c.sender) == identity)  # fmt: skip

    async def _of_person(
        self, identity: str, high: str, low: str | int, limit: int, theirs: Callable[[Conversation], bool]
    ) -> list[Conversation]:
        """The person's index under the keyed hash ``identity``: records scored (created, µs) from ``high`` down to
        ``low``, latest first, those naming them (``theirs``) kept; an id whose record is gone or names nobody
        leaves, and so does the note of an erasure cut after its record (``K.UNINDEXING``, since 2026-12-07)."""
        await self._people_made()
        key, start, page = K.person(identity), 0, limit + 1
        found: list[Conversation] = []
        while len(found) < limit:
            listed = _texts(await self._redis.zrevrangebyscore(key, high, low, start=start, num=page))
            records = await self._conversations_or_none(listed)
            if gone := [i for i, c in zip(listed, records, strict=True) if c is None or not c.sender]:
                async with ordered(self._redis) as pipe:  # one slot: the index, then what an erasure cut noted
                    pipe.zrem(key, *gone)
                    pipe.hdel(K.UNINDEXING, *gone)
                    await pipe.execute()
            found += [c for c in records if c is not None and c.sender and theirs(c)]
            if len(listed) < page:
                break
            start += len(listed) - len(gone)
        return found[:limit]

    @_guarded
    async def _people_new(self) -> None:
        """A store holding no conversation yet has nothing to make the people's and listeners' indexes, nor the
        conversations' uploads, claims and outbox items (``K.uploads``, ``K.claims_of``, ``K.items_listed``), from:
        marked made at once (``K.PEOPLE_MADE``, ``K.PEOPLE_MADE_2``, ``K.UPLOADS_MADE``, ``K.CLAIMS_MADE``,
        ``K.ITEMS_MADE``)."""
        marks = (K.PEOPLE_MADE, K.PEOPLE_MADE_2, K.UPLOADS_MADE, K.CLAIMS_MADE, K.ITEMS_MADE)
        made = [await self._redis.exists(mark) for mark in marks[1:]]  # PEOPLE_MADE: set with PEOPLE_MADE_2
        if not all(made) and not await self._redis.zcard(K.INDEX + "created"):
            now = to_us(datetime.now(UTC))
            for mark in marks:
                await self._redis.set(mark, now, nx=True)

    async def _people_made(self) -> None:
        """A store written before the people's and listeners' indexes, or before 2026-12-06 (31 days of each
        person's, with a TTL), has them made once (``_make_people``): by one pass that the reads coming meanwhile
        wait for (shielded: a read given up leaves it going on), another one after a pass that failed. Until
        2026-12-06 each read coming meanwhile made them all again."""
        if self._people_known:
            return
        making = self._people_making
        if making is None or (making.done() and (making.cancelled() or making.exception() is not None)):
            making = self._people_making = asyncio.ensure_future(self._people_checked())
            making.add_done_callback(self._people_ended)
        await asyncio.shield(making)
        self._people_known = True

    def _people_ended(self, making: asyncio.Future[None]) -> None:
        """The indexes' pass ended: a failure is said here, once, by class (and place, for a bug), and counted
        (``watch_people``), whoever waited for it; the next read starts another pass. Until 2026-12-06 a pass failing
        after all its reads gave up was seen by nobody ("Task exception was never retrieved", at best, later)."""
        if making.cancelled() or (error := making.exception()) is None:
            return
        kind = error_class(error)
        if isinstance(error, RedisError | StoreError):
            log.warning("redis: making the people's and listeners' indexes failed with %s: the next person read makes"
                        " them again", kind)  # fmt: skip
        else:
            log.error("redis: making the people's and listeners' indexes failed with %s at %s: the next person read"
                      " makes them again", kind, where(error))  # fmt: skip
        self._on_people_failure(kind)

    def watch_people(self, on_failure: Callable[[str], None]) -> None:
        """``on_failure`` is told the error's class of each failed pass making the indexes (``_people_made``): the app
        counts them in ``gateway_store_failures{part="people_indexes"}``."""
        self._on_people_failure = on_failure

    async def _people_given_up(self) -> None:
        """The indexes' pass still going at the close, its reads given up (an instance stopping): ended here, before
        the connections, its outcome read (the next instance makes them; ``K.PEOPLE_MADE_2`` is set last). Until
        2026-12-06 it went on on the closed store, failed there, and its error, read by nobody, was written at some
        later moment ("Task exception was never retrieved")."""
        making = self._people_making
        if making is None:
            return
        making.cancel()
        await asyncio.wait([making])  # the close's own cancellation goes on through it
        if not making.cancelled():
            making.exception()  # read: ended before the cancel, in a failure its reads have given up on

    async def _people_checked(self) -> None:
        if not await self._redis.exists(K.PEOPLE_MADE_2):
            await self._make_people()

    async def _make_people(self) -> None:
        """``K.person`` made from every conversation still naming its person (each record read once, 500 at a
        time: an erasure reads it alone, so it must hold every one), the TTL a 31-day index left removed; ``K.ended``
        from those created in the last ``INDEXED_DAYS`` before the latest, unless made before (``K.PEOPLE_MADE``);
        then marked made. Made twice at once by two instances, they hold the same (the same scores); a conversation
        erased or purged meanwhile may stay listed, and leaves at a read (its record gone, or naming nobody)."""
        ended_too = not await self._redis.exists(K.PEOPLE_MADE)
        latest = await self._redis.zrevrange(K.INDEX + "created", 0, 0, withscores=True)
        if latest:
            recent = int(latest[0][1]) - INDEXED_US
            ids = _texts(await self._redis.zrange(K.INDEX + "created", 0, -1))
            for n in range(0, len(ids), 500):
                async with ordered(self._redis) as pipe:
                    for c in await self._conversations(ids[n : n + 500]):
                        self._join_person(pipe, c)
                        ended = ended_rank(c)
                        if ended_too and ended is not None and c.listener and to_us(c.created_at) >= recent:
                            _eval(pipe, "index_of", [K.ended(c.listener)], [c.id, ended, INDEXED_US, INDEXED_S])
                    await pipe.execute()
        now = to_us(datetime.now(UTC))
        await self._redis.set(K.PEOPLE_MADE, now)
        await self._redis.set(K.PEOPLE_MADE_2, now)

    @_guarded
    async def list_conversations(self, since: datetime, until: datetime) -> list[Conversation]:
        ids = await self._redis.zrangebyscore(K.INDEX + "created", to_us(since), f"({to_us(until)}")
        return await self._conversations(_texts(ids))

    async def _conversations(self, ids: list[str]) -> list[Conversation]:
        return [c for c in await self._conversations_or_none(ids) if c is not None]

    async def _conversations_or_none(self, ids: list[str]) -> list[Conversation | None]:
        """Each record, None where there is none, in the order of ``ids``: read and decoded ``PART`` at a time, the
        event loop turning between the parts (a read's answer waited for; until 2026-12-06 one block: 20,000 records
        held the loop 2–3 s, the pipeline's answer parsed and every record decoded before anything else ran)."""
        found: list[Conversation | None] = []
        for start in range(0, len(ids), PART):
            raws = await _get_each(self._redis, [K.conversation(i) for i in ids[start : start + PART]])
            found += [None if raw is None else self._conversation(raw) for raw in raws]
        return found

    # Transcripts

    def share_texts(self, own: OwnTexts) -> None:
        self._texts.allow(own)

    @_holdable
    async def append_transcript(self, entry: TranscriptEntry) -> None:
        """The shared text (if any), then the entry in its conversation's transcript (written once), then its
        provider id in the day's index: nothing ever points to what was not written. The head keeps the provider id's
        digest (``provider_digest``), never the id."""
        pmid = entry.provider_message_id or ""
        shared = self._texts.reference(entry)
        head = f"{entry.id}\n{_DELIVERY_CODES[entry.delivery]}{provider_digests(pmid)}\n".encode()
        # the list is the conversation's: its id is not repeated in each entry (an entry moved here keeps it)
        value = head + self._keys.seal("entry", encode_entry_data(entry, shared, conversation_id=""))

        def queue(pipe: Pipeline) -> None:
            if shared is not None:  # its text first: never a reference to nothing
                pipe.hsetnx(_key("texts"), shared.ref, shared.sealed)
            _fenced(
                pipe, "put_entry", K.transcript_keys(entry.conversation_id), [entry.id, value], entry.conversation_id
            )
            for provider_id in provider_ids(pmid):  # each part's, of a reply sent in parts
                redis_providers.add(pipe, provider_id, entry.conversation_id)

        held = None if pmid else HeldEntry(entry.id, entry.conversation_id, value, shared)
        await self._write(queue, entry=held, conversation=entry.conversation_id)

    @_guarded
    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        values = _texts(await self._redis.lrange(K.transcript(conversation_id), 0, -1))
        shared = self._texts.get
        return await self._texts.decoded_in_parts(
            values, lambda value: _entry(conversation_id, value, self._keys, shared), self._shared_texts, PART
        )

    @_guarded
    async def entries_written(self, conversation_id: str, entry_ids: Sequence[str]) -> set[str]:
        if not entry_ids:
            return set()
        found = await self._script("entries_written", K.transcript_keys(conversation_id), list(entry_ids))
        return set(_texts(found))

    async def _shared_texts(self) -> Stored:
        found = await self._redis.hgetall(_key("texts"))
        return [(_text(ref), sealed) for ref, sealed in found.items()]

    @_guarded
    async def set_delivery(
        self, conversation_id: str, entry_id: str, delivery: Delivery, provider_message_id: str | None = None
    ) -> bool:
        args = [entry_id, _DELIVERY_CODES[delivery], provider_digests(provider_message_id)]
        async with ordered(self._redis) as pipe:
            _eval(pipe, "set_delivery", K.transcript_keys(conversation_id), args)
            for provider_id in provider_ids(provider_message_id):  # indexed even if the entry is gone: it names
                redis_providers.add(pipe, provider_id, conversation_id)  # nothing then (erasure: both go)
            found = (await pipe.execute())[0] == 1
        return bool(found)

    @_guarded
    async def advance_delivery(self, conversation_id: str, entry_id: str, delivery: Delivery) -> bool:
        """One script of the conversation's slot: the entry's status read and changed together."""
        args = [entry_id, _DELIVERY_CODES[delivery]]
        return bool(await self._script("advance_delivery", K.transcript_keys(conversation_id), args) == 1)

    @_guarded
    async def advance_part(
        self, conversation_id: str, entry_id: str, provider_message_id: str, delivery: Delivery
    ) -> Delivery | None:
        """One script of the conversation's slot (``advance_part``): the entry's status, and its parts', read and
        changed together. The part is found by the id or its digest (a head written before 2026-12-07 holds ids)."""
        args = [entry_id, _DELIVERY_CODES[delivery], provider_message_id, provider_digest(provider_message_id)]
        shown = await self._script("advance_part", K.transcript_keys(conversation_id), args)
        return _DELIVERIES.get(_text(shown)) if isinstance(shown, bytes | str) else None

    @_guarded
    async def mark_until(self, conversation_id: str, until: datetime, delivery: Delivery) -> list[str]:
        """One script of the conversation's slot (``mark_until``): only the entries awaiting a read receipt up to
        ``until`` are read (``redis_keys.transcript_unread``), never the transcript; a watermark meeting one still
        pending is kept there (``redis_keys.kept_watermark``) for its record."""
        if delivery not in (Delivery.DELIVERED, Delivery.READ):
            raise ValueError(f"a watermark marks entries delivered or read, not {delivery}")
        keys = [*K.transcript_keys(conversation_id), K.kept_watermark(conversation_id)]
        args = [to_us(until), _DELIVERY_CODES[delivery], int(RECEIPT_KEPT_SECONDS * 1000)]
        changed = await self._script("mark_until", keys, args)
        if changed is None and await self._make_unread(conversation_id):
            changed = await self._script("mark_until", keys, args)
        return [_text(i) for i in changed or ()]

    async def _make_unread(self, conversation_id: str) -> bool:
        """The conversation's set of replies awaiting a read receipt, marked made (``unread_made``): for one created
        before this store had such sets (``K.UNREAD_SINCE``), its replies sent and not read are added from its
        transcript first (recorded by an earlier version, they were never added: a watermark would never mark
        them); read once per conversation, as ``hg:ti:`` is made again from the list. False when there is nothing
        to mark (no transcript, or no reply awaiting a receipt yet). A transcript without a record (a record lost,
        a store filled by hand) counts as created before."""
        raw, since = await self._redis.get(K.conversation(conversation_id)), self._unread_since
        awaiting: list[Any] = []
        before = raw is None or since is None or to_us(self._conversation(raw).created_at) < since
        if before:
            for entry in await self.transcript(conversation_id):
                if entry.author in _REPLIES and entry.delivery in _UNREAD:
                    awaiting += [entry.id, to_us(entry.at)]
        made = await self._script(
            "unread_made", K.transcript_keys(conversation_id), ["1" if before else "0", *awaiting]
        )
        return bool(made == 1)

    @_guarded
    async def flag_entry(self, conversation_id: str, entry_id: str, flag: RiskFlag) -> bool:
        """The entry read, its data opened, flagged and sealed again, then set in its transcript (one key, the
        conversation's slot) while its data is still the one read, else read again (a reseal rewrote it)."""
        keys = K.transcript_keys(conversation_id)
        for _ in range(FLAG_TRIES):
            found = await self._script("get_entry", keys, [entry_id])
            if not found:
                return False
            value = _text(found)
            data = value.split("\n", 2)[2]
            raw = self._keys.open("entry", data)
            flagged = flagged_entry_data(raw, flag)
            if flagged is None or flagged == raw:
                return flagged is not None
            if await self._script("set_entry_data", keys, [entry_id, data, self._keys.seal("entry", flagged)]):
                return True
        raise StoreError("a transcript entry kept changing while its flag was written")

    @_guarded
    async def find_by_provider_id(self, provider_message_id: str) -> TranscriptEntry | None:
        """The conversation from the provider id's day indexes (``redis_providers.py``), then the entry of its
        transcript whose head holds the id's digest, or the id (written before 2026-12-07), read from the end: not the
        whole transcript."""
        async with self._redis.pipeline(transaction=False) as pipe:
            redis_providers.find(pipe, provider_message_id)
            found = next((_text(v) for v in await pipe.execute() if v is not None), None)
        if found is None:
            return None
        args = [provider_message_id, provider_digest(provider_message_id)]
        value = await self._script("entry_by_provider", [K.transcript(found)], args)
        if not value:
            return None
        shared = self._texts.get
        entries = await self._texts.decoded(
            lambda: [_entry(found, _text(value), self._keys, shared)], self._shared_texts
        )
        return entries[0]

    @_guarded
    async def keep_receipt(
        self, provider_message_id: str, delivery: Delivery, ttl_seconds: float = RECEIPT_KEPT_SECONDS
    ) -> None:
        """One key per provider id, used alone (its own slot), expiring by itself; the id listed in
        ``KEPT_RECEIPTS`` (another slot) by its expiry, for :meth:`kept_receipts_waiting`."""
        ttl_ms = max(1, int(ttl_seconds * 1000))
        await self._script("keep_receipt", [K.kept_receipt(provider_message_id)], [str(delivery), ttl_ms])
        expires_us = to_us(datetime.now(UTC)) + ttl_ms * 1000
        await self._redis.zadd(K.KEPT_RECEIPTS, {provider_message_id: expires_us}, gt=True)

    @_guarded
    async def kept_receipts_waiting(self, kept_before: datetime, limit: int) -> list[str]:
        """The lapsed ones dropped from the list first (their keys expired by themselves)."""
        now_us = to_us(datetime.now(UTC))
        await self._redis.zremrangebyscore(K.KEPT_RECEIPTS, "-inf", now_us)
        before = to_us(kept_before) + int(RECEIPT_KEPT_SECONDS * 1_000_000)
        newest = await self._redis.zrevrangebyscore(K.KEPT_RECEIPTS, before, f"({now_us}", start=0, num=limit)
        return _texts(newest)

    @_guarded
    async def kept_receipt(self, provider_message_id: str) -> Delivery | None:
        kept = await self._redis.hkeys(K.kept_receipt(provider_message_id))
        return furthest(Delivery(_text(status)) for status in kept or ())

    @_guarded
    async def take_receipt(self, provider_message_id: str) -> Delivery | None:
        kept = await self._script("take_receipt", [K.kept_receipt(provider_message_id)], [])
        await self._redis.zrem(K.KEPT_RECEIPTS, provider_message_id)  # (another slot) also one a take cut short left
        return furthest(Delivery(_text(status)) for status in kept or ())

    @_guarded
    async def keep_opening(self, digest: str, conversation_id: str, ttl_seconds: float = OPENING_KEPT_SECONDS) -> None:
        await self._redis.set(K.opening(digest), conversation_id, px=max(1, int(ttl_seconds * 1000)))

    @_guarded
    async def opening(self, digest: str) -> str | None:
        return await self._get_text(K.opening(digest))

    @_guarded
    async def keep_erased(
        self, digest: str, at: datetime, ttl_seconds: float, *, conversation_id: str | None = None
    ) -> None:
        """With ``conversation_id``, its erasure begun in its own slot too (``K.erasing``, read by its lock's script:
        :meth:`erasing`), after the mark: on one node both in one transaction; on a Cluster two slots, the mark first
        (a cut between: a page's hello finds the mark, a message the erasure's lock then the record gone)."""
        px = max(1, int(ttl_seconds * 1000))
        if conversation_id is None:
            await self._redis.set(K.erased(digest), to_us(at), px=px)
            return
        self._erasing_under_lock.pop(conversation_id, None)  # read as the lock was taken: not so any more
        async with self._redis.pipeline(transaction=self.on_one_node) as pipe:
            pipe.set(K.erased(digest), to_us(at), px=px)
            pipe.set(K.erasing(conversation_id), 1, px=px)
            await pipe.execute()

    @_guarded
    async def erasing(self, conversation_id: str) -> bool:
        """Under the conversation's lock, as its script read it (no round trip); else one ``GET``."""
        read = self._erasing_under_lock.get(conversation_id)
        if read is not None and read[0] is asyncio.current_task():
            return read[1]
        return bool(await self._redis.exists(K.erasing(conversation_id)))

    @_guarded
    async def erased_at(self, digest: str) -> datetime | None:
        kept = await self._redis.get(K.erased(digest))
        return None if kept is None else from_us(int(kept))

    async def forget_lapsed_erased(self) -> None:
        return None  # ``hg:er:`` keys go with their TTL

    # De-duplication

    @_guarded
    async def claim(
        self, key: str, owner: str, lease_seconds: float, *, now: datetime | None = None,
        sender: tuple[ChannelName, str] | None = None, kept_seconds: int | None = None, take_over: bool = False,
    ) -> ClaimState:  # fmt: skip
        """Under a conversation's lock the claim names that conversation. A lapsed claim that names one may have
        been saved there (its owner died between the record and the global mark): that conversation's processed
        marks (one slot with its record) decide between DONE and a new claim. ``take_over``: another owner's claim
        still within its lease is taken as a lapsed one is (the script's last ARGV; since 2026-12-07).

        ``sender``: its address is read in the same pipeline (the claim's slot, then the address's) and kept for
        this task's next ``active_conversation``, which starts from it instead of reading it again. Read before
        the lookup, it may be stale by then: it names a conversation that has ended meanwhile, or none where
        another instance has just started one; ``active_conversation`` then finds the record ended (or its fresh
        one refused the address) and reads the address again, as when another instance wins a race."""
        conversation_id = self._locked.get()
        seen, kept = K.seen_claim(key), int(CLAIM_KEPT.total_seconds())
        first = None if sender is None else self._active_key(*sender)
        for _ in range(3):
            args = _claim_args(
                key, owner, lease_seconds, conversation_id, now or self._clock(), kept_seconds, take_over=take_over
            )
            lease_end = args[2]
            if first is None:
                found = _text(await self._script("claim", [seen], args))
            else:
                found = await self._claim_reading(seen, args, first)
                first = None
            if not found.startswith("check:"):
                return ClaimState(found)
            was, _, value = found.removeprefix("check:").partition(":")
            until = await self._redis.zscore(K.done(was), seen_digest(key))
            if until is not None:  # the mark, as the save's last step would have made it
                await self._script("seen_mark", *_seen_mark(key, int(until), value))
                return ClaimState.DONE
            mine = f"c:{lease_end}:{conversation_id or was}:{owner}"
            if await self._script("claim_replace", [seen], [value, mine, kept, K.SEEN]) == 1:
                return ClaimState.CLAIMED
        return ClaimState.BUSY

    async def _claim_reading(self, seen: str, args: list[Any], address: str) -> str:
        """The claim script's answer, the sender's address read after it (kept for ``active_conversation``)."""
        async with ordered(self._redis) as pipe:
            _eval(pipe, "claim", [seen], args)
            pipe.get(address)
            found, current = await pipe.execute()
        self._address_read.set((address, None if current is None else _text(current)))
        return _text(found)

    @_guarded
    async def release(self, key: str, owner: str) -> None:
        """One that fails is made again until Redis answers (``redis_release``): the redelivery is not refused for
        the rest of the lease."""
        name = K.seen_claim(key)
        try:
            await self._script("release", [name], [owner, K.SEEN])
        except RedisError as error:
            self._releases.again("claim", error, lambda: self._script("release", [name], [owner, K.SEEN]))
            raise

    # The waiting queue: one slot, {queue}

    @_holdable
    async def enqueue(
        self, conversation_id: str, queue: str, priority: Priority, at: datetime, *, flag: RiskFlag | None = None,
        unless_leaving: bool = False, holder: str | Anyone | None = ANYONE,
    ) -> None:  # fmt: skip
        """The entry with its priority and its flag: one script (slot ``{queue}``), which reads the endings' list
        when ``unless_leaving`` (held in a batch: the Conflict is raised when the batch is sent), and (``holder``,
        since 2026-12-08) refuses an entry held by another listener than the one expected (None: by anyone), nothing
        changed. The step cannot read the lock and is sent before the fenced writes: until then a transfer's step that
        reached Redis after its lock lapsed (an instance stalled past its lease, Anne's retry transferred on another
        and Bob took the conversation) replaced Bob's entry by a waiting one beside a record naming Bob; the stalled
        instance dying before its undo, the next alert check completed a transfer Bob never made
        (``tests/console/test_transfer_late_enqueue.py``)."""
        entry = encode_queue_entry(QueueEntry(conversation_id, queue, priority, at, flag=flag))
        keys = [K.QUEUE + "entries", K.QUEUE + "seq", K.QUEUE + "names"]
        args = [K.QUEUE, conversation_id, queue, str(priority.rank), f"{to_us(at):020d}", dumps(entry),
                "1" if unless_leaving else "0", "0" if holder is ANYONE else "1",
                holder if isinstance(holder, str) else ""]  # fmt: skip

        def refused(answers: list[Any]) -> None:
            if answers and answers[0] == 0:
                raise Conflict(f"conversation {conversation_id} is ending (listed as leaving): not moved")
            if answers and answers[0] == -1:
                raise Conflict(f"conversation {conversation_id} is held by another listener: not moved")

        fence = _FENCING.get()  # written under the conversation's lock: checked if its commit is refused
        if fence is not None and fence.conversation_id == conversation_id and fence.task is asyncio.current_task():
            fence.queued = True
            if fence.undo:  # a console's action: put back if refused (the check's completions and messages: kept)
                fence.wrote = (queue, f"{priority.rank}:{to_us(at):020d}:")

        await self._write(lambda pipe: _eval(pipe, "enqueue", keys, args), refused)

    @_guarded
    async def waiting(self, queue: str | None = None) -> list[QueueEntry]:
        names = [queue] if queue is not None else _texts(await self._redis.smembers(K.QUEUE + "names"))
        members: list[str] = []
        for name in names:
            members.extend(_texts(await self._redis.zrange(K.QUEUE + "waiting:" + name, 0, -1)))
        ids = [member.split(":", 3)[3] for member in sorted(members)]
        if not ids:
            return []
        raws = await self._redis.hmget(K.QUEUE + "entries", ids)
        return [loads("queue", raw, decode_queue_entry) for raw in raws if raw is not None]

    @_guarded
    async def waiting_page(self, limit: int) -> WaitingPage:
        """The queues' names, then one pipeline of the ``{queue}`` slot (per queue: the first ``limit`` members and,
        per priority, its count, its ``limit`` earliest and its latest member, by ``ZLEXCOUNT``/``ZRANGE BYLEX``:
        members are ``<rank>:<at>:<seq>:<id>``), then one ``HMGET`` of the entries named: three round trips, no
        entry read past them."""
        if limit < 1:  # ZRANGE 0 -1 would read every member
            raise ValueError("a page of the queue is 1 entry or more")
        names = sorted(_texts(await self._redis.smembers(K.QUEUE + "names")))
        if not names:
            return WaitingPage((), 0, 0, (), None)
        ranks = sorted(p.rank for p in Priority)
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                key = K.QUEUE + "waiting:" + name
                pipe.zrange(key, 0, limit - 1)
                for rank in ranks:  # ":" < ";": "[r:" to "(r;" are the members of that rank
                    pipe.zlexcount(key, f"[{rank}:", f"({rank};")
                    pipe.zrangebylex(key, f"[{rank}:", f"({rank};", 0, limit)
                    pipe.zrevrangebylex(key, f"({rank};", f"[{rank}:", 0, 1)
            answers = await pipe.execute()
        first: list[str] = []
        early: list[str] = []
        late: list[str] = []
        counts: list[tuple[str, Priority, int]] = []
        total = urgent = 0
        step = 1 + 3 * len(ranks)
        for n in range(len(names)):
            part = answers[n * step : (n + 1) * step]
            first += _texts(part[0])
            for r, rank in enumerate(ranks):
                count, earliest, latest = part[1 + 3 * r : 4 + 3 * r]
                if int(count):
                    counts.append((names[n], _BY_RANK[rank], int(count)))
                total += int(count)
                urgent += int(count) if rank == Priority.URGENT.rank else 0
                early += _texts(earliest)
                late += _texts(latest)

        def arrival(member: str) -> tuple[str, str]:  # "<at>", "<seq>": zero-padded, compared as text
            _, at, seq, _ = member.split(":", 3)
            return at, seq.zfill(20)

        first = sorted(first)[:limit]
        early = sorted(early, key=arrival)[:limit]
        newest = max(late, key=arrival, default=None)
        ids = sorted({m.split(":", 3)[3] for m in [*first, *early, *([newest] if newest else [])]})
        if not ids:
            return WaitingPage((), total, urgent, (), None, tuple(counts))
        raws = await self._redis.hmget(K.QUEUE + "entries", ids)
        found = {
            i: loads("queue", raw, decode_queue_entry) for i, raw in zip(ids, raws, strict=True) if raw is not None
        }

        def entries(members: list[str]) -> tuple[QueueEntry, ...]:
            return tuple(found[i] for m in members if (i := m.split(":", 3)[3]) in found)

        latest = entries([newest] if newest else [])
        return WaitingPage(entries(first), total, urgent, entries(early), latest[0] if latest else None, tuple(counts))

    @_guarded
    async def waiting_ids(self) -> set[str]:
        """The queues' names, then their order (``waiting:<queue>``, members ``<rank>:<at>:<seq>:<id>``) in one
        pipeline of the ``{queue}`` slot: two round trips, no entry read."""
        names = _texts(await self._redis.smembers(K.QUEUE + "names"))
        if not names:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrange(K.QUEUE + "waiting:" + name, 0, -1)
            ordered = await pipe.execute()
        return {member.split(":", 3)[3] for members in ordered for member in _texts(members)}

    @_guarded
    async def holders(self) -> dict[str, str | None]:
        """Two commands whatever the number held (the status's set, the entries' ``HMGET``); no record read."""
        ids = sorted(_texts(await self._redis.smembers(K.status(str(Status.WITH_LISTENER)))))
        if not ids:
            return {}
        raws = await self._redis.hmget(K.QUEUE + "entries", ids)
        entries = [None if raw is None else loads("queue", raw, decode_queue_entry) for raw in raws]
        return {i: None if entry is None else entry.taken_by for i, entry in zip(ids, entries, strict=True)}

    @_guarded
    async def held_index(self) -> HeldIndex:
        """One pipeline in ``{queue}`` (``holding`` with its counts, its mark) and one ``SCARD`` of the status's set
        (``{index}``): whatever the number held. Made first, once, in a store written before it (``make_holding``:
        one script reading every entry). Their sum not the set's size (a step cut short, a take or hand-back between
        its two steps, a record's set left behind by a crash, an instance of before 2026-12-07 taking): ``holders``
        too, as the console read it at each reload until 2026-12-07."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(K.QUEUE + "holding:made")
            pipe.zrange(K.QUEUE + "holding", 0, -1, withscores=True)
            made, found = await pipe.execute()
        if not made:
            keys = [K.QUEUE + "entries", K.QUEUE + "holding", K.QUEUE + "holding:made"]
            await self._script("make_holding", keys, [K.QUEUE])
            found = await self._redis.zrange(K.QUEUE + "holding", 0, -1, withscores=True)
        counts = {_text(name): int(n) for name, n in found}
        held = int(await self._redis.scard(K.status(str(Status.WITH_LISTENER))))
        return HeldIndex(counts, None if held == sum(counts.values()) else await self.holders())

    @_guarded
    async def held_ids(self, listeners: Sequence[str]) -> dict[str, list[str]]:
        """One ``SMEMBERS`` of ``held:<listener>`` each, in one pipeline of ``{queue}``."""
        if not listeners:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in listeners:
                pipe.smembers(K.QUEUE + "held:" + name)
            found = await pipe.execute()
        return {name: sorted(_texts(ids)) for name, ids in zip(listeners, found, strict=True) if ids}

    @_riding
    async def position(self, conversation_id: str) -> int | None:
        """The entry and its rank read by one script (one slot, ``{queue}``): one round trip. Inside a batch with
        writes held (the hand-off: the enqueue, then the message that tells the place), the script rides at the end
        of their pipeline, after them: the held writes and the read in one round trip."""
        found: list[Any] = []
        fence = _FENCING.get()
        fence = fence if fence is not None and fence.task is asyncio.current_task() else None

        def queue(pipe: Pipeline) -> None:
            covered = fence is not None and fence.at == len(pipe)
            _eval(pipe, "position", [K.QUEUE + "entries"], [K.QUEUE, conversation_id])
            if fence is not None and covered:  # a read with no write before it since the last fenced script (or the
                # pipeline's start): no ``fenced_check`` for it
                fence.at = len(pipe)

        await self._write(queue, found.extend)
        if self._batch():
            await self._flush()
        return None if found[0] is None else int(found[0]) + 1

    @_guarded
    async def take(self, conversation_id: str, listener: str, at: datetime) -> QueueEntry:
        if not listener:
            raise ValueError("take needs a listener name")
        entry = await self._take_or_requeue(conversation_id, listener, to_us(at))
        if entry is None:
            raise Conflict(f"conversation {conversation_id} is not waiting in a queue")
        return entry

    @_guarded
    async def queue_entry(self, conversation_id: str) -> QueueEntry | None:
        raw = await self._redis.hget(K.QUEUE + "entries", conversation_id)
        return None if raw is None else loads("queue", raw, decode_queue_entry)

    @_guarded
    async def list_waiting(self, conversation_id: str) -> bool:
        """One script (slot ``{queue}``, ``redis_lua._LIST_WAITING``): the entry read, and waiting, its member put
        back in its queue's order (``NX``: its place kept) and its queue among the names."""
        keys = [K.QUEUE + "entries", K.QUEUE + "names"]
        return bool(await self._script("list_waiting", keys, [K.QUEUE, conversation_id]))

    @_guarded
    async def takes_since(self, queue: str, since: datetime) -> int:
        return int(await self._redis.zcount(K.QUEUE + "takes:" + queue, to_us(since), "+inf"))

    @_guarded
    async def held_by(self, listener: str) -> int:
        """The conversations of ``held:<listener>``, less those whose record has ended, whose entries are dropped
        here: a held conversation's entry leaves after its ended record (``save_conversation``), so a crash in
        between leaves one, which would take a place of its listener's capacity for good. Ended is final: the entry
        has no use left. A record still held, or queued (a take under way), counts."""
        held = _texts(await self._redis.smembers(K.QUEUE + "held:" + listener))
        records = await _get_each(self._redis, [K.conversation(conversation_id) for conversation_id in held])
        ended = [c for c, raw in zip(held, records, strict=True) if raw and not self._conversation(raw).active]
        for conversation_id in ended:
            await self._script("remove_from_queue", [K.QUEUE + "entries"], [K.QUEUE, conversation_id, "0"])
        return len(held) - len(ended)

    @_guarded
    async def requeue(
        self, conversation_id: str, *, unless_leaving: bool = False, holder: str | Anyone = ANYONE
    ) -> QueueEntry:
        """``holder``: the listener the hand-back hands back from (the record's, read under its lock): an entry another
        holds is left to them, Conflict (the script's test, ``redis_lua._TAKE_OR_REQUEUE``; since 2026-12-08). The
        step is of slot ``{queue}``, which cannot read the lock, and sent alone before the fenced writes: until then a
        step that reached Redis after its lock lapsed (an instance stalled past its lease, the listener's retry handed
        back on another and a colleague took the conversation) un-took that colleague's entry, left waiting beside a
        record naming them; the stalled instance dying before its undo, the next alert check handed their young person
        back to the queue (``tests/console/test_handback_late_requeue.py``). A late step still un-takes a new hold by
        the same listener (handed back and taken again meanwhile): the undo, the record refused, puts it back.

        Under a console's action's lock (a listener's or a supervisor's hand-back, not a logout's: ``locked_batch``'s
        ``undo_queue_step``) the entry left waiting is noted on the lock's fence, as ``enqueue``'s: the action's record
        refused (``LockLost``, answered 503), it is put back as the record says, taken by its listener again in their
        capacity (``_unqueue_refused``). Since 2026-12-07: until then the entry waited beside the held record, the
        check completed the hand-back and the retry was refused ``not_yours``
        (``tests/console/test_handback_refused.py``). The check's completion (``Actions.complete_hand_back``) and an
        automatic hand-back note nothing. ``holder`` :data:`ANYONE` (unchecked) goes to the script as '' (since
        2026-12-08; until then None did, and so did an empty name, which is refused now)."""
        checked = checked_holder(holder)
        entry = await self._take_or_requeue(conversation_id, "", 0, unless_leaving, checked or "")
        if entry is None:
            raise Conflict(f"conversation {conversation_id} has no queue entry, is ending (listed as leaving), or is "
                           "held by another listener")  # fmt: skip
        fence = _FENCING.get()
        if (
            fence is not None and fence.undo and fence.conversation_id == conversation_id
            and fence.task is asyncio.current_task()
        ):  # fmt: skip
            fence.queued, fence.wrote = True, (entry.queue, f"{entry.priority.rank}:{to_us(entry.at):020d}:")
        return entry

    async def _take_or_requeue(
        self, conversation_id: str, listener: str, at_us: int, unless_leaving: bool = False, holder: str = ""
    ) -> QueueEntry | None:
        args = [K.QUEUE, conversation_id, listener, at_us, at_us - TAKES_KEPT_US, "1" if unless_leaving else "0",
                holder]  # fmt: skip
        raw = await self._script("take_or_requeue", [K.QUEUE + "entries"], args)
        return None if raw is None else loads("queue", raw, decode_queue_entry)

    @_guarded
    async def remove_from_queue(self, conversation_id: str) -> bool:
        args = [K.QUEUE, conversation_id, "0"]
        return bool(await self._script("remove_from_queue", [K.QUEUE + "entries"], args) == 1)

    @_holdable
    async def begin_move(self, conversation_id: str, mover: str) -> None:
        """``{queue}:moving``, id → mover, the queue step's slot: held, it goes in the queue step's round trip, before
        it. A script (``begin_move``): the set an instance of before rel24 kept there is made a hash first, in its
        step, rather than failing the transfer's round trip after its queue step with ``WRONGTYPE``. Not listed when
        the conversation's ending is (``begin_leaving``): its queue step refuses it in the same round trip. Under the
        conversation's lock, noted on its fence: a commit then refused unlists it with the queue step it undoes
        (``_unqueue_refused``, since 2026-12-07)."""
        fence = _FENCING.get()
        if fence is not None and fence.conversation_id == conversation_id and fence.task is asyncio.current_task():
            fence.moved = True
        keys = [K.QUEUE + "moving", K.QUEUE + "leaving"]
        await self._write(lambda pipe: _eval(pipe, "begin_move", keys, [conversation_id, mover]))

    @_guarded
    async def moves_begun(self) -> dict[str, str | None]:
        """One ``HGETALL``; a ``WRONGTYPE`` (the set of ids an instance of before rel24 kept, a rolling deploy) makes
        it a hash first (``moving_hash``, one script: each id listed, its mover unknown, None), said once by class."""
        key = K.QUEUE + "moving"
        try:
            found = await self._redis.hgetall(key)
        except ResponseError as error:
            if not str(error).startswith("WRONGTYPE"):
                raise
            converted = await self._script("moving_hash", [key], [])
            log.warning("redis: %s was a set of transfers (the shape of a version before 2026-12-03, branch rel24; "
                        "an instance of it during a rolling deploy): made a hash, %d transfer(s) listed with their "
                        "mover unknown", key, converted)  # fmt: skip
            found = await self._redis.hgetall(key)
        return {_text(conversation_id): _text(mover) or None for conversation_id, mover in found.items()}

    @_holdable
    async def end_move(self, conversation_id: str) -> None:
        """Held, it goes after the record in the transfer's pipeline; a script, as ``begin_move``. Held under the
        conversation's lock, it is sent once the writes before it were answered, none of them refused
        (``HeldWrite.cut``; since 2026-12-07): a completion (``Actions.complete_move``) whose record the lock's fence
        refused keeps its listing, and the next check completes it; until then a waiting conversation's completion
        refused unlisted the transfer all the same, its entry left in the new queue beside a record naming the old one
        (``tests/console/test_handback_refused.py``). A round trip more when the save is not split already.

        It waits for the lock's fence, sent alone before it (``fenced_gate``, ``HeldWrite.gate``; since 2026-12-07),
        on one node as on a Cluster: refused (a failover that lost the record between the two pipelines, or the lock
        lapsed), LockLost, and neither it nor what follows it in the batch (the completion's audit line) is sent.
        Until then it went in a pipeline with no fence when the save was not split (a waiting conversation's transfer
        completed: no status set changed) and after the one-node ``fenced_steps`` when it was, run all the same: the
        transfer unlisted on a new primary whose record still named the old queue, never completed by the check
        (``tests/store/test_redis_fence_slots.py``). A round trip more again; what remains is the gate's: the lock
        lost, or the record with a failover, after the gate's answer and before the unlisting lands."""

        def queue(pipe: Pipeline) -> None:
            _eval(pipe, "end_move", [K.QUEUE + "moving"], [conversation_id])

        def gate(pipe: Pipeline) -> None:  # the lock still its holder's ('': no record's SHA-1 lets it pass)
            fence = _fence_of(conversation_id)
            if fence is not None:
                fence.fenced(pipe, "fenced_gate", [K.conversation(conversation_id)], [""])

        held, fence = self._batch(), _FENCING.get()
        mine = fence is not None and fence.conversation_id == conversation_id and fence.task is asyncio.current_task()
        if held is not None and mine:
            held.extend([HeldWrite(gate, cut=True, gate=True), HeldWrite(queue, cut=True)])
            return
        await self._write(queue)

    @_holdable
    async def begin_close(self, conversation_id: str, closer: str) -> None:
        """``{queue}:closing``, id → closer: held, it goes first in the close's pipeline, before the goodbye."""
        await self._write(lambda pipe: pipe.hset(K.QUEUE + "closing", conversation_id, closer))

    @_guarded
    async def closes_begun(self) -> dict[str, str]:
        found = await self._redis.hgetall(K.QUEUE + "closing")
        return {_text(conversation_id): _text(closer) for conversation_id, closer in found.items()}

    @_holdable
    async def end_close(self, conversation_id: str) -> None:
        """Held, it goes after the record in the close's pipeline."""
        await self._write(lambda pipe: pipe.hdel(K.QUEUE + "closing", conversation_id))

    @_holdable
    async def begin_take(self, conversation_id: str, listener: str) -> None:
        """``{queue}:taking``, id → taker: held, it goes first in the take's pipeline, before the message."""
        await self._write(lambda pipe: pipe.hset(K.QUEUE + "taking", conversation_id, listener))

    @_guarded
    async def takes_begun(self) -> dict[str, str]:
        found = await self._redis.hgetall(K.QUEUE + "taking")
        return {_text(conversation_id): _text(taker) for conversation_id, taker in found.items()}

    @_holdable
    async def end_take(self, conversation_id: str) -> None:
        """Held, it goes after the record in the take's pipeline."""
        await self._write(lambda pipe: pipe.hdel(K.QUEUE + "taking", conversation_id))

    @_holdable
    async def begin_leaving(self, conversation_id: str, how: str) -> None:
        """``{queue}:leaving``, id → how, then the same in the conversation's slot (``redis_keys.leaving``, read by a
        message's lock: :meth:`ending_begun`): held, they go first in the ending's pipeline, before its note or
        goodbye. The take's script (``take_or_requeue``) refuses a conversation listed here. On one node both in one
        script (``begin_leaving``): a cut leaves both or neither, never the list without the copy a message's lock
        reads (which let a message be answered by the bot between the cut and the check); on a Cluster, where the two
        keys are in different slots, the list first (a cut between leaves it listed, which the check completes)."""
        listing, copy = K.QUEUE + "leaving", K.leaving(conversation_id)

        def listed(pipe: Pipeline) -> None:
            if self.on_one_node:
                _eval(pipe, "begin_leaving", [listing, copy], [conversation_id, how, K.LEAVING_KEPT_SECONDS])
            else:
                pipe.hset(listing, conversation_id, how)
                pipe.set(copy, how, ex=K.LEAVING_KEPT_SECONDS)

        await self._write(listed)

    @_guarded
    async def leavings_begun(self) -> dict[str, str]:
        found = await self._redis.hgetall(K.QUEUE + "leaving")
        return {_text(conversation_id): _text(how) for conversation_id, how in found.items()}

    @_holdable
    async def end_leaving(self, conversation_id: str) -> None:
        """Held, it goes after the record in the ending's pipeline: the conversation's own key first, then the list's
        field (a cut between leaves the list, which the check unlists: never the key alone)."""

        def unlisted(pipe: Pipeline) -> None:
            pipe.delete(K.leaving(conversation_id))
            pipe.hdel(K.QUEUE + "leaving", conversation_id)

        await self._write(unlisted)

    @_holdable
    async def begin_erasure(self, conversation_id: str, key: str) -> None:
        """``{queue}:erasing``, id → the confirming message's key: held, it goes before the record and the processed
        mark in the message's pipeline (one slot, one command: the script ``erasure_listed``, which merges it with
        what is listed as ``store.erasure_listed`` does, up to ``ASKERS_MOST`` names; until 2026-12-07 an ``HSET``
        replaced it)."""
        args = [conversation_id, key, ASKERS_MOST]
        await self._write(lambda pipe: _eval(pipe, "erasure_listed", [K.QUEUE + "erasing"], args))

    @_guarded
    async def erasures_begun(self) -> dict[str, str]:
        found = await self._redis.hgetall(K.QUEUE + "erasing")
        return {_text(conversation_id): _text(key) for conversation_id, key in found.items()}

    @_holdable
    async def end_erasure(self, conversation_id: str) -> None:
        await self._write(lambda pipe: pipe.hdel(K.QUEUE + "erasing", conversation_id))

    async def ending_begun(self, conversation_id: str) -> str | None:
        """Under the lock of a message's processing (``locked_active``), how its conversation's ending is listed as
        begun, as the lock's script read it (no round trip); else one ``GET`` of the conversation's key."""
        read = self._leaving_under_lock.get(conversation_id)
        if read is not None and read[0] is asyncio.current_task():
            return read[1]
        return await self._get_text(K.leaving(conversation_id))

    # Listener accounts

    @_guarded
    async def add_listener(self, listener: Listener) -> None:
        if not await self._redis.hsetnx(_key("listeners"), listener.name, dumps(encode_listener(listener))):
            raise Conflict(f"a listener named {listener.name!r} already exists")

    @_guarded
    async def get_listener(self, name: str) -> Listener | None:
        raw = await self._redis.hget(_key("listeners"), name)
        return None if raw is None else loads("listener", raw, decode_listener)

    @_guarded
    async def list_listeners(self) -> list[Listener]:
        accounts = await self._redis.hgetall(_key("listeners"))
        return [loads("listener", accounts[name], decode_listener) for name in sorted(accounts)]

    @_guarded
    async def update_listener(self, listener: Listener, *, audit: AuditEntry | None = None) -> bool:
        """The account and its ``audit`` line in one script on one node; a Cluster's line is a step after it (the
        listeners and the audit log are two slots: a cut between them leaves the change without its line)."""
        args: list[Any] = [listener.name, dumps(encode_listener(listener))]
        if audit is None:
            return bool(await self._script("update_listener", [_key("listeners")], args) == 1)
        if self.on_one_node:
            keys, args = [_key("listeners"), _key("audit")], [*args, dumps(encode_audit(audit)), AUDIT_KEPT]
            return bool(await self._script("update_listener", keys, args) == 1)
        if await self._script("update_listener", [_key("listeners")], args) != 1:
            return False
        await self.audit(audit)
        return True

    @_guarded
    async def remove_listener(self, name: str) -> bool:
        return bool(await self._redis.hdel(_key("listeners"), name) == 1)

    # Console sessions

    @_guarded
    async def put_session(self, session: ConsoleSession, now: datetime) -> None:
        """The listener's index first (the sessions that ended before ``now`` dropped from it in the same script),
        then the session (an index lists more, never less; both expire)."""
        ttl_ms = max(1, int((session.expires - now).total_seconds() * 1000))
        value = json.dumps({"name": session.name, "expires_us": to_us(session.expires), "account": session.account})
        ended_by = to_us(now) - _SESSIONS_KEPT_ENDED_US
        args = [session.key, to_us(session.expires), ttl_ms, ended_by]
        await self._script("put_session_index", [K.sessions_index(session.name)], args)
        await self._redis.set(_key("session", session.key), value, px=ttl_ms)

    @_guarded
    async def get_session(self, key: str, now: datetime) -> ConsoleSession | None:
        raw = await self._redis.get(_key("session", key))
        if raw is None:
            return None
        session = _session(key, json.loads(raw))
        return session if session.expires > now else None

    @_guarded
    async def end_session(self, key: str) -> bool:
        raw = await self._redis.get(_key("session", key))
        if raw is None:
            return False
        name = str(json.loads(raw)["name"])
        async with ordered(self._redis) as pipe:
            pipe.delete(_key("session", key))
            pipe.zrem(K.sessions_index(name), key)
            pipe.srem(_key("sessions", name), key)  # the index of before (a plain set), while it lasts
            await pipe.execute()
        return True

    @_guarded
    async def end_sessions(self, name: str) -> int:
        """Ends the sessions the listener's indexes list, then takes those members only out of them: a session put
        meanwhile (a login on another instance) stays listed for the next."""
        keys = await self._sessions_listed(name, None)
        async with ordered(self._redis) as pipe:
            for key in keys:
                pipe.delete(_key("session", key))
            if keys:
                pipe.zrem(K.sessions_index(name), *keys)
                pipe.srem(_key("sessions", name), *keys)
            ended = await pipe.execute()
        return sum(int(n) for n in ended[: len(keys)])

    @_guarded
    async def live_sessions(self, name: str, now: datetime) -> list[ConsoleSession]:
        """The listener's index without the sessions ended by ``now`` (it may list ended ones), then those of its
        sessions still there."""
        keys = await self._sessions_listed(name, now)
        raws = await _get_each(self._redis, [_key("session", key) for key in keys])
        sessions = [_session(key, json.loads(raw)) for key, raw in zip(keys, raws, strict=True) if raw is not None]
        return [session for session in sessions if session.expires > now]

    async def _sessions_listed(self, name: str, now: datetime | None) -> list[str]:
        """The keys of the listener's sessions: those the index lists (ending after ``now`` if given), and those the
        plain set of before lists (``hg:sessions:<name>``, written by versions before 2026-12-05: read, never written,
        gone by itself 12 h after their last login)."""
        async with ordered(self._redis) as pipe:
            pipe.zrangebyscore(K.sessions_index(name), "-inf" if now is None else f"({to_us(now)}", "+inf")
            pipe.smembers(_key("sessions", name))
            listed, before = await pipe.execute()
        return sorted({_text(key) for key in listed} | {_text(key) for key in before})

    # The outbox: each item in its conversation's slot beside its transcript entry, the lines and heads in {outbox}

    @_holdable
    async def outbox_put(self, item: OutboxItem) -> None:
        """The item, then its id in its conversation's line: a line may list an item resolved already (a retried
        processing puts it again), which ``outbox_due`` drops; an item is never left unlisted by a completed put."""
        payload = dumps_sealed(self._keys, "outbox", item.payload)
        due = to_us(item.next_attempt_at or item.created_at)
        conversation_id = item.conversation_id
        held = self._batch()
        last = held[-1].entry if held else None
        if held and last is not None and last.id == item.id and last.conversation_id == conversation_id:
            # its entry's write, held just before (``Dispatcher.emit``): the entry and the item in one script, one
            # reading of the transcript instead of two, with the message's earlier replies of the conversation if the
            # batch holds them and nothing was added to its transcript or line since (the same steps in the same order
            # for each reply, written earlier in the batch: before its events, still before the conversation's record)
            held.pop()
            at = next((i for i in range(len(held) - 1, -1, -1) if held[i].conversation == conversation_id), None)
            replies = None if at is None else held[at].replies
            if replies is None:
                replies = HeldReplies(conversation_id)
                write = HeldWrite(replies.queue, conversation=conversation_id, replies=replies)
                plain = None if at is None else held[at].entry
                if at is not None and plain is not None and all(w.event for w in held[at + 1 :]):
                    # the entry held last before it without an item, only events since (the young person's message
                    # and its event): in the same script, first, at its place (before its event, as it was)
                    replies.add_entry(plain)
                    held[at] = write
                else:
                    held.append(write)
            replies.add(last, item, payload)
            return

        def queue(pipe: Pipeline) -> None:
            keys = [K.outbox_item(conversation_id, item.id), *K.transcript_keys(conversation_id),
                    K.items_listed(conversation_id)]  # fmt: skip
            args = [item.id, conversation_id, payload, to_us(item.created_at), due, _unread(item)]
            _fenced(pipe, "outbox_put_item", keys, args, conversation_id)
            _eval(pipe, "outbox_list", _line_keys(conversation_id), [conversation_id, item.id, due,
                                                                     to_us(item.created_at)])  # fmt: skip

        await self._write(queue, conversation=conversation_id)

    @_guarded
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
        """The due conversations' lines are claimed for the lease (one slot; with ``claim``, recorded under it for
        the lease), then the items of each line's first ``run`` ids up to the first not due (one script in the
        conversation's slot): an item resolved meanwhile leaves its line, a head not due yet is timed again, the
        rest are handed out. The record of the caller's claim ``answered`` goes in the same script: at most one
        claim's record an instance outlives its answer (their 15 s lease was 0.39 KB a handed-off conversation at
        1,000 msg/s, bench/README.md)."""
        lease_end = to_us(now) + lease_seconds * 1_000_000
        args = [K.OUTBOX, to_us(now), limit, lease_end, max(run, 1), claim or "", "1" if answered else ""]
        keys = [K.OUTBOX + "heads", K.OUTBOX + "claim:" + (claim or ""), K.OUTBOX + "claim:" + (answered or "")]
        lines = [[_text(v) for v in found] for found in await self._script("outbox_due", keys, args)]
        if not lines:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id, *ids in lines:
                keys = [K.outbox_item(conversation_id, item_id) for item_id in ids]
                _eval(pipe, "outbox_claim", keys, [to_us(now), lease_end, "1" if claim else ""])
            claimed = await pipe.execute()
        items: list[OutboxItem] = []
        for (conversation_id, *ids), answers in zip(lines, claimed, strict=True):
            items.extend(await self._claimed_run(conversation_id, ids, answers, lease_end))
        return items

    async def _claimed_run(
        self, conversation_id: str, ids: list[str], answers: list[Any], lease_end: int
    ) -> list[OutboxItem]:
        """A conversation's claimed items, in order; its line repaired after: the resolved ids dropped, a head not
        due timed again. The line's head is then one of the items handed out, if any: the heads keep the lease end
        (``outbox_due`` set it), the line's next claim waits for it."""
        items, repairs = [], []
        for item_id, (state, *rest) in zip(ids, answers, strict=False):
            if _text(state) != "ok":  # gone, or the first not due (the last answer)
                repairs.append((item_id, _text(rest[0]) if rest else ""))
                continue
            try:
                items.append(_outbox_item(_pairs(rest[0]), self._keys))
            except Exception as exc:  # e.g. a hash cut short: set aside, never blocking the others
                await self._outbox_set_aside(conversation_id, item_id, exc)
                repairs.append((item_id, ""))
        held = lease_end if items else None
        for item_id, due in repairs:
            if not due or not items:  # an id to drop, or the head not due (none handed out before it)
                await self._outbox_line(item_id, conversation_id, due, held)
        return items

    async def _outbox_line(
        self, item_id: str, conversation_id: str, due: str | int, next_lease: int | None = None
    ) -> None:
        """Its conversation's line after an item step: ``due`` '' drops the item from it (the line's next head due
        at ``next_lease`` if the caller holds it, else at once), else times its head."""
        await self._script("outbox_line", *_line_step(item_id, conversation_id, due, next_lease))

    async def _outbox_set_aside(self, conversation_id: str, item_id: str, exc: Exception) -> None:
        """Failed for good (its line's step is the caller's)."""
        # the conversation named, not the item (since 2026-12-07): a bot reply's id is an unkeyed SHA-256 of the
        # young person's message's provider id (gateway/ids.py), and the store holds no key to name it otherwise
        log.error("redis: an outbox item of conversation %s set aside: its stored form cannot be read (%s)",
                  conversation_id, type(exc).__name__)  # fmt: skip
        reason = f"set aside: its stored form cannot be read ({type(exc).__name__})"
        keys = [K.outbox_item(conversation_id, item_id), *K.transcript_keys(conversation_id),
                K.items_listed(conversation_id)]  # fmt: skip
        kept = int(RESOLVED_OUTBOX_KEPT.total_seconds())
        await self._script("outbox_set_aside", keys, [reason, kept, _DELIVERY_CODES[Delivery.FAILED], item_id])

    @_guarded
    async def outbox_get(self, conversation_id: str, item_id: str) -> OutboxItem | None:
        found = await self._redis.hgetall(K.outbox_item(conversation_id, item_id))
        return _outbox_item({_text(k): _text(v) for k, v in found.items()}, self._keys) if found else None

    @_guarded
    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        item = K.outbox_item(conversation_id, item_id)
        if await self._script("outbox_renew", [item], [to_us(lease), to_us(until)]) is None:
            return False
        await self._outbox_line(item_id, conversation_id, to_us(until))
        return True

    @_guarded
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
        answered = "" if answered_at is None else to_us(answered_at)
        if provider_message_id and self.takes_kept_receipts and not in_parts(provider_message_id):
            shown = await self._sent_taking_kept(
                conversation_id, item_id, provider_message_id, lease, next_lease, receipt, answered
            )
            return shown or False
        field, value = ("", "") if provider_message_id is None else ("pmid", provider_message_id)
        shown = sent_shown(receipt)
        return await self._resolve(conversation_id, item_id, OutboxStatus.SENT, field, value, shown, lease,
                                   next_lease, answered)  # fmt: skip

    @_guarded
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
        args = [to_us(next_attempt_at), attempts, last_error, parts_sent, _fence(lease)]
        if await self._script("outbox_reschedule", [K.outbox_item(conversation_id, item_id)], args) is None:
            return False
        await self._outbox_line(item_id, conversation_id, to_us(next_attempt_at))
        return True

    @_guarded
    async def outbox_mark_failed(
        self,
        conversation_id: str,
        item_id: str,
        reason: str,
        *,
        lease: datetime | None = None,
        next_lease: datetime | None = None,
    ) -> bool:
        return bool(await self._resolve(conversation_id, item_id, OutboxStatus.FAILED, "last_error", reason,
                                        Delivery.FAILED, lease, next_lease))  # fmt: skip

    @_guarded
    async def outbox_withdraw(self, conversation_id: str, item_ids: Sequence[str], reason: str) -> list[str]:
        """The conversation's line read first (slot ``{outbox}``: which ids it lists), then each item it does not
        list resolved failed as ``outbox_mark_failed`` does, under no lease (``outbox_resolve``: only one still
        pending; its conversation's slot). Nothing lists an item in between: the caller holds the lock."""
        if not item_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in item_ids:
                pipe.zscore(K.outbox_line(conversation_id), item_id)
            listed = await pipe.execute()
        withdrawn = []
        for item_id, score in zip(item_ids, listed, strict=True):
            if score is None and await self._resolve(conversation_id, item_id, OutboxStatus.FAILED, "last_error",
                                                     reason, Delivery.FAILED, None, None):  # fmt: skip
                withdrawn.append(item_id)
        return withdrawn

    @_guarded
    async def outbox_oldest_pending(self) -> datetime | None:
        """The first of ``OUTBOX_PENDING`` whose item is pending: O(log n) reads, not one per waiting conversation.
        The set may list more (an item resolved whose line step is still to come, a sent item put again by a
        retried processing, which ``outbox_due`` drops from its line): skipped; one whose item is gone (expired
        after it was resolved: an instance of the version before left it) is removed."""
        start = 0
        while found := cast(list[tuple[str, float]],
                            await self._redis.zrange(K.OUTBOX_PENDING, start, start + 9, withscores=True)):  # fmt: skip
            async with self._redis.pipeline(transaction=False) as pipe:
                for member, _ in found:
                    pipe.hget(K.outbox_item(*member.split(" ", 1)), "status")
                states = await pipe.execute()
            for (_, created), status in zip(found, states, strict=True):
                if status == "pending":
                    return from_us(int(created))
            if gone := [member for (member, _), status in zip(found, states, strict=True) if status is None]:
                await self._redis.zrem(K.OUTBOX_PENDING, *gone)
            start += len(found) - len(gone)
        return None

    async def _sent_taking_kept(
        self,
        conversation_id: str,
        item_id: str,
        provider_id: str,
        lease: datetime | None,
        next_lease: datetime | None,
        receipt: Delivery | None,
        answered: int | str,
    ) -> Delivery | None:
        """On one node (``takes_kept_receipts``): the send's whole record in one script, ``outbox_sent``: the item
        and its entry, the receipt kept for the provider id read, applied and taken, a watermark kept for the
        conversation applied when ``answered`` (µs, or '') is at or before it, the id's day index, the line's
        step. The delivery the entry shows (sent, or the kept receipt's, or ``receipt``, when further), None when not
        held.

        Made in a batch (the outbox's record: ``Outbox._record_sent``, which then publishes the send's
        ``DeliveryChanged`` in that batch), the script also publishes that event when the entry shows ``sent``, once
        the record is made, and the caller's publish of the same event next is sent no more (``publish``): one
        command and one round trip less a reply (bench/README.md, "Thirtieth pass"). Another delivery shown (a kept
        receipt's), a retry's record (made already) or a call outside a batch publishes nothing: the caller's event
        goes as before."""
        told = None
        if self._batch() is not None:
            told = DeliveryChanged(conversation_id, item_id, Delivery.SENT)
        self._told.set(None)
        held = None if next_lease is None else to_us(next_lease)
        line_keys, line_args = _line_step(item_id, conversation_id, "", held)
        day = redis_providers.today()
        keys = [K.outbox_item(conversation_id, item_id), *K.transcript_keys(conversation_id),
                K.kept_receipt(provider_id), K.KEPT_RECEIPTS, redis_providers.index(day, provider_id),
                *line_keys, K.items_listed(conversation_id), K.kept_watermark(conversation_id)]  # fmt: skip
        args = [int(SENT_OUTBOX_KEPT.total_seconds()), provider_id, _fence(lease), item_id,
                redis_providers.field(provider_id), conversation_id, redis_providers.expiry(day),
                line_args[3], _DELIVERY_CODES[receipt] if receipt else "", answered,
                provider_digest(provider_id)]  # fmt: skip
        if told is not None:
            args += [_channel(told), dumps(encode(told))]
        found = await self._script("outbox_sent", keys, args)
        if not found:
            return None
        if len(found) > 2 and found[2] == 1:
            self._told.set(told)
        return _DELIVERIES[_text(found[1])]

    async def _resolve(
        self,
        conversation_id: str,
        item_id: str,
        status: OutboxStatus,
        field: str,
        value: str,
        delivery: Delivery,
        lease: datetime | None,
        next_lease: datetime | None,
        answered: int | str = "",
    ) -> bool | Delivery:
        """The item and its transcript entry (one slot, one step), then its conversation's line (its next head due
        at ``next_lease`` if the caller holds it) and the provider id's index (the send happened: the index is true
        whoever holds the item now), held in a batch: a line left listing a resolved item is repaired by
        ``outbox_due``. An item resolved so already under ``lease`` (the script's 2: a retry whose first try ran,
        its answer lost) changes nothing there, and its line's step is made again (the first one may be lost with
        it). A send whose entry shows a watermark kept for it (``answered``, µs or '': ``redis_lua._WATERMARKS``)
        answers that delivery instead of True."""
        kept = int((SENT_OUTBOX_KEPT if status == OutboxStatus.SENT else RESOLVED_OUTBOX_KEPT).total_seconds())
        provider_id = value if field == "pmid" else ""
        keys = [K.outbox_item(conversation_id, item_id), *K.transcript_keys(conversation_id),
                K.items_listed(conversation_id), K.kept_watermark(conversation_id)]  # fmt: skip
        args = [str(status), field, value, kept, provider_digests(provider_id), _DELIVERY_CODES[delivery],
                _fence(lease), item_id, answered]  # fmt: skip
        found = await self._script("outbox_resolve", keys, args)
        if found is None:
            return False

        def queue(pipe: Pipeline) -> None:
            held = None if next_lease is None else to_us(next_lease)
            _eval(pipe, "outbox_line", *_line_step(item_id, conversation_id, "", held))
            for part in provider_ids(provider_id):  # each part's, of a reply sent in parts
                redis_providers.add(pipe, part, conversation_id)

        await self._write(queue)  # in a batch, sent with its other writes (the delivery's event: ``Outbox``)
        return _DELIVERIES[_text(found)] if isinstance(found, bytes | str) else True

    # The inbox: one slot, {inbox}

    @_guarded
    async def inbox_put(self, items: Sequence[InboxItem]) -> None:
        args: list[Any] = [K.INBOX]
        for i in items:
            due = i.next_attempt_at or i.received_at
            args += [i.id, self._keys.lookup("inbox", i.sender_key), dumps_sealed(self._keys, "inbox", i.payload),
                     to_us(i.received_at), to_us(due)]  # fmt: skip
        if items:
            await self._script("inbox_put", [K.INBOX + "heads", K.INBOX + "seq"], args)

    @_guarded
    async def inbox_waiting(self, sender_key: str) -> bool:
        """Answered once from the gate's read of this sender (``get_block_and_hit``, made by this task just before:
        the same moment as a read now, give or take the webhook's other messages' checks), else read now."""
        read = self._inbox_read.get()
        self._inbox_read.set(None)
        if read is not None and read[0] == sender_key:
            return read[1]
        return bool(await self._redis.exists(K.INBOX + "sender:" + self._keys.lookup("inbox", sender_key)))

    @_guarded
    async def inbox_due(self, now: datetime, limit: int, *, lease_seconds: int = 30) -> list[InboxItem]:
        lease_end = to_us(now) + lease_seconds * 1_000_000
        claimed = await self._script("inbox_due", [K.INBOX + "heads"], [K.INBOX, to_us(now), limit, lease_end])
        return [_inbox_item(_pairs(fields), self._keys) for fields in claimed if fields]

    @_guarded
    async def inbox_done(self, item_id: str) -> bool:
        keys = [K.INBOX + "item:" + item_id, K.INBOX + "heads"]
        return bool(await self._script("inbox_done", keys, [K.INBOX, item_id]) == 1)

    @_guarded
    async def inbox_retry(
        self, item_id: str, next_attempt_at: datetime, attempts: int, *, lease: datetime | None = None
    ) -> bool:
        keys = [K.INBOX + "item:" + item_id, K.INBOX + "heads"]
        args = [K.INBOX, item_id, to_us(next_attempt_at), attempts, "" if lease is None else to_us(lease)]
        return bool(await self._script("inbox_retry", keys, args) == 1)

    @_guarded
    async def inbox_set_aside(self, item_id: str, at: datetime) -> bool:
        keys = [K.INBOX + "item:" + item_id, K.INBOX + "heads", K.INBOX + "aside:" + item_id, K.INBOX + "aside"]
        return bool(await self._script("inbox_set_aside", keys, [K.INBOX, item_id, to_us(at)]) == 1)

    @_guarded
    async def inbox_drop_aside(self, before: datetime) -> int:
        ids = _texts(await self._redis.zrangebyscore(K.INBOX + "aside", "-inf", to_us(before)))
        if ids:
            async with self._redis.pipeline(transaction=True) as pipe:  # one slot: {inbox}
                pipe.delete(*(K.INBOX + "aside:" + i for i in ids))
                pipe.zrem(K.INBOX + "aside", *ids)
                await pipe.execute()
        return len(ids)

    @_guarded
    async def inbox_set_aside_count(self) -> int:
        return int(await self._redis.zcard(K.INBOX + "aside"))

    # Timers: one sorted set, hg:timers

    @_holdable
    async def set_timer(self, conversation_id: str, kind: TimerKind, due_at: datetime) -> None:
        member = _timer_member(conversation_id, kind)

        await self._write(lambda pipe: pipe.zadd(_key("timers"), {member: to_us(due_at)}))

    @_holdable
    async def cancel_timers(self, conversation_id: str, kind: TimerKind | None = None) -> None:
        """Every kind is known (``TimerKind``): no per-conversation index of its timers is kept."""
        members = [_timer_member(conversation_id, k) for k in ([kind] if kind is not None else list(TimerKind))]
        await self._write(lambda pipe: _eval(pipe, "cancel_timers", [_key("timers")], members))

    @_guarded
    async def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]:
        found = await self._redis.zrangebyscore(_key("timers"), "-inf", to_us(now), start=0, num=limit, withscores=True)
        pairs: list[tuple[str, float]] = list(found)  # type: ignore[arg-type]  # withscores=True gives pairs
        timers = (_timer(member, score) for member, score in pairs)
        return [timer for timer in timers if timer is not None]

    @_guarded
    async def timer_postpone(self, timer: Timer, until: datetime) -> bool:
        args = [_timer_member(timer.conversation_id, timer.kind), to_us(timer.due_at), to_us(until)]
        return bool(await self._script("timer_postpone", [_key("timers")], args) == 1)

    @_guarded
    async def timer_done(self, timer: Timer) -> bool:
        args = [_timer_member(timer.conversation_id, timer.kind), to_us(timer.due_at)]
        return bool(await self._script("timer_done", [_key("timers")], args) == 1)

    # Late readings waiting: one slot, {late}

    @_holdable
    async def late_put(self, pending: PendingLate, owner: str, until: datetime) -> None:
        args = [K.late_member(pending.conversation_id, pending.entry_id), owner, to_us(pending.queued_at),
                int(pending.windows), to_us(until), K.LATE_KEPT_SECONDS]  # fmt: skip
        await self._write(lambda pipe: _eval(pipe, "late_put", [K.LATE_HELD, K.LATE_INFO], args))

    @_guarded
    async def late_hold(self, owner: str, held: Sequence[tuple[str, str]], until: datetime) -> set[tuple[str, str]]:
        if not held:
            return set()
        members = [K.late_member(*pair) for pair in held]
        kept = await self._script("late_hold", [K.LATE_HELD, K.LATE_INFO], [owner, to_us(until), *members])
        return {_late_pair(_text(member)) for member in kept}

    @_guarded
    async def late_claim(self, owner: str, now: datetime, until: datetime, limit: int) -> list[PendingLate]:
        args = [owner, to_us(now), to_us(until), limit]
        found = _texts(await self._script("late_claim", [K.LATE_HELD, K.LATE_INFO], args))
        claimed = []
        for at in range(0, len(found), 4):
            conversation_id, entry_id = _late_pair(found[at])
            claimed.append(PendingLate(conversation_id, entry_id, found[at + 2] == "1", from_us(int(found[at + 1])),
                                       int(found[at + 3])))  # fmt: skip
        return claimed

    @_guarded
    async def late_done(self, conversation_id: str, entry_id: str) -> None:
        member = K.late_member(conversation_id, entry_id)
        await self._script("late_forget", [K.LATE_HELD, K.LATE_INFO], [member, "one"])

    @_guarded
    async def late_waiting(self) -> int:
        return int(await self._redis.hlen(K.LATE_INFO))

    # Events, across instances

    @_holdable
    async def publish(self, event: Event) -> None:
        """On its scope's channel (``redis_events.py``): only the instances following it are sent it."""
        told = self._told.get()
        if told is not None:  # this task's last send's record published its event (``_sent_taking_kept``)
            self._told.set(None)
            if event == told:
                return
        channel, message = _channel(event), dumps(encode(event))
        held = self._batch()
        last = held[-1] if held else None
        if last is not None and last.published is not None and last.published.channel == channel:
            last.published.messages.append(message)  # the batch's events before it, with nothing written between
            return
        fence = _FENCING.get()  # a task holding a conversation's lock: published only while it holds it
        published = Published(
            channel, [message], fence if fence is not None and fence.task is asyncio.current_task() else None
        )
        write = HeldWrite(published.queue, event=True, published=published)
        if held is not None:
            held.append(write)
        else:
            await self._send([write])

    @_guarded
    async def subscribe(self, *, everything: bool = True) -> SharedSubscription:
        """A subscription to the process's one pub/sub connection (``redis_events.py``)."""
        return await self._events.subscribe(everything)

    # Blocks and the audit log

    @_guarded
    async def put_block(self, block: Block) -> None:
        await self._redis.hset(_key("blocks"), block.key, dumps(encode_block(block)))

    @_guarded
    async def get_block(self, key: str, now: datetime) -> Block | None:
        raw = await self._redis.hget(_key("blocks"), key)
        block = None if raw is None else loads("block", raw, decode_block)
        return block if block is not None and block.active(now) else None

    @_guarded
    async def get_block_and_hit(self, key: str, now: datetime, counter: Counter) -> tuple[Block | None, int]:
        async with ordered(self._redis) as pipe:
            pipe.hget(_key("blocks"), key)
            _eval(pipe, *_hit(counter))
            pipe.exists(K.INBOX + "sender:" + self._keys.lookup("inbox", key))
            raw, count, waiting = await pipe.execute()
        self._inbox_read.set((key, bool(waiting)))
        block = None if raw is None else loads("block", raw, decode_block)
        return (block if block is not None and block.active(now) else None), int(count)

    @_guarded
    async def hit(self, counter: Counter) -> int:
        return int(await self._script(*_hit(counter)))

    @_guarded
    async def once_marked(self, counter: Counter) -> bool:
        return counter.once is not None and bool(await self._redis.hexists(counter.marks, counter.once))

    @_guarded
    async def list_blocks(self, now: datetime) -> list[Block]:
        blocks = [loads("block", raw, decode_block) for raw in (await self._redis.hgetall(_key("blocks"))).values()]
        expired = [block.key for block in blocks if not block.active(now)]
        if expired:
            await self._redis.hdel(_key("blocks"), *expired)
        return sorted((b for b in blocks if b.active(now)), key=lambda b: b.at, reverse=True)

    @_guarded
    async def remove_block(self, key: str) -> bool:
        return bool(await self._redis.hdel(_key("blocks"), key) == 1)

    @_holdable
    async def audit(self, entry: AuditEntry) -> None:
        """Held in a batch (a hand-back's line goes in its pipeline, after the record); the list's trim right after
        the push (a cut between them leaves it one longer for a while)."""
        raw = dumps(encode_audit(entry))

        def queue(pipe: Pipeline) -> None:
            pipe.lpush(_key("audit"), raw)
            pipe.ltrim(_key("audit"), 0, AUDIT_KEPT - 1)

        await self._write(queue)

    @_guarded
    async def audit_once(self, entry: AuditEntry, key: str, kept_seconds: int) -> bool:
        """One node: the line and its key (expiring) in one script. A Cluster: the key (``SET NX``), then the line
        (two slots); a line refused or cut after the key takes the key back, so that the retry writes it. Until
        2026-12-08 the key stayed: every retry answered "written" and the line was lost for good. A line whose
        answer was lost (written, not told) may now be written twice by the retry: a line twice is read, a line
        lost is not; a cut that also takes the key's removal still loses it (the Cluster's two slots)."""
        marker, kept_ms = _key("audit-once", key), kept_seconds * 1000
        if self.on_one_node:
            args = [dumps(encode_audit(entry)), AUDIT_KEPT, kept_ms]
            return bool(await self._script("audit_once", [marker, _key("audit")], args) == 1)
        if not await self._redis.set(marker, "1", nx=True, px=kept_ms):
            return False
        try:
            await self.audit(entry)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._redis.delete(marker)
            raise
        return True

    @_guarded
    async def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        raws = await self._redis.lrange(_key("audit"), 0, limit - 1)
        return [loads("audit", raw, decode_audit) for raw in raws]

    # When listeners were last at a console

    @_holdable
    async def mark_present(self, seen: dict[str, datetime]) -> None:
        if seen:
            args: list[Any] = [PRESENT_KEPT_SECONDS * 1000]
            for name, at in seen.items():
                args += [name, to_us(at)]
            await self._write(lambda pipe: _eval(pipe, "mark_present", [K.PRESENT], args))

    @_guarded
    async def last_present(self, names: Iterable[str]) -> dict[str, datetime]:
        wanted = list(names)
        found = await self._redis.hmget(K.PRESENT, wanted) if wanted else []
        return {name: from_us(int(at)) for name, at in zip(wanted, found, strict=True) if at is not None}

    # Which data key each instance seals with (gateway/sealing.py, ``SealingStore``)

    @_guarded
    async def advertise_sealing(self, advert: Sealing) -> list[Sealing]:
        at = to_us(advert.at)
        args = [advert.instance, f"{advert.key_id} {at}", at - SEALING_KEPT_SECONDS * 1_000_000,
                SEALING_KEPT_SECONDS * 1000]  # fmt: skip
        return _adverts(await self._script("advertise_sealing", [K.SEALING], args))

    @_guarded
    async def sealing_adverts(self) -> list[Sealing]:
        found: dict[Any, Any] = await self._redis.hgetall(K.SEALING)
        return _adverts([item for pair in found.items() for item in pair])

    @_guarded
    async def forget_sealing(self, instance: str) -> None:
        await self._redis.hdel(K.SEALING, instance)

    # Retention and erasure (gateway/store/redis_retention.py)

    @_guarded
    async def purge_conversation(self, stripped: Conversation) -> int:
        """The content, then its place in the young person's index (``K.person``: the identity it is kept under;
        its listener's history keeps it, as the record keeps its name), then the stripped record, last: a purge cut
        before that save leaves the record due, and the next pass does it all again. Until 2026-12-07 the record was
        saved before the index: a cut between them left the index naming the purged conversation for good (the
        stripped record, not due any more, names no identity to find it by)."""
        found = await self.get_conversation(stripped.id)
        self._read_under_lock.pop(stripped.id, None)
        self._indexed_under_lock.pop(stripped.id, None)  # its sets forgotten: the save below leaves every other
        count = await redis_retention.forget(self._redis, stripped.id, erase=False)
        person = None if found is None else self._person_key(found)
        if person is not None:
            await self._redis.zrem(person, stripped.id)
        if found is not None and found.client is not None:  # an ended one: listed only if an old instance ended it
            await self._redis.srem(K.client_open(found.client), stripped.id)  # (``K.client_open``, since 2026-12-07)
        await self.save_conversation(stripped)
        return count

    @_guarded
    async def erase_conversation(self, conversation_id: str) -> int:
        found = await self.get_conversation(conversation_id)
        self._read_under_lock.pop(conversation_id, None)
        self._indexed_under_lock.pop(conversation_id, None)
        self._erasing_under_lock.pop(conversation_id, None)
        record = None if found is None else Record(self._active_key(found.channel, found.sender), found.queue,
                                                   found.client, self._indexes_of(found))  # fmt: skip
        return await redis_retention.forget(self._redis, conversation_id, erase=True, record=record)

    @_guarded
    async def first_created(self) -> datetime | None:
        first = await self._redis.zrange(K.INDEX + "created", 0, 0, withscores=True)
        return from_us(int(first[0][1])) if first else None

    @_holdable
    async def expire_transcript(self, conversation_id: str, ttl_seconds: int) -> None:
        """The transcript and its index (held in a batch, sent with the conversation's last save). Under this task's
        lock on the conversation, sent after the ending's record was answered written (``HeldWrite.late``: with its
        writes of other slots, ``save_conversation``'s ``cut`` part): since 2026-12-07; until then it went before the
        record, and a record refused by the lock's fence (``LockLost``) left the expiry on the transcript of a
        conversation that goes on, lapsing while the young person still wrote
        (``tests/store/test_redis_fence_slots.py``). A cut between the two leaves an ended record without it: the
        purge deletes its transcript all the same."""

        def queue(pipe: Pipeline) -> None:
            for name in K.transcript_keys(conversation_id):
                pipe.expire(name, ttl_seconds)

        held = self._batch()
        if held is not None and _FENCING.get() is not None and _fence_of(conversation_id) is not None:
            held.append(HeldWrite(queue, late=True))
        else:
            await self._write(queue)

    async def forget_freed(self) -> None:
        return None  # deleted keys leave memory at once; persistence files are rewritten by Redis itself

    @_guarded
    async def seen_keys(self) -> list[str]:
        return await redis_retention.seen_keys(self._redis)

    @_guarded
    async def marks_of(self, conversation_id: str) -> list[str]:
        """The conversation's processed marks (``hg:d:{<id>}``, written with its record: ``put_conversation``)."""
        return _texts(await self._redis.zrange(K.done(conversation_id), 0, -1))

    @_guarded
    async def forget_seen(self, keys: Sequence[str]) -> None:
        """Each mark (its digest) in every day's hash that may hold it (one slot: {seen}), an HDEL of a shard's
        digests per hash, ``FORGET_AT_ONCE`` digests a round trip (an erasure names 16 candidates per message:
        ``ids.seen_digests_of_entry``); a processed id has no claim left (the mark replaced it in one step)."""
        today, digests = to_us(datetime.now(UTC)) // 86_400_000_000, sorted(set(keys))
        for start in range(0, len(digests), FORGET_AT_ONCE):
            shards: dict[int, list[str]] = {}
            for digest in digests[start : start + FORGET_AT_ONCE]:
                shards.setdefault(K.seen_shard(digest), []).append(digest)
            async with self._redis.pipeline(transaction=False) as pipe:
                for day in range(today, today + K.SEEN_DAYS + 1):
                    for shard, named in shards.items():
                        pipe.hdel(K.seen_marks(day, shard), *named)
                await pipe.execute()

    @_guarded
    async def inbox_forget(self, sender_key: str) -> int:
        sender_key = self._keys.lookup("inbox", sender_key)
        ids = _texts(await self._redis.zrange(K.INBOX + "sender:" + sender_key, 0, -1))
        aside = await self._aside_of(sender_key)
        async with self._redis.pipeline(transaction=True) as pipe:  # one slot: {inbox}
            pipe.delete(K.INBOX + "sender:" + sender_key, *(K.INBOX + "item:" + i for i in ids))
            pipe.zrem(K.INBOX + "heads", sender_key)
            pipe.zrem(K.INBOX + "urgent", sender_key)  # a risky message's line (redis_lua.py, ``_URGENT``)
            pipe.hdel(K.INBOX + "urgent_to", sender_key)
            if aside:
                pipe.delete(*(K.INBOX + "aside:" + i for i in aside))
                pipe.zrem(K.INBOX + "aside", *aside)
            await pipe.execute()
        return len(ids) + len(aside)

    async def _aside_of(self, sender_key: str) -> list[str]:
        """The ids of a sender's items set aside (few, and never changed once aside: no index by sender)."""
        ids = _texts(await self._redis.zrange(K.INBOX + "aside", 0, -1))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(K.INBOX + "aside:" + i, "sender")
            senders = await pipe.execute()
        return [i for i, sender in zip(ids, senders, strict=True) if sender is not None and _text(sender) == sender_key]

    # Encryption at rest

    @_guarded
    async def reseal(self) -> dict[str, int]:
        return await redis_reseal.reseal(self._redis, self._keys)

    async def compact(self) -> None:
        """Nothing: Redis keeps what was rewritten in its AOF/RDB until the next rewrite (docs/deployment.md)."""

    # Notices, their evidence, referrals

    @_guarded
    async def put_notice(self, notice: Notice) -> None:
        await self._put_record("notice", notice.id, notice.conversation_id, notice.created_at, notice.to_dict())

    @_guarded
    async def get_notice(self, notice_id: str) -> Notice | None:
        raw = await self._redis.get(_key("notice", notice_id))
        return None if raw is None else loads_sealed(self._keys, "notice", raw, Notice.from_dict)

    @_guarded
    async def list_notices(self, conversation_id: str | None = None) -> list[Notice]:
        raws = await self._records("notice", conversation_id)
        return await decoded_in_parts(raws, lambda raw: loads_sealed(self._keys, "notice", raw, Notice.from_dict))

    @_guarded
    async def put_evidence(self, notice_id: str, files: list[Evidence]) -> None:
        sealed = dumps_sealed(self._keys, "evidence", [f.to_dict() for f in files])
        await self._redis.set(_key("evidence", notice_id), sealed)

    @_guarded
    async def get_evidence(self, notice_id: str) -> list[Evidence]:
        raw = await self._redis.get(_key("evidence", notice_id))
        return [] if raw is None else [Evidence.from_dict(f) for f in loads_sealed(self._keys, "evidence", raw, list)]

    @_guarded
    async def put_upload(self, key: str, content_type: str, data: bytes) -> None:
        """Listed in its conversation's uploads (``K.uploads``), then written (two slots, in that order: an erasure
        reads the list, so it lists more, never less). On a Cluster one round trip more an upload (none a message)."""
        record = {"content_type": content_type, "data": base64.b64encode(data).decode()}
        conversation_id, slash, _ = key.partition("/")
        async with ordered(self._redis) as pipe:
            if slash:  # ``<conversation id>/<hash>`` (gateway/uploads.py): what an erasure of the conversation deletes
                pipe.sadd(K.uploads(conversation_id), key)
            pipe.set(_key("upload", key), dumps_sealed(self._keys, "upload", record))
            await pipe.execute()

    @_guarded
    async def get_upload(self, key: str) -> tuple[str, bytes] | None:
        raw = await self._redis.get(_key("upload", key))
        if raw is None:
            return None
        record = loads_sealed(self._keys, "upload", raw, dict)
        return str(record["content_type"]), base64.b64decode(record["data"])

    @_guarded
    async def drop_evidence(self, notice_id: str) -> int:
        files = await self.get_evidence(notice_id)
        await self._redis.delete(_key("evidence", notice_id))
        return len(files)

    @_guarded
    async def put_referral(self, referral: Referral) -> None:
        await self._put_record("referral", referral.id, referral.conversation_id, referral.created_at,
                               referral.to_dict())  # fmt: skip

    @_guarded
    async def get_referral(self, referral_id: str) -> Referral | None:
        raw = await self._redis.get(_key("referral", referral_id))
        return None if raw is None else loads_sealed(self._keys, "referral", raw, Referral.from_dict)

    @_guarded
    async def list_referrals(self, conversation_id: str | None = None) -> list[Referral]:
        raws = await self._records("referral", conversation_id)
        return await decoded_in_parts(raws, lambda raw: loads_sealed(self._keys, "referral", raw, Referral.from_dict))

    async def _put_record(self, kind: str, id_: str, conversation_id: str, at: datetime, data: dict[str, Any]) -> None:
        """The indexes, then the record (three slots, in that order: an index lists more, never less)."""
        score = to_us(at)
        async with ordered(self._redis) as pipe:
            pipe.zadd(_key(kind + "s"), {id_: score}, nx=True)
            pipe.zadd(_key(kind + "s", conversation_id), {id_: score}, nx=True)
            pipe.set(_key(kind, id_), dumps_sealed(self._keys, kind, data))
            await pipe.execute()

    async def _records(self, kind: str, conversation_id: str | None) -> list[str]:
        index = _key(kind + "s", conversation_id) if conversation_id else _key(kind + "s")
        found: list[Any] = await self._redis.zrange(index, 0, -1)
        raws: list[Any] = []
        for start in range(0, len(found), PART):  # every notice ever: read PART at a time, as the conversations
            raws += await _get_each(self._redis, [_key(kind, _text(i)) for i in found[start : start + PART]])
        return [_text(raw) for raw in raws if raw is not None]

    # Per-conversation locks, across instances

    @asynccontextmanager
    async def lock(self, conversation_id: str, timeout: float = 10.0) -> AsyncIterator[None]:
        lease = await self._acquire(conversation_id, timeout)
        try:
            renewal = Later(self._lock_renew_seconds, lambda: self._keep_lock(lease))
            locked, fencing = self._locked.set(conversation_id), _FENCING.set(_Fence(conversation_id, lease))
            try:
                yield
            finally:
                _FENCING.reset(fencing)
                self._locked.reset(locked)
                self._leave_read(conversation_id)
                renewal.cancel()
                await self._release(lease)
        except RedisError as error:
            raise StoreError(f"redis: {type(error).__name__}: {error}") from error

    def locked_active(
        self, channel: ChannelName, sender: str, now: datetime, *, claim: Claim | None = None, timeout: float = 10.0,
        only: str | None = None, erased: Callable[[], str] | None = None,
    ) -> _LockedActive:  # fmt: skip
        """The conversation the sender's address holds (read with the claim, else now), locked with its record
        read in the same round trip: when that record is active, it is the one (the address moves off an active
        conversation only once it ends). Else (none, ended meanwhile, a crash's leftover) the lock is let go,
        nothing written, and ``active_conversation`` finds or starts the conversation, which is then locked; with
        ``only`` no longer kept (read when the address names none or another: a GET more, on those paths only),
        ConversationEnded instead; also when its erasure's mark (``erased``) is kept, its record still there (a cut).
        ``only`` ended, not erased, and none other open: EndedMeanwhile, nothing opened (until 2026-12-07 the next
        conversation was opened here, past the web chat's new-chat limits)."""
        return _LockedActive(self, channel, sender, now, claim, timeout, only, erased)

    @_guarded
    async def _get_text(self, key: str) -> str | None:
        found = await self._redis.get(key)
        return None if found is None else _text(found)

    def locked_batch(
        self, conversation_id: str, timeout: float = 10.0, *, claim: Claim | None = None, undo_queue_step: bool = False
    ) -> _LockedBatch:
        """The lock, and a batch whose pipeline also releases it, as its last step: the writes and the release in
        one round trip (the release checks the token, like ``Lock.release``: a lapsed lock, somebody else's now, is
        left alone). When the batch's last write (events aside) is the conversation's record, with nothing of its
        slot's order after it (``save_conversation``: no status set to leave, no address to free), the record's own
        script releases the lock: one script less a message; the global processed mark may then follow the release,
        which the claim's check of the conversation's marks already covers (a crash there: DONE, the mark repaired).
        Left by an exception: the writes are dropped and the lock released at once, as ``lock`` does.

        ``claim`` rides with the lock's first attempt (a pipeline: the lock's slot, then the claim's), so a free
        lock is taken and the claim renewed, naming the conversation, in one round trip. When that attempt did
        not take the lock, the claim it renewed is harmless (its owner, still alive, names the conversation it is
        about to wait for) and is made again once the lock is held; a lapsed claim of another owner is settled
        by ``claim`` (the conversation it names decides).

        ``undo_queue_step`` (a console's action): its fence notes the queue entries it writes, put back as the record
        says if its commit is refused (``_unqueue_refused``; since 2026-12-07)."""
        return _LockedBatch(self, conversation_id, timeout, claim, undo_queue_step)

    def _leave_read(self, conversation_id: str) -> None:
        """The lock is left: this task's read of the record goes (not the next holder's, in this process, which
        may have taken the lock as soon as the batch's pipeline released it)."""
        read = self._read_under_lock.get(conversation_id)
        if read is not None and read[0] is asyncio.current_task():
            del self._read_under_lock[conversation_id]
        indexed = self._indexed_under_lock.get(conversation_id)
        if indexed is not None and indexed[0] is asyncio.current_task():
            del self._indexed_under_lock[conversation_id]
        leaving = self._leaving_under_lock.get(conversation_id)
        if leaving is not None and leaving[0] is asyncio.current_task():
            del self._leaving_under_lock[conversation_id]
        erasing = self._erasing_under_lock.get(conversation_id)
        if erasing is not None and erasing[0] is asyncio.current_task():
            del self._erasing_under_lock[conversation_id]

    async def _claimed(self, claim: Claim | None, answer: str | None) -> ClaimState:
        """Under the lock: the claim's state, from the answer it got riding with the lock when there is one."""
        if claim is None:
            return ClaimState.CLAIMED
        if answer is not None and not answer.startswith("check:"):
            return ClaimState(answer)
        return await self.claim(claim.key, claim.owner, claim.lease_seconds, kept_seconds=claim.kept_seconds)

    async def _acquire(self, conversation_id: str, timeout: float, claim: Claim | None = None) -> _Lease:
        """The conversation's lock, taken (StoreError after ``timeout`` s, or when Redis fails), with its record
        read in the same step (one slot): this task's ``get_conversation`` of it is then answered without a round
        trip, until this process writes the record or the lock is left. ``claim`` rides with the first attempt."""
        if self._closed:
            raise StoreError("the redis store is closed")
        along = (
            None
            if claim is None
            else (
                K.seen_claim(claim.key),
                _claim_args(
                    claim.key, claim.owner, claim.lease_seconds, conversation_id, self._clock(), claim.kept_seconds
                ),
            )
        )
        renewals = None if self._renewing is None else self._renewing.client
        lease = _Lease(self._redis, conversation_id, timeout, along, self._lock_lease_ms, renewals)
        try:
            if not await lease.acquire(token=secrets.token_hex(16)):  # redis-py's uuid1 took ~25 µs a lock
                raise LockTimeout(f"timed out waiting for the lock of conversation {conversation_id}")
        except RedisError as error:  # the last attempt may have taken it, its answer lost: released by its token
            if lease.tried is not None:
                self._unlock_again("lock perhaps taken", lease.tried, conversation_id, error)
            raise StoreError(f"redis: {type(error).__name__}: {error}") from error
        self._read_under_lock[conversation_id] = (asyncio.current_task(), lease.record)
        self._erasing_under_lock[conversation_id] = (asyncio.current_task(), lease.erasing)
        if claim is not None:
            self._leaving_under_lock[conversation_id] = (asyncio.current_task(), lease.leaving)
        return lease

    async def _release(self, lease: _Lease) -> None:
        """The lock let go (a lapsed one, perhaps somebody else's now, is left alone); a release that fails raises,
        and is made again until Redis answers (``redis_release``) instead of holding the conversation 6 s."""
        token = lease.local.token
        try:
            await lease.release()
        except LockNotOwnedError:
            return
        except RedisError as error:
            if token is not None:
                self._unlock_again("lock", token, lease.conversation_id, error)
            raise

    def _unlock_again(self, what: str, token: str | bytes, conversation_id: str, error: RedisError) -> None:
        name = K.lock(conversation_id)
        unlock = [name, K.lock_writes(conversation_id)]
        self._releases.again(what, error, lambda: self._script("unlock", unlock, [token]))

    async def _keep_lock(self, lease: _Lease) -> None:
        """Renew the lease now and then every period (``lock_timing``) after the previous renewal was SENT, while the
        lock is held; stop once it is somebody else's (every renewal in flight then cancelled). Renewals overlap, up
        to ``RENEWAL_CONNECTIONS`` in flight (the renewals' own connections, ``open``): one whose answer is held on
        its way back does not hold the next one back. Every lock's renewals share those connections through
        ``_renewing`` (since 2026-12-07): those sent while both are out leave together, in one write, when one comes
        back; until then each took a connection for its round trip, and with 20 locks held behind a 0.6 s round trip
        they queued for the pool and came after their lease (``tests/test_lock_pool.py``). Until 2026-12-07 the next
        renewal was sent a period after the previous one's ANSWER: an answer held 4.5 s, then a renewal held 4.5 s on
        its way up, each within the socket timeout, reached Redis 9.5 s after the previous one ran, past its 6 s
        lease, while another instance took the lock (``tests/test_lock_network.py``). The send of the latest renewal
        answered is noted (``_Fence.deadline``): an older renewal's late answer never moves it back.

        The store closed (since 2026-12-07), no renewal more: the lease lapses by itself, said once a store. Until
        then a lock still held at the close was renewed every period until released, each renewal failing at once on
        the closed connections and dropped without a word (``tests/store/test_redis_lock.py``)."""
        slots = asyncio.Semaphore(RENEWAL_CONNECTIONS)
        try:
            async with asyncio.TaskGroup() as renewals:
                while True:
                    await slots.acquire()
                    if self._closed:
                        slots.release()
                        break
                    renewals.create_task(self._renew_lock(lease, slots))
                    await asyncio.sleep(self._lock_renew_seconds)
        except* LockNotOwnedError:  # somebody else's: the TaskGroup cancelled every other renewal in flight
            pass
        if self._closed and not self._told_closed_renewals:
            self._told_closed_renewals = True
            log.warning("redis: the store closed while a conversation lock was held: its renewals stop, its lease "
                        "lapses within %.0f s", self._lock_lease_ms / 1000)  # fmt: skip

    async def _renew_lock(self, lease: _Lease, slots: asyncio.Semaphore) -> None:
        """One renewal of ``_keep_lock`` (its slot given back at the end); LockNotOwnedError, raised, ends them all."""
        try:
            sent = time.monotonic()
            await lease.reacquire()
            lease.renewed = sent if lease.renewed is None else max(lease.renewed, sent)
        except LockNotOwnedError:
            raise
        except RedisError:
            pass  # the next renewal may pass; the lease still runs meanwhile
        except Exception as exc:  # a bug must not end the renewal silently: the lock would lapse while held
            log.error("redis: renewing a conversation lock failed with %s at %s", type(exc).__name__, where(exc))
        finally:
            slots.release()


def too_old(version: str) -> bool:
    """Whether a ``redis_version`` (``INFO server``: ``7.0.15``, ``6.2.0-rc1``, a fork's ``255.255.255``) is
    older than ``REDIS_OLDEST``; one that cannot be read is not refused (a fork naming itself otherwise)."""
    parts = version.split("-", 1)[0].split(".")
    try:
        numbers = tuple(int(part) for part in parts[:2])
    except ValueError:
        return False
    return len(numbers) == 2 and numbers < REDIS_OLDEST


def lock_timing(socket_timeout: float) -> tuple[int, float]:
    """The conversation lock's lease (ms) and its renewal's period (s) when a call may wait ``socket_timeout`` s on
    its way without failing: a renewal sent a period after the previous one was sent (``_keep_lock``; until
    2026-12-07 after its answer, which may itself have been held that long) and held that long still reaches Redis
    ``LOCK_MARGIN_SECONDS`` before the lease's end. The lease is ``LOCK_LEASE_MS`` (what a crashed holder
    blocks its conversations for) while the socket timeout leaves room in it, else the socket timeout and twice the
    margin; the period a third of it at most (5 s: 6 s and 0.5 s; 1 s: 6 s and 2 s; 10 s: 11 s and 0.5 s). Until
    2026-12-07 a third of a 6 s lease whatever the timeout: a renewal held over 4 s came after the lease's end
    (``tests/test_lock_network.py``)."""
    lease = max(LOCK_LEASE_MS / 1000, socket_timeout + 2 * LOCK_MARGIN_SECONDS)
    return round(lease * 1000), min(lease / 3, lease - socket_timeout - LOCK_MARGIN_SECONDS)


def _claim_args(
    key: str,
    owner: str,
    lease_seconds: float,
    conversation_id: str,
    now: datetime,
    kept_seconds: int | None = None,
    *,
    take_over: bool = False,
) -> list[Any]:
    """The ``claim`` script's ARGV (its KEYS: ``K.seen_claim(key)``): owner, now (ms), lease end (ms), the
    conversation it names, seconds kept, then where the processed marks of ``key`` are (the days to look at), and
    whether another owner's live claim is taken over (``DedupeStore.claim``'s ``take_over``).
    ``now``: the store's clock (``RedisStore.use_clock``: the app's, on Redis's ``TIME``; until 2026-12-07 the
    host's)."""
    now_ms = to_us(now) // 1000
    today = to_us(datetime.now(UTC)) // 86_400_000_000  # the marks expire by the wall clock
    return [owner, now_ms, now_ms + int(lease_seconds * 1000), conversation_id, int(CLAIM_KEPT.total_seconds()),
            K.SEEN, K.seen_shard(digest := seen_digest(key)), today, _mark_days(kept_seconds), digest,
            "1" if take_over else ""]  # fmt: skip


def _mark_days(kept_seconds: int | None) -> int:
    """The days after today on which a processed mark kept ``kept_seconds`` can expire, so be found (the claim's
    scan: today and these). A mark saved at t0 (at or before now) for ``kept_seconds`` is in the hash of the day
    t0 + kept_seconds falls on, no later than the day now + kept_seconds falls on: today + ceil(kept_seconds / a
    day); one day more for a saving instance whose clock ran ahead. None (a key whose marks may be kept longer):
    ``SEEN_DAYS``, the longest any mark is kept."""
    if kept_seconds is None:
        return K.SEEN_DAYS
    return min(K.SEEN_DAYS, -(-kept_seconds // 86_400) + 1)


class _Lease(Lock):
    """redis-py's lock (its retries, renewal and release by token), each attempt taking it with the conversation's
    record read in the same step: the ``lock_read`` script, one slot ``{<conversation id>}``. ``along``: a claim
    (its key, the ``claim`` script's ARGV) sent after the first attempt in the same pipeline; with one (a message's
    processing), every attempt also reads how the conversation's ending is listed as begun (``redis_keys.leaving``,
    the same slot: in the script, no command more)."""

    def __init__(self, client: Redis, conversation_id: str, timeout: float,
                 along: tuple[str, list[Any]] | None = None, lease_ms: int = LOCK_LEASE_MS,
                 renewals: Redis | None = None) -> None:  # fmt: skip
        super().__init__(client, K.lock(conversation_id), timeout=lease_ms / 1000, sleep=LOCK_POLL_SECONDS,
                         blocking_timeout=timeout, thread_local=False)  # fmt: skip
        self.lease_ms = lease_ms
        self._client, self._key = client, K.lock(conversation_id)
        self._record_key, self._along = K.conversation(conversation_id), along
        self._keys = [self._key, self._record_key, K.erasing(conversation_id)]
        self._keys += [] if along is None else [K.leaving(conversation_id)]
        self.conversation_id = conversation_id
        self.tried: str | bytes | None = None  # the token of the attempts (the last may have taken it unanswered)
        self.record: str | None = None  # the record when the lock was taken (None: there is none)
        self.erasing = False  # whether its erasure was begun (``K.erasing``) when the lock was taken
        self.leaving: str | None = None  # with a claim: how the ending is listed as begun when it was taken, or None
        self.claimed: str | None = None  # the claim's answer, when it rode with the attempt that took the lock
        self.began_ms = 0  # Redis's time (ms) when the attempt that took the lock ran: its lease's start
        self.answered = 0.0  # time.monotonic() when that attempt's answer came
        self.renewed: float | None = None  # time.monotonic() when the last renewal answered was sent
        self._renewals = renewals  # the client the renewals go on (``RedisStore._renewing``'s: their own connections)
        self._unlock: AsyncScript | None = None  # ``unlock``, registered at the first release

    async def do_reacquire(self) -> Literal[True]:
        """redis-py's, on the renewals' own client when there is one (since 2026-12-07: on the store's pool, a
        renewal waited behind its other callers for a connection, past the lease), the face of their batcher
        (``RedisStore._renewing``, since 2026-12-07: the renewals of every lock pipelined on its connections). Its
        own script (since 2026-12-07: the count of fenced writes kept as long), sent as an EVAL with its text (Redis
        caches it), one round trip: until 2026-12-07 an EVALSHA, which an emptied script cache (a restart, a
        failover) refused, then a SCRIPT LOAD and the EVALSHA again, three round trips each as long as the socket
        timeout allows, past the lease (``tests/test_lock_network.py``)."""
        client = self.redis if self._renewals is None else self._renewals
        keys = [self.name, K.lock_writes(self.conversation_id)]
        if not await client.eval(SCRIPTS["lock_renew"], len(keys), *keys, self.local.token, self.lease_ms):
            raise LockNotOwnedError("Cannot reacquire a lock that's no longer owned")
        return True

    async def do_release(self, expected_token: bytes) -> None:
        """redis-py's, with the count of fenced writes deleted with the lock (``unlock``; since 2026-12-07)."""
        if self._unlock is None:
            self._unlock = self.redis.register_script(SCRIPTS["unlock"])
        keys = [self.name, K.lock_writes(self.conversation_id)]
        if not await self._unlock(keys=keys, args=[expected_token], client=self.redis):
            raise LockNotOwnedError("Cannot release a lock that's no longer owned")

    async def do_acquire(self, token: str | bytes) -> bool:
        along, self._along, self.tried = self._along, None, token
        async with ordered(self._client) as pipe:
            _eval(pipe, "lock_read", self._keys, [token, self.lease_ms])
            if along is not None:
                _eval(pipe, "claim", [along[0]], along[1])
            found, *claimed = await pipe.execute()
        if not found:
            return False
        self.answered, self.began_ms = time.monotonic(), int(found[1])
        self.record = found[2] if len(found) > 2 else None
        self.erasing = len(found) > 3 and found[3] is not None
        self.leaving = _text(found[4]) if len(found) > 4 and found[4] is not None else None
        self.claimed = _text(claimed[0]) if claimed else None
        return True


class _LockedBatch:
    """``RedisStore.locked_batch``, its steps in the same order. A class, not an ``asynccontextmanager``: entered at
    every message, a generator-based one made an async generator each time, registered it with the loop and ran two
    ``anext`` (bench/README.md, "Twenty-eighth pass"), as ``_Batch`` and ``ordered`` said before it."""

    __slots__ = (
        "_claim", "_fencing", "_held", "_id", "_inner", "_lease", "_renewal", "_store", "_timeout", "_tokens", "_undo",
    )  # fmt: skip

    def __init__(
        self, store: RedisStore, conversation_id: str, timeout: float, claim: Claim | None, undo: bool = False
    ) -> None:
        self._store, self._id, self._timeout, self._claim, self._undo = store, conversation_id, timeout, claim, undo
        self._inner: AbstractAsyncContextManager[None] | None = None  # inside a batch already: ``lock`` alone
        self._lease: _Lease | None = None
        self._renewal: Later | None = None
        self._held: list[HeldWrite] = []
        self._tokens: tuple[contextvars.Token[Any], contextvars.Token[str], contextvars.Token[Any]] | None = None
        self._fencing: contextvars.Token[_Fence | None] | None = None

    async def __aenter__(self) -> ClaimState:
        store = self._store
        if store._batch() is not None:  # inside a batch already: the outer one sends the writes
            inner = self._inner = store.lock(self._id, self._timeout)
            await inner.__aenter__()
            fence = _FENCING.get()
            if fence is not None:  # the lock's own fence
                fence.undo = self._undo
            try:
                return await store._claimed(self._claim, None)
            except BaseException as error:
                await inner.__aexit__(type(error), error, error.__traceback__)
                raise
        lease = self._lease = await store._acquire(self._id, self._timeout, self._claim)
        self._renewal = Later(store._lock_renew_seconds, lambda: store._keep_lock(lease))
        token, locked = store._held.set(self._held), store._locked.set(self._id)  # a claim in here names it
        self._tokens = (token, locked, store._held_by.set(asyncio.current_task()))
        fence = _Fence(self._id, lease)
        fence.undo = self._undo
        self._fencing = _FENCING.set(fence)  # its conversation's writes fenced by the lock
        try:
            return await store._claimed(self._claim, lease.claimed)
        except BaseException:
            await self._let_go()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        if self._inner is not None:
            return bool(await self._inner.__aexit__(kind, error, traceback))
        if kind is not None:  # the writes dropped, the lock released at once; the block's exception goes on
            await self._let_go()
            return False
        store, lease, held = self._store, self._lease, self._held
        assert lease is not None and self._renewal is not None  # entered
        try:
            self._renewal.cancel()
            owner = lease.local.token
            name = K.lock(self._id)
            # an event after the record is published by a script fenced by the lock (``Published``, since
            # 2026-12-07): the release then follows it, a command more in the same pipeline
            last = held[-1] if held else None
            fence = _FENCING.get()
            if fence is not None:  # its last pipeline (the release in it): no ``fenced_check`` at its end
                fence.closing = True
            if last is not None and last.unlock == [] and last.record == self._id:
                last.unlock.extend([name, owner])  # the record's script releases it: the batch's last step of its slot
            else:
                unlock = [name, K.lock_writes(self._id)]
                held.append(HeldWrite(lambda pipe: _eval(pipe, "unlock", unlock, [owner])))
            try:
                await store._flush()
            except RedisError as failure:  # the release may not have been made either: try it alone
                with contextlib.suppress(RedisError):
                    await store._release(lease)
                raise StoreError(f"redis: {type(failure).__name__}: {failure}") from failure
        finally:
            self._reset()
        return False

    async def _let_go(self) -> None:
        """Left by an exception (in the claim's check or the block): the lock released at once, writes dropped."""
        assert self._lease is not None and self._renewal is not None  # entered
        try:
            self._renewal.cancel()
            with contextlib.suppress(RedisError):
                await self._store._release(self._lease)
        finally:
            self._reset()

    def _reset(self) -> None:
        store, tokens = self._store, self._tokens
        assert tokens is not None and self._fencing is not None  # entered
        _FENCING.reset(self._fencing)
        store._locked.reset(tokens[1])
        store._leave_read(self._id)
        store._held_by.reset(tokens[2])
        store._held.reset(tokens[0])


class _LockedActive:
    """``RedisStore.locked_active``, its steps in the same order; a class for the reason ``_LockedBatch`` is one."""

    __slots__ = ("_channel", "_claim", "_erased", "_inner", "_now", "_only", "_sender", "_store", "_timeout")

    def __init__(self, store: RedisStore, channel: ChannelName, sender: str, now: datetime, claim: Claim | None,
                 timeout: float, only: str | None, erased: Callable[[], str] | None = None) -> None:  # fmt: skip
        self._store, self._channel, self._sender, self._now = store, channel, sender, now
        self._claim, self._timeout, self._only, self._erased = claim, timeout, only, erased
        self._inner: _LockedBatch | None = None

    async def __aenter__(self) -> tuple[Conversation, ClaimState]:
        store = self._store
        address = store._active_key(self._channel, self._sender)
        read = store._address_read.get()
        store._address_read.set(None)
        held = read[1] if read is not None and read[0] == address else await store._get_text(address)
        if held is not None and self._only not in (None, held):  # a newer one: never the erased one's message
            await self._written_in_kept()
        if held is not None:
            inner = _LockedBatch(store, held, self._timeout, self._claim)
            state = await inner.__aenter__()
            try:
                current = await store.get_conversation(held)  # read as the lock was taken
            except BaseException as error:
                await inner.__aexit__(type(error), error, error.__traceback__)
                raise
            if current is not None and current.active and self._only == held and await store.erasing(held):
                await inner.__aexit__(None, None, None)  # its erasure cut before the record: nothing written in it
                store._address_read.set(None)
                raise ConversationEnded("the conversation this message was written in is being erased")
            if current is not None and current.active:
                store._addressed.set((address, held))
                self._inner = inner
                return current, state
            await inner.__aexit__(None, None, None)
        else:  # the address named none: the lookup starts from that (a new sender: one round trip less)
            store._address_read.set((address, None))
        if self._only is not None:  # ended meanwhile, none other open: the caller asks the new-chat limits first
            await self._written_in_kept()
            store._address_read.set(None)
            raise EndedMeanwhile("the conversation this message was written in has ended")
        conversation, _ = await store.active_conversation(self._channel, self._sender, self._now)
        inner = _LockedBatch(store, conversation.id, self._timeout, self._claim)
        state = await inner.__aenter__()
        try:
            found = await store.get_conversation(conversation.id) or conversation
        except BaseException as error:
            await inner.__aexit__(type(error), error, error.__traceback__)
            raise
        self._inner = inner
        return found, state

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        assert self._inner is not None  # entered
        return await self._inner.__aexit__(kind, error, traceback)

    async def _written_in_kept(self) -> None:
        """ConversationEnded when ``only`` is no longer kept (erased while the message waited): nothing opened for
        the message, nor written in a newer conversation another tab began after the erasure. Its record still there
        with its erasure's mark kept (``erased``: an erasure cut before the record, a GET more): the same, the mark
        decides (until 2026-12-07 only the record was read: a new conversation opened for the erased young person)."""
        assert self._only is not None
        store = self._store
        if await store.get_conversation(self._only) is None or (
            self._erased is not None and await store.erased_at(self._erased()) is not None
        ):
            store._address_read.set(None)
            raise ConversationEnded("the conversation this message was written in was erased")


def _entry(
    conversation_id: str, value: str, keys: DataKeys, shared: Callable[[str], SharedText] | None = None
) -> TranscriptEntry:
    """An element of a transcript: ``<id>\\n<delivery code><provider id>\\n<sealed data>`` (its provider id read
    back as its head keeps it: the digest since 2026-12-07, ``store.holds_provider_id``)."""
    entry_id, _, rest = value.partition("\n")
    head, _, data = rest.partition("\n")
    delivery = _DELIVERIES.get(head[:1], Delivery.PENDING) if head else None  # a newer version's code: PENDING
    if delivery is None:
        raise StoreError("a stored transcript record cannot be read (delivery)")
    entry = decode_entry_data(entry_id, keys.open("entry", data), delivery, head[1:] or None, shared)
    return replace(entry, conversation_id=conversation_id)


def _seen_mark(key: str, until_ms: int, claimed: str, deadline: str = "") -> tuple[list[str], list[Any]]:
    """The ``seen_mark`` script's keys and arguments: the mark in the hash of the day it expires on (not after
    ``deadline``, Redis's ms, when given: ``_Fence.deadline``)."""
    day, digest = until_ms // 86_400_000, seen_digest(key)
    args = [digest, (day + 1) * 86_400, claimed, K.SEEN, deadline]
    return [K.seen_claim(key), K.seen_marks(day, K.seen_shard(digest))], args


def _line_step(
    item_id: str, conversation_id: str, due: str | int, next_lease: int | None = None
) -> tuple[list[str], list[Any]]:
    keys = [K.outbox_line(conversation_id), K.OUTBOX + "heads", K.OUTBOX_PENDING]
    return keys, [item_id, conversation_id, due, "" if next_lease is None else next_lease]


def _fence(lease: datetime | None) -> str:
    """The lease end a caller holds, as the scripts compare it (µs), or '' for no condition."""
    return "" if lease is None else str(to_us(lease))


def _outbox_item(found: dict[str, str], keys: DataKeys) -> OutboxItem:
    return OutboxItem(
        id=found["id"],
        conversation_id=found["conv"],
        payload=loads_sealed(keys, "outbox", found["payload"], dict) if "payload" in found else {},  # sent: dropped
        created_at=from_us(int(found["created_us"])),
        next_attempt_at=from_us(int(found["next_us"])),
        attempts=int(found["attempts"]),
        last_error=found.get("last_error"),
        status=OutboxStatus(found["status"]),
        provider_message_id=found.get("pmid"),
        parts_sent=int(found.get("parts_sent", 0)),
    )


def _inbox_item(found: dict[str, str], keys: DataKeys) -> InboxItem:
    return InboxItem(
        id=found["id"], sender_key=found["sender"], payload=loads_sealed(keys, "inbox", found["payload"], dict),
        received_at=from_us(int(found["received_us"])), next_attempt_at=from_us(int(found["next_us"])),
        attempts=int(found["attempts"]),
    )  # fmt: skip


def _late_pair(member: str) -> tuple[str, str]:
    conversation_id, _, entry_id = member.partition(" ")
    return conversation_id, entry_id


def _timer_member(conversation_id: str, kind: str) -> str:
    return json.dumps([conversation_id, kind])


def _timer(member: str, score: float) -> Timer | None:
    conversation_id, kind = json.loads(member)
    return Timer.read(conversation_id, kind, from_us(int(score)))
