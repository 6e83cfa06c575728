"""The durable inbox: a large webhook batch is stored first, acknowledged at once, and processed after.

A provider redelivers what it does not see acknowledged in time (Meta within seconds): a signed batch of
thousands of messages, processed one by one before answering, would be sent again and again. A webhook carrying
more than ``batch`` messages is therefore written to the store's inbox in one commit and answered 200; the
worker then processes the inbox through the dispatcher, as a smaller webhook is processed inline:

The same happens under overload: a webhook that finds this process busy, ``inline_max`` webhooks processed inline
at once or one of them at it for ``inline_seconds`` already, is stored and acknowledged at once (milliseconds, where
inline processing under overload took tens of seconds and providers gave up and redelivered), and the worker
processes it as capacity frees. The count alone missed overload with several instances: a provider's (or a
balancer's) connections are split over them, so each saw fewer than ``inline_max`` webhooks at once while its
processing, and so every acknowledgement, took seconds (bench/README.md, "Seventh pass"). How long the oldest
inline webhook has been at it is what the provider waits for, whatever the split. Only webhooks that started
inline in the last ``inline_window`` seconds are timed: one stuck longer (its conversation's lock held by a slow
holder, a hung call) says nothing about how fast this process works now, and timing it made the process busy for
as long as it stayed stuck, every later webhook taking the slower inbox path. Under an overload so deep that
webhooks stay inline longer than the window, the ones that outlived it are not timed either: new webhooks go
inline again until one of them is ``inline_seconds`` old (a probe of about ``inline_seconds`` of the traffic each
time), still capped by ``inline_max``.
``gateway_inbox_deferred{reason}`` counts the messages that went through the inbox (batch, behind, busy).

* in order per sender: the store hands out the oldest item of each sender only, and a later message of a
  sender who still has items waiting is put behind them (never processed inline ahead of them);
* inline, one sender's messages take turns in the order their webhooks arrived (:meth:`Inbox.turns`, a FIFO
  lock per sender in this process, taken by the webhook before anything is awaited): under load several
  webhooks of one young person are in flight at once, and without turns they raced for the store's connections
  and the conversation's lock, answers landing on the wrong questions;
* senders in parallel (``concurrency`` at a time), each item under the dispatcher's claim and lock, so two
  instances' workers never process one message twice, and a message both redelivered and inboxed is processed
  once (the dispatcher's de-duplication);
* resumable: an item is leased while processed (twice the dispatcher's claim); after a crash, another worker
  (or the restarted instance) takes it once the lease lapses; a lease that lapses under a live but slow worker
  costs nothing but a wait: the dispatcher's claim makes the second worker wait, then see the message done.
  Processing is idempotent, so a retried item records and sends nothing twice.

An item whose processing met a store outage is the live worker's still: what became of it (processed, or due
again after its backoff) is recorded as soon as the store answers again, before the worker's next pass, instead of
waiting for its lease (twice the dispatcher's claim, 20 s by default) to lapse when the store could not take it at
the time. That record names the lease it was handed out under (``inbox_retry(lease=…)``): once the lease lapsed
and another worker took the item, it changes nothing of theirs. An instance that dies keeps its items leased:
another worker takes them once the lease lapses, as above.

An item that keeps failing (a store outage: InboundBusy or StoreError) is retried with backoff; after
``max_attempts`` unexpected errors (a bug on this very message) it is set aside so the sender's next messages are
not held behind it forever: kept in the store (``inbox_set_aside``, never dropped), logged by id and class,
counted in ``gateway_inbox_set_aside`` and shown by ``/readyz`` (``gateway/alerts.py`` raises the alert line).
Nothing here logs message text or a sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from gateway.clock import utcnow
from gateway.dispatcher import URGENT_AHEAD, Dispatcher
from gateway.errors import InboundBusy, StoreError
from gateway.flows.risk import risk_source
from gateway.ids import entry_id_of_key, inbound_key
from gateway.keyed import KeyedHash
from gateway.messages import Attachment, ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import InboxItem, InboxStore
from gateway.store.local import LocalLocks
from gateway.supervisor import where

log = logging.getLogger(__name__)

INBOX_BATCH = 20  # a webhook with more messages than this is acknowledged once they are in the inbox
INLINE_MAX = 64  # webhooks processed inline at once, at most; beyond, acknowledged once in the inbox
INLINE_SECONDS = 0.05  # one webhook processed inline this long already: the next ones are acknowledged once inboxed
INLINE_WINDOW = 1.0  # only webhooks that started inline this recently are timed (``Inbox.busy``)
# the inline budget follows the store's round trip (since 2026-12-07, :func:`inline_budget`): a message's webhook
# waits on store round trips in a row (the inbox's look, its claim, the conversation's lock, the record's writes, the
# outbox's): measured through tests/delaying_proxy.py at 20 ms each way, one at a time, 4.2-4.6 round trips for a
# text, 5.3-7.9 for a choice, 6.3-7.1 for a conversation's first message. 10 leaves room for the batched pipelines'
# waits under load (at a 40-60 ms round trip, 200 msg/s, the budget it gives sent 3 of 2,000 messages through the
# inbox: bench/README.md, "The inline budget follows the round trip"), as 0.05 s does with Redis on the same host
INLINE_ROUND_TRIPS = 10
INLINE_CEILING = (
    2.0  # the round trip's share of the budget at most: far below a provider's wait (Twilio 15 s, Meta 20 s)
)
Deferred = Literal["batch", "behind", "busy"]  # why a message went through the inbox (a metric's label)
READ_PART = 100  # messages read for a risk and made into items in one turn of the loop at most (``Inbox.accept``)
TURN_SECONDS = 60.0  # a message waiting longer than this behind its sender's earlier ones: StoreError (503)


def inline_budget(floor: float, round_trip: float | None) -> float:
    """How long one webhook may be processed inline before the next ones go through the inbox (``Inbox.busy``):
    ``floor`` (``GATEWAY_INLINE_SECONDS``; 0: not timed, as ever) or ``INLINE_ROUND_TRIPS`` store round trips
    (``round_trip``: the instance's estimate, ``gateway/clock.py`` ``RoundTrips``; None: not measured, SQLite),
    whichever is longer, the latter at most ``INLINE_CEILING``. Until 2026-12-07 the floor alone, chosen with Redis
    on the same host: at a 10-15 ms round trip nearly every message took longer than 0.05 s, and the inbox took
    most webhooks (1,226 of 2,000 at 200 msg/s; reply p50/p99 853 / 2,399 ms at a 40-60 ms round trip)."""
    if not floor or round_trip is None:
        return floor
    return max(floor, min(INLINE_CEILING, INLINE_ROUND_TRIPS * round_trip))


def sender_key(keyed: KeyedHash, inbound: Inbound) -> str:
    """The inbox's order key: one per (channel, sender), a keyed hash (gateway/keyed.py), so that no key names a
    young person and a guessed phone number cannot be tested against it without the secret key."""
    return keyed.sender(inbound.channel.value, inbound.sender)


def inbound_to_dict(inbound: Inbound) -> dict[str, Any]:
    data = asdict(inbound)
    data["channel"] = inbound.channel.value
    if not inbound.edited:  # the usual case: its stored form as before edits were read
        del data["edited"]
    for name in ("opening", "restart", "menu", "standby", "opted_out", "opted_in"):  # only when set: stored as ever
        if not data[name]:
            del data[name]
    if inbound.sent_at is None:
        del data["sent_at"]
    else:
        data["sent_at"] = inbound.sent_at.isoformat()
    if inbound.written_in is None:  # the providers' messages (the inbox's): stored as before the field
        del data["written_in"]
    return data


def inbound_from_dict(data: dict[str, Any]) -> Inbound:
    return Inbound(
        channel=ChannelName(data["channel"]), sender=data["sender"], message_id=data["message_id"],
        text=data.get("text", ""), payload=data.get("payload"),
        attachments=tuple(Attachment(**a) for a in data.get("attachments", ())),
        language_hint=data.get("language_hint"), edited=bool(data.get("edited", False)),
        opening=bool(data.get("opening", False)), restart=bool(data.get("restart", False)),
        menu=bool(data.get("menu", False)), standby=bool(data.get("standby", False)),
        opted_out=bool(data.get("opted_out", False)), opted_in=bool(data.get("opted_in", False)),
        sent_at=datetime.fromisoformat(data["sent_at"]) if data.get("sent_at") else None,
        written_in=data.get("written_in"),
    )  # fmt: skip


class Inbox:
    def __init__(
        self,
        store: InboxStore,
        dispatcher: Dispatcher,
        metrics: Metrics,
        keyed: KeyedHash,
        *,
        clock: Callable[[], datetime] = utcnow,
        batch: int = INBOX_BATCH,
        inline_max: int = INLINE_MAX,
        inline_seconds: float = INLINE_SECONDS,
        inline_window: float = INLINE_WINDOW,
        monotonic: Callable[[], float] = time.monotonic,
        round_trip: Callable[[], float | None] = lambda: None,
        poll_seconds: float = 1.0,
        lease_seconds: int = 30,
        concurrency: int = 50,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        max_attempts: int = 10,
    ) -> None:
        self.store, self.dispatcher, self.metrics, self.keyed, self.clock = store, dispatcher, metrics, keyed, clock
        self.batch, self.poll_seconds, self.lease_seconds = batch, poll_seconds, lease_seconds
        self.inline_max, self.inline_seconds, self.monotonic = inline_max, inline_seconds, monotonic
        self.inline_window = inline_window
        self.round_trip = round_trip  # the store's round trip as last estimated (None: not measured), in seconds
        self._inline: dict[int, float] = {}  # webhooks processed inline now, in this process: when each started
        self._numbers = itertools.count()
        self.concurrency = concurrency
        self.base_delay, self.max_delay, self.max_attempts = base_delay, max_delay, max_attempts
        self._wake = asyncio.Event()
        self._turns = LocalLocks()  # per sender key, FIFO (asyncio.Lock wakes its waiters in order)
        # items of this worker whose outcome the store did not take (an outage): recorded before the next pass
        self._unrecorded: dict[str, _Outcome] = {}

    def sender_keys(self, messages: Sequence[Inbound]) -> list[str]:
        """Each message's :func:`sender_key`, made once for a webhook's turns, gate and inbox (not kept after)."""
        return [sender_key(self.keyed, inbound) for inbound in messages]

    def turns(
        self, messages: Sequence[Inbound], keys: Sequence[str] | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Hold the turn of each sender of a webhook's messages (none for a large batch: the inbox orders it),
        in the order webhooks asked: enter it before anything else is awaited, leave it once handled. Senders'
        turns are taken in one order (sorted keys), so two webhooks sharing senders never wait for each other in
        a circle. StoreError after ``TURN_SECONDS`` behind a sender's earlier messages (the provider retries).
        ``keys``: the messages' :meth:`sender_keys`, when made already.

        Most webhooks hold one sender's turn: that turn's lock itself is the context, without a generator around
        it (an async generator, its registration with the loop and two ``anext`` a webhook: bench/README.md,
        "Twenty-eighth pass")."""
        if len(messages) > self.batch:
            return contextlib.nullcontext()
        unique = sorted(set(self.sender_keys(messages) if keys is None else keys))
        if len(unique) == 1:  # most webhooks: one sender's turn, without an exit stack
            return self._turns.lock(unique[0], TURN_SECONDS)
        return self._all_turns(unique)

    @contextlib.asynccontextmanager
    async def _all_turns(self, keys: list[str]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as held:
            for key in keys:
                await held.enter_async_context(self._turns.lock(key, TURN_SECONDS))
            yield

    async def handle(self, messages: Sequence[Inbound], keys: Sequence[str] | None = None) -> int:
        """A webhook's messages (under :meth:`turns`): a large batch, or any webhook while the process is
        :meth:`busy`, into the inbox; otherwise each processed now, unless its sender has messages waiting in the
        inbox (stored by any instance: it then goes behind them). ``keys``: their :meth:`sender_keys`, if made.
        Returns how many were taken: processed now for the first time (not a duplicate), or stored in the inbox
        (its worker processes each once)."""
        keys = self.sender_keys(messages) if keys is None else keys
        if len(messages) > self.batch:
            await self.accept(messages, "batch", keys)
            return len(messages)
        # before any await: concurrent webhooks see each other. Escalate, never silence: a webhook whose words the
        # keywords read as a risk is processed now all the same, beyond ``inline_max`` (such messages are few, and the
        # gate bounds them per sender); until 2026-12-05 it waited in the inbox while the webhooks after it that found
        # the process no longer busy were processed inline first (150 to 192 in an overload measured)
        if self.busy():
            risky = [self._risky(m) for m in messages]
            if not any(risky):
                await self.accept(messages, "busy", keys, risky=risky)
                return len(messages)
        number = next(self._numbers)
        self._inline[number] = self.monotonic()
        taken = 0
        try:
            for inbound, key in zip(messages, keys, strict=True):
                if await self.store.inbox_waiting(key):
                    await self.accept([inbound], "behind", [key])
                    taken += 1
                else:
                    taken += await self.dispatcher.handle_inbound(inbound)
        finally:
            del self._inline[number]
        return taken

    def budget(self) -> float:
        """How long a webhook may be processed inline now before the next ones go through the inbox: at least
        ``inline_seconds``, more when the store is further away (:func:`inline_budget`, since 2026-12-07)."""
        return inline_budget(self.inline_seconds, self.round_trip())

    def busy(self) -> bool:
        """``inline_max`` webhooks processed inline in this process now, or the oldest of those that started in the
        last ``inline_window`` seconds processed for the :meth:`budget` already (0: not looked at). One started
        before the window and still at it is stuck, not a sign of load (see the module docstring). A budget raised
        by the round trip widens the window to twice it (since 2026-12-07: a window shorter than the budget would
        never see a webhook reach it)."""
        if len(self._inline) >= self.inline_max:
            return True
        if not self.inline_seconds or not self._inline:
            return False
        budget = self.budget()
        window = max(self.inline_window, 2 * budget) if budget > self.inline_seconds else self.inline_window
        now = self.monotonic()
        for started in self._inline.values():  # in the order they started (a dict keeps its insertion order)
            if now - started < window:
                return now - started >= budget
        return False

    async def accept(
        self, messages: Sequence[Inbound], reason: Deferred = "batch", keys: Sequence[str] | None = None, *,
        risky: Sequence[bool] | None = None,
    ) -> None:  # fmt: skip
        """Store the messages in one commit (from then on they may be acknowledged) and wake the worker. Escalate,
        never silence: a message whose words the flow's keywords read as a risk is due ``URGENT_AHEAD`` before it
        arrived, so the worker takes it (and its sender's earlier messages waiting, the store moves them ahead with
        it: ``InboxStore.inbox_put``) before the backlog of ordinary ones; one sender's messages stay in order.
        ``risky``: each message's reading, when the caller made it already."""
        now = self.clock()
        keys = self.sender_keys(messages) if keys is None else keys
        items: list[InboxItem] = []
        for start in range(0, len(messages), READ_PART):  # a batch of 2,000: read and made into items in one block
            if start:  # held the loop 0.5-0.8 s until 2026-12-06 (the keywords ~0.4 ms, ``asdict`` ~40 µs a message)
                await asyncio.sleep(0)
            part, end = messages[start : start + READ_PART], start + READ_PART
            urgent = [self._risky(m) for m in part] if risky is None else risky[start:end]
            items += [
                InboxItem(inbound_key(m), key, inbound_to_dict(_dated(m, now)), now,
                          now - URGENT_AHEAD if is_urgent else None)
                for m, key, is_urgent in zip(part, keys[start:end], urgent, strict=True)
            ]  # fmt: skip
        await self.store.inbox_put(items)
        self.metrics.inbox_deferred.labels(reason).inc(len(items))
        self._wake.set()

    def _risky(self, inbound: Inbound) -> bool:
        """Whether the flow's keywords read a risk class in the message (cheap, no model: as the gate's flood
        override, ``Gate._risky_past_the_flood``)."""
        return (
            bool(inbound.text.strip()) and risk_source(self.dispatcher.flows.engine().decide(inbound.text)) is not None
        )

    async def run(self) -> None:
        """Process until cancelled. A store failure is retried at the next poll, counted and told once an outage
        (gateway/outage_log.py)."""
        while True:
            try:
                await self.record_outcomes()
                processed = await self.process_due()
                self.metrics.outages.answered("inbox")
            except StoreError as exc:
                self.metrics.outages.failed("inbox", exc)
                processed = 0
            if processed:
                continue
            with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see gateway/supervisor.py
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def record_outcomes(self) -> None:
        """Record what became of this worker's items whose outcome the store did not take when it failed (done, or
        due again), so that they do not wait for their lease; StoreError while it is still away."""
        for item_id, outcome in list(self._unrecorded.items()):
            if outcome.retry_at is None:
                await self.store.inbox_done(item_id)
            else:  # fenced by its lease: once lapsed (False), the item is the store's or another worker's
                await self.store.inbox_retry(item_id, outcome.retry_at, outcome.attempts, lease=outcome.lease)
            del self._unrecorded[item_id]

    async def process_due(self) -> int:
        """One pass: claim the head item of up to ``concurrency`` senders and process them. Returns how many."""
        items = await self.store.inbox_due(self.clock(), self.concurrency, lease_seconds=self.lease_seconds)
        await asyncio.gather(*(self._process(item) for item in items))
        return len(items)

    async def _process(self, item: InboxItem) -> None:
        try:
            await self.dispatcher.handle_inbound(inbound_from_dict(item.payload))
        except StoreError as exc:  # the store or another instance: not this message's fault
            await self._retry(item, exc, counts=False)
            return
        except Exception as exc:  # a bug: by class and place, since its message may quote what was sent
            await self._retry(item, exc, counts=True)
            return
        try:
            await self.store.inbox_done(item.id)
        except StoreError:  # recorded once the store answers (else the lease lapses and the retry is a duplicate)
            self._unrecorded[item.id] = _Outcome(item.next_attempt_at)

    def _logged(self, item: InboxItem) -> str:
        """How a log line names ``item`` (since 2026-12-07): the keyed form (``KeyedHash.logged_id``) of the entry id
        its message gets, as ``gateway log-id --conversation`` lists it. Until then its id, the
        de-duplication key, which holds the provider's message id in clear (``in:whatsapp:SM…``: Twilio's console
        leads from it to the young person's number)."""
        return self.keyed.logged_id(entry_id_of_key(item.id))

    async def _retry(self, item: InboxItem, exc: Exception, *, counts: bool) -> None:
        attempts = item.attempts + 1
        if counts and attempts >= self.max_attempts:
            log.error("inbox: %s set aside after %d attempts (%s at %s); kept in the store", self._logged(item),
                      attempts, type(exc).__name__, where(exc))  # fmt: skip
            with contextlib.suppress(StoreError):  # else retried when its lease lapses, and set aside then
                await self.store.inbox_set_aside(item.id, self.clock())
                self.metrics.inbox_set_aside.set(await self.store.inbox_set_aside_count())
            return
        delay = min(self.base_delay * 2 ** min(attempts - 1, 16), self.max_delay)
        if counts or isinstance(exc, InboundBusy):  # a bug, or another instance holds it: no outage
            log.warning("inbox: %s not processed (%s); again in %.1fs", self._logged(item), type(exc).__name__, delay)
        else:  # the store's: told once an outage, not once an item
            self.metrics.outages.failed("inbox", exc)
        retry_at = self.clock() + timedelta(seconds=delay)
        try:
            await self.store.inbox_retry(item.id, retry_at, attempts, lease=item.next_attempt_at)
        except StoreError:  # recorded as soon as the store answers again, not once the lease lapses
            self._unrecorded[item.id] = _Outcome(item.next_attempt_at, retry_at, attempts)


def _dated(inbound: Inbound, now: datetime) -> Inbound:
    """A WhatsApp STOP or START (``opted_out``, ``opted_in``) its webhook carried undated, dated when the inbox took
    it: processed later, it is ordered against the other by when it was sent (``Dispatcher._opted``: the last of the
    two wins), not by when it was processed. Until 2026-12-06 a STOP processed late marked the conversation dated
    then, after a START sent later (caught up from Twilio's list, dated by it) had lifted the mark: that START lifted
    nothing and every reply went "not sent" until their next START."""
    if inbound.sent_at is None and (inbound.opted_out or inbound.opted_in):
        return replace(inbound, sent_at=now)
    return inbound


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of an item, for the store: processed (``retry_at`` None), or due again at ``retry_at`` after
    ``attempts``; ``lease``: the end of the lease it was handed out under (``InboxItem.next_attempt_at``)."""

    lease: datetime | None
    retry_at: datetime | None = None
    attempts: int = 0
