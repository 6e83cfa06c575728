"""Durable delivery: every outgoing message goes through the store's outbox, then through its channel.

A worker claims due items by *runs*: a conversation's oldest pending item and the ones after it while each is due
(``RUN`` at most: one message's replies, a hand-off's four), claimed together; it sends a run's items through
their channel one after the other, in order, with no claim between them, and records each result: sent (with the
provider's id), retried later with exponential backoff (network errors, 5xx, 429 honouring ``retry_after``), or
failed after the last try or a permanent refusal: the transcript entry then shows ``failed`` and the listener sees
it. An item failed for now stops its run: the items after it are given back (due again once it is sent, in order),
never sent before it.

A long text goes out in parts (the channel splits it). When a later part fails for now, the item records how many
parts the provider accepted (``RetryableDelivery.parts_sent`` → ``OutboxItem.parts_sent``) and the next attempt
starts at the first unsent part: a retry never shows the young person a part twice. The transcript keeps the
provider id of the last part only (receipts for the whole message; see docs/architecture.md).

Nothing twice: an item is leased for ``lease_seconds`` (15 s by default) when claimed, and the lease is renewed
every third of it while its delivery is in flight (a send that waits behind a slow provider or a busy store
outlasts any fixed lease), a failed renewal tried again at once, so another worker resends it only if this one
died, or stalled, or could not reach the store, for the two thirds of a lease left. A send starts only with a third
of its lease ahead at least (:meth:`Outbox._holds`): a claim answered late, or a run's next item whose renewals
failed, is left to its lease's end and the next claim, never sent while another worker may claim it. The lease's
end is the claim's fencing token: renewals and the final record pass it, and the store refuses them once another
worker claimed the item (a holder that lost its lease never marks or reschedules what the new holder sends). Once
the provider accepted a message, "sent" is recorded before anything else, retried through a brief store failure, so
the item is never handed out again; only a send in flight when an instance dies or stalls (or whose record the
store refused for good) may repeat. A record is retried whole (the item's step, its line's, the event), and one the
store made already under the same lease (its answer lost) is answered as made: the conversation's next replies go
as soon as the store answers, not a lease later. A receipt the provider sent before the record (kept by the
dispatcher) is applied by the record's own step. Within a run, each send is recorded before the next one goes
out, so the sends in flight are at most one per conversation (one store round trip a reply: a few hundred
microseconds against the provider's milliseconds). An item whose delivery failed before any send releases its
lease at once (retried soon), never holding its conversation.

A store call whose answer is lost (Redis ran it, the connection dropped) never holds replies for a lease: a claim
carries a token chosen before it is sent and is made again with it (the store hands out what that token claimed);
a reschedule and a run's giving back are tried again while the lease holds (one made already is answered as made).
Receipts kept for a send whose record came without taking them are applied by a sweep every ``SWEEP_SECONDS``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from gateway.clock import utcnow
from gateway.errors import (
    CredentialsRefused,
    DeliveryError,
    PermanentDelivery,
    RecipientGone,
    RetryableDelivery,
    StoreError,
)
from gateway.events import DeliveryChanged
from gateway.keyed import KeyedHash
from gateway.later import Later
from gateway.messages import PART_SEPARATOR, ChannelName, Outbound
from gateway.metrics import Metrics
from gateway.store import (
    BatchStore,
    Delivery,
    EventStore,
    OutboxItem,
    OutboxStore,
    TranscriptStore,
    in_parts,
    provider_ids,
    sent_shown,
)
from gateway.store.codec import decode_outbound
from gateway.supervisor import where
from gateway.wakeups import Wakeups

log = logging.getLogger(__name__)

RECORD_PAUSE = (0.05, 2.0)  # a send's record tried again after 0.05 s, doubling up to 2 s, while its lease holds
# Deliveries in flight at once per instance: the app's one aiohttp session opens at most 100 connections (its
# connector's default limit), so more sends would only queue there, their leases and their lines held meanwhile.
WINDOW = 100
# A slow channel's replies being sent at once, at most: half the window (``Outbox.channel_window``), so that a
# provider that hangs (its sends held up to the send timeout, 15 s) leaves the other half to the other channels. A
# reply claimed beyond it is given back for BUSY_DEFER_SECONDS without a send and without spending a try (``busy``):
# until 2026-12-05 one hung provider held every slot, and the other channels' replies waited ⌈its backlog / 100⌉ ×
# 15 s. A channel is slow once one of its sends took SLOW_SEND_SECONDS (or one in flight has been at it that long),
# for SLOW_KEPT_SECONDS after: a healthy provider is never capped, so a burst (a peak's inbox pass writes a hundred
# replies at once) is neither delayed nor reordered across conversations (a risky message's interrupt among them).
BUSY_DEFER_SECONDS = 1.0
# A rate-limited channel's reply claimed while its pause's probe is in flight (:meth:`Outbox._attempt`): given back for
# this long at least without a send and without spending a try, and for as long as the probe has been in flight
# (within its lease), claimed again once the probe was answered. Until 2026-12-08 always this long: a probe held to
# its send timeout (15 s) cost each held reply one store write a second
PROBE_DEFER_SECONDS = 1.0
# A rate limit a status callback reported (Twilio's 63018 on a reply it had accepted: :meth:`Outbox.rate_limited`),
# which tells no wait: the channel's sends paused this long (since 2026-12-08)
REPORTED_PAUSE_SECONDS = 10.0
SLOW_SEND_SECONDS = 5.0
SLOW_KEPT_SECONDS = 60.0
# The least time between two claims of :meth:`Outbox.run`: a claim costs two store round trips whatever it
# brings, and at 1,000 replies/s a claim at every end or kick cost 0.2 ms of CPU per message more than the claims
# of 50 it replaced (bench/README.md). A claim within this of the last waits the rest, gathering the ends and kicks
# meanwhile: a reply waits that long at most, and only under load (an idle worker claims at once).
CLAIM_GAP = 0.010
# Every this many seconds the worker looks up the receipts kept longer than ``KEPT_GRACE`` whose sends may have been
# recorded without taking them (``Outbox._sweep_kept``): an instance dying between a record and its take, or a take
# that failed, with the receipt kept in the round trip between the outbox's read and its record.
SWEEP_SECONDS = 5.0
# the wall clock moved this much more than the loop's time between two claims (a machine suspended mid-send and its
# clock set right on resume, a clock stepped forward): the leases of the sends in flight are renewed before claiming
JUMP_SECONDS = 1.0
KEPT_GRACE = timedelta(seconds=2)  # the record's own take comes first: a receipt kept since is left to it
# A conversation's consecutive due items claimed together at most (a run), sent one after the other with no claim
# between: one message's replies (a hand-off gives 4) go out back to back, not a claim round apart each.
RUN = 8
# After one item of a run: the next goes on ("on"); the run stops, the rest given back for later ("stop"); the run
# ends, its record having dealt with the rest ("end": the recipient is gone, the rest failed unsent).
Then = Literal["on", "stop", "end"]


class _Lease:
    """A claimed item and the end of its lease as last renewed: the claim's fencing token.

    Renewals and the final record take turns (``lock``): a record sent while a renewal is on its way would carry
    the token the renewal is replacing and be refused, leaving a sent item pending (it would be sent again). A
    renewal whose answer was lost (a store error after Redis ran it) may have moved the token: ``unsure`` keeps
    those ends, tried after the known one. ``recorded``: the final record was accepted (nothing left to renew).
    ``take``: the take of the receipts kept for its send, running beside the run's next sends (:meth:`Outbox._sent`).
    """

    __slots__ = ("item", "lock", "recorded", "take", "unsure", "until")

    def __init__(self, item: OutboxItem) -> None:
        if item.next_attempt_at is None:
            raise ValueError("a claimed outbox item carries the end of its lease")
        self.item, self.until = item, item.next_attempt_at
        self.lock = asyncio.Lock()
        self.unsure: list[datetime] = []
        self.recorded = False
        self.take: asyncio.Task[None] | None = None

    async def fenced(self, call: Callable[[datetime], Awaitable[bool]]) -> bool:
        """The final record: ``call(token)`` with the current token (then the unsure ones) until the store accepts
        one."""
        async with self.lock:
            for token in (self.until, *self.unsure):
                if await call(token):
                    self.until, self.unsure, self.recorded = token, [], True
                    return True
            return False


class Sender(Protocol):
    async def send(self, message: Outbound, first_part: int = 0) -> str | None: ...


class OutboxRoles(OutboxStore, TranscriptStore, EventStore, BatchStore, Protocol):
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
        max_attempts: int | None = 8,
        retry_for: timedelta | None = None,
        poll_seconds: float = 1.0,
        lease_seconds: int = 15,  # GATEWAY_OUTBOX_LEASE_SECONDS's default
        window: int = WINDOW,
        run_length: int = RUN,
        metrics: Metrics | None = None,
        on_recipient_gone: Callable[[str], Awaitable[None]] | None = None,
        record_pause: tuple[float, float] = RECORD_PAUSE,
        sweep_seconds: float = SWEEP_SECONDS,
        keyed: KeyedHash | None = None,
    ) -> None:
        """``on_recipient_gone(conversation_id)``: a send was refused because the young person blocked the line or
        unsubscribed (:class:`RecipientGone`); the app marks the conversation as left (``gateway/leaving.py``).
        ``record_pause``: the first and the longest pause between tries of a send's record (:meth:`_mark_sent`).
        ``metrics``: the app passes its own (``gateway/app.py``), scraped on /metrics; without (tests), a Metrics of
        its own that nobody scrapes, by design, said nowhere
        (``tests/test_metrics.py::test_the_apps_dispatcher_and_outbox_count_on_the_apps_metrics``).
        ``keyed``: hashes the provider ids the DEBUG lines name (the app's, keyed with GATEWAY_SECRET_KEY); without
        (tests, tools), one with a random key of its own: never an unkeyed digest (since 2026-12-07). It also names
        the items in every log line (``KeyedHash.logged_id``; until 2026-12-07 the item id itself, for a bot reply
        an unkeyed SHA-256 of the young person's message's provider id: ``gateway/ids.py``)."""
        self.keyed = keyed or KeyedHash(secrets.token_urlsafe(32))
        self._logged = self.keyed.logged_id
        self.record_pause = record_pause
        self.sweep_seconds = sweep_seconds
        self.on_recipient_gone = on_recipient_gone
        self.lease_seconds = lease_seconds
        if window < 1:
            raise ValueError(f"an outbox window of {window} delivers nothing")
        self.window = window
        if run_length < 1:
            raise ValueError(f"an outbox run of {run_length} delivers nothing")
        self.run_length = run_length
        self.metrics = metrics or Metrics()
        self.store = store
        self.channels = channels
        self.clock = clock
        self.base_delay, self.max_delay, self.max_attempts = base_delay, max_delay, max_attempts
        if max_attempts is None and retry_for is None:
            raise ValueError("an outbox that never gives up: give max_attempts or retry_for")
        # A reply failing for now is tried again until this long after it was written (the app's: flows' reply
        # windows close within GATEWAY_OUTBOX_RETRY_HOURS, and the provider's refusal then is for good), or until
        # ``max_attempts`` tries when given, whichever comes first
        self.retry_for = retry_for
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._retries = Wakeups(self._wake.set)  # a rescheduled reply is claimed at its time, not at the next poll
        self._answered: str | None = None  # the last claim's token whose answer came: its record is dropped next
        self._unanswered: tuple[datetime, str] | None = None  # a failed claim's time and token, made again next
        self._paused: dict[str, datetime] = {}  # a rate-limited channel: none of its replies sent before this time
        # and after it, one (the probe) until a send is accepted again: how long its last pause was, and whether a
        # probe is in flight now (since 2026-12-08: :meth:`_attempt`)
        self._pause_seconds: dict[str, float] = {}
        self._probing: dict[str, datetime] = {}  # a probe in flight: when it began
        # a channel whose provider refuses the line's credentials (CredentialsRefused), with why, until a send goes
        self.refused: dict[str, str] = {}
        self.channel_window = max(1, window // 2)  # a slow channel's sends in flight at most (BUSY_DEFER_SECONDS)
        self._slow_until: dict[str, float] = {}  # a slow channel (SLOW_SEND_SECONDS) until then (the loop's time)
        self._draining = False  # a stop under way (:meth:`drain`): nothing more claimed, no run's next reply sent
        self._in_flight: set[asyncio.Task[None]] = set()  # :meth:`run`'s deliveries now
        self._held: set[_Lease] = set()  # the leases of the runs delivered now (:meth:`_deliver`)
        # each channel's sends in flight now: when each began (the loop's time), by a token of its own
        self._sending: collections.defaultdict[str, dict[object, float]] = collections.defaultdict(dict)

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
        in_flight = self._in_flight = set()

        def ended(task: asyncio.Task[None]) -> None:  # the slot is free before the loop looks again
            in_flight.discard(task)
            self._wake.set()

        loop = asyncio.get_running_loop()
        last_claim = -CLAIM_GAP
        looked = (self.clock(), loop.time())  # the wall clock and the loop's time at the last claim
        renewing = False  # a jump's renewals failed (the store down): tried again before each claim, told once
        next_sweep = loop.time() + self.sweep_seconds
        try:
            while True:
                if (gap := last_claim + CLAIM_GAP - loop.time()) > 0:
                    await asyncio.sleep(gap)
                if loop.time() >= next_sweep:  # beside the deliveries, cancelled with them
                    next_sweep = loop.time() + self.sweep_seconds
                    sweep = asyncio.create_task(self._sweep_kept())
                    in_flight.add(sweep)
                    sweep.add_done_callback(in_flight.discard)
                self._wake.clear()  # a kick or an end arriving while claiming wakes the next round
                free = self.window - len(in_flight)
                if free > 0 and not self._draining:
                    last_claim = loop.time()
                    now = self.clock()
                    jumped = (now - looked[0]).total_seconds() - (last_claim - looked[1]) > JUMP_SECONDS
                    if jumped or self._lapsing(now):  # since 2026-12-07 a late lease too: this process was held
                        renewing = not await self._keep_held(tell=not renewing)
                        if renewing:  # no claim that could take them back: ``looked`` kept, tried again next round
                            await asyncio.sleep(self.poll_seconds)
                            continue
                    looked = (now, last_claim)
                    claimed = await self._claim(free)
                    if claimed is None:  # the ends and kicks meanwhile would only fail again: the next poll tries
                        await asyncio.sleep(self.poll_seconds)
                        continue
                    for run in _runs(claimed):
                        task = asyncio.create_task(self._deliver_reported(run))
                        in_flight.add(task)
                        task.add_done_callback(ended)
                with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see gateway/supervisor.py
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
        finally:
            self._retries.cancel()
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def drain(self, timeout: float) -> None:
        """A stop (a deploy's SIGTERM), before :meth:`run` is cancelled: nothing more is claimed, each send in flight
        ends and is recorded, and each run's replies not sent yet are given back at once (their claims ended: another
        instance sends them now, not a lease later), for ``timeout`` seconds at most; what is still sending then is
        cancelled with :meth:`run` and left to its lease, as at a crash. Until 2026-12-05 a stop cancelled every send
        in flight: a reply the provider had accepted went out again once its lease ended (1 to 8 a stop in a
        review's bursts), and the claimed ones waited for it."""
        self._draining = True
        self._wake.set()
        sending = [task for task in self._in_flight if not task.done()]
        if not sending:
            return
        _, left = await asyncio.wait(sending, timeout=timeout)
        if left:
            log.warning("outbox: %d run(s) still sending after %.0f s of the stop: cancelled, left to their lease",
                        len(left), timeout)  # fmt: skip

    async def _claim(self, limit: int) -> list[OutboxItem] | None:
        """Claim the due runs of up to ``limit`` conversations; None when the claim failed (logged: class, place).

        Each claim carries a token chosen before it is sent; a claim that failed is made again with its token and
        time (``outbox_due(claim=)``) while its lease would hold: Redis may have run it and lost its answer, and
        the store then hands out what it claimed. Until 2026-12-02 those replies waited for the lease (then 60 s)."""
        now, token = self._unanswered or (self.clock(), secrets.token_hex(8))
        try:
            claimed = await self.store.outbox_due(
                now, limit, lease_seconds=self.lease_seconds, run=self.run_length, claim=token, answered=self._answered
            )
            self._unanswered, self._answered = None, token
            self.metrics.outages.answered("outbox")
            return claimed
        except StoreError as exc:  # told once an outage (gateway/outage_log.py)
            lapsed = self.clock() >= now + timedelta(seconds=self.lease_seconds)
            self._unanswered = None if lapsed else (now, token)
            self.metrics.outages.failed("outbox", exc)
        except Exception as exc:  # a bug: delivery goes on for every item in flight and at the next poll
            self._unanswered = None
            log.error("outbox: unexpected %s at %s", type(exc).__name__, where(exc))
        return None

    async def _deliver_reported(self, run: Sequence[OutboxItem]) -> None:
        """One run of :meth:`run`, its failure reported here, never failing the others."""
        try:
            await self._deliver(run)
        except StoreError as exc:  # not recorded: retried when its lease ends
            self.metrics.outages.failed("outbox", exc)
        except Exception as exc:  # this run only: retried when its lease ends
            log.error("outbox: %s: unexpected %s at %s", self._logged(run[0].id), type(exc).__name__, where(exc))

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass, awaited whole (tests, tools): claim what is due (runs of ``run_length`` items at most, of up to
        ``limit`` conversations) and deliver it (conversations in parallel). Returns how many items. :meth:`run` keeps a
        sliding window instead.

        One conversation's failure never fails the others: each item is delivered and recorded on its own; a store
        failure is raised once all are done.
        """
        runs = _runs(
            await self.store.outbox_due(self.clock(), limit, lease_seconds=self.lease_seconds, run=self.run_length)
        )
        outcomes = await asyncio.gather(*(self._deliver(run) for run in runs), return_exceptions=True)
        store_error: StoreError | None = None
        for run, outcome in zip(runs, outcomes, strict=True):
            if isinstance(outcome, StoreError):  # not recorded: the store is down, the caller reports it
                store_error = outcome
            elif isinstance(outcome, Exception):  # this run only: retried when its lease ends
                log.error(
                    "outbox: %s: unexpected %s at %s", self._logged(run[0].id), type(outcome).__name__, where(outcome)
                )
        if store_error is not None:
            raise store_error
        return sum(len(run) for run in runs)

    async def _deliver(self, run: Sequence[OutboxItem]) -> None:
        """Deliver a conversation's claimed run in order, the leases renewed meanwhile (each item then carries its
        current lease)."""
        leases = [_Lease(item) for item in run]
        left = (leases[0].until - self.clock()).total_seconds()
        if not self._holds(leases[0], left):  # a claim answered late: neither sent nor renewed (a lease more to wait)
            return
        # a timer until a renewal is due: a third of the lease after the claim (by the lease's end, not by when this
        # run began: a busy event loop may have started it late)
        first = min(max(left - 2 * self.lease_seconds / 3, 0.0), self.lease_seconds / 3)
        renewal = Later(first, lambda: self._keep_leases(leases))
        self._held.update(leases)
        try:
            await self._deliver_leased(leases)
            takes = [lease.take for lease in leases if lease.take is not None]
            if takes:  # none when the store's record takes what was kept (Redis): no gathering future to await
                await asyncio.gather(*takes)
        finally:
            renewal.cancel()
            self._held.difference_update(leases)
            for lease in leases:  # the run failed or was cancelled: its takes with it
                if lease.take is not None:
                    lease.take.cancel()

    async def _keep_leases(self, leases: Sequence[_Lease]) -> None:
        """Renew the run's claims now (a third of the lease in) and every third of it while its delivery runs, the
        items not yet recorded, all at once (one round trip on Redis, however many). A renewal that failed (a store
        error, or one slow then failing) is tried again at once, 0.05 s doubling to 2 s (``record_pause``), until it
        is renewed or refused, and the next round comes a third of the lease after this one began, however long
        this one took: a lease lapses only when every try fails for the two thirds of it that are left (a store
        outage that long), or when the event loop stalls that long. Until 2026-12-02 a failed renewal waited a
        third of the lease after its failure for the next try: two failures in a row (a Redis restart of a third of
        the lease, or two slow calls that timed out) let it lapse while its send was in flight, and another worker
        sent it again (``tests/test_outbox.py::test_a_renewal_that_fails_slowly_is_tried_again_before_the_lease_ends``).

        A refused one is left alone from then on, the others renewed still: a refusal means another worker holds
        the line (its renewals are refused too), or that the item was recorded by a try whose answer was lost
        (:meth:`_mark_sent` tries again), and the run goes on."""
        loop = asyncio.get_running_loop()
        live = list(leases)
        while live:
            began, (pause, longest) = loop.time(), self.record_pause
            # one end a round, its retries included: a try whose answer was lost may have made it the token
            # (``_Lease.unsure``), and one more a try would make that list grow through an outage
            until = self.clock() + timedelta(seconds=self.lease_seconds)
            due = live
            while due:
                outcomes = await asyncio.gather(*(self._renew_reported(lease, until) for lease in due))
                refused = {lease for lease, outcome in zip(due, outcomes, strict=True) if outcome == "refused"}
                live = [lease for lease in live if lease not in refused]
                due = [lease for lease, outcome in zip(due, outcomes, strict=True) if outcome == "failed"]
                if due:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, longest)
            await asyncio.sleep(max(began + self.lease_seconds / 3 - loop.time(), 0.0))

    def _lapsing(self, now: datetime) -> bool:
        """Whether a send in flight here holds a lease with less than a third of it left at ``now``: its renewal is
        late (this process was held: stopped, frozen, paused with its host; or its renewals failed), so the next claim
        could take it back. Since 2026-12-07: only a wall clock moving more than the loop's time was looked for, and a
        process frozen (SIGSTOP) past its lease, both clocks moving on, sent the reply in flight a second time at its
        first claim after the resume (``tests/test_freeze.py``)."""
        return any(
            not lease.recorded and (lease.until - now).total_seconds() < self.lease_seconds / 3 for lease in self._held
        )

    async def _keep_held(self, *, tell: bool = True) -> bool:
        """The wall clock jumped forward (:data:`JUMP_SECONDS`), or a lease in flight is near or past its end
        (:meth:`_lapsing`, since 2026-12-07): renew the leases of the sends in flight now, before the next claim.
        Until 2026-12-06 a jump past a lease's end (a machine suspended mid-send, resumed) let this
        outbox's own next claim, a poll later, take the reply it was sending and send it a second time
        (``tests/test_outbox_clock_jump.py``); a renewal came only a third of a lease after the last one. A lease
        whose renewal is refused (another worker holds the item) is no longer held here (since 2026-12-07).

        False when a renewal failed (the store down, or a connection the suspend broke): the caller claims nothing
        and tries again (``tell``: the WARNING line, once a jump); until 2026-12-06 the claim went on, a poll
        later, and took the lapsed lease."""
        held = [lease for lease in self._held if not lease.recorded]
        if not held:
            return True
        if tell:
            log.warning("outbox: %d lease(s) in flight late (the clock jumped forward, this process was held, or their"
                        " renewals failed): renewed before claiming", len(held))  # fmt: skip
        until = self.clock() + timedelta(seconds=self.lease_seconds)
        outcomes = await asyncio.gather(*(self._renew_reported(lease, until) for lease in held))
        return "failed" not in outcomes

    async def _renew_reported(self, lease: _Lease, until: datetime) -> Literal["renewed", "refused", "failed"]:
        """One renewal of :meth:`_keep_leases`, its failure reported here (told once an outage; a bug logged)."""
        try:
            renewed = await self._renew(lease, until)
        except StoreError as exc:  # Redis may have run it: ``until`` may be the token now
            if until not in lease.unsure:
                lease.unsure.append(until)
            self.metrics.outages.failed("outbox", exc)
            return "failed"
        except Exception as exc:  # a bug must not end the renewals silently (the lease would lapse mid-send), nor
            log.error("outbox: renewing a lease failed with %s at %s", type(exc).__name__, where(exc))
            return "renewed"  # log a line every try: tried again at the next round
        if not renewed:
            log.warning("outbox: %s: lease not renewed: another worker may hold it", self._logged(lease.item.id))
            self._held.discard(lease)  # lost: no renewal before a claim gets it back (:meth:`_lapsing`)
            return "refused"
        return "renewed"

    async def _renew(self, lease: _Lease, until: datetime) -> bool:
        async with lease.lock:
            if lease.recorded:  # nothing to hold any more
                return True
            for token in (lease.until, *lease.unsure):
                if await self.store.outbox_renew(lease.item.conversation_id, lease.item.id, token, until):
                    lease.until, lease.unsure = until, []
                    return True
            return False

    async def _deliver_leased(self, leases: Sequence[_Lease]) -> None:
        """Send the run's items one after the other, each recorded before the next goes out (at most one send of the
        conversation unrecorded at any time). An item failed for now stops the run: rescheduled, and the items after
        it released (due again once it is sent, in order). A record refused (the lease lost: another worker holds the
        line now, and sends the rest) stops it too."""
        for n, lease in enumerate(leases):
            if n and self._draining:  # a stop under way: given back at once, for another instance to send now
                await self._release(leases[n:])
                return
            if n and not self._holds(lease, (lease.until - self.clock()).total_seconds()):
                return  # its renewals failed for a third of a lease: the rest go to the next claim at their lease's end
            then, record = await self._attempt(lease, leases[n + 1 :])
            held = await record()
            if then == "stop":  # given back even when the retry's record was refused: each under its own lease
                await self._release(leases[n + 1 :])
                return
            if then == "end" or not held:
                return

    def _holds(self, lease: _Lease, left: float) -> bool:
        """Whether a send may start under ``lease``, ``left`` seconds of it ahead: a third of the lease at least, the
        time its first renewal (now due, or due already) has to reach the store. Less, and the send would go out
        while another worker may claim the item any moment: a claim answered late (held on its way: a connection
        found dead by its health check's PING first, a pool waiting for a connection, a path thawed) hands out items
        leased to a time already near or past; a run's next item whose renewals failed that long is in the same
        case. Both are left to their lease's end, then the next claim (a third of a lease at most). Until 2026-12-02
        they were sent, and a claim made meanwhile sent them again (``tests/test_outbox_late_claim.py``)."""
        if left >= self.lease_seconds / 3:
            return True
        log.warning(
            "outbox: %s: not sent, %.1f s of its lease left: left to the next claim", self._logged(lease.item.id), left
        )
        self.metrics.outbox_lease_short.inc()
        return False

    async def _attempt(
        self, lease: _Lease, rest: Sequence[_Lease]
    ) -> tuple[Then, Callable[[], Coroutine[Any, Any, bool]]]:
        """Send one item of a run: what the run does after it, and its record (made by the caller, in order; ``rest``:
        the run's next items, the first of whose lease says when the line's next head is due)."""
        item, following = lease.item, (rest[0] if rest else None)
        try:
            outbound = decode_outbound(item.payload)
        except Exception as exc:  # e.g. written by a newer version during a rolling deploy
            return "on", functools.partial(self._set_aside, lease, exc, following)
        channel = self.channels.get(outbound.channel)
        if channel is None:
            reason = f"channel {outbound.channel.value} is not configured"
            return "on", functools.partial(self._fail, lease, reason, following)
        name = outbound.channel.value
        paused, probe = self._paused.get(name), False
        if paused is not None:  # its provider said to slow down: not asked before then, then by one reply first
            if self.clock() < paused:
                return "stop", functools.partial(self._defer, lease, paused)
            if (started := self._probing.get(name)) is not None:  # the pause over, its probe not answered yet: the
                now = self.clock()  # rest wait for its answer, twice as long as it has taken (at most its lease)
                left = (started + timedelta(seconds=self.lease_seconds) - now).total_seconds()
                wait = max(PROBE_DEFER_SECONDS, min((now - started).total_seconds(), left))
                return "stop", functools.partial(self._defer, lease, now + timedelta(seconds=wait), "probing")
            probe = True
        sending, began = self._sending[name], asyncio.get_running_loop().time()
        if len(sending) >= self.channel_window and self._slow(name, sending, began):  # the rest: the other channels'
            busy_until = self.clock() + timedelta(seconds=BUSY_DEFER_SECONDS)
            return "stop", functools.partial(self._defer, lease, busy_until, "busy")
        token = object()
        sending[token] = began
        if probe:
            self._probing[name] = self.clock()
        # DEBUG (since 2026-12-07): the item, its claim (the lease's end, its fencing token) and, once accepted, the
        # keyed hashes of its provider ids (``KeyedHash.provider_id``; until 2026-12-07 evening their plain SHA-256,
        # ``provider_digests``, which the provider itself could compute): a copy at the provider is told to its item
        # and claim (bench/chaos.py's audit, which holds the key), never the text, the recipient or a provider id;
        # the hashes and times made only at DEBUG (a send's cost otherwise unchanged)
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            log.debug("outbox: %s: sending from part %d under the lease to %s", self._logged(item.id), item.parts_sent,
                      lease.until.isoformat())  # fmt: skip
        try:
            provider_id = await channel.send(outbound, first_part=item.parts_sent)
        except RetryableDelivery as exc:
            return "stop", functools.partial(self._retry, lease, exc)
        except RecipientGone as exc:
            return "end", functools.partial(self._gone, lease, str(exc), rest)
        except PermanentDelivery as exc:
            return "on", functools.partial(self._fail, lease, str(exc), following)
        except DeliveryError as exc:
            return "stop", functools.partial(self._retry, lease, RetryableDelivery(str(exc)))
        except Exception as exc:  # a bug in one adapter must not stop the worker for every channel
            log.error(
                "outbox: %s: unexpected %s from the %s channel",
                self._logged(item.id),
                type(exc).__name__,
                outbound.channel,
            )
            return "stop", functools.partial(self._retry, lease, RetryableDelivery(f"unexpected {type(exc).__name__}"))
        finally:
            del sending[token]
            if probe:  # refused, its record (:meth:`_retry`) pauses the channel again before any other send starts
                self._probing.pop(name, None)
            if (ended := asyncio.get_running_loop().time()) - began >= SLOW_SEND_SECONDS:
                self._slow_until[name] = ended + SLOW_KEPT_SECONDS
        answered_at = self.clock()  # the provider accepted it before: a watermark from then on covers it
        if debug:
            log.debug("outbox: %s: accepted as %s under the lease to %s", self._logged(item.id),
                      PART_SEPARATOR.join(map(self.keyed.provider_id, provider_ids(provider_id))) or "-",
                      lease.until.isoformat())  # fmt: skip
        self._count(item, "sent")
        if probe:
            self._resumed(name)
        self.credentials_accepted(name)
        return "on", functools.partial(self._sent, lease, provider_id, following, answered_at)

    def _slow(self, name: str, sending: dict[object, float], now: float) -> bool:
        """Whether channel ``name`` is slow: one of its sends took ``SLOW_SEND_SECONDS`` in the last
        ``SLOW_KEPT_SECONDS``, or one of ``sending`` (its sends in flight) has been at it that long already."""
        if self._slow_until.get(name, 0.0) > now:
            return True
        if sending and now - min(sending.values()) >= SLOW_SEND_SECONDS:
            self._slow_until[name] = now + SLOW_KEPT_SECONDS
            return True
        return False

    async def _sent(
        self, lease: _Lease, provider_id: str | None, following: _Lease | None, answered_at: datetime
    ) -> bool:
        """The send's record, then the take of what was kept for it, which runs beside the run's next sends (one
        round trip less before each: the record applied what was kept before it); the run awaits it at its end.
        ``answered_at``: when the provider's answer came, kept through the record's retries (a watermark kept
        meanwhile, at or after it, is shown by the record: ``Store.mark_until``)."""
        if not await self._mark_sent(lease, provider_id, following, answered_at):
            return False
        if provider_id and not self._takes_kept(provider_id):
            lease.take = asyncio.create_task(self._apply_kept(lease.item, provider_id))
        return True

    def _takes_kept(self, provider_id: str | None) -> bool:
        """Whether the send's record takes what was kept for it (:attr:`_record_takes_kept`): never for a reply sent
        in parts, whose parts' receipts are kept and applied one id at a time, after the record (``advance_part``)."""
        return self._record_takes_kept and not in_parts(provider_id)

    @property
    def _record_takes_kept(self) -> bool:
        """The store's record of a send reads, applies and takes the receipt kept for it in its own step (Redis on
        one node: ``outbox_sent``): nothing is read before the record nor after it (issue 8's twenty-third pass)."""
        return self.store.takes_kept_receipts

    async def _kept(self, item: OutboxItem, provider_id: str | None) -> Delivery | None:
        """The receipt kept for this send before its record (``Store.keep_receipt``), applied by the record itself;
        None when none, or when it cannot be read (logged: a store failure here never holds the record, and
        :meth:`_apply_kept` takes it after the record)."""
        if not provider_id or in_parts(provider_id):  # a reply in parts: each part's applied after the record
            return None
        try:
            return await self.store.kept_receipt(provider_id)
        except StoreError as exc:
            self.metrics.outages.failed("outbox", exc)  # told once an outage, not once an item
            return None

    async def _apply_kept(self, item: OutboxItem, provider_id: str) -> None:
        """A receipt kept after the record read what was kept (its keeper looked for the record before it was
        made), applied here, forward only, as the receipt would have been, then taken; the ones kept before were
        applied with the record (they change nothing here). A store failure here, or this instance dying, leaves
        it kept: the sweep (:meth:`_sweep_kept`) applies it then."""
        try:
            for part in provider_ids(provider_id):  # each part's, of a reply sent in parts
                await self._apply_kept_to(item.conversation_id, item.id, part)
        except StoreError as exc:
            self.metrics.outages.failed("outbox", exc)  # told once an outage; the sweep applies it later
        except Exception as exc:  # a bug here must not fail the run beside it
            log.error("outbox: %s: applying a kept receipt failed with %s at %s", self._logged(item.id),
                      type(exc).__name__, where(exc))  # fmt: skip

    async def _apply_kept_to(self, conversation_id: str, entry_id: str, provider_id: str) -> None:
        """What was kept for a send already recorded: read, applied (forward only, the console told), then taken.
        Read before it is taken, never taken before it is applied (until 2026-12-02 the take came first: an
        instance dying between the take and the application lost it). Taking after the application loses nothing:
        a receipt kept since finds the record by its keeper's own look-up."""
        delivery = await self.store.kept_receipt(provider_id)
        if delivery is None:
            return
        if (shown := await self.store.advance_part(conversation_id, entry_id, provider_id, delivery)) is not None:
            await self.store.publish(DeliveryChanged(conversation_id, entry_id, shown))
        await self.store.take_receipt(provider_id)

    async def _sweep_kept(self) -> None:
        """The receipts kept longer than ``KEPT_GRACE`` whose send is recorded now: taken and applied as the record's
        take would have (forward only, the console told). Their record's take never came: its instance died just
        after the record, or the take failed, with the receipt kept in the one round trip between the record's
        read of what was kept and the record itself (the keeper's look-up made before the record). Until 2026-12-02
        such a receipt expired unapplied (a ``failed`` never shown). One not recorded yet is left (its record applies
        it, or it expires); a failure here waits for the next sweep (told once an outage)."""
        try:
            for provider_id in await self.store.kept_receipts_waiting(utcnow() - KEPT_GRACE, 100):
                entry = await self.store.find_by_provider_id(provider_id)
                if entry is not None:
                    await self._apply_kept_to(entry.conversation_id, entry.id, provider_id)
                    await self.store.take_receipt(provider_id)  # also a listing left by a take cut short
        except StoreError as exc:
            self.metrics.outages.failed("outbox", exc)
        except Exception as exc:  # a bug here must not stop the deliveries
            log.error("outbox: applying the kept receipts failed with %s at %s", type(exc).__name__, where(exc))

    async def _set_aside(self, lease: _Lease, exc: Exception, following: _Lease | None) -> bool:
        """An item this version cannot read: failed (kept in the store, shown to the listener), others flow."""
        item = lease.item
        log.error("outbox: %s set aside: this version cannot read it (%s at %s)", self._logged(item.id),
                  type(exc).__name__, where(exc))  # fmt: skip
        self.metrics.outbox_set_aside.inc()
        return await self._mark_failed(lease, f"set aside: unreadable by this version ({type(exc).__name__})",
                                       following)  # fmt: skip

    async def _mark_sent(
        self, lease: _Lease, provider_id: str | None, following: _Lease | None, answered_at: datetime | None = None
    ) -> bool:
        """Record the send before anything else, through a store failure, **for as long as the item's lease
        holds**: an item recorded as sent is never handed out again, one whose record is lost would be resent
        when its lease ends. Until 2026-12-01 this gave up after 8 tries (about 6 s): a Redis restart longer
        than that, while a slow provider held sends, had every one of them sent twice (bench/chaos.py). Past the
        lease's end another worker may hold the item, so the last try is made then and its error raised. False
        when the lease was lost meanwhile (another worker holds the item now).

        The whole record is tried again, not only its first step: until 2026-12-02 a record that failed after the
        store had made it (its answer lost, or the line's step and the event sent after it lost) was either refused
        when tried again ("not pending": taken for a lost lease) or raised, and the run ended there: the
        conversation's next replies waited for their lease (60 s) although the store answered again within a
        second. The store now answers a record made already under this lease as made (``outbox_mark_sent``), and
        the line's step and the event are sent again with it."""
        return await self._until_recorded(
            lease, "sent", lambda: self._record_sent(lease, provider_id, following, answered_at)
        )

    async def _until_recorded(self, lease: _Lease, what: str, record: Callable[[], Awaitable[bool]]) -> bool:
        """``record()`` (an item's final record: ``what`` it was) tried again through store failures while the
        item's lease holds, 0.05 s doubling to 2 s apart (``record_pause``); past the lease's end its error is
        raised. Its answer: False when the lease was lost."""
        pause, longest = self.record_pause
        for failures in itertools.count():
            try:
                recorded = await record()
            except StoreError as exc:
                if self.clock() >= lease.until:
                    log.warning("outbox: %s: %s, not recorded after %d tries (%s): given up to the next worker",
                                self._logged(lease.item.id), what, failures + 1, type(exc).__name__)  # fmt: skip
                    raise
                self.metrics.outages.failed("outbox", exc)  # told once an outage, not once an item or a try
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
                continue
            if failures:
                log.info("outbox: %s: %s, recorded after %d tries", self._logged(lease.item.id), what, failures + 1)
            return recorded
        raise AssertionError("unreachable")  # itertools.count() never ends

    async def _record_sent(
        self, lease: _Lease, provider_id: str | None, following: _Lease | None, answered_at: datetime | None = None
    ) -> bool:
        """One try of a send's whole record, in one batch (Redis: the line's step and the event in one round trip):
        the item sent and its entry showing it, with the furthest receipt kept for its provider id applied in that
        same step (an instance dying after the record, or a store failure at the take, no longer loses a receipt
        that came before the record); its conversation's line; the event."""
        item = lease.item
        async with self.store.batch():
            kept = None if self._takes_kept(provider_id) else await self._kept(item, provider_id)
            shown = sent_shown(kept)

            async def record(token: datetime) -> bool:
                nonlocal shown
                answer = await self.store.outbox_mark_sent(item.conversation_id, item.id, provider_id, lease=token,
                                                           next_lease=_until(following), receipt=kept,
                                                           answered_at=answered_at)  # fmt: skip
                if isinstance(answer, Delivery):  # what the record showed, a receipt it took applied
                    shown = answer
                return bool(answer)

            if not await lease.fenced(record):
                log.warning(
                    "outbox: %s: sent after its lease was lost; another worker may have sent it too",
                    self._logged(item.id),
                )
                return False
            await self._record(item, shown, provider_id)
        return True

    async def _retry(self, lease: _Lease, exc: RetryableDelivery) -> bool:
        """Rescheduled with backoff (or failed after the last try). The reschedule is tried again through store
        failures while the lease holds, and the store answers one made already (its answer lost) as made: until
        2026-12-02 a failure here ended the run, and the reply and the rest of its run waited for the lease (60 s)."""
        item = lease.item
        attempts = item.attempts + 1
        if isinstance(exc, CredentialsRefused):
            self._refused(item, exc)
        if exc.rate_limited or isinstance(exc, CredentialsRefused):  # every reply of its channel waits as long:
            self._pause(item, self._wait(exc, attempts), quiet=isinstance(exc, CredentialsRefused),  # not asked
                        told=bool(exc.retry_after))  # fmt: skip
        if self.max_attempts is not None and attempts >= self.max_attempts:  # its conversation goes on (the run
            return await self._fail(lease, f"gave up after {attempts} attempts: {exc}", None)  # stops: claimed again)
        if self.retry_for is not None and self.clock() - item.created_at >= self.retry_for:
            hours = self.retry_for.total_seconds() / 3600
            return await self._fail(lease, f"gave up after {attempts} attempts in {hours:g} h: {exc}", None)
        delay = min(self._wait(exc, attempts), self.max_delay)
        parts_sent = max(item.parts_sent, exc.parts_sent)  # an error without progress keeps what was recorded
        log.info(
            "outbox: %s retry %d in %.1fs from part %d (%s)",
            self._logged(item.id),
            attempts,
            delay,
            parts_sent + 1,
            exc,
        )
        self._count(item, "retry")
        next_attempt = self.clock() + timedelta(seconds=delay)
        held = await self._until_recorded(lease, "rescheduled", lambda: lease.fenced(
            lambda token: self.store.outbox_reschedule(
                item.conversation_id, item.id, next_attempt, attempts, str(exc), parts_sent, lease=token)))  # fmt: skip
        if held:  # the worker wakes when it is due (armed after it was recorded: never before its time)
            self._retries.after(delay)
        return held

    def _wait(self, exc: RetryableDelivery, attempts: int) -> float:
        """The wait before the try after ``attempts`` tries refused with ``exc``: the provider's ``retry_after``
        when it told one, never below ``base_delay``; its backoff otherwise, and when it told 0 (Graph's
        ``Retry-After: 0``, a proxy's). Until 2026-12-07 a told 0 was a wait of 0: the reply due again at once,
        sent again at every claim (100 a second) for as long as the provider refused, the channel's pause 0 s
        (``tests/test_outbox_retry_after_zero.py``)."""
        if not exc.retry_after:
            return self._backoff(attempts)
        return max(exc.retry_after, self.base_delay)

    def _backoff(self, attempts: int) -> float:
        """The wait after ``attempts`` tries: ``base_delay`` doubling, at most ``max_delay`` (the exponent bounded: a
        reply tried for a day may count hundreds of tries, and 2.0 ** 1024 overflows)."""
        return min(self.base_delay * 2.0 ** min(attempts - 1, 64), self.max_delay)

    def _refused(self, item: OutboxItem, exc: CredentialsRefused) -> None:
        """The provider of ``item``'s channel refuses the line's credentials (Messenger's page token expired or
        revoked): every young person's reply of that channel waits, kept, until a send goes again (an operator renewed
        them). Shown at once: one ERROR line a stretch (the channel and the provider's code, never an id), ``/readyz``'s
        ``channels_refused``, ``gateway_channel_credentials_refused``. Until 2026-12-05 each reply failed for good,
        one WARNING line each: hours of replies lost, and the instance still ready."""
        self.credentials_refused(str(item.payload.get("channel", "")), exc)

    def credentials_refused(self, channel: str, exc: CredentialsRefused) -> None:
        """``channel``'s provider refuses the line's credentials, found by a send or by the channel's start-up check
        (the Telegram bot token refused at start: ``TelegramChannel.confirm_token``): told once while it lasts."""
        if channel not in self.refused:
            log.error("alert: %s refuses the line's credentials (%s): its replies wait until they are renewed",
                      channel, exc)  # fmt: skip
        self.refused[channel] = str(exc)
        self.metrics.credentials_refused.labels(channel).set(1)

    def credentials_accepted(self, channel: str) -> None:
        """``channel``'s provider accepts the line's credentials again (a send went, or its start-up check passed)."""
        if self.refused.pop(channel, None) is not None:
            self.metrics.credentials_refused.labels(channel).set(0)
            log.info("alert over: %s accepts the line's credentials again: its replies go", channel)

    def _pause(self, item: OutboxItem, seconds: float, *, quiet: bool = False, told: bool = True) -> None:
        """The provider of ``item``'s channel rate-limits (a 429, Telegram's flood control, Graph's 4/17/32/613,
        Twilio's 20429): none of that channel's replies is sent for ``seconds`` (its ``retry_after``, else this
        reply's backoff), the other channels untouched. One WARNING line a pause (the channel, never an id). Until
        2026-12-04 each conversation's reply asked the provider all the same, each refused, each spending one of its
        tries: a rate limit outlasting them failed every waiting reply for good.

        Once the pause is over one reply goes first (the probe, :meth:`_attempt`), the others only once a send is
        accepted (:meth:`_resumed`); a probe refused with no ``retry_after`` told (``told``) pauses the channel twice
        as long as the pause before (``max_delay`` at most). Until 2026-12-08 every held reply went at the pause's
        end and was refused again, the pause never longer than a reply's own backoff (bench/chaos.py's
        ``provider-429``: 34-37 refused in a 10 s WhatsApp limit; ``tests/test_outbox_probe.py``)."""
        self._pause_channel(str(item.payload.get("channel", "")), seconds, quiet=quiet, told=told)

    def rate_limited(self, channel: ChannelName, seconds: float = REPORTED_PAUSE_SECONDS) -> datetime:
        """``channel``'s provider reported a reply it had accepted failed for its rate limit (Twilio's status
        callback, 63018 or 20429: ``Dispatcher.handle_receipt``): its sends paused on this instance as after a
        refused send (:meth:`_pause`, the probe after it); returns when they may go again (a copy of the reply is due
        then). Since 2026-12-08: until then nothing paused, and the copy went at once, into the same limit."""
        self._pause_channel(channel.value, seconds)
        return self._paused.get(channel.value) or self.clock()

    def _pause_channel(self, channel: str, seconds: float, *, quiet: bool = False, told: bool = True) -> None:
        now = self.clock()
        current = self._paused.get(channel)
        if not told and current is not None and current <= now:  # a refusal after the pause ended: its probe's
            seconds = max(seconds, 2 * self._pause_seconds.get(channel, 0.0))
        until = now + timedelta(seconds=min(max(seconds, 0.0), self.max_delay))
        if (current is None or current <= now) and not quiet:  # quiet: told by its own line (:meth:`_refused`)
            log.warning("outbox: %s rate-limited: its sends paused for %.1f s", channel, (until - now).total_seconds())
        if current is None or current < until:
            self._paused[channel] = until
            self._pause_seconds[channel] = (until - now).total_seconds()
        # read at each scrape (since 2026-12-08: nothing said "paused now"), as :meth:`paused_channels` is: until
        # 2026-12-08 evening set to 1 here and to 0 only by an accepted probe, so an instance that sent nothing on the
        # channel after (one that only received Twilio's 63018 callback) showed it paused for hours
        self.metrics.channel_paused.labels(channel).set_function(functools.partial(self._paused_now, channel))

    def _resumed(self, channel: str) -> None:
        """A paused channel's probe was accepted: its other replies go again (since 2026-12-08)."""
        if self._paused.pop(channel, None) is not None:
            self._pause_seconds.pop(channel, None)
            log.info("outbox: %s accepts sends again: its replies go", channel)

    def _paused_now(self, channel: str) -> bool:
        """Whether ``channel`` is held by a rate limit now: its pause not over, or the probe after it in flight (its
        answer says whether the limit is over: refused, the channel is paused again before anything else goes)."""
        until = self._paused.get(channel)
        return (until is not None and self.clock() < until) or channel in self._probing

    def paused_channels(self) -> list[str]:
        """The channels whose replies are held by a rate limit now (:meth:`_paused_now`): ``/readyz``'s
        ``channels_paused`` (since 2026-12-08). Until 2026-12-08 evening also a channel whose pause was over with no
        send accepted since: one this instance no longer sent on stayed named, a false alert."""
        return sorted(channel for channel in self._paused if self._paused_now(channel))

    def paused(self, channel: ChannelName) -> bool:
        """Whether ``channel``'s provider rate-limits this instance now (:meth:`_paused_now`): what else would ask it (a
        listener's typing hint, ``TypingRelay``) waits too (since 2026-12-08); since 2026-12-08 evening also while the
        probe after the pause is in flight (until then a hint went beside the probe, into a limit not yet over)."""
        return self._paused_now(channel.value)

    async def _defer(self, lease: _Lease, until: datetime, why: str = "paused") -> bool:
        """A reply of a paused channel (:meth:`_pause`), or of one whose sends in flight fill its share of the window
        (``busy``): not sent, due again at ``until``, no try spent (the provider refused nothing of it); the rest of
        its run given back behind it, as after a retry."""
        item = lease.item
        self._count(item, why)
        last_error = item.last_error or ""
        held = await self._until_recorded(lease, why, lambda: lease.fenced(
            lambda token: self.store.outbox_reschedule(item.conversation_id, item.id, until, item.attempts, last_error,
                                                       item.parts_sent, lease=token)))  # fmt: skip
        if held:  # the worker wakes when the pause ends
            self._retries.after(max((until - self.clock()).total_seconds(), 0.0))
        return held

    async def _release(self, rest: Sequence[_Lease]) -> None:
        """The run's items after one failed for now: their claims end, each due once it heads its line again (its
        attempts and progress unchanged), so that they follow the retried one in order, not a lease later. Each is
        tried again through store failures while its lease holds, as a record (:meth:`_until_recorded`): until
        2026-12-02 a failure here ended the run, and what it held waited for its lease (60 s)."""
        now = self.clock()
        for lease in rest:
            await self._until_recorded(lease, "given back", functools.partial(self._release_one, lease, now))

    async def _release_one(self, lease: _Lease, now: datetime) -> bool:
        item = lease.item
        last_error = item.last_error or ""
        return await lease.fenced(lambda token: self.store.outbox_reschedule(
            item.conversation_id, item.id, now, item.attempts, last_error, item.parts_sent, lease=token))  # fmt: skip

    async def _gone(self, lease: _Lease, reason: str, rest: Sequence[_Lease]) -> bool:
        """The young person blocked the line or unsubscribed: this reply failed, the rest of its run failed unsent
        (no request that the provider would refuse the same way; each shown failed to the listener, one log line
        for them all), and the conversation marked as left once."""
        held = await self._fail(lease, reason, rest[0] if rest else None)
        if held and rest:
            log.warning("outbox: %s and %d after it in its run failed unsent: the recipient is gone",
                        self._logged(rest[0].item.id), len(rest) - 1)  # fmt: skip
            for n, later in enumerate(rest):
                if not await self._failed(later, f"not sent: {reason}", rest[n + 1] if n + 1 < len(rest) else None):
                    break  # its lease lost: another worker holds the line now, and deals with the rest
        if self.on_recipient_gone is not None:
            await self.on_recipient_gone(lease.item.conversation_id)
        return held

    async def _fail(self, lease: _Lease, reason: str, following: _Lease | None) -> bool:
        log.warning("outbox: %s failed: %s", self._logged(lease.item.id), reason)
        return await self._failed(lease, reason, following)

    async def _failed(self, lease: _Lease, reason: str, following: _Lease | None) -> bool:
        """Recorded as failed (counted, shown to the listener); False when the lease was lost meanwhile."""
        self._count(lease.item, "failed")
        return await self._mark_failed(lease, reason, following)

    async def _mark_failed(self, lease: _Lease, reason: str, following: _Lease | None) -> bool:
        """The failure recorded as a send is (:meth:`_mark_sent`): the whole record tried again while the lease
        holds, a record made already under it answered as made. Until 2026-12-02 a store failure here ended the
        run: the conversation's next replies waited for their lease (60 s)."""
        return await self._until_recorded(lease, "failed", lambda: self._record_failed(lease, reason, following))

    async def _record_failed(self, lease: _Lease, reason: str, following: _Lease | None) -> bool:
        """One try of a failure's record, in one batch: the item failed and its entry showing it; its line; the
        event."""
        item = lease.item
        async with self.store.batch():
            if not await lease.fenced(lambda token: self.store.outbox_mark_failed(
                item.conversation_id, item.id, reason, lease=token, next_lease=_until(following)
            )):  # fmt: skip
                return False
            await self._record(item, Delivery.FAILED, None, reason)
        return True

    def _count(self, item: OutboxItem, result: str) -> None:
        self.metrics.child(self.metrics.deliveries, str(item.payload.get("channel", "")), result).inc()

    async def _record(
        self, item: OutboxItem, delivery: Delivery, provider_id: str | None, reason: str | None = None
    ) -> None:
        """Tell the console and the web chat (the store recorded the delivery on the transcript entry already)."""
        await self.store.publish(DeliveryChanged(item.conversation_id, item.id, delivery, reason))


def _runs(items: Sequence[OutboxItem]) -> list[list[OutboxItem]]:
    """The claimed items grouped by conversation, in order (``outbox_due`` hands a conversation's run out in one
    piece)."""
    return [list(run) for _, run in itertools.groupby(items, key=lambda item: item.conversation_id)]


def _until(lease: _Lease | None) -> datetime | None:
    return None if lease is None else lease.until
