"""The WhatsApp catch-up: the messages Twilio received that the gateway never processed, read from Twilio's list.

Twilio does not send a webhook again after a 5xx (by default one retry, on a failed connection only): a message
that met a store outage longer than the webhook's hold (``STORE_HOLD_SECONDS``), every instance down, or the
gateway unreachable, was acknowledged to the young person by WhatsApp and never reached the line. Twilio keeps
every message: this supervised worker (``whatsapp-catchup``) lists the inbound ones sent to
``TWILIO_WHATSAPP_FROM`` (:meth:`WhatsAppChannel.received_since`) and processes each one not processed yet through
the webhook's own path (the gate, the sender's turns, the inbox or the dispatcher: ``channels_wiring``), under the
webhook's de-duplication key (its ``MessageSid``), so nothing is processed twice, oldest first (so in the order
Twilio received them, per sender too).

When: at start (the gateway may have been down), soon after a WhatsApp webhook answered 503 (:meth:`missed`,
``settle`` seconds later), and every ``period`` seconds as a safety net. Each pass reads from shortly
(``MARGIN``, for the clocks) before the end of the last good pass (kept in the store, ``MARK``, shared by the
instances and kept over a restart), and never further back than ``window``; a message received in the last
``settle`` seconds is left to its webhook (read by the next pass). When that end is older than the window allows
(the gateway down, or Twilio unreachable, longer than it), what Twilio received before the window is not caught
up: said once, by the pass that reads again, in a WARNING line with the gap's length and the outcome
``beyond_window``. A first pass with no mark (a fresh install) reads the window and says nothing: nothing was
missed. One instance at a time: a pass starts with a short claim shared by the instances (``Claims.once_per``, in
Redis with Redis), the winner's retries within it need no other; the instance that loses tries again once the
claim is over. A pass that fails (Twilio unreachable, refusing, the store away) is logged by class, counted in
``gateway_whatsapp_catchup_passes{outcome}``, shown by ``/readyz`` (``whatsapp_catchup``, not a reason to stop
traffic) and tried again after a backoff; a 429 (Twilio's rate limit) pauses it as long as its ``Retry-After`` says
(``TOLD_PAUSE_BOUNDS``; since 2026-12-08; a webhook answered 503 meanwhile waits for it too, ``CatchUp.missed``),
``RATE_LIMIT_PAUSE`` seconds when it tells none.
A pass reads at most ``LIST_MAX_PAGES`` pages of the list (10,000 messages), the newest: when Twilio holds more, the
older ones are not caught up, said by a WARNING line and the outcome ``cut``. What it processes is counted in
``gateway_whatsapp_caught_up``: only what this pass took (not a message the gate refused, nor one another
instance's pass or its webhook processed meanwhile). Nothing here logs a phone number, a text or a sid.

How far behind it is: ``gateway_whatsapp_catchup_since_pass_seconds``, the time since the last good pass (this
instance's, or another's as the store's mark says when it lost the claim; since the start before the first one).
Longer than ``behind_after`` (``GATEWAY_WHATSAPP_CATCHUP_BEHIND_SECONDS``), ``/readyz`` shows it
(``whatsapp_catchup_behind``, in seconds; not a reason to stop traffic) and a WARNING line says it once; the first
good pass clears both and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from gateway.channels.base import Batch
from gateway.channels.whatsapp import LIST_MAX_PAGES, LIST_PAGE_SIZE, OPT_IN_KEYWORDS, Listed, Listing
from gateway.clock import utcnow
from gateway.dispatcher import DEDUPE_TTL_SECONDS
from gateway.errors import CredentialsRefused, DeliveryError, RetryableDelivery, StoreError
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Departure, Inbound
from gateway.metrics import Metrics
from gateway.outage_log import error_class
from gateway.store import ClaimState, DedupeStore, ErasedStore, PresentStore

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=5)  # a pass reads from this long before the end of the last good one (clocks differ)
ERASED_DOUBT = timedelta(seconds=2)
"""A message of a young person erased lately, dated this close before the erasure's instant, may have been sent
after it (Twilio dates to the second, and its clock and ours may differ by a second): processed as a new contact,
never dropped (:meth:`CatchUp._erased_since`)."""
CLAIM_SECONDS = 60  # a pass's claim across instances: the others wait this long
MARK = "whatsapp:catchup"  # the end of the last good pass, kept with the listeners' presence (never a listener's name)
CHECK_LEASE_SECONDS = 5.0  # the claim that asks whether a message was processed, let go at once
RATE_LIMIT_PAUSE = 60.0  # after Twilio's 429 telling no wait (or 0); one told: that long, within the bounds below
TOLD_PAUSE_BOUNDS = (1.0, 300.0)  # a told Retry-After's pause, at least and at most (the default period)
MAX_BACKOFF = 60.0


class Lister(Protocol):
    async def received_since(self, since: datetime) -> Listing: ...

    async def with_media(self, listed: Listed) -> Inbound: ...


class Claims(Protocol):
    async def once_per(self, seconds: int, what: str, subject: str) -> bool: ...


class CatchUpStore(DedupeStore, PresentStore, ErasedStore, Protocol):
    """What the catch-up needs of the store: the dispatcher's marks, where the last good pass ended (``MARK``), and
    the young people erased lately (``keep_erased``)."""


class CatchUp:
    def __init__(
        self,
        lister: Lister,
        store: CatchUpStore,
        process: Callable[[Batch], Awaitable[int]],
        claims: Claims,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = utcnow,
        period: float = 300.0,
        window: timedelta = timedelta(hours=6),
        settle: float = 30.0,
        behind_after: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
        erased_key: Callable[[ChannelName, str], str] | None = None,
    ) -> None:
        """``erased_key``: ``KeyedHash.erased``, the form the erasure keeps an identity under (``Eraser``)."""
        self._lister, self._store, self._process, self._claims = lister, store, process, claims
        self._erased_key = erased_key
        self._metrics, self._clock, self._monotonic = metrics, clock, monotonic
        self.period, self.window, self.settle, self.behind_after = period, window, settle, behind_after
        self._since: datetime | None = None  # the end of the last good pass: the next reads from MARGIN before
        self._next = monotonic()  # the first pass at start: the gateway may have been down
        self._wake = asyncio.Event()
        self._failures = 0
        self._held_until = 0.0  # monotonic: until when this instance's claim lets it pass again
        self._told_until = 0.0  # monotonic: the end of the Retry-After of a refused list (:meth:`missed` waits for it)
        self.failing: str | None = None  # the last pass's failure (its class), for /readyz; None once one passes
        self._cut = False  # the last pass found more in Twilio's list than it reads: the oldest not caught up
        self._beyond: timedelta | None = None  # the last pass started this long after the last good one's end allowed
        self._good = monotonic()  # when the last good pass ended (any instance's), or the start
        self._said_behind = False  # the WARNING line said it: said again only after a good pass
        metrics.whatsapp_catchup_since_pass.set_function(self.since_pass)

    def missed(self) -> None:
        """A WhatsApp webhook answered 503: a pass once that message has settled in Twilio's list, and not before the
        wait Twilio told when it last refused the list (its ``Retry-After``: since 2026-12-08; until then a missed
        webhook brought the pass forward into Twilio's limit, at every settle while webhooks answered 503)."""
        self._next = min(self._next, max(self._monotonic() + self.settle, self._told_until))
        self._wake.set()

    async def run(self) -> None:
        """Passes until cancelled (a supervised worker): a failure is tried again after a backoff."""
        while True:
            delay = self._next - self._monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see gateway/supervisor.py
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                self._wake.clear()
                continue
            self._next = self._monotonic() + await self._turn()

    async def _turn(self) -> float:
        """One pass if this instance wins the claim; the seconds until the next."""
        now = self._monotonic()
        if now >= self._held_until:  # the claim this instance won still runs: its retries need no other
            if not await self._claims.once_per(CLAIM_SECONDS, "whatsapp_catchup", "pass"):
                self._metrics.whatsapp_catchup_passes.labels("elsewhere").inc()
                await self._passed_elsewhere()
                return CLAIM_SECONDS
            self._held_until = now + CLAIM_SECONDS / 2  # half: a pass started then ends within the claim
        try:
            caught = await self.catch_up()
        except CredentialsRefused as exc:  # the auth token is read at start: said at every period, never silent
            return self._failed("failed", exc, self.period)
        except RetryableDelivery as exc:  # Twilio's Retry-After the pause of its 429 (since 2026-12-08)
            if exc.rate_limited and exc.retry_after:
                told = min(max(exc.retry_after, TOLD_PAUSE_BOUNDS[0]), TOLD_PAUSE_BOUNDS[1])
                self._told_until = self._monotonic() + told  # a missed webhook waits for it too (:meth:`missed`)
                return self._failed("rate_limited", exc, told)
            return self._failed("rate_limited" if exc.rate_limited else "failed", exc)
        except DeliveryError as exc:  # refused for good: said at every period, never silent
            return self._failed("failed", exc, self.period)
        except StoreError as exc:  # told once an outage (gateway/outage_log.py)
            self._metrics.outages.failed("whatsapp-catchup", exc)
            return self._failed("store", exc)
        outcome = "beyond_window" if self._beyond is not None else "cut" if self._cut else "ok"
        self._metrics.whatsapp_catchup_passes.labels(outcome).inc()
        if self._beyond is not None:  # said once: the next pass reads from this one's end
            log.warning("whatsapp catch-up: Twilio's list was not read for longer than the window (%g h): what it "
                        "received in the %s before the window is not caught up (Twilio's console or export lists it)",
                        self.window / timedelta(hours=1), _length(self._beyond))  # fmt: skip
        if caught:
            log.warning("whatsapp catch-up: %d message(s) Twilio received but the gateway had not, processed", caught)
        if self.failing is not None:
            log.info("whatsapp catch-up: passes again")
        self._passed(self._monotonic())
        self.failing, self._failures = None, 0
        return self.period

    def since_pass(self) -> float:
        """Seconds since the last good pass (any instance's), or since the start before the first one."""
        return max(self._monotonic() - self._good, 0.0)

    def behind(self) -> int | None:
        """The seconds since the last good pass when longer than ``behind_after`` (for ``/readyz``), else None."""
        since = self.since_pass()
        return int(since) if since >= self.behind_after else None

    def _passed(self, at: float) -> None:
        if at <= self._good:
            return
        self._good = at
        if self._said_behind:
            log.info("whatsapp catch-up: no longer behind (a pass succeeded)")
        self._said_behind = False

    async def _passed_elsewhere(self) -> None:
        """Another instance's turn: where its last good pass ended (the store's mark) is this one's news of it."""
        try:
            kept = (await self._store.last_present([MARK])).get(MARK)
        except StoreError:  # its outage is said by the store's own checks; the gap shown grows meanwhile
            return
        if kept is not None:
            age = max((self._clock() - kept).total_seconds() - self.settle, 0.0)
            self._passed(self._monotonic() - age)

    def _failed(self, outcome: str, exc: Exception, pause: float | None = None) -> float:
        """The failed pass counted, shown and said (by class); the seconds until the next: ``pause``, else the rate
        limit's or the backoff's. Until 2026-12-05 a pass refused (credentials) said "again in 1s", then waited a
        period. Named by ``error_class``: a store failure by the error it wraps (``ConnectionError``,
        ``MaxClientsReached``, ``MISCONF``), as the outage log and ``/readyz``'s ``store_last_failure`` name it
        (until 2026-12-07 ``StoreError`` whatever the store met)."""
        self._metrics.whatsapp_catchup_passes.labels(outcome).inc()
        kind = self.failing = error_class(exc)
        if pause is None:
            pause = RATE_LIMIT_PAUSE if outcome == "rate_limited" else min(2.0**self._failures, MAX_BACKOFF)
        self._failures += 1
        if outcome != "store":  # Twilio's code beside the class (since 2026-12-08: until then the class alone)
            code = exc.provider_code if isinstance(exc, DeliveryError) else None
            told = f", Twilio code {code}" if code is not None else ""
            log.warning("whatsapp catch-up: pass failed (%s, %s%s); again in %.0fs", outcome, kind, told, pause)
        behind = self.behind()
        if behind is not None and not self._said_behind:  # said once, until a good pass
            self._said_behind = True
            log.warning("whatsapp catch-up: behind: no good pass for %s (more than %gs): the WhatsApp messages whose "
                        "webhook failed meanwhile wait for it (%s)", _length(timedelta(seconds=behind)),
                        self.behind_after, kind)  # fmt: skip
        return pause

    async def catch_up(self) -> int:
        """One pass: the messages Twilio received since shortly before the last pass, not processed yet, processed
        oldest first. Returns how many."""
        now = self._clock()
        since = start = now - self.window
        kept = (await self._store.last_present([MARK])).get(MARK)  # another instance's pass, or before a restart
        last = max((m for m in (kept, self._since) if m is not None), default=None)
        self._beyond = None
        if last is not None:
            since = max(start, last - MARGIN)
            self._beyond = start - (last - MARGIN) if last - MARGIN < start else None
        until = end = now - timedelta(seconds=self.settle)
        caught = left = 0  # processed; left, their young person erased since
        listing = await self._lister.received_since(since)
        self._cut = listing.cut
        if listing.cut:  # the newest read only: never a silent loss
            log.warning("whatsapp catch-up: Twilio's list holds more than %d messages since the pass's start: the "
                        "older ones are not caught up", LIST_PAGE_SIZE * LIST_MAX_PAGES)  # fmt: skip
        for listed in listing.messages:
            if listed.at > until:  # left to its webhook: the next pass reads it if it never came
                continue
            seen = await self._seen(listed.inbound)
            if seen is None:  # being processed now (its webhook): looked at again by the next pass
                end = min(end, listed.at)
                continue
            if seen:
                continue
            if await self._erased_since(listed):
                left += 1
                continue
            inbound = await self._lister.with_media(listed)  # its media asked of Twilio only now: it is caught up
            # a START lifted the opt-out at Twilio: the mark too (its webhook's OptOutType is not in the list; until
            # 2026-12-06 the conversation stayed marked, nothing sent to them, the listener refused "until START")
            lifted = inbound.text.strip().upper() in OPT_IN_KEYWORDS
            # dated as Twilio received it: a STOP sent after it, taken first, keeps its mark (``_late_unblock``), and
            # one sent before it, taken after (late from the inbox), marks nothing (until 2026-12-06: undated, it
            # lifted any mark, and such a STOP marked again, this START then lifting nothing)
            departures = (Departure(inbound.channel, inbound.sender, False, at=listed.at),) if lifted else ()
            # dated when Twilio received it (``date_sent``): WhatsApp's 24-hour window runs from then, not from now
            # (``gateway.dispatcher.written_at``; until 2026-12-06 from now: open in the console and for the idle
            # close's goodbye hours after Twilio refused)
            inbound = replace(inbound, opted_in=lifted, sent_at=listed.at)
            taken = await self._process(Batch(inbound=(inbound,), departures=departures))  # 0: refused (a block), or
            # processed meanwhile
            self._metrics.whatsapp_caught_up.inc(taken)
            caught += taken
        if left:  # counted and said (no number, no words): an operator sees why Twilio's list and the store differ
            self._metrics.whatsapp_catchup_left_erased.inc(left)
            log.info("whatsapp catch-up: %d message(s) of young people erased since Twilio received them, left", left)
        await self._store.mark_present({MARK: end})
        self._since = end
        return caught

    async def _erased_since(self, listed: Listed) -> bool:
        """Whether its young person was erased after Twilio received it (``Eraser`` keeps the instant for the
        window): their words stay erased. One read per message not processed, none for the others. Until 2026-12-06
        a message whose webhook had failed (no mark to keep) opened a new conversation with the erased words. Dated
        within ``ERASED_DOUBT`` before the instant, it may have been sent after it: processed (until 2026-12-07 left,
        a young person writing again in the erasure's second lost)."""
        if self._erased_key is None:
            return False
        inbound = listed.inbound
        erased = await self._store.erased_at(self._erased_key(inbound.channel, inbound.sender))
        return erased is not None and listed.at <= erased - ERASED_DOUBT

    async def _seen(self, inbound: Inbound) -> bool | None:
        """Whether the message was processed (the dispatcher's mark); None while someone processes it. Asked by a
        claim let go at once: the message then goes through the gate and the dispatcher as a webhook's."""
        key, owner = inbound_key(inbound), "catchup-" + secrets.token_hex(8)
        state = await self._store.claim(key, owner, CHECK_LEASE_SECONDS, kept_seconds=DEDUPE_TTL_SECONDS)
        if state is ClaimState.CLAIMED:
            await self._store.release(key, owner)
            return False
        return True if state is ClaimState.DONE else None


def _length(gap: timedelta) -> str:
    """A gap's length in hours and minutes, as ``2h05m``."""
    minutes = int(gap.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
