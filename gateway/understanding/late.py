"""Late readings: the model's second check on a message that went on without it (docs/understanding.md, "Late
readings"), kept in the store until it is applied, so that no crash or deploy loses it.

A young person's message whose reading the :class:`~gateway.understanding.reader.Reader` could not give in time
(``busy`` or ``timeout``) goes on at once with the keywords only, and a long one goes on with the reading of its
first ``max_tokens`` tokens (its windows unread: ``Inline.rest``). In the same commit as the message, the store
records that it waits for a late reading (:meth:`LateReadings.record`: its conversation, its transcript entry,
whether only its windows are left; never its text), held by this process for ``hold_seconds``. The message is then
queued here in memory (:meth:`LateReadings.offer`) and read after the fact by one worker (:meth:`LateReadings.run`,
under the supervisor), in the Reader's own model thread and only while no fresh message waits for it
(:meth:`Reader.read_late`). Its reading is handed to ``apply`` (:meth:`gateway.dispatcher.Dispatcher.apply_late`),
which may only escalate; the record is then forgotten (flagged or not).

A second worker (:meth:`LateReadings.keep`) renews this process's hold on the records it keeps in memory, every
third of ``hold_seconds``, and claims the records whose hold lapsed: their process died (``kill -9``, a deploy)
before applying them, or had no room for them in memory (beyond ``size`` messages waiting, a record is left in the
store, ``deferred``, not dropped). A claimed record's text is read again from its transcript entry (which the
store opens when sealing at rest is on), and it is read like the others. Of several instances sharing one Redis,
exactly one claims each record; a claimer that dies in turn lets it lapse again, and one whose model has been hung
longer than a hold lets go of all it keeps (and claims none) until the model answers again.

Bounds: at most ``size`` messages wait in memory; a record older than ``max_age`` when claimed, or claimed
``max_claims`` times without being applied (a model that keeps failing on it), is given up; one of a conversation
that was erased or purged is forgotten (one that ended is read: ``Dispatcher.apply_late`` tells its young person
where to turn): each counted by outcome, never logged with an id or a text.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeVar

from gateway.clock import utcnow
from gateway.errors import StoreError
from gateway.flows.reading import Reading
from gateway.outage_log import error_class
from gateway.store import Author, ConversationStore, LateStore, PendingLate, TranscriptStore
from gateway.understanding.reader import Reader

log = logging.getLogger(__name__)

T = TypeVar("T")

SIZE = 1000  # messages waiting for a late reading in memory at most (beyond, they wait in the store)
HOLD_SECONDS = 30.0  # a record's hold by the process that keeps it; renewed every third of it
MAX_AGE = timedelta(hours=24)  # a record older than this when claimed is given up
MAX_CLAIMS = 5  # a record claimed this many times without being applied is given up
LOG_EVERY = 100  # deferred records are logged at the first, then every this many
# seconds between two tries of a late reading's writes (``apply``, ``late_done``) while the store fails: first, most
STORE_RETRY = (0.1, 2.0)

Outcome = Literal[
    "queued", "deferred", "claimed", "read", "flagged", "failed", "closed", "expired", "given_up", "ended"
]
OUTCOMES: tuple[Outcome, ...] = (
    "queued", "deferred", "claimed", "read", "flagged", "failed", "closed", "expired", "given_up", "ended",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Late:
    """A message to read after the fact: its conversation, its transcript entry, its text (never shown in a repr),
    and ``first``, the reading of its start when it was read inline as far as its cut (only its windows are left to
    read: ``Inline.rest``); None when it went on without a reading. ``windows`` with no ``first``: a record claimed
    from the store whose start is to be read again before its windows (the model is deterministic)."""

    conversation_id: str
    entry_id: str
    text: str = field(repr=False)
    first: Reading | None = None
    windows: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.conversation_id, self.entry_id


Apply = Callable[[Late, Reading], Awaitable[bool]]
"""Apply a late reading; True when it raised a flag."""


class LateRoles(LateStore, ConversationStore, TranscriptStore, Protocol):
    """What late readings need of the store: their records, and the conversation and its entry a claim reads."""


class LateReadings:
    def __init__(
        self,
        reader: Reader,
        store: LateRoles,
        *,
        size: int = SIZE,
        hold_seconds: float = HOLD_SECONDS,
        max_age: timedelta = MAX_AGE,
        max_claims: int = MAX_CLAIMS,
        clock: Callable[[], datetime] = utcnow,
        on_outcome: Callable[[Outcome], None] = lambda outcome: None,
        on_store_failure: Callable[[StoreError], None] | None = None,
        on_store_answer: Callable[[], None] = lambda: None,
    ) -> None:
        self.reader, self.store = reader, store
        # both workers' store failures told to the app's outage log (once an outage); None: a line each try
        self._on_store_failure = on_store_failure
        self._on_store_answer = on_store_answer  # a write answered after a failure (the outage log's ``answered``)
        self.size, self.hold, self.max_age, self.max_claims = size, timedelta(seconds=hold_seconds), max_age, max_claims
        self.clock = clock
        self.owner = secrets.token_hex(8)  # this process, as the holder of its records
        self._on_outcome = on_outcome
        # the messages waiting here, oldest first, by key: one dropped (erased, let go) leaves no text behind
        self._queue: dict[tuple[str, str], Late] = {}
        self._queued = asyncio.Event()  # set while ``_queue`` holds something
        self._held: set[tuple[str, str]] = set()  # records this process keeps: queued here, or being read
        self.deferred = 0

    async def record(self, conversation_id: str, entry_id: str, *, windows: bool, now: datetime) -> None:
        """Record in the store that the message waits for a late reading, held by this process: call it inside the
        message's batch, so that the message is never saved without it."""
        pending = PendingLate(conversation_id, entry_id, windows=windows, queued_at=now)
        await self.store.late_put(pending, self.owner, now + self.hold)

    def offer(self, late: Late) -> bool:
        """Queue a recorded message for its late reading here; False (counted) when there is no room: its record
        stays in the store, and is claimed once its hold lapses."""
        if not self._put(late):
            self.deferred += 1
            self._on_outcome("deferred")
            if self.deferred == 1 or self.deferred % LOG_EVERY == 0:
                log.warning("understanding: %d late readings left in the store so far (%d waiting here at most)",
                            self.deferred, self.size)  # fmt: skip
            return False
        self._on_outcome("queued")
        return True

    def _put(self, late: Late) -> bool:
        """Queued here and held (False, nothing changed: no room)."""
        if len(self._queue) >= self.size and late.key not in self._queue:
            return False
        self._queue[late.key] = late
        self._held.add(late.key)
        self._queued.set()
        return True

    def _drop(self, keys: set[tuple[str, str]]) -> None:
        """No longer kept here: neither held nor queued (their text goes with them)."""
        self._held.difference_update(keys)
        for key in keys:
            self._queue.pop(key, None)

    def forget(self, conversation_id: str) -> None:
        """The conversation was erased (by this process): its messages waiting here go at once, texts included, and
        one being read is not applied. Another process's go at its next renewal: their records are gone."""
        self._drop({key for key in self._held | self._queue.keys() if key[0] == conversation_id})

    def ended(self) -> None:
        """A risk read late in a conversation that had ended (``Dispatcher.apply_late``: its young person told, it
        flagged): counted, for the supervisors (``gateway_understanding_late{outcome="ended"}``)."""
        self._on_outcome("ended")

    def waiting(self) -> int:
        return len(self._queue)

    def queued(self) -> list[Late]:
        """The messages waiting here, oldest first."""
        return list(self._queue.values())

    async def _next(self) -> Late:
        while not self._queue:
            self._queued.clear()
            await self._queued.wait()
        return self._queue.pop(next(iter(self._queue)))

    async def run(self, apply: Apply) -> None:
        """The reading worker: read each queued message, oldest first, apply its reading, forget its record."""
        while True:
            await self._read_next(apply)

    async def _read_next(self, apply: Apply) -> None:
        """One message (its text referenced by nothing here once this returns, while the worker waits)."""
        late = await self._next()
        if late.key not in self._held:  # claimed by another process meanwhile (this one's hold lapsed)
            return
        try:
            await self._read(late, apply)
        finally:
            self._held.discard(late.key)  # not applied (failed): its hold lapses and a claim tries again

    async def _read(self, late: Late, apply: Apply) -> None:
        if late.windows and late.first is None:
            first = await self.reader.read_late_start(late.text)
            late = replace(late, first=first)
            reading = await self.reader.read_late(late.text, first) if first is not None else None
        else:
            reading = await self.reader.read_late(late.text, late.first)
        if reading is None:
            self._on_outcome("failed")
            return
        if late.key not in self._held:  # let go meanwhile (a hung model): its claimer reads it
            return
        applied = await self._write(late, lambda: apply(late, reading))
        if applied is None or await self._write(late, lambda: self.store.late_done(*late.key)) is None:
            return
        self._on_outcome("flagged" if applied[0] else "read")

    async def _write(self, late: Late, write: Callable[[], Awaitable[T]]) -> tuple[T] | None:
        """``write``'s answer (in a 1-tuple), tried again ``STORE_RETRY`` apart while the store fails it (each failure
        told as an outage's, never a worker's stop) and this process holds ``late`` (``keep`` renews its hold
        meanwhile); None once it does not (erased, let go, taken over by a claim: its claimer applies it). The
        reading is applied once: a failed ``late_done`` tries that write again, not ``apply`` (which, cut short,
        writes the same entries again: ``Dispatcher.apply_late``). Until 2026-12-07 a StoreError here stopped the
        worker: restarted by the supervisor (``gateway_worker_restarts_total``), the message dropped from memory
        and read again only once its hold lapsed and a claim took it (30 s and more: a late escalation waited)."""
        pause, failed = STORE_RETRY[0], False
        while True:
            try:
                answer = await write()
            except StoreError as exc:
                failed = True
                self._store_failed(exc)
            else:
                if failed:
                    self._on_store_answer()
                return (answer,)
            await asyncio.sleep(pause)
            pause = min(pause * 2, STORE_RETRY[1])
            if late.key not in self._held:
                return None

    def _store_failed(self, exc: StoreError) -> None:
        if self._on_store_failure is not None:
            self._on_store_failure(exc)
        else:
            log.warning("understanding: late readings could not reach the store (%s)", error_class(exc))

    async def keep(self) -> None:
        """The store worker: every third of the hold, renew this process's hold on what it keeps, and claim the
        records whose hold lapsed (once the model is loaded, as many as there is room for here)."""
        every = self.hold.total_seconds() / 3
        while True:
            try:
                await self._renew()
                await self._claim()
            except StoreError as exc:
                self._store_failed(exc)
            await asyncio.sleep(every)

    async def _renew(self) -> None:
        if self._hung():  # a hung model reads none of them: let them go to an instance that can
            if self._held:
                log.warning("understanding: the model is hung; %d late readings let go to another instance",
                            len(self._held))  # fmt: skip
            self._drop(self._held | self._queue.keys())  # claimed again (their text re-read) once they lapse
            return
        held = list(self._held)
        if held:
            kept = await self.store.late_hold(self.owner, held, self.clock() + self.hold)
            self._drop(set(held) - kept)  # taken over, done, erased or purged meanwhile: not ours, texts dropped

    async def _claim(self) -> None:
        room = self.size - len(self._queue)
        if self.reader.model is None or self._hung() or room <= 0:  # no model here: left to an instance that has one
            return
        now = self.clock()
        for pending in await self.store.late_claim(self.owner, now, now + self.hold, room):
            if (pending.conversation_id, pending.entry_id) in self._held:
                continue  # already queued here (a renewal that failed let it lapse)
            self._on_outcome("claimed")
            late = await self._again(pending, now)
            if late is None:
                await self.store.late_done(pending.conversation_id, pending.entry_id)
                continue
            self._put(late)  # no room (fresh messages took it meanwhile): claimed again once its hold lapses

    def _hung(self) -> bool:
        """A timed-out call has held the model longer than a hold: nothing queued here is being read."""
        return self.reader.held_for() >= self.hold.total_seconds()

    async def _again(self, pending: PendingLate, now: datetime) -> Late | None:
        """The message of a claimed record, its text read again from its entry; None (counted) when it is given
        up: too old, claimed too often, its conversation ended or erased, its entry gone."""
        if now - pending.queued_at > self.max_age:
            self._on_outcome("expired")
            return None
        if pending.claims > self.max_claims:
            self._on_outcome("given_up")
            return None
        conversation = await self.store.get_conversation(pending.conversation_id)
        if conversation is None:  # erased or purged (one that ended is read: its risk is never dropped)
            self._on_outcome("closed")
            return None
        entries = await self.store.transcript(pending.conversation_id)
        text = next((e.text for e in entries if e.id == pending.entry_id and e.author is Author.USER), None)
        if text is None:
            self._on_outcome("closed")
            return None
        return Late(pending.conversation_id, pending.entry_id, text, windows=pending.windows)
