"""The web chat: the websocket behind ``/chat`` and the widget (protocol: docs/webchat-protocol.md).

The young person's session token (kept in their browser) is their address on this channel. Outgoing messages
reach the page through the store's events, so the chat works the same with several gateway instances: each
instance forwards the events of the conversations whose sockets it holds. Private notes never leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import re
import secrets
import weakref
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from gateway import leaving
from gateway.clock import Clock
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.errors import ConversationEnded, EndedMeanwhile, ReplicasBehind, StoreError
from gateway.events import (
    EntryAdded,
    Erased,
    Event,
    LanguageChanged,
    QueueChanged,
    Resync,
    StatusChanged,
    Typing,
    entry_json,
    scope,
)
from gateway.flowset import FlowSet
from gateway.gate import Gate, Refusal, Refused
from gateway.ids import inbound_key
from gateway.language import language_of
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.proxies import ClientAddresses
from gateway.ratelimit import Limit, client_address
from gateway.sockets import KEEPALIVE, SEND_TIMEOUT, Forwarding, SocketWriter, incoming
from gateway.store import (
    Author,
    BatchStore,
    ConversationStore,
    Delivery,
    ErasedStore,
    EventStore,
    LockStore,
    QueueStore,
    Subscription,
    TimerKind,
    TimerStore,
    TranscriptEntry,
    TranscriptStore,
)
from gateway.supervisor import where
from gateway.turns import FairTurns
from gateway.untrusted import chat_token, load_json

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024
MAX_TEXT = 4000
HIDDEN = {Author.NOTE, Author.SYSTEM}  # for listeners only: private notes, the server's entries
OUTGOING = {Author.BOT, Author.LISTENER}  # what the page acknowledges (delivered, read)
MAX_RECEIPT_IDS = 100
FRAME_TYPES = ("hello", "message", "typing", "end", "receipt", "language")
RANK = {Delivery.SENT: 1, Delivery.DELIVERED: 2, Delivery.READ: 3}
ENTRY_LISTS = {"session": "history", "resync": "entries"}  # the frames that carry a list of entries, and where
OPENING_LOCK = "opening:"  # + an opening key's keyed hash: the lock its hellos take (never a conversation's id)
REFUSED_KEPT = 64  # the refused messages a socket remembers for their automatic tries (``ChatSession.refused``)
NOTICE_AGAIN = timedelta(minutes=1)  # a refusal's notice shown again on one socket after this long (the flood's window)
END_SHOWN = timedelta(hours=1)  # a page that missed its conversation's end is shown it this long after (KEEP_MS)
CONVERSATION_HANDLE = re.compile(r"[A-Za-z0-9_-]{16,64}")  # what a hello's "conversation" may be (an id's form)
ARM_RETRY = (0.5, 30.0)  # seconds before arming a gone timer again while the store does not answer: first, most
ARM_AT_ONCE = 32  # gone timers armed at once (thousands of pages closing together: a proxy restarting)
HELLOS_AT_ONCE = 32  # hellos worked at once (an instance's pages all coming back: ``WebChatHub.hello_turn``)
HELLOS_PER_NETWORK = 4  # of them, at most this many of one client network's (a troll's 64 sockets wait their turn)
HELLOS_PER_SHARED_NETWORK = 16  # inside a declared shared network (a school, a CGNAT): as its connections, 4 times


class WebChatRoles(
    ConversationStore, TranscriptStore, QueueStore, TimerStore, EventStore, LockStore, BatchStore, ErasedStore,
    Protocol,
):  # fmt: skip
    """What the web chat needs of the store (the dispatcher does the processing; a batch: a quick exit's or a
    "Terminer"'s writes together, ``gateway/leaving.py``; the erasures' marks, ``was_erased``)."""


RESYNC_AT_ONCE = 32  # conversations followed again, or read for a resync, at once (their calls batched together)
POSITION_SECONDS = 10.0  # how often the place in line of the queued conversations followed here is read again
PAGE_LANGUAGES = ("fr", "en")  # the languages of the page's own texts (chat.js TEXTS)


class ResyncPasses:
    """One subscription's resync passes (``WebChatHub._forward``): the conversations the pass under way reads, those
    it has still to read (their frames left out: its read comes after them) and those it is reading (their frames
    held until their resync frame is out), and the conversations to read once more after it (a Resync asked while it
    ran, for those it had begun reading by then)."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()  # a pass is to be made (``conversations``)
        self.running = False  # from a pass's start until its last read ended
        self.conversations: list[str] = []
        self.unread: set[str] = set()
        self.reading: dict[str, list[dict[str, Any]]] = {}
        self.again: set[str] = set()

    def start(self, conversations: list[str]) -> None:
        self.running, self.conversations, self.unread = True, conversations, set(conversations)
        self.asked.set()


class Place(NamedTuple):
    """What a queued conversation's pages were last told of its wait: its place, the queue it waits in, and, while
    that queue is closed, when its listeners are back (``reopens``, by page language; None while it is open)."""

    position: int
    queue: str | None
    reopens: dict[str, str] | None


class WebChatHub:
    """Which sockets follow which conversation, and the forwarding of events to them (a supervised worker).

    Each socket has its own :class:`~gateway.sockets.SocketWriter`: forwarding only offers frames, so a reset or
    a socket that stopped reading is dropped without holding anybody else's replies. When events may have been
    missed (the store's ``resync`` event after a reconnection, or the worker restarting), every socket gets a
    ``resync`` frame: its conversation's status and the entries it was not sent (an entry goes once to a socket).

    A socket is attached *before* its conversation is read for its first frame (:meth:`attach`, then
    :meth:`view`, then :meth:`opened`): what the forwarding brings it meanwhile is held, and sent after that first
    frame, so an event is either in what was read or reaches the socket; no entry is sent twice to a socket.
    """

    def __init__(
        self, store: WebChatRoles, dispatcher: Dispatcher, flows: FlowSet, metrics: Metrics, gate: Gate, *,
        clock: Clock, addresses: ClientAddresses | None = None, keepalive: float = KEEPALIVE,
        position_seconds: float = POSITION_SECONDS, replicated: Callable[[], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        self.store, self.clock = store, clock
        # how long ago this process last ran before a hold it is just out of (``LoopWatch.held_for``, wired in
        # gateway/app.py; since 2026-12-07): a socket's close seen on resume may have come that long before
        self.held_for: Callable[[], float] = lambda: 0.0
        self.replicated = replicated  # GATEWAY_REDIS_REPLICA_ACKS: awaited before a message's ack (gateway/app.py)
        self.keepalive = keepalive  # seconds: a socket sent nothing this long gets a frame (sockets.incoming)
        self.dispatcher, self.flows = dispatcher, flows
        self.metrics = metrics
        self.gate = gate
        self.addresses = addresses or ClientAddresses()
        self.sockets: dict[str, dict[SocketWriter, set[str]]] = defaultdict(dict)  # → ids of the entries sent it
        self.attached: dict[SocketWriter, str] = {}  # the conversation each socket follows (at most one: ``attach``)
        self.holding: dict[SocketWriter, list[dict[str, Any]]] = {}  # frames for sockets whose first is not out
        # The bot's and listeners' entries sent to the sockets of a conversation, and how far each got (sent,
        # delivered, read): the page's receipts only ever concern these, and only ever move them forward.
        self.outgoing: dict[str, dict[str, Delivery]] = {}
        self.open: weakref.WeakSet[SocketWriter] = weakref.WeakSet()  # every socket, for shutdown
        self.erased: set[str] = set()  # followed conversations erased meanwhile (gateway/erasure.py): no gone timer
        self.arming: dict[str, asyncio.Task[None]] = {}  # gone timers being armed, by conversation
        self._arming_at_once = asyncio.Semaphore(ARM_AT_ONCE)  # :meth:`arm_gone`: a few at a time
        self.hellos = FairTurns(HELLOS_AT_ONCE)  # :meth:`hello_turn`; ``hellos.waiting``: waiting their turn
        metrics.webchat_hellos_waiting.set_function(lambda: self.hellos.waiting)
        # The conversations this instance's chat sessions follow: the store sends their events here, and only
        # theirs (docs/architecture.md); those no session follows any more are let go at the forwarder's next event.
        self.following: Counter[str] = Counter()
        self._leaving: set[str] = set()
        self._forwarding = Forwarding(store, metrics.outages, "webchat_forwarding")
        self._passes: ResyncPasses | None = None  # the current subscription's resync passes (:meth:`_forward`)
        # The place in line last told to the pages of each queued conversation followed here (:meth:`status`):
        # read again every ``position_seconds`` (:meth:`refresh_positions`), a change told as a status frame; with
        # whether its queue is closed and when it reopens, told again as the line closes, opens or its day turns.
        self.positions: dict[str, Place] = {}
        self.position_seconds = position_seconds
        # The erasure of a conversation marked erased with its record still there, finished (``Eraser.finish_cut``,
        # wired in gateway/app.py): :meth:`erasure_cut`.
        self.finish_erasure: Callable[[str], Awaitable[None]] | None = None

    def arm_gone(self, conversation_id: str, now: datetime) -> asyncio.Future[None]:
        """Arm the conversation's gone timer (its socket closed at ``now``) in a task of the hub's, so that a
        handler cancelled meanwhile (shutdown, its connection gone) does not lose it. While the store does not
        answer it tries again, until it does or the browser comes back (:meth:`stop_arming`); each failure is
        logged by class and counted (``gateway_timer_arming_failures``), never left unretrieved. The future
        answered is done after the first try (armed or not): a handler waits for that, not for the store.
        ``ARM_AT_ONCE`` are armed at a time, the others waiting their turn (cancelled there when the browser comes
        back): until 2026-12-07 all at once, and 4,050 pages closing together (a proxy restarting) had their locks,
        records and timers read and written in the same few turns of the event loop, each decoding thousands of
        records (``tests/test_webchat_close_many.py``)."""
        self.stop_arming(conversation_id)
        first_try = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._arm_gone(conversation_id, now, first_try), name="webchat-arm-gone")
        self.arming[conversation_id] = task
        task.add_done_callback(functools.partial(self._armed, conversation_id, first_try))
        return first_try

    @contextlib.asynccontextmanager
    async def hello_turn(self, address: str) -> AsyncIterator[None]:
        """A hello's turn: ``HELLOS_AT_ONCE`` worked at once, the others waiting (never refused, never timed out: one
        waiting long is still answered). When one instance of two dies, its ~1,000 pages say hello to the survivor
        within a second; until 2026-12-07 it worked them all at once and the messages of the pages already on it
        waited behind the herd's store calls (bench/pages.py ``--kill --talk-rate``: their reply p50 7 → 108 ms, p99
        23 → 579 ms while the herd came back). A message never waits for a turn.

        Of them, at most ``HELLOS_PER_NETWORK`` of one client network (``HELLOS_PER_SHARED_NETWORK`` inside a
        declared shared one), counted by its keyed hash (``Gate.client_key``); the rest of that network wait for its
        own turns, in the order they came, holding no turn and no place ahead of another network's hello
        (:class:`~gateway.turns.FairTurns`). Until 2026-12-07 (afternoon) one line for all: one network's 64 sockets
        (``gateway/connections.py``'s cap) held the 32 turns and the line ahead of every young person's hello
        (``tests/test_webchat_hellos_fair.py``). A hello whose connection is lost by its turn is not worked
        (``ChatSession._handle_text``: ``SocketWriter.gone``): until 2026-12-07 (later) it was, a conversation opened
        and greeted for a page that had given up waiting (its socket hears nothing while its hello waits) and said
        hello again on a new one: the herd's work doubled."""
        shared = self.gate.networks.is_shared(address)
        share = HELLOS_PER_SHARED_NETWORK if shared else HELLOS_PER_NETWORK
        async with self.hellos.turn(self.gate.client_key(address), share):
            yield

    @property
    def hellos_waiting(self) -> int:
        """Hellos waiting their turn (``gateway_webchat_hellos_waiting``)."""
        return self.hellos.waiting

    def forget_erased(self, conversation_id: str) -> None:
        """An erased conversation no socket of this instance follows any more: nothing here will name it again, so
        it leaves :attr:`erased` (kept there, one id an erasure whose page moved on without closing, for ever)."""
        if conversation_id not in self.sockets:
            self.erased.discard(conversation_id)

    def stop_arming(self, conversation_id: str) -> None:
        """The browser is back (or the gateway stops): a gone timer still being armed is not wanted any more."""
        task = self.arming.pop(conversation_id, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        """At shutdown: timers still being armed are given up (docs/guarantees.md)."""
        for conversation_id in list(self.arming):
            self.stop_arming(conversation_id)

    async def _arm_gone(self, conversation_id: str, now: datetime, first_try: asyncio.Future[None]) -> None:
        delay = ARM_RETRY[0]
        while True:
            try:
                async with self._arming_at_once:
                    await leaving.socket_closed(self.store, conversation_id, now)
                self.metrics.outages.answered("webchat")
                return
            except StoreError as exc:  # told once an outage (gateway/outage_log.py), tried again
                self.metrics.outages.failed("webchat", exc)
                self.metrics.timer_arming_failures.labels(TimerKind.WEBCHAT_GONE.value).inc()
            if not first_try.done():
                first_try.set_result(None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, ARM_RETRY[1])

    def _armed(self, conversation_id: str, first_try: asyncio.Future[None], task: asyncio.Task[None]) -> None:
        if not first_try.done():
            first_try.set_result(None)
        if self.arming.get(conversation_id) is task:
            del self.arming[conversation_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("webchat: arming the gone timer failed: %s at %s", type(exc).__name__, where(exc))
            self.metrics.timer_arming_failures.labels(TimerKind.WEBCHAT_GONE.value).inc()

    async def follow(self, conversation_id: str) -> None:
        """A chat session's conversation: its events reach this instance from the moment this returns."""
        self.following[conversation_id] += 1
        self._leaving.discard(conversation_id)
        if self._forwarding.current is not None:
            try:
                await self._forwarding.current.follow(conversation_id)
            except BaseException:
                self.unfollow(conversation_id)
                raise

    def unfollow(self, conversation_id: str) -> None:
        self.following[conversation_id] -= 1
        if self.following[conversation_id] <= 0:
            del self.following[conversation_id]
            self._leaving.add(conversation_id)

    def attach(self, conversation_id: str, writer: SocketWriter) -> None:
        """The socket follows this conversation (:meth:`follow` done): from now on its events are kept for it, to
        be sent after the frame :meth:`opened` sends, which is made of what is read after this returns."""
        self.detach(writer)
        self.sockets[conversation_id][writer] = set()
        self.attached[writer] = conversation_id
        self.holding[writer] = []

    def opened(self, conversation_id: str, writer: SocketWriter, first: dict[str, Any] | None) -> None:
        """Send the socket's first frame (``session``, or ``resync`` with every entry; None: none, the conversation
        was erased), read after :meth:`attach`, then what the forwarding brought it since, without the entries the
        first frame has."""
        held = self.holding.pop(writer, [])
        if writer in self.sockets.get(conversation_id, {}):
            for frame in [first, *held] if first else held:
                self._send(conversation_id, writer, frame)

    def detach(self, writer: SocketWriter) -> None:
        """The socket follows nothing any more (closed, or attached to another conversation). Its conversation is
        found in :attr:`attached`: until 2026-12-07 every followed conversation's sockets were looked through, so
        4,000 pages closing at once (a proxy restarting) cost 16 million lookups in one turn of the event loop, which
        nothing else had meanwhile (held 0.7-2 s, ``tests/test_webchat_close_many.py``)."""
        self.holding.pop(writer, None)
        conversation_id = self.attached.pop(writer, None)
        followers = self.sockets.get(conversation_id) if conversation_id is not None else None
        if conversation_id is None or followers is None or writer not in followers:
            return
        del followers[writer]
        if not followers:
            del self.sockets[conversation_id]
            self.outgoing.pop(conversation_id, None)

    def track(self, conversation_id: str, entries: list[TranscriptEntry]) -> None:
        """Remember the bot's and listeners' entries sent to this conversation's sockets; none when it has none left
        (its last socket detached during the read that found them, a resync's: kept, they stayed for ever)."""
        if conversation_id not in self.sockets:  # ``in``: the defaultdict gains no key
            return
        known = self.outgoing.setdefault(conversation_id, {})
        for entry in entries:
            if entry.author in OUTGOING and entry.delivery in RANK:
                known.setdefault(entry.id, entry.delivery)

    async def acknowledge(self, conversation_id: str, ids: list[str], delivery: Delivery) -> None:
        """The page showed (delivered) or let the young person see (read) these entries: recorded, never back."""
        known = self.outgoing.get(conversation_id, {})
        for entry_id in ids:
            if entry_id in known and RANK[delivery] > RANK[known[entry_id]]:
                known[entry_id] = delivery
                await self.dispatcher.set_delivery(conversation_id, entry_id, delivery)

    async def end_by_young_person(self, conversation_id: str, now: datetime) -> None:
        """The young person ends the conversation ("Terminer"): :func:`gateway.leaving.ended`."""
        await leaving.ended(self.dispatcher, self.store, conversation_id, now)

    async def forward_events(self) -> None:
        """Runs for the app's lifetime: store events → the sockets of their conversation."""
        await self._forwarding.run(self._forward)

    async def _forward(self, subscription: Subscription) -> None:
        """A subscription's life: every followed conversation followed again (``RESYNC_AT_ONCE`` at a time: their
        store calls share round trips), then the events, while every socket is resynchronised beside them
        (:class:`ResyncPasses`). Until 2026-12-07 the events waited for each pass: with 4,000 pages open, a pass
        made under CPU contention lasted seconds, the events queued meanwhile overflowed the subscription's buffer,
        which asked for the whole pass again, and so on (bench/pages.py ``--drop`` at load 5-16: 7-15 resync frames
        a page, a reply's p99 16-17 s; ``tests/test_webchat_resync_pass.py``). The pass's failure (StoreError) ends
        the subscription as the events' does; either ending ends the other (nothing left running)."""
        self._leaving.clear()
        await _at_once([functools.partial(subscription.follow, c) for c in list(self.following)])
        passes = self._passes = ResyncPasses()
        self._ask_resync()  # after a restart of this worker, events may have been missed
        try:
            await _first_ended(
                asyncio.create_task(self._resync_passes(passes), name="webchat-resync"),
                asyncio.create_task(self._forward_events(subscription, passes), name="webchat-events"),
            )
        finally:
            self._passes = None

    async def _forward_events(self, subscription: Subscription, passes: ResyncPasses) -> None:
        """The subscription's events → the sockets of their conversation (one a pass has still to read: none, its
        read comes after and says it all; a typing frame always)."""
        async for event in subscription:
            while self._leaving:
                await subscription.unfollow(self._leaving.pop())
            if isinstance(event, Resync):
                self._ask_resync()
                continue
            if isinstance(event, Erased) and event.conversation_id in self.sockets:
                self.erased.add(event.conversation_id)
            if passes.unread and scope(event) in passes.unread:
                continue  # nor its store reads (a status's): the pass reads it after this
            found = await self._frame(event)
            if found is not None:
                self._offer_all(*found)
                await asyncio.sleep(0)  # let the writers run: a burst never fills a reading socket's queue

    def _ask_resync(self) -> None:
        """Every socket is to be sent what it may have missed: a pass over every followed conversation when none is
        under way; while one is, one more after it, over the conversations it had already begun reading (those it
        has still to read are read after this: they will say it). Passes never overlap, and requests made during one
        give one more, not one each."""
        passes = self._passes
        if passes is None:
            return
        if passes.running:
            passes.again.update(c for c in self.sockets if c not in passes.unread)
        else:
            passes.start(list(self.sockets))

    async def _resync_passes(self, passes: ResyncPasses) -> None:
        """The subscription's resync passes, one after the other (:meth:`_ask_resync`), for its life."""
        while True:
            await passes.asked.wait()
            passes.asked.clear()
            await _at_once([functools.partial(self._resync, c) for c in passes.conversations])
            again = [c for c in passes.again if c in self.sockets]
            passes.running = False
            passes.again.clear()
            if again:
                passes.start(again)

    async def resync(self) -> None:
        """Every socket sent what it may have missed, now (``RESYNC_AT_ONCE`` conversations read at a time)."""
        await _at_once([functools.partial(self._resync, c) for c in list(self.sockets)])

    async def _resync(self, conversation_id: str) -> None:
        """One conversation's resync frame to each of its sockets; what the forwarding brings it during the read is
        held and sent after that frame (without the entries the frame had: :meth:`_send`), so a page gets the
        entries it missed before those that came after them. A status frame held is not sent: its place in line may
        have been read before the frame's (the positions' worker, a status event's frame), so the status is read again
        once it is held, and said in the frame (until 2026-12-07 the held frame came after the resync frame: the page
        left with an older place, the hub taking the newer as told and never telling it again;
        ``tests/test_webchat_resync_pass.py``)."""
        passes = self._passes
        held: list[dict[str, Any]] = []
        if passes is not None:
            passes.unread.discard(conversation_id)
            held = passes.reading.setdefault(conversation_id, held)
        try:
            found = await self.view(conversation_id)
            while found is not None and any(frame["type"] == "status" for frame in held):
                held[:] = [frame for frame in held if frame["type"] != "status"]
                conversation = await self.store.get_conversation(conversation_id)
                if conversation is None:  # erased meanwhile: its event says so, the frame as read
                    break
                status = await self.status(conversation_id, conversation.status)
                found = conversation, {**status, "language": self.language(conversation)}, found[2]
        finally:
            if passes is not None and passes.reading.get(conversation_id) is held:
                del passes.reading[conversation_id]
        if found is not None:
            _, status, entries = found
            for writer in list(self.sockets.get(conversation_id, {})):
                self._send(conversation_id, writer, {"type": Resync.type, **status, "entries": entries})
        for frame in held:
            self._offer_all(conversation_id, frame)

    async def view(self, conversation_id: str) -> tuple[Conversation, dict[str, Any], list[dict[str, Any]]] | None:
        """What a page shows of the conversation now: the record, its status (and position while queued), its
        visible entries (tracked for the receipts); None once erased."""
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            return None
        shown = [e for e in await self.store.transcript(conversation_id) if e.author not in HIDDEN]
        self.track(conversation_id, shown)
        status = {**await self.status(conversation_id, conversation.status), "language": self.language(conversation)}
        return conversation, status, [_public(e) for e in shown]

    async def show_ended(self, conversation_id: str, writer: SocketWriter) -> None:
        """The socket is about to leave this conversation for another (a message taken in the next one: the one it
        followed ended as the message waited, ``ChatSession._deliver``): what it was not sent of it (a listener's last
        words, the goodbye with where to turn) and its end (status ``closed``), as a ``resync`` frame naming it, read
        now (the end was written before the message's lock was given) and sent before the socket follows the next one.
        Each entry once (``_send``: those the forwarding brought it already are left out; those it brings after the
        socket left go to no socket of it). Nothing while it is still active, gone, or not followed by this socket.
        Until 2026-12-07 nothing was sent here: the socket was detached at once, and the ended conversation's events
        the forwarder had not yet offered (a forwarder behind: a slow read of another conversation's status, a burst)
        reached no socket of the page, which followed the new conversation and never showed the listener's last words
        nor the goodbye (``tests/test_webchat_ended_meanwhile_words.py``)."""
        if writer not in self.sockets.get(conversation_id, {}):
            return
        found = await self.view(conversation_id)
        if found is None or found[0].active or writer not in self.sockets.get(conversation_id, {}):
            return
        _, status, entries = found
        self._send(conversation_id, writer, {"type": Resync.type, "conversation": conversation_id, **status,
                                             "entries": entries})  # fmt: skip

    async def was_erased(self, conversation_id: str) -> bool:
        """Whether this conversation was erased (its mark kept by the erasure for ``erasure.WEBCHAT_ERASED_FOR``,
        written before anything of it goes): one the store no longer has, rather than lost (a Redis failover with
        ``GATEWAY_REDIS_REPLICA_ACKS=0``, a restore) or erased too long ago; and, by a page's hello, one whose
        record is still there, its erasure under way or cut short (``ChatSession._show_gone``; until 2026-12-07 read
        only once the record was found missing)."""
        return await self.store.erased_at(self.gate.keyed.erased_conversation(conversation_id)) is not None

    async def erasure_cut(self, conversation_id: str) -> bool:
        """Whether this conversation, still in the store, is marked erased (:meth:`was_erased`): an erasure cut short
        before its record (or under way), which is then finished (``finish_erasure``, ``Eraser.finish_cut``: it is
        idempotent) before the caller opens anything. Not wired: StoreError (the socket closes, nothing shown). Until
        2026-12-07 a hello naming no conversation resumed the one being erased, its history shown."""
        if not await self.was_erased(conversation_id):
            return False
        if self.finish_erasure is None:
            raise StoreError("an erasure cut short, not finished here")
        await self.finish_erasure(conversation_id)
        return True

    async def lost(self, conversation_id: str) -> bool:
        """The store no longer has this conversation and no erasure took it (:meth:`was_erased`)."""
        return await self.store.get_conversation(conversation_id) is None and not await self.was_erased(conversation_id)

    def language(self, conversation: Conversation) -> str:
        """The conversation's language, which the page's own texts follow (the young person may have chosen it by
        answering the bot)."""
        return language_of(conversation, self.flows.for_version(conversation.flow_version).flow)

    async def status(self, conversation_id: str, status: Status) -> dict[str, Any]:
        """The status a frame says, read as ``status``, with the conversation's position while it is queued. The
        record and the queue are two reads: one that left the queue between them (a listener taking it, the young
        person ending it) has no position, so both are read again under the conversation's lock, which its
        queue and its record change under together, and what is true then is said (its own event follows). The
        position is never ``None`` (the page showed "position ?"); it is left out only when the record says queued
        with no place in a queue even so (a listener's instance that died between taking it and saving the record)."""
        if status != Status.QUEUED:
            self.positions.pop(conversation_id, None)
            return {"status": status.value}
        position = await self.store.position(conversation_id)
        if position is None:
            async with self.store.lock(conversation_id):
                current = await self.store.get_conversation(conversation_id)
                status = status if current is None else current.status
                position = await self.store.position(conversation_id) if status == Status.QUEUED else None
        if position is None:
            self.positions.pop(conversation_id, None)
            return {"status": status.value}
        conversation = await self.store.get_conversation(conversation_id)
        place = Place(position, None if conversation is None else conversation.queue, None)
        place = place._replace(reopens=self.reopens(place.queue))
        if conversation_id in self.sockets:
            self.positions[conversation_id] = place
        return {"status": status.value, **_place(place)}

    def reopens(self, queue: str | None) -> dict[str, str] | None:
        """While ``queue`` is closed, when its listeners are back, in each language of the page ("demain à 9h",
        "tomorrow at 9:00"; empty past the horizon), from the flow's hours as the closed-line message and the
        console's banner read them (never computed in the browser); None while it is open (or unknown)."""
        engine, now = self.flows.engine(), self.clock()
        if queue is None or engine.is_open(queue, now):
            return None
        return {language: engine.reopening(queue, now, language) for language in PAGE_LANGUAGES}

    async def refresh_positions(self) -> None:
        """Runs for the app's lifetime (a supervised worker): every ``position_seconds``, the place in line of each
        queued conversation followed here is read again, and a change is told to its pages as a status frame.
        A conversation's own events say when it moves (taken, ended), not when those ahead of it leave the line:
        before, a young person second in line read "position 2" until the bot's next reassurance or a reconnection,
        however many were taken meanwhile. Its queue's closing, its opening and the turn of the night ("demain" become
        "aujourd'hui") are told the same way (``reopens``): before, the page said "position 1" all night, after the
        bot had said nobody could answer until the morning. One read a queued conversation followed here, every
        period. A pass the store failed (a Redis restart) is told once an outage (part ``webchat_positions``) and made
        at the next period; until 2026-12-07 it stopped the worker (restarted and counted by the supervisor, ``down``
        in ``/readyz`` meanwhile). A pass is made, and its answer told, only for places of pages still open here:
        until 2026-12-07 one whose every page had closed read nothing yet said the store answered, which took the part
        out of ``/readyz``'s ``store_waiting`` during an outage."""
        while True:
            await asyncio.sleep(self.position_seconds)
            for conversation_id in [c for c in self.positions if c not in self.sockets]:
                del self.positions[conversation_id]  # its pages closed: nothing to tell
            if self.positions:  # its first place read before anything else is awaited: the store was asked
                await self.metrics.outages.attempt("webchat_positions", self._refresh_positions())

    async def _refresh_positions(self) -> None:
        """One pass of :meth:`refresh_positions`. A place no longer the one recorded once the record is read (another
        read of the status recorded a newer one meanwhile, and sends or has sent its own frame) is not sent: until
        2026-12-07 it was, after the newer one, the page left with the older place while the hub took the newer as
        told and never told it again (``tests/test_webchat_position.py``)."""
        reopens: dict[str | None, dict[str, str] | None] = {}  # each queue's hours read once a pass
        for conversation_id, told in list(self.positions.items()):
            if conversation_id not in self.sockets:  # its pages closed during the pass
                self.positions.pop(conversation_id, None)
                continue
            position = await self.store.position(conversation_id)
            if told.queue not in reopens:
                reopens[told.queue] = self.reopens(told.queue)
            place = told._replace(position=position or 0, reopens=reopens[told.queue])
            if position is None or place == told or self.positions.get(conversation_id) != told:
                continue  # left the line (its own status event says so), unchanged, or told meanwhile
            self.positions[conversation_id] = place
            conversation = await self.store.get_conversation(conversation_id)
            if self.positions.get(conversation_id) is not place:
                continue  # told newer meanwhile (a status event's frame, a resync): that frame is the page's last
            language = {} if conversation is None else {"language": self.language(conversation)}
            self._offer_all(conversation_id, {"type": "status", "status": Status.QUEUED.value, **_place(place),
                                              **language})  # fmt: skip

    async def _frame(self, event: Event) -> tuple[str, dict[str, Any]] | None:
        """The web chat's frame for an event of a followed conversation, with the conversation's id. A status frame's
        record (its language) is read before its status, whose place is recorded as told with nothing awaited after it
        until the frame is sent: until 2026-12-07 it was read after, and a place the positions' pass recorded and sent
        during that read was followed by this older one (``tests/test_webchat_position.py``)."""
        match event:
            case EntryAdded(conversation_id=cid, entry=entry) if cid in self.sockets and entry.author not in HIDDEN:
                self.track(cid, [entry])
                return cid, {"type": "entry", "entry": _public(entry)}
            case Typing(conversation_id=cid, who="listener") if cid in self.sockets:
                return cid, {"type": "typing", "on": True}
            case LanguageChanged(conversation_id=cid, language=language) if cid in self.sockets:
                return cid, {"type": "language", "language": language}  # the page's own texts follow it
            case StatusChanged(conversation_id=cid, status=status) if cid in self.sockets:
                conversation = await self.store.get_conversation(cid)
                frame = {"type": "status", **await self.status(cid, status)}
                if conversation is not None:
                    frame["language"] = self.language(conversation)
                return cid, frame
        return None

    def _offer_all(self, conversation_id: str, frame: dict[str, Any]) -> None:
        """A frame for every socket of the conversation; while a resync pass has still to read it, none (that read
        says it, and more), while the pass reads it, held until its resync frame is out (:meth:`_resync`); a typing
        frame at once either way (nothing read says it)."""
        passes = self._passes
        if passes is not None and frame["type"] != "typing":
            if conversation_id in passes.unread:
                return
            if (held := passes.reading.get(conversation_id)) is not None:
                held.append(frame)
                return
        for writer in list(self.sockets.get(conversation_id, {})):
            self._send(conversation_id, writer, frame)

    def _send(self, conversation_id: str, writer: SocketWriter, frame: dict[str, Any]) -> None:
        """A frame for one socket of the conversation: held while its first frame is not out (as many as its
        writer's queue holds with that first frame; one more drops it as a reader that stopped); else without the
        entries it was already sent (an entry frame of one of those: nothing)."""
        held = self.holding.get(writer)
        if held is not None and len(held) + 1 < writer.limit:  # its first frame and these will fit its queue
            held.append(frame)
            return
        if held is not None:  # as far behind as a reader that stopped: dropped the same way (the page reloads)
            del self.holding[writer]
            writer.overflow()
            return
        sent, new = self.sockets[conversation_id][writer], []
        if frame["type"] == "entry":
            if frame["entry"]["id"] in sent:
                return
            new = [frame["entry"]]
        elif (key := ENTRY_LISTS.get(frame["type"])) is not None:
            new = [e for e in frame[key] if e["id"] not in sent]
            frame = {**frame, key: new}
        if writer.offer(frame):
            sent.update(e["id"] for e in new)


def _place(place: Place) -> dict[str, Any]:
    """A queued status frame's place in line, and ``reopens`` while the queue is closed (docs/webchat-protocol.md)."""
    return {"position": place.position, **({"reopens": place.reopens} if place.reopens is not None else {})}


def _public(entry: TranscriptEntry) -> dict[str, Any]:
    """What the young person's page gets of an entry (no delivery or flag; of the attachments, how many images)."""
    data = entry_json(entry)
    images = sum(1 for attachment in entry.attachments if attachment.kind == "image")
    return {**{k: data[k] for k in ("id", "author", "text", "choices", "at")}, "images": images}


class ChatSession:
    """One websocket connection of one young person."""

    def __init__(self, hub: WebChatHub, ws: web.WebSocketResponse, writer: SocketWriter, address: str = "") -> None:
        self.hub, self.ws, self.writer = hub, ws, writer
        self.dispatcher = hub.dispatcher
        self.gate = hub.gate
        self.address = address  # only ever used through a keyed hash
        self.token: str | None = None
        self.held: str | None = None  # a browser token whose hello a guard refused: its first message may open
        self.conversation_id: str | None = None
        self.language: str | None = None
        self.followed: str | None = None  # the conversation whose events this session asked the hub for
        self.opening: str | None = None  # the keyed hash of the opening key of a hello without a token
        self.drawn = False  # the hello's token drawn anew: its opening key opened nothing the store keeps (``_once``)
        self.end_shown = False  # this socket showed an ended conversation (a page that missed its end): nothing opens
        self.told: dict[tuple[Refusal, str | None], datetime] = {}  # the notices shown: by refusal and language
        # the messages this socket refused (id, a digest of their words): those a page's ``"auto"`` may name
        self.refused: dict[tuple[str, bytes], None] = {}
        self.resuming: Conversation | None = None  # the token's active conversation a hello's guards read
        self.tell_queue = False  # :meth:`_back` lifted a gone mark: the queue is told once it is saved
        self.named: str | None = None  # the conversation the hello named (chat.js: the one its page follows)
        self.ending: Conversation | None = None  # that one, ended as the hello was worked: shown (:meth:`_greet`)
        # the conversation this socket's hello opened or resumed, and when (``leaving.came_back``'s page_opened_at)
        self.back_at: tuple[str, datetime] | None = None

    async def run(self) -> None:
        try:
            async for message in incoming(self.ws, self.writer, self.hub.keepalive):
                if message.type == WSMsgType.TEXT:
                    await self._handle_text(message.data)
        finally:
            self.hub.detach(self.writer)
            if self.followed is not None:
                self.hub.unfollow(self.followed)
        if self.conversation_id in self.hub.erased:  # nothing may name an erased conversation again
            self.hub.forget_erased(self.conversation_id)
            return
        if self.conversation_id is not None:  # closed (not cancelled): the young person may be gone for good
            # closed as early as the process was stopped, when it was (a frozen instance sees the close on resume,
            # maybe after the page came back on another instance: ``leaving.socket_closed`` then arms nothing), but
            # never before this socket's own hello (``back_at``): until 2026-12-08 a page back here as a hold ended,
            # then closed for good, had its close dated before its return, and was never marked gone
            # (``tests/test_webchat_close_after_hold.py``)
            closed = self.hub.clock() - timedelta(seconds=self.hub.held_for())
            if self.back_at is not None and self.back_at[0] == self.conversation_id:
                closed = max(closed, self.back_at[1])
            # shielded: the socket did close; a handler cancelled now (its connection gone) still arms the timer
            await asyncio.shield(self.hub.arm_gone(self.conversation_id, closed))

    async def _handle_text(self, data: str) -> None:
        frame = _parse_frame(data)
        if frame is None:
            await self._error("bad_frame", "frame refused: JSON object with a known type, at most 16 KiB")
            return
        kind = frame["type"]
        if kind == "hello":
            async with self.hub.hello_turn(self.address):
                if not self.writer.gone:  # its connection lost while it waited: nobody to answer (until 2026-12-07
                    await self._hello(frame)  # worked all the same, ``tests/test_webchat_hello_gone.py``)
        elif kind == "message" and (self.token or self.held):
            await self._message(frame)
        elif self.token is None:
            await self._error("no_session", "send hello first")
        elif kind == "typing" and self.conversation_id and await self.gate.limits.allow(Limit.TYPING, self.token):
            await self.hub.store.publish(Typing(self.conversation_id, "user"))
        elif kind == "end":
            await self._end()
        elif kind == "receipt":
            await self._receipt(frame)
        elif kind == "language":
            await self._language(frame)

    async def _hello(self, frame: dict[str, Any]) -> None:
        token, opening = chat_token(frame.get("token")), chat_token(frame.get("opening"))
        self.language = frame["language"] if frame.get("language") in ("fr", "en") else None
        self.opening, self.end_shown, self.drawn = None, False, False
        handle = frame.get("conversation") if token is not None else None
        named = handle if isinstance(handle, str) and CONVERSATION_HANDLE.fullmatch(handle) else None
        self.named = named
        found = None if named is None else await self.hub.store.get_conversation(named)
        if token is not None and named is not None and await self.hub.was_erased(named):  # record gone or not
            await self._show_gone(token, named)
            return
        if token is not None and found is not None and (ended := await self._end_not_seen(token, found)) is not None:
            await self._show_end(token, ended)
            return
        if token is not None or opening is None:
            await self._greet(token or secrets.token_urlsafe(24), self.language)
            return
        # A page without a token, with its opening key: the conversation that key opened if it did (the page never
        # got its session frame), else a new one, remembered under the key's keyed hash. Under a lock named by it:
        # two sockets of one page at once open one conversation.
        self.opening = self.gate.keyed("opening", opening)
        async with self.hub.store.lock(OPENING_LOCK + self.opening):
            opened = await self._opened_by(self.opening)
            self.drawn = opened is None
            await self._greet(opened or secrets.token_urlsafe(24), self.language)

    async def _greet(self, token: str, language: str | None) -> None:
        """The session of ``token`` opened, or the hello refused (a notice); or, the conversation the hello named
        having ended as it was worked (:meth:`_refuse_hello`), that end shown (:meth:`_show_end`)."""
        refusal = await self._refuse_hello(token)
        if refusal is None and (ended := self.ending) is not None:
            self.ending = None
            await self._show_end(token, ended)
            return
        if refusal is not None:
            await self._leave()  # a conversation an earlier hello on this socket opened is no longer followed
            if refusal is not Refusal.BLOCKED:  # this socket now speaks for the refused token, not an earlier one
                self.token, self.held = None, token
            self._notice(refusal, None)
            return
        await self._open(token, language)

    async def _end_not_seen(self, token: str, conversation: Conversation) -> Conversation | None:
        """The conversation the page was following (the hello's ``conversation``, from its session frame) when it
        ended while the page was away (a dropped connection, a phone asleep, a closed tab): this token's, ended at
        most ``END_SHOWN`` ago, and no newer one open. A hello without one, or after that, goes on as any hello (a
        new conversation for a returning browser)."""
        if conversation.active or conversation.channel != ChannelName.WEBCHAT:
            return None  # active: the hello resumes it as any
        if not hmac.compare_digest(conversation.sender.encode(), token.encode()):  # another's, or purged
            return None
        if conversation.closed_at is None or self.hub.clock() - conversation.closed_at > END_SHOWN:
            return None
        if await self.hub.store.find_active_conversation(ChannelName.WEBCHAT, token) is not None:
            return None  # another tab began the next one: that one resumes
        return conversation

    async def _show_end(self, token: str, conversation: Conversation) -> None:
        """The session frame of an ended conversation: its status and the line's messages (never the young
        person's, as chat.js keeps after an end), so that a listener's last words and the numbers given reach a
        page that was away when they came; nothing is opened, followed or counted (a message now is refused as
        after any end, and "Nouvelle conversation" sends a hello without the conversation). The conversation the
        socket followed before (an earlier hello on it) is left (:meth:`_leave`)."""
        await self._leave()
        self.token, self.held, self.end_shown = token, None, True
        self.language = self.hub.language(conversation)
        line = [_public(e) for e in await self.hub.store.transcript(conversation.id) if e.author in OUTGOING]
        self.writer.offer({"type": "session", "token": token, "conversation": conversation.id,
                           "status": conversation.status.value, "language": self.language, "history": line,
                           "keepalive": self.hub.keepalive})  # fmt: skip

    async def _show_gone(self, token: str, handle: str) -> None:
        """The conversation the page follows was erased (by a supervisor, or at the young person's request, while
        this page was away: its record gone, the erasure's mark kept, ``WebChatHub.was_erased``; one merely lost, by a
        failover, or erased over ``erasure.WEBCHAT_ERASED_FOR`` ago, goes on as any hello: a conversation that works,
        the page's words taken in it; until 2026-12-07 the store could not tell, and a page whose conversation a
        failover lost was told it ended too): the page is told it ended, as a socket that saw the erasure live was
        (``status`` ``closed``), with nothing of it and nothing opened, whatever the token has open (another tab's
        new conversation is not this page's): what it sends again (the messages whose ``ack`` it never saw) gets
        ``ended`` and waits in its message box, never stored under a new conversation. "Nouvelle conversation" (a
        hello without the conversation) starts afresh. Until 2026-12-07 this hello opened a new conversation, the bot
        greeted the erased young person, and their unacknowledged words went into it. Whose the named conversation
        was is unknowable now: the answer tells nothing of it.

        The same for a conversation whose record is still there, marked erased: an erasure under way, or cut short
        before its record's deletion (the mark is its first step; on a Cluster mark and record are in different
        slots, and the deletions there go one by one, so a cut may leave the record without its active key). Until
        2026-12-07 (afternoon) the mark was read only once the record was gone: the hello resumed the conversation
        being erased, its words sent again stored in it, or, its active key deleted already, opened a new one,
        greeting the erased young person again (``tests/test_webchat_erased_cut.py``)."""
        await self._leave(erased=handle)
        self.token, self.held, self.end_shown = token, None, True
        self.language = self.language or self.hub.flows.engine().flow.default_language
        self.writer.offer({"type": "session", "token": token, "conversation": handle, "status": Status.CLOSED.value,
                           "language": self.language, "history": [], "keepalive": self.hub.keepalive})  # fmt: skip

    async def _opened_by(self, opening: str) -> str | None:
        """The token of the conversation this opening key's hash opened, while the store keeps it (else None: it
        opened none, long ago, or the conversation was erased)."""
        conversation_id = await self.hub.store.opening(opening)
        conversation = None if conversation_id is None else await self.hub.store.get_conversation(conversation_id)
        if conversation is None or conversation.channel != ChannelName.WEBCHAT:
            return None
        if await self.hub.erasure_cut(conversation.id):  # finished now: a new token (until 2026-12-07 it resumed)
            return None
        return conversation.sender

    async def _open(self, token: str, language: str | None) -> None:
        """The conversation of ``token`` (resumed, or a new one): followed, and the session frame with its history.
        The one resumed ended (another tab's "Terminer") between the hello's guards and its lock, none other open
        (``EndedMeanwhile``): the hello is one after that end, asked again (:meth:`_greet`: a new one within the
        new-chat limits, else its notice); until 2026-12-07 (evening) a new one was opened past them."""
        self.token, self.held = token, None
        known, self.resuming, self.tell_queue = self.resuming, None, False
        if self.opening is not None:  # before the greeting and the session frame: a page missing either finds it again
            # the one resumed as the guards found it: until 2026-12-07 (evening) looked up again with
            # ``active_conversation``, which opened a new one past the limits when it had ended meanwhile
            kept = known or (await self.hub.store.active_conversation(ChannelName.WEBCHAT, token, self.hub.clock()))[0]
            await self.hub.store.keep_opening(self.opening, kept.id)
        try:
            conversation = await self.dispatcher.start_conversation(ChannelName.WEBCHAT, self.token, language,
                                                                    known=known, under_lock=self._back)  # fmt: skip
        except EndedMeanwhile:  # the resumed one ended before its lock, none other open: a hello after that end,
            await self._greet(token, language)  # the next one asked of the new-chat limits (until 2026-12-07
            return  # (evening) opened past them)
        if self.tell_queue:  # after the save: its card no longer says the page is gone, on every console
            await self.hub.store.publish(QueueChanged())
        if self.conversation_id is not None and self.conversation_id != conversation.id:
            # a second hello on this socket naming the next one (chat.js, after an image the 201 says went there, its
            # conversation ended as it waited for its lock): the one it followed shown ended first, its last words
            # and goodbye, as for a message (``_deliver``); until 2026-12-07 no page asked
            await self.hub.show_ended(self.conversation_id, self.writer)
        await self._follow(conversation.id)  # before the reads: an event is in what they find, or kept for this socket
        found = await self.hub.view(conversation.id)  # None: erased meanwhile (its events say so)
        if found is None and await self.hub.was_erased(conversation.id):  # told it ended, as a page coming back after
            await self._show_gone(token, conversation.id)  # it (until 2026-12-07 (night) shown as going on, empty)
            return
        conversation, status, history = found or (conversation, {"status": conversation.status.value}, [])
        engine = self.hub.flows.for_version(conversation.flow_version)
        self.language = language_of(conversation, engine.flow)
        session = {"type": "session", "token": self.token, "conversation": conversation.id, **status,
                   "language": self.language, "history": history, "keepalive": self.hub.keepalive}  # fmt: skip
        await self._replicated()
        self.hub.opened(conversation.id, self.writer, session)

    async def _back(self, conversation: Conversation) -> bool:
        """Under the lock :meth:`_open` opens or resumes the conversation with (one lock, one read of it; until
        2026-12-07 three: the start's, then the client's mark for a new one, then ``leaving.returned``'s): which
        client address opened it (``Gate.client_key``'s keyed hash, once), the gone timer no longer armed here nor
        in the store, and the page's return (``leaving.came_back``). True: the record is saved."""
        marked = conversation.client is None
        if marked:
            conversation.client = self.gate.client_key(self.address)
        self.hub.stop_arming(conversation.id)
        await self.hub.store.cancel_timers(conversation.id, TimerKind.WEBCHAT_GONE)
        now = self.hub.clock()
        self.back_at = conversation.id, now  # its close is dated no earlier (:meth:`run`)
        save, self.tell_queue = await leaving.came_back(self.dispatcher, conversation, now)
        return save or marked

    async def _replicated(self) -> None:
        """``GATEWAY_REDIS_REPLICA_ACKS``: the replicas have what was written before the page is told a conversation's
        id or a message's ack (ReplicasBehind: the socket closes with 1013, the page says hello again). A page never
        follows a conversation a failover's new primary lacks (without the setting it may: its hello then finds no
        erasure's mark and opens a new one, ``WebChatHub.was_erased``); until 2026-12-07 the session frame did not
        wait, the ack did."""
        if self.hub.replicated is not None:
            await self.hub.replicated()

    async def _valid_text(self, frame: dict[str, Any]) -> str | None:
        """The text of a well-formed message frame, else None (the error frame sent)."""
        message_id, text, payload = frame.get("id"), frame.get("text", ""), frame.get("payload")
        if not (isinstance(message_id, str) and 0 < len(message_id) <= 64) or not isinstance(text, str):
            await self._error("bad_frame", "a message needs an id (at most 64 characters) and a text")
            return None
        if len(text) > MAX_TEXT or (payload is not None and not (isinstance(payload, str) and len(payload) <= 200)):
            await self._error("too_long", f"a message has at most {MAX_TEXT} characters")
            return None
        return text

    async def _message(self, frame: dict[str, Any]) -> None:
        """A message of the session's conversation; after a refused hello (``held``), one that may open it: the
        guards are asked again with its text, and a risky one opens the conversation (escalate, never silence).
        ``"auto": true``: one the page tries again by itself after a full network refused it (chat.js's
        ``heldRetry``, since 2026-12-07): refused again, it gets its ``refused`` frame but no notice (said at its
        first refusal), and the model is not asked again (``Gate.new_chat``'s ``read``); the keywords, the cap, the
        rates and the risky bound (its ``once``: counted once) as for any. The flag counts only for a message this
        socket refused with these very words (:meth:`_refused_before`; chat.js tries again on the socket that refused
        it): any other is a first try, read and told. Until 2026-12-07 (late) the flag alone skipped the model and
        the notice: a first message sent "automatic" (a forged frame, a page of another version), its danger only
        the model read, was refused quietly (``tests/test_full_network_understanding.py``).

        A held socket's message that may open the conversation is worked under its opening key's lock (as its
        hello), and goes to the conversation that key opened meanwhile when another tab of the page opened one (its
        token taken: the message, kept in the browser's storage, is the same id under the same token, recorded once).
        Until 2026-12-07 (night) two held tabs trying the same kept message once the network had room again each
        opened a conversation for it: two places in the queue for one young person
        (``tests/test_webchat_held_tabs.py``)."""
        if self.token is None and self.opening is not None:
            async with self.hub.store.lock(OPENING_LOCK + self.opening):
                if (opened := await self._opened_by(self.opening)) is not None:
                    self.held = opened  # another tab's conversation, opened by the same key: it takes the message
                let_on = await self._let_on(frame)
        else:
            let_on = await self._let_on(frame)
        if let_on is not None:
            inbound, asked = let_on
            await self._deliver(replace(inbound, written_in=self.conversation_id), asked=asked)  # erased: nothing opens

    async def _let_on(self, frame: dict[str, Any]) -> tuple[Inbound, bool] | None:
        """:meth:`_message`'s checks: the message let on (and, on a held socket, the session opened) with whether the
        new-chat guards were asked; None when it was answered already (refused, ended, a bad frame)."""
        token = self.token or self.held
        assert token is not None
        if (text := await self._valid_text(frame)) is None:
            return None
        if self.token is not None and (self.end_shown or await self._ended()):
            await self._error("ended", "this conversation has ended: send hello to start a new one")
            return None
        inbound = Inbound(ChannelName.WEBCHAT, token, str(frame["id"]), text=text, payload=frame.get("payload"),
                          client=self.gate.client_key(self.address))  # fmt: skip
        auto = frame.get("auto") is True and self._refused_before(inbound)
        refusal, asked = await self.gate.check(inbound), False
        if refusal is None and await self.hub.store.find_active_conversation(ChannelName.WEBCHAT, token) is None:
            if self.conversation_id is not None and await self.hub.was_erased(self.conversation_id):
                # its erasure cut short, the record still there, the token's active key gone: never a new one (until
                # 2026-12-07 the message opened one, the bot greeting the erased young person, the words in it)
                await self._error("ended", "this conversation has ended: send hello to start a new one")
                return None
            once, read = self._once(inbound), not auto
            refused, asked = await self.gate.new_chat(token, self.address, inbound, once=once, read=read), True
            if refused is not None:  # its rate's window end told (``retry_after``), chat.js waiting for it
                self._refused_now(inbound)
                self._notice(refused.reason, inbound.message_id, quiet=auto, retry_after=refused.retry_after,
                             network=refused.network)  # fmt: skip
                return None
        if refusal is not None:  # not recorded, not acknowledged: the young person may send it again
            self._refused_now(inbound)
            self._notice(refusal, inbound.message_id, quiet=auto)
            return None
        if self.token is None:  # held: the session opens (the page re-sends what is pending; de-duplicated on id)
            await self._open(token, self.language)
        return inbound, asked

    async def _deliver(self, inbound: Inbound, *, asked: bool = False) -> None:
        """A message the gate let through: to the dispatcher, the conversation it went to followed, acknowledged.
        Its conversation erased while it waited for the lock (``Inbound.written_in``): ``ended``, nothing stored;
        until 2026-12-07 a new conversation was opened for it and the erased young person greeted again. Gone with no
        erasure's mark (lost: a failover), it is taken in the sender's conversation, a new one if none (until
        2026-12-07 ``ended``, the page's words left in its box for a conversation nobody ended). That new one is
        opened as by a page's first message: the new-chat guards asked (``Gate.new_chat``, a risky message opening
        it all the same), unless ``_message`` asked them already (``asked``: it saw the loss itself); a refusal is a
        refused message (its notice, nothing stored). Until 2026-12-07 a loss found only once the message waited for
        its lock opened a new conversation past every limit. The same for one that ENDED (not erased) while the message
        waited for its lock, the sender with none other open (``EndedMeanwhile``: the store opens nothing for it);
        until 2026-12-07 the store opened the next one under the lock, no limit asked: two tabs racing "Terminer"
        against a message opened chats past the hourly limits (``tests/test_webchat_ended_race.py``)."""
        try:
            await self.dispatcher.handle_inbound(inbound)
        except ConversationEnded as ended:  # erased meanwhile, or its ending cut short, completed: as after any end
            if inbound.written_in is not None and (
                isinstance(ended, EndedMeanwhile) or await self.hub.lost(inbound.written_in)
            ):  # ended meanwhile (none other open), or lost, not erased: taken in the next one
                opening = replace(inbound, written_in=None)  # as a page's first message (reads: here only)
                if not asked and (refused := await self._refuse_first(opening)) is not None:
                    self._notice(refused.reason, inbound.message_id, retry_after=refused.retry_after,
                                 network=refused.network)  # fmt: skip
                    return
                await self._deliver(opening)
                return
            await self._error("ended", "this conversation has ended: send hello to start a new one")
            return
        conversation = await self.hub.store.find_active_conversation(ChannelName.WEBCHAT, inbound.sender)
        if conversation is not None:  # the language this message may have chosen ("English" at the welcome): the
            self.language = self.hub.language(conversation)  # notices follow it (until 2026-12-06: the hello's)
        await self._replicated()  # ReplicasBehind: the socket closes (1013), the page sends it again
        if conversation is not None and conversation.id != self.conversation_id:  # a new one: follow it from its start
            if self.conversation_id is not None:  # the one it followed ended meanwhile: its last words and end first
                await self.hub.show_ended(self.conversation_id, self.writer)
            await self._follow(conversation.id)
            found = await self.hub.view(conversation.id)
            first = (
                {"type": Resync.type, "conversation": conversation.id, **found[1], "entries": found[2]}
                if found
                else None
            )
            self.hub.opened(conversation.id, self.writer, first)
        self.writer.offer({"type": "ack", "id": inbound.message_id})

    async def _receipt(self, frame: dict[str, Any]) -> None:
        """``{"type": "receipt", "status": "delivered" | "read", "ids": [...]}``: the page showed these entries."""
        status, ids = frame.get("status"), frame.get("ids")
        if status not in ("delivered", "read") or not _ids(ids):
            await self._error("bad_frame", f"a receipt: status delivered or read, at most {MAX_RECEIPT_IDS} ids")
            return
        if self.conversation_id is not None and isinstance(ids, list):
            await self.hub.acknowledge(self.conversation_id, ids, Delivery(status))

    async def _language(self, frame: dict[str, Any]) -> None:
        """``{"type": "language", "language": "en"}``: the page's switch; the bot follows from the next message."""
        language = frame.get("language")
        if language not in ("fr", "en"):
            await self._error("bad_frame", "a language frame: fr or en")
            return
        self.language = str(language)  # the calm notices too
        if self.conversation_id is not None:
            await self.dispatcher.set_language(self.conversation_id, str(language))

    async def _refuse_hello(self, token: str) -> Refusal | None:
        """A blocked browser, or a new conversation beyond this client's limits (an existing one always resumes).
        An existing one whose ending (a quick exit, "Terminer", a bulk close, an idle close) was cut short on Redis and
        is still listed as begun is completed first (``Dispatcher.ending_completed``, the alert check's completion:
        one goodbye), then the hello is one after that ending: a new conversation, asked of the limits as any. One
        marked erased (an erasure cut short before its record, the token's active key kept) is erased first
        (``WebChatHub.erasure_cut``), then the same: a new one; until 2026-12-07 the hello resumed it, history shown."""
        self.resuming = None
        if await self.gate.blocked(ChannelName.WEBCHAT, token):
            return Refusal.BLOCKED
        found = await self.hub.store.find_active_conversation(ChannelName.WEBCHAT, token)
        if (
            found is not None
            and not await self.hub.erasure_cut(found.id)
            and not await self.dispatcher.ending_completed(found.id)
        ):
            self.resuming = found  # :meth:`_open` resumes it without looking it up again
            return None
        if (ending := await self._named_ended(token)) is not None:
            self.ending = ending  # its end shown (:meth:`_greet`): nothing opened nor asked of the limits
            return None
        refused = await self.gate.new_chat(token, self.address)
        return None if refused is None else refused.reason

    async def _named_ended(self, token: str) -> Conversation | None:
        """The conversation the hello named, when it ended after :meth:`_hello` read it open (a listener's close,
        "Terminer" in another tab, an idle close, an ending cut short and completed by the guards) and its end is
        to be shown as to any page that missed it (:meth:`_end_not_seen`); else None. Asked where the hello would
        open a new conversation: the token has none open (the guards' look, or after ``EndedMeanwhile``). Until
        2026-12-07 the hello opened a new conversation there, greeted by the bot, and the page, following it, never
        showed the listener's last words nor the goodbye with the numbers (``tests/test_webchat_away_close.py``)."""
        if self.named is None:
            return None
        conversation = await self.hub.store.get_conversation(self.named)
        return None if conversation is None else await self._end_not_seen(token, conversation)

    async def _refuse_first(self, inbound: Inbound) -> Refused | None:
        """Why ``inbound`` may not open a new conversation of its sender now (``Gate.new_chat``), or None: none when
        the sender has one open already (another tab's, which takes it). The whole :class:`Refused` since 2026-12-07
        (night): its ``retry_after`` and ``network`` go in the frame as for a first message (``_message``); until
        then the reason alone, and the page tried again on its short backoff instead of the window's end."""
        if await self.hub.store.find_active_conversation(ChannelName.WEBCHAT, inbound.sender) is not None:
            return None
        return await self.gate.new_chat(inbound.sender, self.address, inbound, once=self._once(inbound))

    def _once(self, inbound: Inbound) -> str:
        """What names a message that may open a conversation across the page's attempts (``Gate.new_chat``'s
        ``once``): the keyed hash of the page's opening key with the message's id while that key opened nothing (a
        held socket's token is then drawn anew at each hello: the one after a reconnection is another), else the
        message's de-duplication key (its token's). Not the opening key's once it opened a conversation: the same
        message sent after that one ended is counted again (a troll's "je veux mourir", "Terminer", and again)."""
        if self.opening is not None and self.drawn:
            return f"opening:{self.opening}:{inbound.message_id}"
        return inbound_key(inbound)

    def _refused_before(self, inbound: Inbound) -> bool:
        """Whether this socket refused ``inbound`` (its id, these words) before: what ``"auto"`` may name."""
        return _refused_key(inbound) in self.refused

    def _refused_now(self, inbound: Inbound) -> None:
        """``inbound`` noted as refused on this socket (the latest ``REFUSED_KEPT``: an older one sent "automatic"
        is read as a first try, the model asked again: never a weaker reading)."""
        self.refused[_refused_key(inbound)] = None
        if len(self.refused) > REFUSED_KEPT:
            del self.refused[next(iter(self.refused))]

    def _notice(
        self, refusal: Refusal, message_id: str | None, *, quiet: bool = False, retry_after: int | None = None,
        network: bool = False,
    ) -> None:  # fmt: skip
        """What was refused (the message ``message_id``, or the hello when None: the page marks that message as not
        sent, or sends on this held socket what it still has to send), then a calm notice with the emergency
        numbers, shown like a bot message; nothing is stored. A refused hello always has its notice; a refused
        message has it once a ``NOTICE_AGAIN`` per refusal and language on this socket: each refused message is
        marked "Pas encore envoyé" all the same, but a burst past the flood, the messages a held socket's page sends,
        or the refused ones it sends again after a reconnection no longer bury the conversation under the same notice
        (until 2026-12-06: one each, 87 for two pages of a chaos soak). A new socket says it again. ``quiet``: a
        message the page tried again by itself (``_message``): its ``refused`` frame only. ``retry_after``: refused
        by a rate of new chats, the seconds until its window ends (``Gate.new_chat``), in the frame (since
        2026-12-07; nothing else: no address, no id beyond the message's). ``network``: refused by the client
        network's rate of new chats (``Refused.network``), ``"limit": "network"`` in the frame (since 2026-12-07:
        chat.js then tries the message again by itself, as after ``client_full``; a refusal for the page's own doing,
        a flood or its browser's rate, has no ``limit`` and is not looped)."""
        frame: dict[str, Any] = {"type": "refused", "id": message_id, "reason": refusal.value}
        if retry_after is not None:
            frame["retry_after"] = retry_after
        if network:
            frame["limit"] = "network"
        self.writer.offer(frame)
        if quiet:
            return
        now = self.hub.clock()
        told = self.told.get((refusal, self.language))  # a page switched to another language: said in it once
        if message_id is not None and told is not None and now - told < NOTICE_AGAIN:
            return
        self.told[(refusal, self.language)] = now
        text = self.gate.notice(refusal, self.language)
        entry = {"id": "notice-" + secrets.token_urlsafe(8), "author": "bot", "choices": [], "text": text,
                 "at": now.isoformat()}  # fmt: skip
        self.writer.offer({"type": "entry", "entry": entry})

    async def _ended(self) -> bool:
        """Whether the conversation this socket follows has ended: a message never silently starts the next one."""
        if self.conversation_id is None:
            return False
        conversation = await self.hub.store.get_conversation(self.conversation_id)
        if conversation is None:  # erased (gateway/erasure.py), or lost (a failover): only an erasure ends it here
            return await self.hub.was_erased(self.conversation_id)  # lost: ``_deliver`` takes the message
        return not conversation.active

    async def _follow(self, conversation_id: str) -> None:
        """This socket attached to the conversation, its first frame to be sent by the hub's ``opened``. An erased
        conversation it followed before (a second hello on this socket after the erasure) is forgotten by the hub
        once no socket here follows it (:meth:`WebChatHub.forget_erased`): until 2026-12-07 it stayed in
        ``hub.erased`` for the life of the process (``tests/test_webchat_erased_forgotten.py``)."""
        await self._watch(conversation_id)
        previous, self.conversation_id = self.conversation_id, conversation_id
        self.hub.attach(conversation_id, self.writer)
        if previous is not None and previous != conversation_id:
            self.hub.forget_erased(previous)

    async def _watch(self, conversation_id: str) -> None:
        """This conversation's events brought to this instance (and no longer the one followed before)."""
        if self.followed == conversation_id:
            return
        await self.hub.follow(conversation_id)
        if self.followed is not None:
            self.hub.unfollow(self.followed)
        self.followed = conversation_id

    async def _leave(self, *, erased: str | None = None) -> None:
        """A hello answered with an end (:meth:`_show_end`, :meth:`_show_gone`) or refused: the socket no longer
        follows the conversation an earlier hello on it opened, left as by a socket closing (its gone timer armed,
        unless erased). Until 2026-12-07 it stayed attached: that conversation's entries (the young person's words
        too) reached a socket showing another's end or holding a refused token, and its ``end``, ``typing``,
        ``language`` and ``receipt`` frames still acted on it (``end`` closed it).
        ``tests/test_webchat_second_hello.py``.

        ``erased``: the conversation :meth:`_show_gone` found marked erased (its mark read already). No gone timer is
        armed for it, nor, on that path only (one read there, none on any other), for another followed one whose
        mark is kept (``WebChatHub.was_erased``): its erasure under way, its ``Erased`` event not arrived yet, or cut
        short. Until 2026-12-07 a timer was armed on it (``tests/test_webchat_erased_cut.py``)."""
        previous, self.conversation_id = self.conversation_id, None
        self.hub.detach(self.writer)
        if self.followed is not None:
            self.hub.unfollow(self.followed)
            self.followed = None
        if previous is None:
            return
        if previous in self.hub.erased:  # as ``run`` at the close: nothing may name an erased conversation again
            self.hub.forget_erased(previous)
            return
        if erased is not None and (previous == erased or await self._marked(previous)):
            return  # its erasure under way (its event not here yet) or cut short: no timer on it
        await asyncio.shield(self.hub.arm_gone(previous, self.hub.clock()))

    async def _marked(self, conversation_id: str) -> bool:
        """Whether the conversation left is marked erased; unread (the store failing) taken as not: its gone timer is
        armed all the same (``arm_gone`` tries until the store answers; on a conversation erased meanwhile it does
        nothing when it fires). Until 2026-12-07 (evening) the StoreError ended the hello after the socket had left the
        conversation: no timer was ever armed for it (``tests/test_gone_timer_erased.py``)."""
        try:
            return await self.hub.was_erased(conversation_id)
        except StoreError:
            return False

    async def _end(self) -> None:
        assert self.token is not None
        if self.conversation_id is not None:
            await self.hub.end_by_young_person(self.conversation_id, self.hub.clock())

    async def _error(self, code: str, message: str) -> None:
        self.writer.offer({"type": "error", "code": code, "message": message})


def _refused_key(inbound: Inbound) -> tuple[str, bytes]:
    """A refused message as its socket remembers it: its id and a digest of its words (never the words)."""
    return inbound.message_id, hashlib.sha256(inbound.text.encode()).digest()


def _ids(ids: object) -> bool:
    return isinstance(ids, list) and len(ids) <= MAX_RECEIPT_IDS and all(isinstance(i, str) for i in ids)


def _parse_frame(data: str) -> dict[str, Any] | None:
    if len(data) > MAX_FRAME:
        return None
    try:
        frame = load_json(data)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("type") not in FRAME_TYPES:
        return None
    return frame


async def chat_socket(request: web.Request, hub: WebChatHub) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=25, max_msg_size=MAX_FRAME * 4)  # larger: closed with 1009
    await ws.prepare(request)
    writer = SocketWriter(ws, request, surface="webchat", metrics=hub.metrics)
    hub.open.add(writer)
    try:
        await ChatSession(hub, ws, writer, client_address(request, hub.addresses)).run()
    except StoreError as exc:  # nothing was acknowledged: the page reconnects and sends again what is unacknowledged
        if not isinstance(exc, ReplicasBehind):  # that one is said and counted by gateway/store/redis_replicas.py
            hub.metrics.outages.failed("webchat", exc)  # told once an outage (gateway/outage_log.py)
        async with asyncio.timeout(SEND_TIMEOUT):
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again later")
    finally:
        await writer.close()
    return ws


MAX_LEAVE_BODY = 1024


async def leave_request(request: web.Request, hub: WebChatHub) -> web.Response:
    """``POST /chat/leave`` (the quick exit's beacon, ``{"token": "…"}``): the conversation is marked as left.

    204 whether or not the token has an active conversation (nothing to learn from it); 400 malformed, 413 too big.
    """
    if request.content_length is not None and request.content_length > MAX_LEAVE_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_LEAVE_BODY, actual_size=request.content_length)
    raw = await request.read()  # bounded by the app's client_max_size, and already read by its body deadline
    if len(raw) > MAX_LEAVE_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_LEAVE_BODY, actual_size=len(raw))
    try:
        body = load_json(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="a JSON object with a token") from None
    token = chat_token(body.get("token")) if isinstance(body, dict) else None
    if token is None:
        raise web.HTTPBadRequest(text="a JSON object with a token")
    conversation = await hub.store.find_active_conversation(ChannelName.WEBCHAT, token)
    if conversation is not None:
        await leaving.quick_exit(hub.dispatcher, hub.store, conversation.id, hub.clock())
    return web.Response(status=204)


async def _first_ended(*tasks: asyncio.Task[None]) -> None:
    """Until the first of these tasks ends, its failure raised; the others cancelled and waited for either way (also
    when this is cancelled: nothing is left running). Any other failure (a task raising something else than
    CancelledError as it is stopped) is retrieved and logged by its class: until 2026-12-08 it was left to asyncio's
    "Task exception was never retrieved", its message and traceback in the log."""
    done: set[asyncio.Task[None]] = set()
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        failures = [
            (task, failure) for task in tasks if not task.cancelled() and (failure := task.exception()) is not None
        ]
        raised = next((failure for task, failure in failures if task in done), None)
        for _, failure in failures:
            if failure is not raised:
                log.warning("webchat: a task failed as it was stopped (%s)", type(failure).__name__)
    if raised is not None:
        raise raised


async def _at_once(calls: list[Callable[[], Awaitable[object]]], at_once: int = RESYNC_AT_ONCE) -> None:
    """Each call made, ``at_once`` at a time, in order of start; the first failure raised once those under way end
    (the others are not started: a subscription lost fails them all alike)."""
    for start in range(0, len(calls), at_once):
        done = await asyncio.gather(*(call() for call in calls[start : start + at_once]), return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
