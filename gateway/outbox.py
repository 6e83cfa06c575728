"""Durable delivery: every outgoing message goes through the store's outbox, then through its channel.

A worker claims due items (at most one per conversation, the oldest, so a conversation's messages go out in
order), sends each through its channel, and records the result: sent (with the provider's id), retried later
with exponential backoff (network errors, 5xx, 429 honouring ``retry_after``), or failed after the last try
or a permanent refusal: the transcript entry then shows ``failed`` and the listener sees it.

A long text goes out in parts (the channel splits it). When a later part fails for now, the item records how many
parts the provider accepted (``RetryableDelivery.parts_sent`` → ``OutboxItem.parts_sent``) and the next attempt
starts at the first unsent part: a retry never shows the young person a part twice. The transcript keeps the
provider id of the last part only (receipts for the whole message; see docs/architecture.md).

Nothing twice: an item is leased for ``lease_seconds`` when claimed, and the lease is renewed every third of it
while its delivery is in flight (a send that waits behind a slow provider or a busy store outlasts any fixed
lease), so another worker resends it only if this one died or stalled a whole lease. The lease's end is the
claim's fencing token: renewals and the final record pass it, and the store refuses them once another worker
claimed the item (a holder that lost its lease never marks or reschedules what the new holder sends). Once the
provider accepted a message, "sent" is recorded before anything else, retried through a brief store failure, so
the item is never handed out again; only a send in flight when an instance dies or stalls (or whose record the
store refused for good) may repeat. An item whose
delivery failed before any send releases its lease at once (retried soon), never holding its conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from gateway.clock import utcnow
from gateway.errors import DeliveryError, PermanentDelivery, RecipientGone, RetryableDelivery, StoreError
from gateway.events import DeliveryChanged
from gateway.later import Later
from gateway.messages import ChannelName, Outbound
from gateway.metrics import Metrics
from gateway.store import BatchStore, Delivery, EventStore, OutboxItem, OutboxStore
from gateway.store.codec import decode_outbound
from gateway.supervisor import where

log = logging.getLogger(__name__)

MARK_SENT_TRIES = 8  # about 6 s of a store failing before a sent message may be sent again
# Deliveries in flight at once per instance: the app's one aiohttp session opens at most 100 connections (its
# connector's default limit), so more sends would only queue there, their leases and their lines held meanwhile.
WINDOW = 100
# The least time between two claims of :meth:`Outbox.run`: a claim costs two store round trips whatever it
# brings, and at 1,000 replies/s a claim at every end or kick cost 0.2 ms of CPU per message more than the claims
# of 50 it replaced (bench/README.md). A claim within this of the last waits the rest, gathering the ends and kicks
# meanwhile: a reply waits that long at most, and only under load (an idle worker claims at once).
CLAIM_GAP = 0.010


class _Lease:
    """A claimed item and the end of its lease as last renewed: the claim's fencing token.

    Renewals and the final record take turns (``lock``): a record sent while a renewal is on its way would carry
    the token the renewal is replacing and be refused, leaving a sent item pending (it would be sent again). A
    renewal whose answer was lost (a store error after Redis ran it) may have moved the token: ``unsure`` keeps
    those ends, tried after the known one.
    """

    __slots__ = ("item", "lock", "unsure", "until")

    def __init__(self, item: OutboxItem) -> None:
        if item.next_attempt_at is None:
            raise ValueError("a claimed outbox item carries the end of its lease")
        self.item, self.until = item, item.next_attempt_at
        self.lock = asyncio.Lock()
        self.unsure: list[datetime] = []

    async def fenced(self, call: Callable[[datetime], Awaitable[bool]]) -> bool:
        """``call(token)`` with the current token (then the unsure ones) until the store accepts one."""
        async with self.lock:
            for token in (self.until, *self.unsure):
                if await call(token):
                    self.until, self.unsure = token, []
                    return True
            return False


class Sender(Protocol):
    async def send(self, message: Outbound, first_part: int = 0) -> str | None: ...


class OutboxRoles(OutboxStore, EventStore, BatchStore, Protocol):
    """What the outbox needs of the store: its items, and the events telling the console of deliveries."""


class Outbox:
    def __init__(
        self,
        store: OutboxRoles,
        channels: Mapping[ChannelName, Sender],
        *,
        clock: Callable[[], datetime] = utcnow,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_attempts: int = 8,
        poll_seconds: float = 1.0,
        lease_seconds: int = 60,
        window: int = WINDOW,
        metrics: Metrics | None = None,
        on_recipient_gone: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """``on_recipient_gone(conversation_id)``: a send was refused because the young person blocked the line or
        unsubscribed (:class:`RecipientGone`); the app marks the conversation as left (``gateway/leaving.py``)."""
        self.on_recipient_gone = on_recipient_gone
        self.lease_seconds = lease_seconds
        if window < 1:
            raise ValueError(f"an outbox window of {window} delivers nothing")
        self.window = window
        self.metrics = metrics or Metrics()
        self.store = store
        self.channels = channels
        self.clock = clock
        self.base_delay, self.max_delay, self.max_attempts = base_delay, max_delay, max_attempts
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Something was put in the outbox: deliver now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled, up to ``window`` items in flight: more are claimed as soon as a delivery ends
        (a slot is free, and its conversation's next item may be due), something is put in the outbox (a kick)
        or the poll comes round, ``CLAIM_GAP`` apart at least; never more than the free slots. No pass barrier:
        a slow send holds its own slot and its own conversation (the store's lease on its line), never the
        others' replies.

        A failed claim is logged (class, place) and retried at the next poll; each delivery reports its own
        failure (:meth:`_deliver_reported`). Cancelled (shutdown), the deliveries in flight are cancelled with it:
        their leases end and another pass (or instance) sends them then; nothing recorded as sent goes out again.
        """
        in_flight: set[asyncio.Task[None]] = set()

        def ended(task: asyncio.Task[None]) -> None:  # the slot is free before the loop looks again
            in_flight.discard(task)
            self._wake.set()

        loop = asyncio.get_running_loop()
        last_claim = -CLAIM_GAP
        try:
            while True:
                if (gap := last_claim + CLAIM_GAP - loop.time()) > 0:
                    await asyncio.sleep(gap)
                self._wake.clear()  # a kick or an end arriving while claiming wakes the next round
                free = self.window - len(in_flight)
                if free > 0:
                    last_claim = loop.time()
                    claimed = await self._claim(free)
                    if claimed is None:  # the ends and kicks meanwhile would only fail again: the next poll tries
                        await asyncio.sleep(self.poll_seconds)
                        continue
                    for item in claimed:
                        task = asyncio.create_task(self._deliver_reported(item))
                        in_flight.add(task)
                        task.add_done_callback(ended)
                with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see gateway/supervisor.py
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _claim(self, limit: int) -> list[OutboxItem] | None:
        """Claim up to ``limit`` due items; None when the claim failed (logged: class, place)."""
        try:
            return await self.store.outbox_due(self.clock(), limit, lease_seconds=self.lease_seconds)
        except StoreError as exc:
            log.warning("outbox: store unavailable (%s)", exc.__class__.__name__)
        except Exception as exc:  # a bug: delivery goes on for every item in flight and at the next poll
            log.error("outbox: unexpected %s at %s", type(exc).__name__, where(exc))
        return None

    async def _deliver_reported(self, item: OutboxItem) -> None:
        """One item of :meth:`run`, its failure reported here, never failing the others."""
        try:
            await self._deliver(item)
        except StoreError as exc:  # not recorded: retried when its lease ends
            log.warning("outbox: store unavailable (%s)", exc.__class__.__name__)
        except Exception as exc:  # this item only: retried when its lease ends
            log.error("outbox: %s: unexpected %s at %s", item.id, type(exc).__name__, where(exc))

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass, awaited whole (tests, tools): claim what is due and deliver it (conversations in parallel).
        Returns how many. :meth:`run` keeps a sliding window instead.

        One item's failure never fails the others: each is delivered and recorded on its own; a store failure
        is raised once all are done.
        """
        items = await self.store.outbox_due(self.clock(), limit, lease_seconds=self.lease_seconds)
        outcomes = await asyncio.gather(*(self._deliver(item) for item in items), return_exceptions=True)
        store_error: StoreError | None = None
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, StoreError):  # not recorded: the store is down, the caller reports it
                store_error = outcome
            elif isinstance(outcome, Exception):  # this item only: retried when its lease ends
                log.error("outbox: %s: unexpected %s at %s", item.id, type(outcome).__name__, where(outcome))
        if store_error is not None:
            raise store_error
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        """Deliver one claimed item, its lease renewed meanwhile (``item`` then carries the current lease)."""
        lease = _Lease(item)
        renewal = Later(self.lease_seconds / 3, lambda: self._keep_lease(lease))  # a timer until a renewal is due
        try:
            await self._deliver_leased(lease)
        finally:
            renewal.cancel()

    async def _keep_lease(self, lease: _Lease) -> None:
        """Renew the claim now (a third of the lease in) and every third of it while its delivery runs; stop once
        it is lost."""
        item_id = lease.item.id
        while True:
            until = self.clock() + timedelta(seconds=self.lease_seconds)
            try:
                renewed = await self._renew(lease, until)
            except StoreError as exc:  # Redis may have run it: ``until`` may be the token now
                lease.unsure.append(until)
                log.warning("outbox: %s: lease not renewed (%s)", item_id, type(exc).__name__)
                renewed = True
            except Exception as exc:  # a bug must not end the renewal silently: the lease would lapse mid-send
                log.error("outbox: renewing a lease failed with %s at %s", type(exc).__name__, where(exc))
                renewed = True
            if not renewed:
                log.warning("outbox: %s: lease lost while delivering; another worker may send it", item_id)
                return
            await asyncio.sleep(self.lease_seconds / 3)

    async def _renew(self, lease: _Lease, until: datetime) -> bool:
        async with lease.lock:
            for token in (lease.until, *lease.unsure):
                if await self.store.outbox_renew(lease.item.conversation_id, lease.item.id, token, until):
                    lease.until, lease.unsure = until, []
                    return True
            return False

    async def _deliver_leased(self, lease: _Lease) -> None:
        item = lease.item
        try:
            outbound = decode_outbound(item.payload)
        except Exception as exc:  # e.g. written by a newer version during a rolling deploy
            await self._set_aside(lease, exc)
            return
        channel = self.channels.get(outbound.channel)
        if channel is None:
            await self._fail(lease, f"channel {outbound.channel.value} is not configured")
            return
        try:
            provider_id = await channel.send(outbound, first_part=item.parts_sent)
        except RetryableDelivery as exc:
            await self._retry(lease, exc)
        except RecipientGone as exc:
            await self._fail(lease, str(exc))
            if self.on_recipient_gone is not None:
                await self.on_recipient_gone(item.conversation_id)
        except PermanentDelivery as exc:
            await self._fail(lease, str(exc))
        except DeliveryError as exc:
            await self._retry(lease, RetryableDelivery(str(exc)))
        except Exception as exc:  # a bug in one adapter must not stop the worker for every channel
            log.error("outbox: %s: unexpected %s from the %s channel", item.id, type(exc).__name__, outbound.channel)
            await self._retry(lease, RetryableDelivery(f"unexpected {type(exc).__name__}"))
        else:
            self._count(item, "sent")
            async with self.store.batch():  # Redis: the record's line step and its event in one round trip
                if await self._mark_sent(lease, provider_id):
                    await self._record(item, Delivery.SENT, provider_id)

    async def _set_aside(self, lease: _Lease, exc: Exception) -> None:
        """An item this version cannot read: failed (kept in the store, shown to the listener), others flow."""
        item = lease.item
        log.error("outbox: %s set aside: this version cannot read it (%s at %s)", item.id, type(exc).__name__,
                  where(exc))  # fmt: skip
        self.metrics.outbox_set_aside.inc()
        reason = f"set aside: unreadable by this version ({type(exc).__name__})"
        if await self._mark_failed(lease, reason):
            await self._record(item, Delivery.FAILED, None, reason)

    async def _mark_sent(self, lease: _Lease, provider_id: str | None) -> bool:
        """Record the send before anything else, through a brief store failure: an item recorded as sent is
        never handed out again, one whose record is lost would be resent when its lease ends. False when the
        lease was lost meanwhile (another worker holds the item now)."""
        pause = 0.05
        for _ in range(MARK_SENT_TRIES - 1):
            try:
                return await self._mark_sent_once(lease, provider_id)
            except StoreError as exc:
                log.warning("outbox: %s: sent, not yet recorded (%s); trying again", lease.item.id,
                            type(exc).__name__)  # fmt: skip
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        return await self._mark_sent_once(lease, provider_id)

    async def _mark_sent_once(self, lease: _Lease, provider_id: str | None) -> bool:
        item = lease.item
        if await lease.fenced(
            lambda token: self.store.outbox_mark_sent(item.conversation_id, item.id, provider_id, lease=token)
        ):
            return True
        log.warning("outbox: %s: sent after its lease was lost; another worker may have sent it too", lease.item.id)
        return False

    async def _retry(self, lease: _Lease, exc: RetryableDelivery) -> None:
        item = lease.item
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            await self._fail(lease, f"gave up after {attempts} attempts: {exc}")
            return
        delay = exc.retry_after if exc.retry_after is not None else self.base_delay * 2 ** (attempts - 1)
        delay = min(max(delay, 0.0), self.max_delay)
        parts_sent = max(item.parts_sent, exc.parts_sent)  # an error without progress keeps what was recorded
        log.info("outbox: %s retry %d in %.1fs from part %d (%s)", item.id, attempts, delay, parts_sent + 1, exc)
        self._count(item, "retry")
        next_attempt = self.clock() + timedelta(seconds=delay)
        await lease.fenced(lambda token: self.store.outbox_reschedule(
            item.conversation_id, item.id, next_attempt, attempts, str(exc), parts_sent, lease=token))  # fmt: skip

    async def _fail(self, lease: _Lease, reason: str) -> None:
        item = lease.item
        log.warning("outbox: %s failed: %s", item.id, reason)
        self._count(item, "failed")
        if await self._mark_failed(lease, reason):
            await self._record(item, Delivery.FAILED, None, reason)

    async def _mark_failed(self, lease: _Lease, reason: str) -> bool:
        item = lease.item
        return await lease.fenced(
            lambda token: self.store.outbox_mark_failed(item.conversation_id, item.id, reason, lease=token)
        )

    def _count(self, item: OutboxItem, result: str) -> None:
        self.metrics.deliveries.labels(str(item.payload.get("channel", "")), result).inc()

    async def _record(
        self, item: OutboxItem, delivery: Delivery, provider_id: str | None, reason: str | None = None
    ) -> None:
        """Tell the console and the web chat (the store recorded the delivery on the transcript entry already)."""
        await self.store.publish(DeliveryChanged(item.conversation_id, item.id, delivery, reason))
