"""The path of a message: the one place that orders effects.

    Inbound → claim of the message id (a lease, renewed while processing) → per-conversation lock → engine
    step → transcript and outgoing messages persisted, then the state saved with the id marked processed →
    outbox (delivery) and events (console, web chat)

Exactly once from the young person's side: the claim belongs to a live owner (a lease of
``claim_seconds``, renewed while processing): an instance killed mid-message lets its lease lapse, and the
provider's redelivery is then processed; while the owner lives, a concurrent redelivery waits for it, and is
refused with a retryable error (:class:`~gateway.errors.InboundBusy`, 503) rather than acknowledged unprocessed.
Processing is idempotent: every entry written while processing a message (the young person's, the bot's replies,
the queue message, system notes) has an id derived from the message's id, so a reprocessing after a crash
rewrites the same transcript entries and outbox items (both ignore an id already present) and sends nothing
twice; the conversation's state is saved last, in one commit with the "processed" mark.

Listener actions (``gateway/console/actions.py``) use :meth:`Dispatcher.emit` too, so a listener's reply goes
through the same transcript, outbox and events as the bot's. Nothing here logs message text or a sender.

Reply windows: a channel may refuse messages sent long after the young person's last one (Messenger: the bot
24 h, a listener 7 days with the HUMAN_AGENT tag; WhatsApp: 24 h). :meth:`Dispatcher.emit` never hands such a
message to the outbox, where it could only fail: it records a system entry for the listeners instead (what was
not sent, and why). Listener actions refuse beforehand (409 ``window_closed``); the timers pause reassurance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

from gateway.clock import Clock, utcnow
from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.errors import ConversationEnded, EndedMeanwhile, InboundBusy, LockLost, StoreError
from gateway.events import DeliveryChanged, EntryAdded, FlagRaised, LanguageChanged, QueueChanged, StatusChanged
from gateway.flows import keywords, lifecycle
from gateway.flows.engine import Engine, Outcome, State, StepResult
from gateway.flows.lifecycle import Trigger
from gateway.flows.reading import UNREAD, Reading, Risk, Unread
from gateway.flows.risk import Decision, Flag
from gateway.flowset import FlowSet
from gateway.ids import derived_from, echo_entry_id, echo_key, inbound_entry_id, inbound_key, new_id
from gateway.keyed import KeyedHash
from gateway.language import language_of
from gateway.later import Later
from gateway.messages import ChannelName, Choice, Echo, Inbound, Outbound, Receipt, Reply
from gateway.metrics import Metrics
from gateway.outage_log import error_class
from gateway.store import (
    ANYONE,
    INDEXED_DAYS,
    Anyone,
    Author,
    BatchStore,
    Claim,
    ClaimState,
    ConversationStore,
    DedupeStore,
    Delivery,
    DoneMark,
    ErasedStore,
    EventStore,
    LateStore,
    LockStore,
    OutboxItem,
    OutboxStore,
    QueueStore,
    RetentionStore,
    TimerKind,
    TimerStore,
    TranscriptEntry,
    TranscriptStore,
    in_parts,
)
from gateway.store.codec import encode_outbound
from gateway.store.identities import OneMessage
from gateway.supervisor import where
from gateway.system_entries import system_text
from gateway.understanding.late import Late, LateReadings
from gateway.understanding.reader import Reader

log = logging.getLogger(__name__)
EraseHook = Callable[[Conversation, str], Awaitable[object]]

DEDUPE_TTL_SECONDS = 8 * 24 * 3600  # longer than any provider's redelivery window (WhatsApp Cloud: 7 days)
PACE_MIN_TAKES = 3  # takes in the last hour before the observed pace replaces the flow's average
CLAIM_SECONDS = 10.0
"""The default lease on an inbound message being processed (renewed every third of it while processing)."""
# The idle close comes this long before the bot's reply window closes (Messenger, WhatsApp), its goodbye then sent
# in time (the outbox's retries of a refused send take about two minutes)
IDLE_CLOSE_BEFORE_WINDOW = timedelta(minutes=15)
# A message taken in that last quarter hour (written long before: Meta redelivering, the WhatsApp catch-up): the idle
# close comes this long before the window closes, never at once (the outbox's retries still in time)
IDLE_CLOSE_LAST_SEND = timedelta(minutes=3)
# A risky message (the inbox's: ``gateway/inbox.py``) and the replies of a turn in which a risk was read (the
# outbox's: ``Dispatcher.emit``) are due this much before they were written: ahead of any backlog
URGENT_AHEAD = timedelta(days=1)
ERASURE_QUESTION_MINUTES = 30  # the erasure question waits this long for its answer, then is forgotten
# A confirmed erasure is tried again through store failures this long (a Redis restart, a connection reset): each
# step of the eraser leaves what is left findable, so a try finishes what a cut one began (gateway/erasure.py)
ERASURE_RETRY_SECONDS = 30.0
SAID = "said"
"""The engine state's key for the last words of the young person's previous message when it read no risk: joined to
the next one, words of danger split over two messages ("je vais" / "me tuer") raise as one (sealed with the record,
purged and erased with it)."""
SAID_WORDS = 8
THANKED = "thanked"
"""The engine state's key, on an ended conversation, for when a thank-you after its end was answered
(:meth:`Dispatcher._after_end`): once; a later one is kept in its transcript, not answered."""
# A bot reply the provider accepted, then reported failed for a reason a resend may get through (a WhatsApp status
# callback's transient code: ``Receipt.transient``) is sent once more at the report (:meth:`Dispatcher._bot_failed`),
# as a new entry whose id is the first's plus ``RESENT`` (a copy that fails in turn is not sent again)
RESENT = "-again"
# the note a failed bot reply gives its listeners (:meth:`Dispatcher._bot_failed`): its id the reply's plus this, so
# that a failure reported again writes it once (since 2026-12-08 evening)
NOTED = "-failed-note"


class StatusRoles(TimerStore, QueueStore, RetentionStore, EventStore, Protocol):
    """What entering a status does to the store (its timers, its place in the queue, the transcript's TTL)."""


class DispatcherRoles(
    ConversationStore, TranscriptStore, DedupeStore, QueueStore, OutboxStore, TimerStore, RetentionStore, EventStore,
    LockStore, BatchStore, LateStore, ErasedStore, Protocol,
):  # fmt: skip
    """What the dispatcher needs of the store: no listeners, sessions, inbox, blocks, audit, casework or uploads (the
    erasures' marks since 2026-12-07: a resumed hello's conversation erased while it waited, ``start_conversation``)."""


BACKSTOP_AFTER_PURGE = 2 * 24 * 3600
"""How long after its retention an ended conversation's transcript lapses by itself (Redis's TTL, the purge's
backstop), at least: after the purge's pass, which then finds the transcript and forgets what only it names (the
replies' provider-id index entries, ``hg:p:…``, which would otherwise point at the conversation for up to 31 days, and
the messages' marks). Until 2026-12-07 the TTL was the retention itself: it always lapsed before the purge came. The
purge itself still deletes the content ``closed_days`` after the end (within its period, a day by default). A longer
period (``GATEWAY_PURGE_INTERVAL_SECONDS``) gets that period and a day (:func:`backstop_seconds`)."""


def backstop_seconds(purge_interval_seconds: float) -> int:
    """How long after its retention a transcript lapses by itself with the purge passing every
    ``purge_interval_seconds``: the period and a day, :data:`BACKSTOP_AFTER_PURGE` at least. Until 2026-12-07 it was
    2 days whatever the period: with a weekly purge the TTL lapsed first, as before the margin."""
    return max(BACKSTOP_AFTER_PURGE, math.ceil(purge_interval_seconds) + 24 * 3600)


@dataclass(frozen=True, slots=True)
class StatusEffects:
    """The effects of entering a status (:class:`~gateway.flows.lifecycle.Effects`), on the store."""

    store: StatusRoles
    now: datetime
    retention_seconds: int = 30 * 24 * 3600  # the transcript's TTL once it ends: retention.closed_days and a margin

    async def finished(self, conversation: Conversation) -> None:
        conversation.closed_at = self.now
        await self.store.cancel_timers(conversation.id)
        if conversation.listener is None:  # a waiting one's place: left before the record says ended (Redis: alone)
            await self.store.remove_from_queue(conversation.id)
        # A held one's entry (its listener's capacity, ``held_by``) leaves with its ended record
        # (``save_conversation``), after it on Redis: a cut never leaves a record held with no entry.
        await self.store.expire_transcript(conversation.id, self.retention_seconds)  # Redis: a backstop of the purge

    async def entered(self, conversation: Conversation) -> None:
        conversation.updated_at = self.now
        await self.store.publish(StatusChanged(conversation.id, conversation.status, conversation.queue))
        await self.store.publish(QueueChanged())


class Dispatcher:
    def __init__(
        self,
        store: DispatcherRoles,
        flows: FlowSet,
        *,
        clock: Clock = utcnow,
        on_outgoing: Callable[[], None] = lambda: None,
        listeners_online: Callable[[], int] = lambda: 1,
        metrics: Metrics | None = None,
        reply_windows: Mapping[ChannelName, Callable[[str], timedelta]] | None = None,
        claim_seconds: float = CLAIM_SECONDS,
        reader: Reader | None = None,
        late: LateReadings | None = None,
        purge_interval_seconds: float = 24 * 3600,
        keyed: KeyedHash | None = None,
        on_rate_limited: Callable[[ChannelName], datetime] | None = None,
    ) -> None:
        """``on_rate_limited(channel)``: a reply reported failed for the provider's rate limit (``Receipt.
        rate_limited``): the app pauses the channel's sends (``Outbox.rate_limited``), which says when they go again
        (since 2026-12-08).
        ``keyed``: names the entries in log lines (``KeyedHash.logged_id``, since 2026-12-07: before, the entry id
        itself, an unkeyed SHA-256 of the young person's message's provider id for the bot's replies to it); the
        app's, keyed with GATEWAY_SECRET_KEY; without (tests, the CLI), one with a random key of its own.
        ``metrics``: the app passes its own (``gateway/app.py``), scraped on /metrics; without (tests, the CLI's
        dispatchers), a Metrics of its own that nobody scrapes, by design, said nowhere
        (``tests/test_metrics.py::test_the_apps_dispatcher_and_outbox_count_on_the_apps_metrics``)."""
        self.claim_seconds = claim_seconds
        self._logged = (keyed or KeyedHash(secrets.token_urlsafe(32))).logged_id
        self._backstop = backstop_seconds(purge_interval_seconds)  # an ended transcript's TTL beyond its retention
        self.metrics = metrics or Metrics()
        self.store = store
        self.flows = flows
        self.clock = clock
        self._on_outgoing = on_outgoing  # wakes the outbox worker
        self._on_rate_limited = on_rate_limited
        self._listeners_online = listeners_online
        self._reply_windows = reply_windows or {}  # channel → author ("bot"/"listener") → how long it may write
        self.reader = reader  # the embedded model; None: keywords only
        self.late = late  # messages that went on unread (busy, late) are read after the fact; None: not
        self.eraser: EraseHook | None = None  # the young person confirmed erasure: (conversation, its message's key)
        # an ending cut short found by a message (``store.ending_begun``): completed as the alert check completes it
        # (``Actions.complete_leaving``, wired by the app factory), before the message; None: not looked for
        self.complete_leaving: Callable[[str, str], Awaitable[bool]] | None = None
        # a web chat message taken in another conversation than its page's (``Inbound.written_in`` ended meanwhile,
        # not erased: the next one, as for any message then): its attachments kept with that one, the message given
        # with them (``Uploads.moved``, wired by the app factory); None: left where they are
        self.moved: Callable[[Inbound, str], Awaitable[Inbound]] | None = None
        # the erasure's mark of a web chat conversation (``KeyedHash.erased_conversation``, wired by the app factory):
        # a message whose ``written_in`` is marked, its record left by a cut, opens nothing (``locked_active``'s
        # ``erased``; until 2026-12-07 only the record was read); None: the record alone
        self.erased_mark: Callable[[str], str] | None = None
        self._processing: set[asyncio.Task[bool]] = set()  # messages being processed (``handle_inbound``)

    # ----- inbound ----------------------------------------------------------------------------------------

    async def handle_inbound(self, inbound: Inbound) -> bool:
        """Process one message; False when it is a duplicate (already processed).

        Shielded: a caller cancelled midway (a provider or a browser hanging up) never leaves a message half
        processed; the work finishes in a task of the dispatcher's, and the redelivery is then recognised as a
        duplicate. When that task fails after its caller went away, nobody awaits it: its error is said here by
        class (asyncio's shield stops watching a task once its caller is cancelled, so the error was left for
        "Task exception was never retrieved", its message quoting the store's). InboundBusy when another live
        owner is still processing the same message after ``claim_seconds``: answer "retry later".
        """
        task = asyncio.create_task(self._handle_inbound(inbound), name="dispatcher-inbound")
        self._processing.add(task)  # the loop holds tasks weakly: one whose caller went away is kept here
        task.add_done_callback(self._processing.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._said_unawaited)
            raise

    def _said_unawaited(self, task: asyncio.Task[bool]) -> None:
        """A message's processing ended after its caller went away: its error, retrieved and said by class (a store
        failure goes to the outage log, once an outage: the provider's redelivery processes the message; anything
        else is a bug, logged with its place)."""
        if task.cancelled() or (exc := task.exception()) is None or isinstance(exc, ConversationEnded):
            return
        if isinstance(exc, StoreError):
            self.metrics.outages.failed("dispatcher", exc)
        else:
            log.error("dispatcher: a message's processing failed with %s at %s after its caller went away",
                      type(exc).__name__, where(exc))  # fmt: skip

    async def _handle_inbound(self, inbound: Inbound) -> bool:
        """One message's processing, in its own task (``handle_inbound``). The keyed hash of its sender's identity
        its claim, lock and save need is made once and kept for it alone (``store.identities.OneMessage``, since
        2026-12-08: until then the store kept it, the plain sender with it, in the calling task's context)."""
        with OneMessage():
            key, owner = inbound_key(inbound), secrets.token_hex(8)
            sent = await self._claim(key, owner, inbound)
            if sent is None:
                self.metrics.child(self.metrics.duplicates, inbound.channel.value).inc()
                return False
            # a timer until a renewal is due: a third of the lease after the claim was sent (not answered: ``_renew``)
            first = max(sent + self.claim_seconds / 3 - asyncio.get_running_loop().time(), 0.0)
            renewal = Later(first, lambda: self._renew(key, owner, sent))
            try:
                processed = await self._process_claimed(inbound, key, owner)
            except BaseException:
                with contextlib.suppress(StoreError):  # unprocessed: let the provider's redelivery through
                    await self.store.release(key, owner)
                raise
            finally:
                renewal.cancel()
            if processed:
                self.metrics.child(self.metrics.inbound, inbound.channel.value).inc()
            else:
                self.metrics.child(self.metrics.duplicates, inbound.channel.value).inc()
            return processed

    async def _claim(self, key: str, owner: str, inbound: Inbound) -> float | None:
        """When the claim that took the message was sent (``loop.time()``: its lease runs from then at the latest),
        None if processed already; waits while another owner processes it. The sender's address is read along
        (Redis: the same round trip) for ``active_conversation`` next."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + self.claim_seconds, 0.01
        while True:
            sent = loop.time()
            try:
                state = await self.store.claim(key, owner, self.claim_seconds, sender=(inbound.channel, inbound.sender),
                                               kept_seconds=DEDUPE_TTL_SECONDS)  # fmt: skip
            except StoreError:  # it may have run, its answer lost: let it go, or the redelivery waits out its lease
                with contextlib.suppress(StoreError):  # the release checks the owner: nothing of anyone else's
                    await self.store.release(key, owner)
                raise
            if state is not ClaimState.BUSY:
                return sent if state is ClaimState.CLAIMED else None
            if loop.time() >= deadline:
                raise InboundBusy("this message is being processed elsewhere: retry later")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def _renew(self, key: str, owner: str, held: float) -> None:
        """Keep the claim while processing: renewed a third of its lease after the claim was sent (``held``,
        ``loop.time()``), then a third of it after each renewal was sent, at once when the last one's answer took
        longer. Each renewal's lease runs from its send (``claim``'s lease end is the store's time then), so one held
        on its way up to the socket timeout still reaches the store within the lease before it
        (``Settings.check_leases``: the socket timeout at most half the claim). Until 2026-12-07 the next renewal
        was sent a third of the lease after the last one's ANSWER (the first after the claim's): two renewals held
        1.25 s each let a 3 s claim lapse between them, and another owner took the message while it was processed
        (``tests/test_claim_renewal_held.py``). A renewal answered after the lease before it had ended (the claim
        may have been another owner's meanwhile), and one that finds it another owner's (BUSY: the renewals stop,
        the check under the conversation's lock decides), are said (WARNING, without the key: it names a
        message); until 2026-12-07 neither was."""
        loop, period = asyncio.get_running_loop(), self.claim_seconds / 3
        while True:
            sent = loop.time()
            try:
                claimed = await self.store.claim(key, owner, self.claim_seconds, kept_seconds=DEDUPE_TTL_SECONDS)
                late = loop.time() - (held + self.claim_seconds)
                if (
                    claimed is ClaimState.BUSY
                ):  # DONE: processed (by this owner's commit, its renewal not yet cancelled)
                    log.warning("dispatcher: a message's claim was taken by another owner while it was processed:"
                                " renewals stopped")  # fmt: skip
                if claimed is not ClaimState.CLAIMED:
                    return
                if late > 0:
                    log.warning("dispatcher: a claim's renewal answered %.1f s after the lease it renewed ended:"
                                " another owner may have taken the message meanwhile", late)  # fmt: skip
                held = sent
            except StoreError as exc:  # told once an outage (gateway/outage_log.py)
                self.metrics.outages.failed("dispatcher", exc)
            except Exception as exc:  # a bug must not end the renewal silently: the claim would lapse mid-processing
                log.error("dispatcher: renewing a claim failed with %s at %s", type(exc).__name__, where(exc))
            await asyncio.sleep(max(sent + period - loop.time(), 0.0))

    async def _process_claimed(self, inbound: Inbound, key: str, owner: str) -> bool:
        reading, later = await self._read(inbound)  # before the lock: a slow model holds no conversation up
        if inbound.edited and later and self.reader is not None and not await self._edit_counts(inbound, reading):
            reading, later = await self._read_whole_now(inbound, reading, later, "an edit with nothing open")
        if inbound.edited and not await self._edit_counts(inbound, reading):
            return True  # done: nothing to record (its claim lapses by itself; a redelivery is looked at again)
        if inbound.opening and await self.store.find_active_conversation(inbound.channel, inbound.sender) is not None:
            return True  # the chat opened while a conversation is open: its thread shows it, nothing to say
        if inbound.standby and later and self.reader is not None and not await self._standby_counts(inbound, reading):
            reading, later = await self._read_whole_now(inbound, reading, later, "a message on another app's thread")
        if inbound.standby and not await self._standby_counts(inbound, reading):
            return True  # another app's thread, nothing open, no risk: nothing starts (as an echo, ``handle_echo``)
        claim = Claim(key, owner, self.claim_seconds, DEDUPE_TTL_SECONDS)
        if (thanked := await self._after_end(inbound, claim, reading, later)) is not None:
            return thanked
        if inbound.opted_out and not await self._standby_counts(inbound, reading):  # the same rule: open, or a risk
            log.info("dispatcher: an opt-out with no conversation open on %s: nothing opened", inbound.channel.value)
            return True  # a welcome would be refused (21610); until 2026-12-06 one was opened, its replies refused
        found = await self._locked(inbound, claim, reading, later, look=self.complete_leaving is not None)
        if isinstance(found, _Ending):
            await self._ended_first(inbound, found)
            found = await self._locked(inbound, claim, reading, later, look=False)
        if found is None:
            return False
        current, erase = cast(tuple[Conversation, bool], found)
        if erase and self.eraser is not None:  # confirmed by the young person: after the lock, which erasure takes
            await self._erase_confirmed(current, key)
        elif later and self.late is not None:  # the second check, or a long message's windows, after the fact
            self.late.offer(Late(current.id, inbound_entry_id(inbound), inbound.text, reading, reading is not None))
        self._on_outgoing()  # the outbox may have looked before the batch's writes were made
        return True

    async def _after_end(self, inbound: Inbound, claim: Claim, reading: Reading | None, later: bool) -> bool | None:
        """A thank-you alone ("merci", "ok merci", "🙏": flows.yaml ``after_end``) written within its ``minutes`` of the
        end of the sender's last conversation, no conversation open, no risk read (the keywords and the model's
        reading, as for any message; the model not in time: not looked at): kept in that ended conversation's
        transcript (its retention unchanged) and answered once with ``messages.after_end`` (a second one is kept,
        not answered: :data:`THANKED`); no new conversation, no welcome, no queue entry. True when so processed,
        False a duplicate; None: anything else, processed as any message (a new conversation). Until 2026-12-05 it
        opened a new conversation: the welcome, the closed line again at night, the danger question, then "je n'ai
        pas bien compris". So is "stop" alone (an ending interrupt's phrase as the whole message, as at a question,
        no emoji but the section's), answered with ``messages.after_end_stop``: until 2026-12-06 it opened a new
        conversation too, its welcome, the closed line at night, the danger question, then "on s'arrête là". Not
        the web chat's: a message after its end is refused ``ended`` (``gateway/webchat.py``). A WhatsApp opt-out
        (``Inbound.opted_out``: STOP, or any keyword Twilio takes for one) there is kept, never answered: Twilio
        refuses every message to them from then on (21610); until 2026-12-06 the stop's reply was sent, and refused."""
        engine = self.flows.engine()
        words = engine.after_end
        if (words is None or later or inbound.channel == ChannelName.WEBCHAT or inbound.payload or inbound.attachments
                or inbound.edited or inbound.opening or inbound.restart or inbound.menu
                or inbound.standby):  # fmt: skip
            return None
        # the cheap looks first: deciding reads every risk (25-190 us), and its last answer is kept for the engine's
        # step only while no other message is decided between the two (under load, others are)
        # an opt-out (WhatsApp's STOP, whatever keyword Twilio took for it) ends, whatever its words; never answered
        opted_out = inbound.opted_out
        stopped = opted_out or not words.only(inbound.text)  # else a thank-you
        if stopped and not opted_out and (len(inbound.text) > ENDING_ALONE_CHARS
                                          or not engine.ends_alone(inbound.text)):  # fmt: skip
            return None
        decision = engine.decide(inbound.text, reading)
        if decision.flag is not None:
            return None
        if stopped and not opted_out and not (_only_ends(decision) and words.calm(inbound.text)):
            return None
        if await self.store.find_active_conversation(inbound.channel, inbound.sender) is not None:
            return None
        now = self.clock()
        since, until = now - timedelta(days=INDEXED_DAYS), now + timedelta(minutes=1)
        last = await self.store.conversations_of(inbound.channel, inbound.sender, since, until, 1)
        if not last or not _just_ended(last[0], now, words.window):
            return None
        async with self.store.locked_batch(last[0].id, claim=claim) as state:
            if state is ClaimState.DONE:
                return False
            if state is ClaimState.BUSY:
                raise InboundBusy("this message is being processed elsewhere: retry later")
            ended = await self.store.get_conversation(last[0].id)  # read again under its lock (erased, purged)
            if ended is None or not _just_ended(ended, now, words.window) or _joined(engine, ended, inbound.text):
                return None
            if await self.store.find_active_conversation(inbound.channel, inbound.sender) is not None:
                return None  # another message opened one meanwhile: this one goes there
            derived_from(claim.key)  # this task's context only: a reprocessing writes the same entries
            ended.last_inbound_at = written_at(ended, inbound, now)
            entry = TranscriptEntry(
                id=inbound_entry_id(inbound), conversation_id=ended.id, at=now, author=Author.USER,
                text=inbound.text, delivery=Delivery.DELIVERED,
            )  # fmt: skip
            await self.store.append_transcript(entry)
            await self.store.publish(EntryAdded(ended.id, entry))
            answered = THANKED not in ended.engine and not opted_out  # Twilio refuses it (21610): not tried
            if answered:
                language = language_of(ended, engine.flow)
                ended.engine = {**ended.engine, THANKED: now.isoformat()}
                reply = engine.message("after_end_stop" if stopped else "after_end", language)
                await self.emit(ended, [Reply(reply)], Author.BOT, now)
            await self.store.save_conversation(ended, done=DoneMark(claim.key, DEDUPE_TTL_SECONDS))
        said = "an opt-out" if opted_out else "a stop" if stopped else "a thank-you"
        log.info("dispatcher: %s: %s after its end, %s", ended.id, said, "answered" if answered else "kept")
        return True

    async def _standby_counts(self, inbound: Inbound, reading: Reading | None) -> bool:
        """Whether a message written on a thread another app owns (Messenger's ``standby``: a page admin in Meta's
        inbox, Meta's AI) is recorded: when their conversation is open (the listeners see it), or when its words read
        a risk (escalate, never silence: a conversation is started for it, straight to the listeners, ``_process``).
        Else nothing starts: the thread is answered outside the gateway, as an echo to someone with no conversation
        open records nothing. Until 2026-12-06 every ``standby`` message was dropped unread. The same rule for a
        WhatsApp opt-out (``Inbound.opted_out``): nothing open, no risk, nothing starts (Twilio refuses every message
        to them, 21610)."""
        if self.flows.engine().decide(inbound.text, reading).flag is not None:
            return True
        return await self.store.find_active_conversation(inbound.channel, inbound.sender) is not None

    async def _read_whole_now(
        self, inbound: Inbound, reading: Reading | None, later: bool, what: str
    ) -> tuple[Reading | None, bool]:
        """A message that starts nothing unless it reads a risk (on another app's thread with nothing open; an edit
        with nothing open), no risk read in time (the model busy, late, or a long message read as far as its cut):
        nothing would record it for a late reading, so it is read whole now, as ``Reader.read_late`` reads the late
        ones (once the model is idle, within its late timeout; the message's claim renewed meanwhile), before deciding
        whether it counts. Until 2026-12-06 such a message started nothing and was never read again: a risk only the
        model reads, not in time, reached no listener (an edit's, until the evening of that day). The model still not
        giving it: nothing starts, as before, one WARNING line (``what``: its kind; no id, no text)."""
        assert self.reader is not None
        whole = await self.reader.read_late(inbound.text, reading)
        if whole is None:
            log.warning("dispatcher: %s not read by the model in time: nothing starts", what)
            return reading, later
        return whole, False

    async def _edit_counts(self, inbound: Inbound, reading: Reading | None) -> bool:
        """Whether a message the young person edited is recorded: when its new words read a risk (escalate, never
        silence: a conversation is started for it if none is open), or when their conversation is open (the listener,
        or later the late reading, sees it; ``_process`` answers it only if it reads a risk). An edit of a message of
        a conversation that ended, with nothing risky in it, starts nothing (a live location's updates, a typo)."""
        if not inbound.text.strip():
            return False
        if self.flows.engine().decide(inbound.text, reading).flag is not None:
            return True
        return await self.store.find_active_conversation(inbound.channel, inbound.sender) is not None

    async def _erase_confirmed(self, conversation: Conversation, key: str) -> None:
        """The erasure the young person just confirmed, tried again through store failures for
        ``ERASURE_RETRY_SECONDS`` (0.1 s doubling to 2 s apart; the message's claim renewed meanwhile), so that a
        Redis restart or a connection reset in the middle does not leave it half made: their confirming message is
        marked processed with its conversation before the erasure begins (it keeps that mark), so its redelivery is
        a duplicate and would finish nothing. Until 2026-12-05 one store failure here left their current conversation
        (with the identity) and never told them it was done (flows.yaml's ``erasure.done``, with where to turn).
        Still failing at the end: an ERROR line (the class, never an id), the failure raised. The erasure is listed as
        begun in the confirming message's commit (``store.begin_erasure``): one left unfinished, here or because this
        instance died midway (until 2026-12-05 nothing ever finished that one), is finished by the alert check."""
        assert self.eraser is not None
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + ERASURE_RETRY_SECONDS, 0.1
        while True:
            try:
                await self.eraser(conversation, key)
                return
            except StoreError as exc:
                if loop.time() + pause >= deadline:
                    log.error("dispatcher: an erasure a young person confirmed is left unfinished after %.0f s of "
                              "store failures (%s): the alert check finishes it once the store answers",
                              ERASURE_RETRY_SECONDS, error_class(exc))  # fmt: skip
                    raise
                self.metrics.outages.failed("dispatcher", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _locked(self, inbound: Inbound, claim: Claim, reading: Reading | None, later: bool, *,
                      look: bool) -> tuple[Conversation, bool] | _Ending | None:  # fmt: skip
        """The message processed under its conversation's lock: the conversation and whether it confirmed an
        erasure; None when processed already. ``look``: first, whether the conversation's ending is listed as begun
        (``store.ending_begun``: on Redis read by the lock's script, with the record, no command more): an ending cut
        short, maybe after its goodbye, which the caller completes first (:meth:`_ended_first`); nothing written.
        A web chat message (``Inbound.written_in``) whose page's conversation was erased while it waited for the
        lock (a supervisor's erasure, another tab's): ConversationEnded from the store, nothing opened or written
        (until 2026-12-07 it opened a new conversation for the erased person); also when that erasure was cut before
        the record, its mark kept (:attr:`erased_mark`; until 2026-12-07 (evening) a new one opened then). Ended
        meanwhile, not erased: taken in the sender's next conversation when one is open (another tab's), its
        attachments moved there first (:attr:`moved`); none open: EndedMeanwhile from the store, nothing opened, the
        caller opening the next one within the web chat's new-chat limits (until 2026-12-07 the store opened it here,
        past them). The mark (an HMAC) is computed by the store on those paths only (``erased``, a callable): until
        2026-12-07 every web chat message computed it."""
        now = self.clock()
        # The sender's conversation locked, read, and the claim renewed under the lock (checked again: a lease that
        # lapsed while waiting may have let another owner in), then the message's writes, the processed mark with
        # them and the lock's release: one round trip each on Redis.
        written_in, mark = inbound.written_in, self.erased_mark  # the mark computed only if the store reads it
        erased = None if written_in is None or mark is None else functools.partial(mark, written_in)
        read: list[Conversation] = []  # a record with the bot as read, for a commit the lock's fence refuses
        # (``_reminded_again``; a new conversation's is not saved yet: it lapses by itself, ``FRESH_KEPT``)
        try:
            return await self._locked_turn(inbound, claim, reading, later, now, look, written_in, erased, read)
        except LockLost:
            if read:  # a task of its own: the lost lock's context (its fence, its batch) is not its
                await asyncio.create_task(self._reminded_again(read[0], now))
            raise

    async def _locked_turn(
        self, inbound: Inbound, claim: Claim, reading: Reading | None, later: bool, now: datetime, look: bool,
        written_in: str | None, erased: Callable[[], str] | None, read: list[Conversation],
    ) -> tuple[Conversation, bool] | _Ending | None:  # fmt: skip
        """:meth:`_locked`'s work under the lock; ``read`` gets a copy of a record with the bot as read."""
        async with self.store.locked_active(inbound.channel, inbound.sender, now, claim=claim, only=written_in,
                                            erased=erased) as (current, state):  # fmt: skip
            if state is ClaimState.DONE:
                return None
            if state is ClaimState.BUSY:
                raise InboundBusy("this message is being processed elsewhere: retry later")
            how = await self.store.ending_begun(current.id) if look else None
            if how is not None:
                return _Ending(current.id, how)
            if current.status is Status.BOT and current.engine:  # asked by the bot (a new one's fresh record: not)
                read.append(replace(current))  # shallow: a field changed in place reads as changed (nothing armed)
            if inbound.attachments and inbound.written_in not in (None, current.id) and self.moved is not None:
                inbound = await self.moved(inbound, current.id)  # until 2026-12-07 the file stayed with the ended one
            if inbound.client is not None and current.client is None:  # saved by the message's commit: one write
                current.client = inbound.client
            derived_from(claim.key)  # this task's context only (handle_inbound made it a task)
            if later and self.late is not None:  # its late reading waits in the store: the same commit as the message
                await self.late.record(current.id, inbound_entry_id(inbound), windows=reading is not None, now=now)
            done = DoneMark(claim.key, DEDUPE_TTL_SECONDS)
            return current, await self._process(current, inbound, now, done, reading)

    async def _reminded_again(self, read: Conversation, now: datetime) -> None:
        """A message's commit on a record with the bot refused by the lock's fence (``LockLost``: the lock's key lost,
        a failover) may have landed its timers' writes (slot ``{timers}``, before the record): a turn ending the bot's
        questions cancels every timer first (:meth:`_after_bot`; a hand-off then arms the queue's). Under the lock taken
        again, the record unchanged since the turn read it (nobody committed since: the refused writes alone moved its
        timers) and still with the bot, the bot's reminder is armed again (``bot_reminder_minutes`` from the turn, as
        any turn of the bot arms it); the message processed again (its redelivery) arms what it calls for. Since
        2026-12-07: until then a message never sent again (a web chat page closed meanwhile) left a refused ending's
        conversation with no timer at all (never abandoned, never purged), a refused hand-off's with the queue's idle
        close a day later (``tests/test_dispatcher_fence.py``). A record changed since is its writer's, timers and all;
        the lock not had or the store failing, it is said (an id and a class) and left as it was."""
        try:
            async with self.store.lock(read.id):
                found = await self.store.get_conversation(read.id)
                if found is None or found.status is not Status.BOT or found != read:
                    return
                minutes = self.flows.for_version(found.flow_version).flow.timers.bot_reminder_minutes
                await self.store.set_timer(read.id, TimerKind.BOT_REMINDER, now + timedelta(minutes=minutes))
        except StoreError as exc:
            log.warning("dispatcher: %s: a turn refused by the lock's fence, the bot's reminder not checked (%s)",
                        read.id, error_class(exc))  # fmt: skip

    async def _ended_first(self, inbound: Inbound, ending: _Ending) -> None:
        """The message's conversation has its ending listed as begun (a quick exit, "Terminer", a bulk close or an
        idle close cut short on Redis, maybe after its goodbye; ``gateway/leaving.py``): completed first, as the alert
        check completes it (under the lock; the check completing it meanwhile leaves nothing to do), so the message is
        handled as one arriving after that conversation closed, never answered after its goodbye. A provider
        channel's starts the sender's next conversation; a web chat's none (a message never starts one silently
        there, ``gateway/webchat.py``): ConversationEnded, the page told ``ended``, its words kept in its box."""
        assert self.complete_leaving is not None  # looked for only with it
        await self.complete_leaving(ending.conversation_id, ending.how)
        self._on_outgoing()  # its goodbye, listed now if it never was
        if inbound.channel == ChannelName.WEBCHAT:
            raise ConversationEnded("this conversation has ended: a new one starts from the page")

    async def ending_completed(self, conversation_id: str) -> bool:
        """Outside a message's processing (a web chat page's ``hello``, an image's upload: ``gateway/webchat.py``,
        ``gateway/uploads.py``): whether the conversation's ending was listed as begun (``store.ending_begun``: on
        Redis one ``GET`` of its copy in the conversation's slot; SQLite nothing, none is listed) and was completed
        now, as the alert check completes it and a message does (:meth:`_ended_first`: ``complete_leaving``, under the
        lock, one goodbye; the check completing it meanwhile leaves nothing to do). True: the conversation is closed
        as after that ending; the caller answers as after it. Not wired (``complete_leaving`` None): False."""
        if self.complete_leaving is None:
            return False
        how = await self.store.ending_begun(conversation_id)
        if how is None:
            return False
        await self.complete_leaving(conversation_id, how)
        self._on_outgoing()  # its goodbye, listed now if it never was
        return True

    async def start_conversation(
        self, channel: ChannelName, sender: str, language_hint: str | None, *, known: Conversation | None = None,
        under_lock: Callable[[Conversation], Awaitable[bool]] | None = None,
    ) -> Conversation:  # fmt: skip
        """Open (or resume) the sender's conversation; a new one is greeted by the bot at once (web chat). The
        greeting's entries, its timer and the record saved with its engine are one batch under the lock (a failure
        writes none of them: the next hello greets once); until 2026-12-07 they were written one by one, and a
        failure before the record's save left the greeting written with no engine: the hello after it greeted again.

        ``known``: the sender's active conversation, read already by the caller (a web chat hello's guards): resumed
        under its lock without looking it up again, unless it is no longer the sender's active one (then as without).
        A ``known`` one erased while the caller waited for its lock (its record gone, its erasure's mark kept:
        :attr:`erased_mark`) is answered as it was, nothing opened: until 2026-12-07 (night) the erased young person
        was greeted in a new conversation (``tests/test_webchat_hello_erased_meanwhile.py``). One that ENDED (not
        erased) meanwhile, the sender with none other open: EndedMeanwhile, nothing opened, as a message's
        (``store.locked_active``): the caller opens the next one only within its new-chat limits; until 2026-12-07
        (evening) the next one was opened here, no limit asked (``tests/test_webchat_hello_ended_meanwhile.py``).
        The same without ``known``: the conversation ``active_conversation`` found or opened, erased before its
        lock, is answered as read, nothing saved; until 2026-12-07 (evening) one never greeted was greeted and its
        old copy saved: the erased record brought back.
        ``under_lock``: the caller's change of the record read under that lock, in its batch (True: the record is
        saved), e.g. the web chat page's return (``leaving.came_back``). Until 2026-12-07 a resumed hello looked the
        conversation up twice and took a second lock for its return (``tests/test_webchat_resume_reads.py``)."""
        now = self.clock()
        if known is not None:
            async with self.store.locked_batch(known.id):
                current = await self.store.get_conversation(known.id)
                if current is None and await self._erased(known.id):  # erased while the caller waited for the
                    return known  # lock: nothing opened, nobody greeted (until 2026-12-07 (night) a new one was)
                if current is not None and current.active:
                    await self._started(current, channel, language_hint, now, under_lock)
                    return current
            if current is not None and await self.store.find_active_conversation(channel, sender) is None:
                raise EndedMeanwhile("the conversation this hello resumes has ended")  # nothing opened past the limits
        conversation, _ = await self.store.active_conversation(channel, sender, now)
        async with self.store.locked_batch(conversation.id):
            read = await self.store.get_conversation(conversation.id)
            if read is None and await self._erased(conversation.id):  # erased before its lock: never saved again
                return conversation  # (until 2026-12-07 (evening) a copy never greeted was greeted and saved back)
            current = read or conversation  # gone meanwhile, not erased (lost): nothing of the caller's saved on it
            await self._started(current, channel, language_hint, now, under_lock if read is not None else None)
        return current

    async def _erased(self, conversation_id: str) -> bool:
        """Whether the conversation's erasure's mark is kept (:attr:`erased_mark`; not wired: False)."""
        mark = self.erased_mark
        return mark is not None and await self.store.erased_at(mark(conversation_id)) is not None

    async def _started(
        self, current: Conversation, channel: ChannelName, language_hint: str | None, now: datetime,
        under_lock: Callable[[Conversation], Awaitable[bool]] | None,
    ) -> None:  # fmt: skip
        """:meth:`start_conversation` under the lock: the greeting of a new one, the caller's change, one save."""
        greeted = current.status == Status.BOT and not current.engine
        if greeted:
            engine = self.flows.engine()
            result = engine.start(channel=channel.value, now=now, language_hint=language_hint)
            await self._after_bot(current, engine, result, now)
        changed = under_lock is not None and await under_lock(current)
        if greeted or changed:
            await self.store.save_conversation(current)

    async def _read(self, inbound: Inbound) -> tuple[Reading | None, bool]:
        """The model's reading of a young person's words (None without a model or text, or not in time, and for a
        button pressed as shown, whose label is the bot's words: ``Engine.pressed``, or the erasure phrase alone, a
        command; the keywords still run), and True when it is worth a late reading: the model was busy, late or still
        loading, or it read a long message as far as its cut only (its windows are read after the fact, when there
        are late readings: a young person's message waits for one pass of the model at most)."""
        if self.reader is None or not inbound.text.strip():
            return None, False
        current = self.flows.current
        if current is not None and current.pressed(inbound.text, inbound.payload):
            self.metrics.understanding_messages.labels("button").inc()
            return None, False
        if inbound.menu:  # a page's button the flow does not know: its title is the page's words (``_process``)
            return None, False
        if current is not None and current.erasure is not None and current.erasure.asked(inbound.text):
            # The erasure phrase alone ("efface mes données"): a command, like a button, which the model reads as a
            # wish to disappear. Any other words make it the young person's message again, read as any other.
            self.metrics.understanding_messages.labels("command").inc()
            return None, False
        found = await self.reader.attempt(inbound.text, rest_late=self.late is not None)
        if isinstance(found, str):
            return None, found in ("busy", "timeout", "loading")
        return found.reading, found.rest

    async def reading(self, inbound: Inbound) -> Reading | Unread | None:
        """The model's reading of ``inbound`` as its processing would get it (:meth:`_read`: off the event loop,
        within the model's timeout; None without a model, or for a button or a command), for a gate that must decide
        before the message is processed (``Gate.new_chat``'s risky override, the flood's). ``UNREAD``: the model was
        busy, late or still loading: a message the gate then lets on is read after the fact as it is processed. No
        late reading follows a refusal: the message is not recorded if it stays refused, so a long message read as
        far as its cut has its windows read now (``Reader.read_late``: once the worker is idle, within its late
        timeout), before the gate decides: a risk beyond the cut opens the conversation as one before it does."""
        reading, later = await self._read(inbound)
        if reading is None:
            return UNREAD if later else None
        if later and self.reader is not None:
            reading = await self.reader.read_late(inbound.text, reading) or reading
        return reading

    async def apply_late(self, late: Late, reading: Reading) -> bool:
        """A late reading of a message that went on with the keywords only, or with its start read: escalate only;
        True when it flagged.

        Only what the model adds counts (a risk the keywords found, or the reading of a long message's start,
        decided when the message came: its windows count only if they raise another interrupt): the flag is kept on
        the message's entry like one read when it came, never over a stronger one (a reload, a listener opening the
        conversation later and the transcript show it), shown to the listeners live (``model`` and its score) and
        kept as the conversation's strongest; waiting, the priority is raised and the risk's partners sent as
        :meth:`_escalate` does; still with the bot, the risk's interrupt hands off at its priority, as it would have
        then (:meth:`_late_handoff`). Never ends, lowers or sends away; a conversation that has ended meanwhile stays
        ended, its young person told where to turn (:meth:`_late_after_end`); an erased or purged one: nothing.
        """
        now = self.clock()
        async with self.store.lock(late.conversation_id):
            conversation = await self.store.get_conversation(late.conversation_id)
            if conversation is None:  # erased (an erasure wins) or purged
                return False
            engine = self.flows.for_version(conversation.flow_version) if conversation.engine else self.flows.engine()
            found = engine.decide(late.text, reading).flag
            if found is None or found.source != "model" or _decided(engine, late, found):
                return False
            flag = self._flag(found)  # None for a topic's interrupt (understanding.topics: a sextortion, no risk)
            derived_from(f"late:{late.entry_id}")  # a late reading applied twice writes the same entries
            stronger = False
            if flag is not None:
                await self.store.flag_entry(conversation.id, late.entry_id, flag)  # the same again: no change
                stronger = flag.replaces(conversation.flag) and flag != conversation.flag  # the queue card's to update
                if flag.replaces(conversation.flag):
                    conversation.flag = flag  # before the queue entry: its priority is written with the flag
                conversation.flagged_at = now
            if conversation.status not in lifecycle.ACTIVE:
                await self._late_after_end(conversation, engine, late, reading, now)
            elif conversation.status == Status.BOT:
                await self._late_handoff(conversation, engine, late, reading, found, now)
            elif conversation.status == Status.QUEUED:
                if await self._escalate(conversation, engine, late.text, reading, now, stronger=stronger):
                    await self._closed_reminder(conversation, engine, now, risky=True)  # where to turn now, last
            else:  # held: its hand-back waits at this priority
                self._raise_held(conversation, engine, late.text, reading)
            if conversation.status in lifecycle.ACTIVE:
                conversation.updated_at = now
            await self.store.save_conversation(conversation)
        if flag is not None:
            await self.store.publish(FlagRaised(conversation.id, late.entry_id, flag))
        await self.store.publish(QueueChanged())
        self._on_outgoing()
        return True

    async def _late_after_end(
        self, conversation: Conversation, engine: Engine, late: Late, reading: Reading, now: datetime
    ) -> None:
        """Ended before its message's reading (the young person said goodbye or "stop" right after it, the bot's part
        ended): never reopened (no status leaves an ended one), but never silent: the young person is told what the
        risk's interrupt says with the line as it is now (``say``, or ``say_closed``, the closed line and its hours
        when its queue is closed), its partners not given yet and, urgent, the emergency numbers, each once in the
        conversation (``interrupts_said``, ``partners_given``) and within the channel's reply window (``emit``:
        else a note for the listeners); the flag is kept on the message and the conversation (a listener opening
        it sees it), counted (``gateway_understanding_late{outcome="ended"}``) and logged (its id, never its text)
        for the supervisors, and listed on their board (``ConversationStore.note_read_late``: before, only the metric
        and the log said it). Until 2026-12-06 it was dropped: nothing said, nobody at the line knew."""
        if self.late is not None:
            self.late.ended()
        log.warning("dispatcher: %s: a risk read late after its conversation ended: the young person told where to "
                    "turn, the conversation flagged", conversation.id)  # fmt: skip
        await self.store.note_read_late(conversation.id, now)  # the supervision board's "Risques lus après la fin"
        # the interrupt as it would have been taken on the message (its queue, open or closed now), the bot's part over
        state = replace(State.from_dict(conversation.engine), finished=False) if conversation.engine else None
        result = engine.interrupt(state, late.text, now=now, reading=reading) if state is not None else None
        queue = result.outcome.queue if result is not None and result.outcome is not None else None
        closed = queue is not None and queue in engine.flow.queues and not engine.is_open(queue, now)
        raised = engine.escalate(conversation.priority.value, late.text, reading, conversation.partners_given,
                                 closed=closed)  # fmt: skip
        if raised is None:
            return
        route = raised.flag.route
        if raised.flag.risk is Risk.NONE and raised.flag.partners and conversation.alert is None:
            conversation.alert = route  # a sextortion going on: at risk (``Conversation.alert``)
        if raised.priority is not None and Priority(raised.priority).rank < conversation.priority.rank:
            conversation.priority = Priority(raised.priority)  # never lowered
        partners = raised.partners
        if conversation.priority == Priority.URGENT:  # nobody is with them: the emergency numbers too
            given = conversation.partners_given + partners
            partners += tuple(p for p in engine.emergency_partners(given) if p not in partners)
        said = raised.say if route not in conversation.interrupts_said else ()
        if not (said or partners):
            return  # each said already: the same reading applied twice says nothing twice
        language = language_of(conversation, engine.flow)
        replies = [Reply(engine.text(words, language)) for words in said]
        if said:
            conversation.interrupts_said += (route,)
        if said and state is not None and closed and queue is not None:
            told, notice = engine.closed_notice(state, queue, now, risky=True)
            conversation.engine = {**conversation.engine, **replace(told, finished=True).to_dict()}
            replies.extend(notice)
        conversation.partners_given += partners
        await self.emit(conversation, replies + engine.partner_replies(partners, language), Author.BOT, now)

    async def _late_handoff(
        self, conversation: Conversation, engine: Engine, late: Late, reading: Reading, found: Flag, now: datetime
    ) -> None:
        """Still with the bot: the risk's interrupt, taken between two questions (``Engine.interrupt`` is a pure
        function of the state) as it would have been taken on the message: a hand-off at the risk's priority.

        When it would not hand off (its queue closed: that outcome ends the conversation), the bot goes on, having
        said what the interrupt says on the message with the line closed: its words (``say_closed``), the closed
        line (where to turn now: its reminder when told just before) and the partners; each once in the
        conversation, recorded as the hand-off's are (``interrupts_said``, ``partners_given``, the ``alert`` of a
        sextortion), its priority kept (never lowered) for a later hand-off. Until 2026-12-06 a sextortion read late
        at night got Pharos only: no "ne paie pas", no closed line, no alert, and Pharos again at a later hand-off."""
        state = State.from_dict(conversation.engine) if conversation.engine else None
        result = engine.interrupt(state, late.text, now=now, reading=reading) if state is not None else None
        if result is not None and result.outcome is not None and result.outcome.kind == "handoff":
            await self._after_bot(conversation, engine, result, now)
            return
        language = language_of(conversation, engine.flow)
        queue = result.outcome.queue if result is not None and result.outcome is not None else None
        raised = engine.escalate(conversation.priority.value, late.text, reading, conversation.partners_given,
                                 closed=queue is not None)  # fmt: skip
        if raised is None:  # the engine's decision is the flag's: not reached
            return
        route = raised.flag.route
        if raised.flag.risk is Risk.NONE and raised.flag.partners and conversation.alert is None:
            conversation.alert = route  # a sextortion going on: at risk (``Conversation.alert``)
        if raised.priority is not None:
            conversation.priority = Priority(raised.priority)  # kept for a later hand-off (``_conclude``)
        if state is not None and raised.store:  # the card's topic at the hand-off, its question not asked
            state = engine.noted_by(state, raised.store)
            conversation.engine = {**conversation.engine, **state.to_dict()}
        said = raised.say if route not in conversation.interrupts_said else ()
        if not (said or raised.partners):
            return  # each said already: a blackmail told twice is not answered twice
        replies = [Reply(engine.text(words, language)) for words in said]
        if said:
            conversation.interrupts_said += (route,)
        if state is not None and queue is not None and queue in engine.flow.queues:
            told, notice = engine.closed_notice(state, queue, now, risky=True)
            conversation.engine = {**conversation.engine, **told.to_dict()}  # when it was told: not again at once
            replies.extend(notice)
        conversation.partners_given += raised.partners
        await self.emit(conversation, replies + engine.partner_replies(raised.partners, language), Author.BOT, now)

    async def _process(
        self, conversation: Conversation, inbound: Inbound, now: datetime, done: DoneMark, reading: Reading | None
    ) -> bool:
        """Record and answer one message; True when it confirmed an erasure (done by the caller, after the lock)."""
        conversation.last_inbound_at = written_at(conversation, inbound, now)
        # on a thread another app owns (``standby``) the queue's timed messages hold back (``Timers``); its own again
        conversation.standby_at = now if inbound.standby else None
        conversation.updated_at = now
        card, closed_told, left = conversation.summary, conversation.closed_told_at, conversation.left_how
        engine = self.flows.for_version(conversation.flow_version) if conversation.engine else self.flows.engine()
        risks = self.flows.engine()  # the risks are read as flows.yaml says now: a phrase ops just added counts
        spoken = language_of(conversation, engine.flow)
        # Messenger's Get Started, Telegram's /start, or a page's button the flow does not know: no words of the young
        # person's (its title is Meta's "Commencer" or the page's "Aide"), no answer; until 2026-12-05 (Telegram's
        # /start in the queue or with a listener: 2026-12-05) they were (``_restarted``). A risk read in /start's
        # parameter makes it the young person's message: words of danger are never set aside
        started = inbound.restart and risks.decide(inbound.text, reading).flag is None
        restarted = started or (inbound.menu and not engine.pressed("", inbound.payload))
        if restarted:
            inbound = replace(inbound, text="")
        found = risks.decide(inbound.text, reading).flag
        joined = _joined(risks, conversation, inbound.text) if found is None else None
        flag = self._flag(risks.decide(joined).flag if joined is not None else found)
        entry = TranscriptEntry(
            id=inbound_entry_id(inbound), conversation_id=conversation.id, at=now, author=Author.USER,
            text=inbound.text, attachments=inbound.attachments, delivery=Delivery.DELIVERED, flag=flag,
        )  # fmt: skip
        if not (inbound.opening or restarted):  # a chat opened without words (a Messenger referral) is nobody's
            await self.store.append_transcript(entry)
            await self.store.publish(EntryAdded(conversation.id, entry))
        lifts = conversation.channel != ChannelName.WHATSAPP or inbound.opted_in
        if conversation.left_how == "blocked" and lifts and not written_before_the_block(conversation, inbound):
            # Writing again means unblocked (gateway/leaving.py); on WhatsApp an opted-out person can still write,
            # and Twilio refuses our replies until they send START: lifted in its own turn, so that what answers it
            # is sent (until 2026-12-06 its departure, after it, lifted the mark: the answer was "not sent")
            conversation.left_at, conversation.left_how = None, None
            await self.system_note(conversation, "left.unblocked", now, channel=conversation.channel.value)
        if inbound.opted_in or inbound.opted_out:
            await self._opted(conversation, inbound, now)
        stronger = flag is not None and flag.replaces(conversation.flag) and flag != conversation.flag
        if flag is not None:
            conversation.flagged_at = now  # the supervision board's order: the latest flag first
            if flag.replaces(conversation.flag):
                conversation.flag = flag  # the strongest so far, for the queue card
        # an edit or a forward (someone else's words) is never a command nor an answer to the erasure question; nor is
        # a message on a thread another app owns (``standby``): the bot does not answer there
        answers = not (inbound.edited or inbound.forwarded or inbound.opening or restarted or inbound.standby)
        erasure = await self._erasure_turn(conversation, engine, inbound, flag, now) if answers else None
        if erasure is not None:
            _remember(engine, conversation, inbound, quiet=found is None and joined is None)
            if erasure and self.eraser is not None:  # listed in the message's commit: finished even if we die now
                await self.store.begin_erasure(conversation.id, done.key)
            await self.store.save_conversation(conversation, done=done)
            return erasure
        # another app's thread (a page admin, Meta's AI): no question over it; the listeners take a risk read there
        if conversation.status == Status.BOT and inbound.standby and (flag is not None or found is not None):
            await self._handed_over(conversation, now)  # then escalated below, as in any wait
        if conversation.status == Status.BOT:
            if inbound.standby:  # recorded only: the thread is answered outside the gateway (``Inbound.standby``); the
                # bot does not speak there: no reminder of its question, no "no news" while they write; the idle close
                # as in a wait (its goodbye says where to turn)
                await self.store.cancel_timers(conversation.id, TimerKind.BOT_REMINDER)
                await self.store.cancel_timers(conversation.id, TimerKind.BOT_ABANDON)
                await self.store.set_timer(
                    conversation.id, TimerKind.IDLE_CLOSE, self.idle_close_at(conversation, engine, now)
                )
            elif flag is not None or answers:  # an edit or a forward is answered only for a risk it reads (the
                await self._bot_turn(conversation, inbound, now, reading, joined)  # interrupt): never as an answer
            elif not conversation.engine:  # a forward opening the chat: the welcome and the first question, its
                await self._bot_turn(conversation, replace(inbound, text=""), now, None)  # words read as no answer
            elif restarted:
                await self._restarted(conversation, engine, inbound, now)
        elif conversation.status in (Status.QUEUED, Status.WITH_LISTENER):
            await self.store.set_timer(
                conversation.id, TimerKind.IDLE_CLOSE, self.idle_close_at(conversation, engine, now)
            )
            text, read = (joined, None) if joined is not None else (inbound.text, reading)
            if conversation.status == Status.QUEUED:
                await self._escalate(conversation, risks, text, read, now, stronger=stronger)
                if answers and not inbound.opted_out:  # after the risk's own words: the numbers that answer now in
                    await self._closed_reminder(conversation, engine, now)  # sight (an opt-out: Twilio refuses it)
            elif flag is not None or found is not None:  # held: the bot says nothing, but a hand-back waits at
                self._raise_held(conversation, risks, text, read)  # this priority (_requeue): a risk, a sextortion
            if restarted:
                await self._restarted(conversation, engine, inbound, now)
        if not restarted:  # the last words kept for the next message stay theirs
            _remember(engine, conversation, inbound, quiet=found is None and joined is None)
        await self.store.save_conversation(conversation, done=done)
        if flag is not None:
            await self.store.publish(FlagRaised(conversation.id, entry.id, flag))
        # a STOP or a START (``left_how``): its card says whether anything can reach them
        changed = conversation.closed_told_at != closed_told or conversation.left_how != left
        if flag is not None or conversation.summary != card or changed:
            await self.store.publish(QueueChanged())  # a card's alert too (``Engine.alerted``), its closed line
        if (language := language_of(conversation, engine.flow)) != spoken:  # the page's own texts follow it
            await self.store.publish(LanguageChanged(conversation.id, language))
        return False

    async def _opted(self, conversation: Conversation, inbound: Inbound, now: datetime) -> None:
        """A WhatsApp STOP or START, dated when sent (``sent_at``: Twilio's ``date_sent`` when caught up, or when its
        webhook took it, ``Inbox.accept``; else ``now``). Twilio's rule, the last of the two they sent wins, whatever
        order they are taken in: a START's date is kept (``unblocked_at``, :func:`unblocked_since`); a STOP marks in
        its own turn (nothing it says is sent, ``emit``; its departure after it is then a no-op) unless a START dated
        after it came first, and while marked moves the mark's date on (a START between is older: it lifts nothing).
        Until 2026-12-06 a STOP taken late from the inbox marked dated when taken, after a START caught up from
        Twilio's list had lifted it: that START, dated before, then lifted nothing, every reply "not sent" until their
        next START."""
        at = min(inbound.sent_at or now, now)
        if inbound.opted_in:
            conversation.unblocked_at = max(at, conversation.unblocked_at or at)
        elif conversation.left_how == "blocked":
            conversation.left_at = max(at, conversation.left_at or at)
        elif not unblocked_since(conversation, at):
            conversation.left_at, conversation.left_how = at, "blocked"
            await self.system_note(conversation, "left.blocked", now, channel=conversation.channel.value)

    async def _closed_reminder(
        self, conversation: Conversation, engine: Engine, now: datetime, *, risky: bool = False
    ) -> None:
        """A message written while waiting in a queue closed now: where to turn now. The closed line in full when
        this wait was not told it yet (the timer's notice not due yet), else its short reminder
        ``closed_line_again`` (the whole closed line in a flow without it), at most once every
        ``timers.closed_reminder_minutes`` (a young person writing every minute, or a troll under the gate's
        limits, is not answered each time); by day nothing (the listeners answer). Told, the timer does not repeat
        it and the morning's first message still says the chat reopened (``closed_notice_for``). Until 2026-12-06
        "allo ?", "y a quelqu'un ?" written at 23:40, 00:30, 02:00 got no answer at all after the timer's one
        notice at 23:01, unless a risk was read.

        ``risky``: after a risk's words read late (:meth:`apply_late`), told whatever the pace, as the bot's late
        interrupt tells it (``Engine.closed_notice``): the message's own turn said it before its risk was read, and
        the young person's last words from the line would be a reporting site's; until 2026-12-06 they were."""
        queue = conversation.queue
        if queue is None:
            return
        engine = self.flows.knowing(conversation.flow_version, lambda e: queue in e.flow.queues) or engine  # reloaded
        if queue not in engine.flow.queues or engine.is_open(queue, now):
            return
        told, last = closed_line_told(conversation), conversation.closed_told_at
        pace = timedelta(minutes=engine.flow.timers.closed_reminder_minutes)
        if told and last is not None and now - last < pace and not risky:
            return
        again = told and "closed_line_again" in engine.flow.messages
        text = engine.closed_line(queue, language_of(conversation, engine.flow), now,
                                  "closed_line_again" if again else "closed_line")  # fmt: skip
        conversation.closed_notice_for = conversation.queued_at  # the timer does not repeat it
        conversation.closed_told_at = now
        await self.emit(conversation, [Reply(text)], Author.BOT, now)

    async def _restarted(self, conversation: Conversation, engine: Engine, inbound: Inbound, now: datetime) -> None:
        """The thread opened again with the platform's button (Messenger's Get Started, shown again to a young person
        who deleted the thread to hide it; a page's menu item the flow does not know), nothing written: as Telegram's
        ``/start`` (``Engine.step``), the bot's waiting question again, no retry used; waiting, their place in line
        again (their thread no longer shows it), or at night the closed line (once in the wait, then its reminder
        ``closed_line_again``), and in the morning first that the chat reopened; the listeners told, waiting or held
        (the bot says nothing then)."""
        if conversation.status == Status.BOT:
            state = State.from_dict(conversation.engine)
            asked = engine.current_question(state)
            if not asked:  # a reloaded flow dropped the step it waits at: the engine decides, as for any message
                await self._bot_turn(conversation, inbound, now, None)
                return
            await self._after_bot(conversation, engine, StepResult(state, asked), now)
            return
        await self.system_note(conversation, "restarted", now, channel=conversation.channel.value)
        if conversation.status != Status.QUEUED or conversation.queue is None:
            return
        queue, language = conversation.queue, language_of(conversation, engine.flow)
        engine = self.flows.knowing(conversation.flow_version, lambda e: queue in e.flow.queues) or engine  # reloaded
        if queue in engine.flow.queues and not engine.is_open(queue, now):
            # told once in the wait (the timer's notice), then its short reminder, as at the bot's hand-off
            again = closed_line_told(conversation) and "closed_line_again" in engine.flow.messages
            told = engine.closed_line(queue, language, now, "closed_line_again" if again else "closed_line")
            conversation.closed_notice_for = conversation.queued_at  # the timer does not repeat it
            conversation.closed_told_at = now
        else:  # the first words after a night told it was closed say it reopened, as the timer's (then the usual)
            reopened, conversation.closed_notice_for = closed_line_told(conversation), None
            position = await self.store.position(conversation.id) or 1
            if self.listeners_online() > 0:
                key = "reopened" if reopened else "reassurance"
            else:
                key = "reopened_offline" if reopened else "queued_offline"
            told = engine.message(key, language, position=position)
        await self.emit(conversation, [Reply(told)], Author.BOT, now)

    async def _erasure_turn(
        self, conversation: Conversation, engine: Engine, inbound: Inbound, flag: RiskFlag | None, now: datetime
    ) -> bool | None:
        """The erasure phrase (flows.yaml ``erasure``), alone in a message, asks for confirmation; the next message
        confirms it (True) or cancels it (False: told so). None: the message goes on as usual, as does a message
        in which a risk was read, even when it cancels a pending question (words of danger are never set aside).
        """
        words, spec = engine.erasure, engine.flow.erasure
        if words is None or spec is None:
            return None
        asked, conversation.erase_asked_at = conversation.erase_asked_at, None
        language = language_of(conversation, engine.flow)
        if asked is not None and now - asked <= timedelta(minutes=ERASURE_QUESTION_MINUTES):
            if flag is None and (inbound.payload == "erase_yes" or words.confirmed(inbound.text)):
                return True
            await self.emit(conversation, [Reply(engine.text(spec.cancelled, language))], Author.BOT, now)
            return False if flag is None else None
        if flag is not None or not words.asked(inbound.text, engine.canonical(inbound.text)):
            return None
        conversation.erase_asked_at = now
        choices = (Choice("erase_yes", engine.message("offer_yes", language)),
                   Choice("erase_no", engine.message("offer_no", language)))  # fmt: skip
        await self.emit(conversation, [Reply(engine.text(spec.confirm, language), choices)], Author.BOT, now)
        return False

    def _flag(self, found: Flag | None) -> RiskFlag | None:
        """A risk the keywords or the model found (flows.yaml's thresholds), as the listeners see it."""
        if found is None or found.risk is Risk.NONE:  # e.g. "talk to a human": no risk
            return None
        self.metrics.understanding_flags.labels(found.risk.value, found.source).inc()
        words = (found.words,) if found.words else ()
        return RiskFlag(found.risk.value, round(found.score, 4), found.source, words)

    async def _escalate(
        self,
        conversation: Conversation,
        engine: Engine,
        text: str,
        reading: Reading | None,
        now: datetime,
        *,
        stronger: bool = False,
    ) -> bool:
        """While waiting: a risk raises the priority (never lowers it) and brings its partners' numbers, each once
        in the conversation (``Conversation.partners_given``), even at an unchanged priority; raised to urgent, the
        emergency numbers come too, as with an urgent hand-off. A ``stronger`` flag than the conversation had (just
        set on it, another than the one it had) that raises no priority, already as high, is still written on its
        queue entry: the queue's card shows the strongest risk, whatever raised the priority. That write expects the
        entry waiting (``holder=None``), as :meth:`raise_priority`'s does (since 2026-12-08: until then it replaced
        whoever held it, and a Redis step landing after its lock lapsed left the entry of a listener who took the young
        person meanwhile waiting beside their record; ``tests/test_waiting_late_enqueue.py``).

        The deciding interrupt's first words (its ``say``: the advice it carries), when it refers and they were never
        said in the conversation (``Conversation.interrupts_said``: at the hand-off or while waiting), come before
        the numbers, as the bot says them; its ``store`` shows on the card beside the young person's own answer
        (``Engine.alerted``). Until 2026-12-05 a sextortion written while waiting after "cyberharcèlement" brought
        Pharos only, never "ne paie pas, ne supprime pas les messages", and the card said nothing of it. True when it
        said something."""
        given, queue = conversation.partners_given, conversation.queue
        closed = queue is not None and queue in engine.flow.queues and not engine.is_open(queue, now)  # say_closed
        raised = engine.escalate(conversation.priority.value, text, reading, given, closed)
        if raised is None:
            return False
        if raised.flag.risk is Risk.NONE and raised.flag.partners and conversation.alert is None:
            conversation.alert = raised.flag.route  # a sextortion going on: at risk (``Conversation.alert``)
        higher = raised.priority is not None and await self.raise_priority(conversation, Priority(raised.priority), now)
        conversation.summary = engine.alerted(conversation.summary, raised.store)  # the caller tells the consoles
        if not higher and stronger and conversation.queue is not None:  # the same priority and arrival, the new flag
            at = conversation.queued_at or now
            await self.store.enqueue(conversation.id, conversation.queue, conversation.priority, at,
                                     flag=conversation.flag, holder=None)  # fmt: skip
        partners = raised.partners
        if higher and conversation.priority == Priority.URGENT:  # as an urgent hand-off: the emergency numbers too
            partners += tuple(p for p in engine.emergency_partners(given + partners) if p not in partners)
        route = raised.flag.route
        said = raised.say if route not in conversation.interrupts_said else ()
        if not (partners or said):
            return False  # each given already: a message repeated in a loop changes nothing
        conversation.partners_given = given + partners
        if said:
            conversation.interrupts_said += (route,)
        language = language_of(conversation, engine.flow)
        replies = [Reply(engine.text(words, language)) for words in said]
        await self.emit(conversation, replies + engine.partner_replies(partners, language), Author.BOT, now)
        return True

    @staticmethod
    def _raise_held(conversation: Conversation, risks: Engine, text: str, reading: Reading | None) -> None:
        """A risk read while a listener holds the conversation: its record's priority raised (never lowered) as a
        message read while waiting raises it, nothing said (the listener answers), so that a hand-back (the listener's,
        a logout's, or the gateway's when they left their console: ``Actions._requeue``) puts the young person back in
        line at that priority, not at their arrival's. Until 2026-12-05 "je veux mourir" written to a listener who had
        closed their laptop went back to the queue at "normal", behind every young person waiting at "high".

        The partners the risk calls for and not given yet (and, raised to urgent, the emergency numbers) are kept as
        owed (``Conversation.partners_owed``): given by :meth:`owed` when it goes back to a queue, as a message read
        while waiting gives them. Until 2026-12-05 a young person handed back after "je veux mourir" was told their
        place only, never 3114.

        An interrupt without a risk class counts the same when it refers a partner (a sextortion going on: Pharos, at
        "high"), and its ``store`` shows on the card beside the young person's own answer (``Engine.alerted``; the
        caller tells the consoles); its words (``say``) are not kept for after a hand-back: the listener had the
        conversation. One that refers nobody ("human": they are with a human already) raises nothing. Until
        2026-12-05 a sextortion written to a listener went back to the queue at "normal", without Pharos, the card
        saying nothing of it."""
        given = conversation.partners_given + conversation.partners_owed
        raised = risks.escalate(conversation.priority.value, text, reading, given)
        if raised is None or (raised.flag.risk is Risk.NONE and not raised.flag.partners):
            return
        if raised.flag.risk is Risk.NONE and conversation.alert is None:
            conversation.alert = raised.flag.route  # a sextortion going on: at risk (``Conversation.alert``)
        conversation.summary = risks.alerted(conversation.summary, raised.store)
        partners = raised.partners
        if raised.priority is not None:
            conversation.priority = Priority(raised.priority)
            if conversation.priority == Priority.URGENT:  # as an urgent hand-off: the emergency numbers too
                partners += tuple(p for p in risks.emergency_partners(given + partners) if p not in partners)
        conversation.partners_owed += partners

    def owed(self, conversation: Conversation) -> list[Reply]:
        """The partners' messages a risk read while held called for (:meth:`_raise_held`) and not given since (a
        listener's "Orienter" gives one), for a conversation going back to a queue (a hand-back, a transfer): each
        once in the conversation, recorded as given. A partner no version of the flow knows any more is left out."""
        owed = tuple(p for p in conversation.partners_owed if p not in conversation.partners_given)
        conversation.partners_owed = ()
        engine = self.flows.knowing(conversation.flow_version, lambda e: all(p in e.flow.partners for p in owed))
        if engine is None:
            engine = self.flows.engine()
            owed = tuple(p for p in owed if p in engine.flow.partners)
        conversation.partners_given += owed
        return engine.partner_replies(owed, language_of(conversation, engine.flow))

    async def _bot_turn(
        self,
        conversation: Conversation,
        inbound: Inbound,
        now: datetime,
        reading: Reading | None,
        joined: str | None = None,
    ) -> None:
        """The bot's answer; ``joined``: the previous message's words and this one, which read a risk together (its
        interrupt hands off, as on one message)."""
        if joined is not None and conversation.engine:
            # the current flow's phrases first (they found the risk: one ops just added), then the pinned version's
            for engine in dict.fromkeys((self.flows.engine(), self.flows.for_version(conversation.flow_version))):
                result = engine.interrupt(State.from_dict(conversation.engine), joined, now=now)
                if result is not None:
                    await self._after_bot(conversation, engine, result, now)
                    return
        if not conversation.engine:
            engine = self.flows.engine()
            channel, hint = inbound.channel.value, inbound.language_hint
            result = engine.start(channel=channel, now=now, language_hint=hint, text=inbound.text, reading=reading)
        else:
            engine, current = self.flows.for_version(conversation.flow_version), self.flows.engine()
            state = State.from_dict(conversation.engine)
            # begun on an earlier version: the current flow's interrupt phrases first (one ops just added), then the
            # conversation's own version (its steps, and the model's reading as it does: a button typed is not read)
            found = current.interrupt(state, inbound.text, now=now) if current is not engine else None
            if found is not None:
                engine, result = current, found
            else:
                result = engine.step(state, inbound.text, now=now, payload=inbound.payload, reading=reading,
                                     media=bool(inbound.attachments))  # fmt: skip
        await self._after_bot(conversation, engine, result, now)

    async def _after_bot(self, conversation: Conversation, engine: Engine, result: StepResult, now: datetime) -> None:
        conversation.engine = result.state.to_dict()
        conversation.flow_version = result.state.flow_version
        await self.emit(conversation, _unsaid(conversation, engine, result), Author.BOT, now)
        if result.outcome is not None:
            await self.store.cancel_timers(conversation.id)
            await self._conclude(conversation, engine, result.outcome, now)
        else:
            reminder = timedelta(minutes=engine.flow.timers.bot_reminder_minutes)
            await self.store.set_timer(conversation.id, TimerKind.BOT_REMINDER, now + reminder)

    # ----- outcomes ---------------------------------------------------------------------------------------

    def _noted(self, conversation: Conversation, outcome: Outcome) -> None:
        """The bot's outcome on the record (the card's summary, the route, an alert a hand-off carries though no flag
        records it) and in the outcomes metric: at the end of its questions, or cut short by a human
        (``_handed_over``)."""
        conversation.summary = [(label, value) for label, value in outcome.summary]
        conversation.route = outcome.route
        if outcome.kind == "handoff" and conversation.alert is None:  # at risk though no flag records it
            conversation.alert = _alert(outcome)
        self.metrics.outcomes.labels(outcome.kind, outcome.queue or "", outcome.priority or "").inc()

    async def _conclude(self, conversation: Conversation, engine: Engine, outcome: Outcome, now: datetime) -> None:
        self._noted(conversation, outcome)
        # an interrupt said before (read late while the bot asked): its answers beside the young person's on the card,
        # as the inline interrupt's hand-off shows them (``Engine.alerted``; nothing when the card says it already)
        said = tuple((name, value, by) for by in conversation.interrupts_said if by in engine.flow.interrupts
                     for name, value in engine.flow.interrupts[by].store.items())  # fmt: skip
        if said:
            conversation.summary = engine.alerted(conversation.summary, said)
        if outcome.flag is not None and outcome.route not in conversation.interrupts_said:  # its words said with it
            conversation.interrupts_said += (outcome.route,)
        if outcome.kind == "handoff" and outcome.queue:
            priority = Priority(outcome.priority or "normal")
            if conversation.priority.rank < priority.rank:  # a risk read late while the bot went on: never lower
                priority = conversation.priority
            # with the bot, no entry is held: one a listener holds (a step landing after its lock lapsed, the same
            # hand-off made on another instance meanwhile and taken) is left to them, Conflict (since 2026-12-08)
            await self.enqueue(conversation, engine, outcome.queue, priority, now, given=outcome.partners, holder=None)
            return
        await self.transition(conversation, Trigger.REFER if outcome.kind == "referred" else Trigger.END, now)

    async def enqueue(
        self,
        conversation: Conversation,
        engine: Engine,
        queue: str,
        priority: Priority,
        now: datetime,
        given: tuple[str, ...] = (),
        *,
        at: datetime | None = None,
        unless_leaving: bool = False,
        holder: str | Anyone | None = ANYONE,
    ) -> None:
        """Put the conversation in a queue and tell the young person their position and an honest wait: that
        nobody can say when while no listener is online; a queue closed now (a listener's transfer after hours)
        gives the closed-line notice instead (when it reopens, who answers now), once for this wait; an urgent one
        also gets the emergency numbers, unless the partners ``given`` with this hand-off already included them.
        ``at``: the arrival time of its entry, ``now`` unless given (a transfer completed after a cut: the entry's
        own, its place kept). ``unless_leaving`` (a listener's transfer): Conflict, nothing moved, when the
        conversation's ending is listed as begun (``store.begin_leaving``; read by the queue step's script).
        ``holder`` (a listener's transfer, since 2026-12-08): the listener expected to hold its entry (None: none),
        another's refused, Conflict, nothing moved (``store.enqueue``). The bot's hand-off (:meth:`_conclude`, a late
        reading's too) expects none (since 2026-12-08: until then ``ANYONE``, and its Redis step landing after its lock
        and its message's claim lapsed, the redelivery handed off on another instance and Bob took the young person,
        left Bob's entry waiting beside his record, a message's step never undone; the next alert check handed Bob's
        young person back; ``tests/test_handoff_late_enqueue.py``)."""
        trigger = Trigger.HANDOFF if conversation.status == Status.BOT else Trigger.TRANSFER
        if conversation.status != Status.QUEUED:  # a hand-off, a held one transferred: without a human from now
            conversation.waiting_since = at or now
        elif conversation.waiting_since is None:  # a waiting one transferred, queued before the field: its arrival
            conversation.waiting_since = conversation.queued_at
        conversation.queue, conversation.priority = queue, priority
        conversation.queued_at = at = at or now
        conversation.listener = None
        await self.store.enqueue(conversation.id, queue, priority, at, flag=conversation.flag,
                                 unless_leaving=unless_leaving, holder=holder)  # fmt: skip
        await self.transition(conversation, trigger, now)
        position = await self.store.position(conversation.id) or 1
        language = language_of(conversation, engine.flow)
        if queue in engine.flow.queues and not engine.is_open(queue, now):  # a transfer after hours: no promise
            queued = engine.closed_line(queue, language, now)
            conversation.closed_notice_for = conversation.queued_at  # told for this wait: the timer does not repeat it
            conversation.closed_told_at = now
        elif self.listeners_online() > 0:  # a wait past the line's closing time is not promised (22:55: "12 minutes")
            wait = await self.estimate_wait(engine, queue, position, now)
            closing = engine.closing(queue, language, now, position, timedelta(minutes=wait))
            queued = closing or engine.message("queued", language, position=position, wait=wait)
        else:
            queued = engine.message("queued_offline", language, position=position)
        replies = [Reply(queued)]
        if priority == Priority.URGENT:
            replies.extend(engine.emergency_replies(language, given))
            given += engine.emergency_partners(given)
        conversation.partners_given += tuple(p for p in dict.fromkeys(given) if p not in conversation.partners_given)
        replies.extend(self.owed(conversation))  # a transfer of a conversation held when a risk was read
        await self.emit(conversation, replies, Author.BOT, now)
        minutes = engine.flow.timers.queue_reassurance_minutes
        await self.store.set_timer(conversation.id, TimerKind.QUEUE_REASSURE, now + timedelta(minutes=minutes))
        await self.store.set_timer(conversation.id, TimerKind.IDLE_CLOSE, self.idle_close_at(conversation, engine, now))
        await self.store.publish(QueueChanged())

    def idle_close_at(self, conversation: Conversation, engine: Engine, now: datetime) -> datetime:
        """When a conversation quiet from ``now`` on is closed (flows.yaml ``idle_close_hours``), but on a channel whose
        reply window for the bot closes first or at the same time (Messenger, WhatsApp: 24 h after the young person's
        last message, as long as the default ``idle_close_hours``) :data:`IDLE_CLOSE_BEFORE_WINDOW` before it, so that
        its goodbye (where to turn now: 119, 3114, 17/112) still reaches them. Until 2026-12-05 it fired as the window
        closed: the goodbye was only a "not sent" entry, and a young person waiting since the day before left the
        queue without a word. The window counts from when they wrote (``last_inbound_at``, :func:`written_at`): a
        message taken late (Meta redelivering after an outage, the WhatsApp catch-up) whose window closes within that
        margin has its goodbye :data:`IDLE_CLOSE_LAST_SEND` before the window closes (at once when less is left), while
        it still reaches them, and the listeners have the minutes left: its words, read now, never end the conversation
        at once (until 2026-12-06 the window counted from when the message was taken, and the goodbye was planned after
        the platform's window had closed: refused; that afternoon, due at once: a young person just handed off was
        closed by the next timer pass, seconds after their words arrived, before any listener could see them). A window
        closed already changes nothing."""
        due = now + timedelta(hours=engine.flow.timers.idle_close_hours)
        window = self.reply_window(conversation, Author.BOT)
        if window is None or conversation.last_inbound_at is None or conversation.last_inbound_at + window <= now:
            return due
        closes = conversation.last_inbound_at + window
        last_word = closes - IDLE_CLOSE_BEFORE_WINDOW
        if last_word <= now:  # taken late, in the margin: the last minutes its goodbye still reaches them
            last_word = max(closes - IDLE_CLOSE_LAST_SEND, now)
        return min(due, last_word)

    async def raise_priority(self, conversation: Conversation, priority: Priority, now: datetime) -> bool:
        """Raise a waiting conversation's priority: up only, once per level, its one queue entry re-ranked in place
        (arrival kept), written with the conversation's flag (set it first: the queue's card shows the two together,
        :meth:`QueueStore.enqueue`). A danger phrase repeated a thousand times while waiting changes nothing after
        the first. True when it changed; the caller saves the conversation. The entry is expected waiting
        (``holder=None``: the record says queued): one a listener holds is left to them, Conflict, nothing changed, the
        message released for its retry (since 2026-12-08: until then it replaced whoever held it, and a Redis step
        landing after its lock lapsed, its instance stalled while Bob took the young person, left Bob's entry waiting
        beside his record, a message's step being never undone; the next alert check handed Bob's young person back;
        ``tests/test_waiting_late_enqueue.py``)."""
        waiting = conversation.status == Status.QUEUED and conversation.queue
        if not waiting or priority.rank >= conversation.priority.rank:
            return False
        assert conversation.queue is not None
        conversation.priority = priority
        at = conversation.queued_at or now
        await self.store.enqueue(conversation.id, conversation.queue, priority, at, flag=conversation.flag,
                                 holder=None)  # fmt: skip
        await self.store.publish(QueueChanged())
        return True

    async def estimate_wait(self, engine: Engine, queue: str, position: int, now: datetime) -> int:
        """Minutes until a listener answers, as honest as the figures allow.

        When listeners took at least PACE_MIN_TAKES conversations from this queue in the last hour, the pace they
        keep now: ``position ÷ takes per minute``. Otherwise the flow's figure: ``position × average_minutes ÷
        listeners online`` (at least one).
        """
        takes = await self.store.takes_since(queue, now - timedelta(hours=1))
        if takes >= PACE_MIN_TAKES:
            return max(1, math.ceil(position * 60 / takes))
        average = engine.flow.queues[queue].average_minutes if queue in engine.flow.queues else 15
        return max(1, math.ceil(position * average / max(1, self._listeners_online())))

    def kick_outbox(self) -> None:
        """Wake the outbox worker: an item was put outside a message's processing."""
        self._on_outgoing()

    def listeners_online(self) -> int:
        """Listeners with the console open now (supervisors only watching the board are not counted)."""
        return self._listeners_online()

    async def set_language(self, conversation_id: str, language: str) -> bool:
        """The young person chose another language (the web chat's switch): the bot speaks it from the next
        message on. Only a language of the conversation's flow; False when it is not one, or nothing to change."""
        async with self.store.lock(conversation_id):
            conversation = await self.store.get_conversation(conversation_id)
            if conversation is None or not conversation.active or not conversation.engine:
                return False
            engine = self.flows.for_version(conversation.flow_version)
            if language not in engine.flow.languages or language_of(conversation, engine.flow) == language:
                return False
            chosen = {k: v for k, v in conversation.engine.items() if k != "unsure"}  # no longer read from words
            conversation.engine = {**chosen, "language": language}
            await self.store.save_conversation(conversation)
            await self.store.publish(LanguageChanged(conversation.id, language))
            return True

    async def transition(self, conversation: Conversation, trigger: Trigger, now: datetime) -> Status:
        """Move the conversation (``lifecycle.transition``: IllegalTransition, and nothing changed, when the move
        is not allowed) with the effects of entering its new status."""
        days = self.flows.for_version(conversation.flow_version).flow.retention.closed_days
        ttl = days * 24 * 3600 + self._backstop
        return await lifecycle.transition(conversation, trigger, StatusEffects(self.store, now, ttl))

    # ----- outgoing ---------------------------------------------------------------------------------------

    async def emit(
        self, conversation: Conversation, replies: Sequence[Reply], author: Author, now: datetime
    ) -> list[TranscriptEntry]:
        """Record replies in the transcript, hand them to the outbox (web chat: to its socket) and publish.

        A reply the channel would refuse (its reply window for ``author`` has closed; on WhatsApp, the young person
        unsubscribed: STOP, Twilio refuses everything until START, 21610) is not sent: a system entry saying so takes
        its place, for the listeners. Until 2026-12-06 a reply after a STOP was sent, and refused.

        Escalate, never silence: the replies of a turn in which a risk was read (the conversation flagged ``now``: a
        message's interrupt, its partners' and emergency numbers, a late reading's) are due ``URGENT_AHEAD`` before
        they were written, so that the outbox sends them (with their conversation's earlier replies waiting, the
        store moves them ahead with them: ``OutboxStore.outbox_put``) before a backlog of ordinary replies.
        """
        urgent = conversation.flagged_at == now
        entries = []
        for reply in replies:
            if unsubscribed(conversation):
                entries.append(await self._not_sent_unsubscribed(conversation, reply, author, now))
                continue
            window = self.closed_window(conversation, author, now)
            if window is not None:
                entries.append(await self._not_sent(conversation, reply, author, window, now))
                continue
            entry = TranscriptEntry(
                id=new_id(), conversation_id=conversation.id, at=now, author=author,
                text=reply.text, choices=reply.choices,
                delivery=Delivery.SENT if conversation.channel == ChannelName.WEBCHAT else Delivery.PENDING,
            )  # fmt: skip
            await self.store.append_transcript(entry)
            if conversation.channel != ChannelName.WEBCHAT:
                await self.store.outbox_put(outbox_item(conversation, entry, now, urgent=urgent))
            await self.store.publish(EntryAdded(conversation.id, entry))
            entries.append(entry)
        if entries and conversation.channel != ChannelName.WEBCHAT:
            self._on_outgoing()
        return entries

    def reply_window(self, conversation: Conversation, author: Author) -> timedelta | None:
        """How long after the young person's last message the channel lets ``author`` write; None when it has no
        such rule (web chat, Telegram) or the young person never wrote. The one place this rule is read."""
        window = self._reply_windows.get(conversation.channel)
        if window is None or conversation.last_inbound_at is None:
            return None
        return window(author.value)

    def closed_window(self, conversation: Conversation, author: Author, now: datetime) -> timedelta | None:
        """The channel's reply window for ``author`` if it has closed, else None."""
        limit = self.reply_window(conversation, author)
        if limit is None or conversation.last_inbound_at is None:
            return None
        return limit if now - conversation.last_inbound_at > limit else None

    async def system_note(
        self, conversation: Conversation, code: str, now: datetime, *, entry_id: str | None = None, **params: str
    ) -> TranscriptEntry:
        """A transcript entry for the listeners only (the channel never gets it), published to the console: its
        ``code`` and ``params`` (``gateway/system_entries.py``) let the console word it in its own language.
        ``entry_id``: an id derived from what the note tells (a note written once however often it is told), else a
        new one."""
        system, text = system_text(code, params)
        entry = TranscriptEntry(
            id=entry_id or new_id(), conversation_id=conversation.id, at=now, author=Author.SYSTEM, text=text,
            system=system,
        )  # fmt: skip
        await self.store.append_transcript(entry)
        await self.store.publish(EntryAdded(conversation.id, entry))
        return entry

    async def _not_sent(
        self, conversation: Conversation, reply: Reply, author: Author, window: timedelta, now: datetime
    ) -> TranscriptEntry:
        log.info("dispatcher: %s: a %s message after the %s reply window was not sent",
                 conversation.id, author.value, conversation.channel.value)  # fmt: skip
        return await self.system_note(
            conversation, "not_sent", now,
            channel=conversation.channel.value, author=author.value, hours=str(_hours(window)), text=reply.text,
        )  # fmt: skip

    async def _not_sent_unsubscribed(
        self, conversation: Conversation, reply: Reply, author: Author, now: datetime
    ) -> TranscriptEntry:
        log.info("dispatcher: %s: a %s message to someone unsubscribed from %s was not sent",
                 conversation.id, author.value, conversation.channel.value)  # fmt: skip
        return await self.system_note(
            conversation, "not_sent.unsubscribed", now, channel=conversation.channel.value, text=reply.text
        )

    # ----- the page's messages sent from outside the gateway -------------------------------------------------

    async def handle_echo(self, echo: Echo) -> bool:
        """A message the page sent the young person from outside the gateway (a page admin in Meta's inbox):
        recorded in their open conversation's transcript as the page's (author ``page``) and shown to its listener
        live; True when recorded. Once, however often the provider delivers it (its entry id is its provider id's:
        found written under the conversation's lock, it is neither written nor shown again; its processed mark, saved
        with the conversation, keeps a redelivery after that conversation ended out of the young person's next one:
        until 2026-12-05 it ended that one's bot part, no words shown); never sent (no outbox
        item); never the young person's words: no risk read, no bot answer, the reply windows (``last_inbound_at``)
        as they were. Nothing is recorded for a young person with no open conversation (nothing starts for it), nor
        for a provider id the outbox recorded (a reply of the gateway's).

        A human answering (``echo.human``: its app in ``MESSENGER_HUMAN_ECHO_APPS``) ends the bot's part (Meta's
        Handover Protocol: the page inbox takes the thread; Chatwoot, Aselo): still with the bot, the conversation
        is handed to the listeners as the bot's routing would hand off the answers gathered so far
        (:meth:`_handed_over`), the bot asking nothing more. Until 2026-12-05 the bot went on: its next question came
        over the admin's words. Waiting or with a listener, nothing changes but the mark of a human's answer
        (``Conversation.page_answered_at``: the queue's card, the "left unanswered" figure) and, waiting, the queue's
        timed messages, held back as on a thread the admin took (``Conversation.standby_at``) until the young person
        writes on the gateway's own thread: until 2026-12-06 "On ne t'oublie pas…" went on over the admin's words.
        Any other echo may be one of Meta's automated responses (Instant Reply, away message: nobody behind it):
        recorded only, the bot goes on and nothing is marked. Until 2026-12-06 it ended the bot's part at the young
        person's first message, leaving them with "we will answer soon" and then silence."""
        if await self.store.find_by_provider_id(echo.message_id) is not None:
            return False
        found = await self.store.find_active_conversation(echo.channel, echo.recipient)
        if found is None:
            return False
        entry_id, key, owner = echo_entry_id(echo), echo_key(echo), new_id()
        # processed once whatever conversation is open at its redelivery: one that ended meanwhile (its record
        # marked, DoneMark), never recorded in, nor ending the bot's part of, the young person's next conversation
        if await self.store.claim(key, owner, self.claim_seconds, kept_seconds=DEDUPE_TTL_SECONDS) is ClaimState.DONE:
            return False
        async with self.store.lock(found.id):
            conversation = await self.store.get_conversation(found.id)
            if conversation is None or not conversation.active:
                await self.store.release(key, owner)
                return False
            now = self.clock()
            written = await self.store.entries_written(conversation.id, [entry_id])
            answered = conversation.status != Status.BOT and conversation.page_answered_at is not None
            if written and echo.human and answered:
                await self.store.release(key, owner)
                return False
            if not written:  # written, not yet handed over, or not marked processed: cut short, completed
                entry = TranscriptEntry(
                    id=entry_id, conversation_id=conversation.id, at=now, text=echo.text,
                    author=Author.PAGE_HUMAN if echo.human else Author.PAGE,  # the console labels each as what it is
                    attachments=echo.attachments, delivery=Delivery.DELIVERED,
                )  # fmt: skip
                await self.store.append_transcript(entry)
                await self.store.publish(EntryAdded(conversation.id, entry))
            # the queue's card says a human answered: never for an echo that may be an automated response
            marked = echo.human and conversation.page_answered_at is None
            if echo.human:
                conversation.page_answered_at = conversation.page_answered_at or now
            handed = echo.human and conversation.status == Status.BOT
            if handed:
                await self._handed_over(conversation, now)
            if echo.human and conversation.status == Status.QUEUED:  # a person of the page answers: the queue's timed
                conversation.standby_at = now  # messages hold back as on their thread (``Timers``), until they write
            await self.store.save_conversation(conversation, done=DoneMark(key, DEDUPE_TTL_SECONDS))
            if marked and not handed and conversation.status == Status.QUEUED:
                await self.store.publish(QueueChanged())
        log.info("dispatcher: %s: a message the page sent from outside the gateway (%s) was recorded",
                 conversation.id, echo.channel.value)  # fmt: skip
        return True

    async def _handed_over(self, conversation: Conversation, now: datetime) -> None:
        """The bot's part ended by the page's human (:meth:`handle_echo`, under the lock; the caller saves): in the
        queue the routing gives (``Engine.handover``: never ended, never below a risk read meanwhile), whatever its
        hours, as the bot hands off (summary, route, alert), but nothing said: no position nor wait over the
        human's words, no closed line (told at the greeting already, and a human of the line is answering), no
        reassurance timer; the idle close as in any wait (its goodbye says where to turn). An urgent one gets the
        emergency numbers it was not given, as every urgent hand-off. Its queue step expects no holder
        (``holder=None``), as the bot's hand-off's (since 2026-12-08: until then it replaced whoever held the entry,
        and landing on Redis after its lock and the echo's claim lapsed, the redelivery handed over on another instance
        and Bob took the young person, it left Bob's entry waiting beside his record;
        ``tests/test_handoff_late_enqueue.py``)."""
        engine = self.flows.for_version(conversation.flow_version) if conversation.engine else self.flows.engine()
        if conversation.engine:
            state = State.from_dict(conversation.engine)
        else:  # opened without words (a Messenger referral): nothing asked yet
            state = State(engine.version, conversation.channel.value, engine.flow.default_language)
        result = engine.handover(state, now, conversation.flag.risk if conversation.flag else None)
        outcome = result.outcome
        assert outcome is not None and outcome.queue is not None
        conversation.engine = {**result.state.to_dict(), SAID: conversation.engine.get(SAID, "")}
        conversation.flow_version = result.state.flow_version
        await self.store.cancel_timers(conversation.id)
        self._noted(conversation, outcome)
        priority = Priority(outcome.priority or "normal")
        if conversation.priority.rank < priority.rank:  # never lower
            priority = conversation.priority
        conversation.queue, conversation.priority = outcome.queue, priority
        conversation.queued_at, conversation.listener, conversation.waiting_since = now, None, now
        # closed: told at the greeting, not again in this wait; open, never told closed (a Get Started then gets
        # the young person's place, not "the chat reopened")
        closed = outcome.queue in engine.flow.queues and not engine.is_open(outcome.queue, now)
        conversation.closed_notice_for = now if closed else None
        await self.store.enqueue(conversation.id, outcome.queue, priority, now, flag=conversation.flag,
                                 holder=None)  # fmt: skip
        await self.transition(conversation, Trigger.HANDOFF, now)
        if priority == Priority.URGENT:
            given = conversation.partners_given
            language = language_of(conversation, engine.flow)
            conversation.partners_given += engine.emergency_partners(given)
            await self.emit(conversation, engine.emergency_replies(language, given), Author.BOT, now)
        await self.store.set_timer(conversation.id, TimerKind.IDLE_CLOSE, self.idle_close_at(conversation, engine, now))
        await self.store.publish(QueueChanged())

    # ----- receipts ---------------------------------------------------------------------------------------

    async def handle_receipt(self, receipt: Receipt) -> None:
        """Record a provider's delivery status on the transcript entry it concerns."""
        if receipt.provider_message_id is None:
            await self._handle_watermark(receipt)
            return
        delivery = _RECEIPT_DELIVERY.get(receipt.status)
        if delivery is None:
            return
        entry = await self.store.find_by_provider_id(receipt.provider_message_id)
        if entry is None and delivery != Delivery.SENT:
            # before the send's record (a fast callback, a store outage retried): kept, then looked for again;
            # the outbox's record of the send applies it (``Store.kept_receipt``, then ``take_receipt``)
            await self.store.keep_receipt(receipt.provider_message_id, delivery)
            entry = await self.store.find_by_provider_id(receipt.provider_message_id)
        if entry is None:
            return
        if _RANK[delivery] <= _RANK[entry.delivery] and delivery != Delivery.FAILED:
            return  # callbacks arrive out of order: never go back from read to delivered
        # read again and changed in one step of the store: another receipt of this reply (on another instance, or
        # a watermark) may have taken it further since it was found
        # a reply sent in parts shows its worst part's (``Store.advance_part``): failed if one part failed, read once
        # every part is
        shown = await self.store.advance_part(entry.conversation_id, entry.id, receipt.provider_message_id, delivery)
        if shown is not None:
            await self.store.publish(DeliveryChanged(entry.conversation_id, entry.id, shown))
        # A failure reported again (the webhook's batch processed again after a store error, within its hold, or
        # Twilio's redelivery after a 503) finds the entry failed already: it completes what the first report may
        # have left cut (the pause, the note, the copy), each once (:meth:`_bot_failed`). Until 2026-12-08 evening it
        # did nothing ("told once"): a store error after ``advance_part`` lost the pause and the copy for good
        # (``tests/e2e/test_whatsapp_bot_failed.py::test_a_rate_limit_report_cut_short_by_the_store_is_completed_by_
        # its_redelivery_once``)
        again = delivery == Delivery.FAILED and entry.delivery == Delivery.FAILED  # found failed before this step
        if shown != Delivery.FAILED and not again:
            return
        if again and shown is None:  # the console told again (the first report's event may be what failed)
            await self.store.publish(DeliveryChanged(entry.conversation_id, entry.id, Delivery.FAILED))
        # the provider's rate limit (Twilio's 63018): its channel paused, as after a refused send (since 2026-12-08);
        # reported again, paused again (a callback redelivered within seconds: the same limit)
        resume_at = None
        if receipt.rate_limited and self._on_rate_limited is not None:
            resume_at = self._on_rate_limited(receipt.channel)
        if entry.author == Author.BOT:
            await self._bot_failed(entry, receipt, resume_at, again=again)

    async def _bot_failed(
        self, entry: TranscriptEntry, receipt: Receipt, resume_at: datetime | None = None, *, again: bool = False
    ) -> None:
        """A bot reply the provider accepted, then reported failed (a WhatsApp status callback): never silent.
        Nobody watches the bot's questions, so it is logged by class and code (never the text nor the number) and
        counted; a failure a resend may get through (``receipt.transient``) is sent again once, at once, when the
        conversation went no further since (nothing written after it but notes: a copy of "position 1, nobody online"
        sent after "a listener joined you" would be false) and the reply was in one part (a part delivered is never
        sent twice); the listeners of a conversation in the queue, with a listener or at risk read a note. A failure
        is final in the store (forward only): a later ``delivered`` changes nothing. Until 2026-12-05 the copy went
        30 s later, the conversation's later replies held behind it in the outbox (a listener's first words, the
        3114 a risk calls for), then sent however far the conversation had gone. ``resume_at``: a failure for the
        provider's rate limit paused the channel until then (:meth:`handle_receipt`): the copy is due then, not at
        once; until 2026-12-08 it went at once, into the same limit, and failed in turn for good (one copy still).
        The provider's code is said (log line, note) when ASCII digits only: until 2026-12-08 ``isdigit()`` alone
        took "١٢٣" or "²" for one.

        ``again``: the failure reported again (:meth:`handle_receipt`): what the first report wrote is read from the
        transcript (the note's id and the copy's are the reply's plus ``NOTED`` and ``RESENT``, since 2026-12-08
        evening: until then the note's was new): a copy written is put in the outbox again while it is pending (an
        item present is ignored: the copy once, never twice), one not written is decided as at the first report; the
        note written once; the log line and the count made again only when neither is written (a final failure of a
        conversation in the bot, reported again, is counted twice)."""
        error = receipt.error
        code = error if error and error.isascii() and error.isdigit() and len(error) <= 6 else "none"
        kind = "transient" if receipt.transient else "final"
        now = self.clock()
        async with self.store.lock(entry.conversation_id):
            conversation = await self.store.get_conversation(entry.conversation_id)
            if conversation is None or not conversation.active:
                return
            written: dict[str, TranscriptEntry] = {}
            if again:
                ours = (entry.id + NOTED, entry.id + RESENT)
                written = {e.id: e for e in await self.store.transcript(entry.conversation_id) if e.id in ours}
            copied = written.get(entry.id + RESENT)
            resend = copied is not None or (
                receipt.transient and not entry.id.endswith(RESENT) and not in_parts(entry.provider_message_id)
                and conversation.left_at is None and self.closed_window(conversation, Author.BOT, now) is None
                and (conversation.last_inbound_at is None or conversation.last_inbound_at <= entry.at)
                and not await self._went_on(entry)
            )  # fmt: skip
            if not written:  # told once: a report again whose first wrote its note or copy was told already
                log.warning("dispatcher: %s: a bot reply (%s) was reported failed by %s, code %s (%s): %s",
                            conversation.id, self._logged(entry.id), conversation.channel.value, code, kind,
                            "sent again" if resend else "not sent again")  # fmt: skip
                self.metrics.bot_replies_failed.labels(
                    conversation.channel.value, kind, "resent" if resend else "not_resent"
                ).inc()
            if (conversation.status != Status.BOT or conversation.flagged_at is not None) and (
                entry.id + NOTED not in written
            ):
                note = "bot_failed.resent" if resend else "bot_failed.final"
                await self.system_note(conversation, note, now, channel=conversation.channel.value, error=code,
                                       entry_id=entry.id + NOTED)  # fmt: skip
            if not resend:
                return
            if copied is not None and copied.delivery != Delivery.PENDING:
                return  # sent (or failed) already: its item may be purged, never put again
            copy = copied or TranscriptEntry(
                id=entry.id + RESENT, conversation_id=conversation.id, at=now, author=Author.BOT,
                text=entry.text, choices=entry.choices,
            )  # fmt: skip
            if copied is None:
                await self.store.append_transcript(copy)  # an id already present is ignored: a report made again
            item = outbox_item(conversation, copy, now)
            if resume_at is not None and resume_at > now:
                item = replace(item, next_attempt_at=resume_at)
            await self.store.outbox_put(item)  # an id already present is ignored: the copy once
            if copied is None:
                await self.store.publish(EntryAdded(conversation.id, copy))
        self._on_outgoing()

    async def _went_on(self, entry: TranscriptEntry) -> bool:
        """Whether anything but a note (the listeners', the system's) was written in ``entry``'s conversation after its
        own turn (a later reply of the bot's, a listener's, the young person's words): a copy of ``entry`` would then
        come after them."""
        later = [e for e in await self.store.transcript(entry.conversation_id) if e.at > entry.at]
        return any(e.author not in (Author.SYSTEM, Author.NOTE) for e in later)

    async def _handle_watermark(self, receipt: Receipt) -> None:
        """Messenger's reads (and deliveries without mids): every reply sent up to ``watermark`` (ms), found by the
        store among the replies awaiting a read receipt (``Store.mark_until``: never the whole transcript, whose
        length would make every receipt of a long conversation slower); each one changed is told to the console
        once (a receipt replayed changes nothing). A watermark names no conversation: it covers every reply sent to
        that person, so it is applied to their active conversation and to their :data:`WATERMARK_CONVERSATIONS`
        latest created in the last :data:`WATERMARK_DAYS` (``Store.conversations_of``: this channel identity's
        alone), the oldest first. Until 2026-12-07 only to the active one: a read that came after a listener's close
        (or after the young person's next message opened another conversation) left the goodbye, where to turn,
        "delivered" in the console and the supervision for good (the console soak: 13 in one run)."""
        delivery = _RECEIPT_DELIVERY.get(receipt.status)
        if receipt.watermark is None or delivery not in (Delivery.DELIVERED, Delivery.READ):
            return
        try:
            until = datetime.fromtimestamp(receipt.watermark / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            return
        now = self.clock()
        active = await self.store.find_active_conversation(receipt.channel, receipt.sender)
        recent = await self.store.conversations_of(
            receipt.channel, receipt.sender, now - timedelta(days=WATERMARK_DAYS), now + timedelta(days=1),
            WATERMARK_CONVERSATIONS,
        )  # fmt: skip
        theirs = [c for c in recent if c.channel == receipt.channel and c.sender == receipt.sender]
        ids = list(dict.fromkeys([c.id for c in reversed(theirs)] + ([active.id] if active is not None else [])))
        for conversation_id in ids:
            for entry_id in await self.store.mark_until(conversation_id, until, delivery):
                await self.store.publish(DeliveryChanged(conversation_id, entry_id, delivery))

    async def set_delivery(self, conversation_id: str, entry_id: str, delivery: Delivery) -> None:
        """Record how far an outgoing entry got (a provider's receipt, the web chat page's) and tell the console."""
        await self.store.set_delivery(conversation_id, entry_id, delivery)
        await self.store.publish(DeliveryChanged(conversation_id, entry_id, delivery))


@dataclass(frozen=True, slots=True)
class _Ending:
    """A message's conversation whose ending is listed as begun (:meth:`Dispatcher._locked`), and how."""

    conversation_id: str
    how: str


WATERMARKED = frozenset({ChannelName.MESSENGER})  # its read receipts are watermarks: replies await one in the store
WATERMARK_CONVERSATIONS = 3
"""How many of a person's latest conversations a watermark is applied to besides the active one
(``Dispatcher._handle_watermark``): an ended one whose goodbye was read after the close, one before it whose last
replies were read while the next was opening. A bound on the records each receipt reads."""
WATERMARK_DAYS = 7
"""How far back (by their creation) those conversations are looked for: a goodbye read up to a week later."""
_RECEIPT_DELIVERY = {
    "sent": Delivery.SENT, "delivered": Delivery.DELIVERED, "read": Delivery.READ, "failed": Delivery.FAILED,
}  # fmt: skip
_RANK = {Delivery.PENDING: 0, Delivery.SENT: 1, Delivery.DELIVERED: 2, Delivery.READ: 3, Delivery.FAILED: 4}


def _alert(outcome: Outcome) -> str | None:
    """Why a hand-off puts the young person at risk though no flag records it (``Conversation.alert``): a referring
    interrupt without a risk class (``sextortion``: a blackmail going on, Pharos) or a routing rule handing off at
    "high" (``unsure_danger``: "je ne sais pas" about being in danger), by its name. Not "I want a human" (an
    interrupt referring nobody) nor the fallback (answers never understood), "high" too, nor a risk interrupt (its
    flag says it)."""
    if outcome.flag is not None:
        return outcome.flag.route if outcome.flag.risk is Risk.NONE and outcome.flag.partners else None
    return outcome.route if outcome.priority == Priority.HIGH and outcome.route != "fallback" else None


def _unsaid(conversation: Conversation, engine: Engine, result: StepResult) -> Sequence[Reply]:
    """The bot's replies but the partners' messages and the interrupts' words the young person got already in this
    conversation (``partners_given``, ``interrupts_said``: a risk read late while the bot went on at night,
    ``Dispatcher._late_handoff``): each once in the conversation, as while waiting. Until 2026-12-06 a young person
    given Pharos and "ne paie pas" by a late reading got both again when they answered "chantage" at the topic
    question."""
    if not (conversation.partners_given or conversation.interrupts_said):
        return result.replies
    language = result.state.language
    given = tuple(p for p in conversation.partners_given if p in engine.flow.partners)
    said = {reply.text for reply in engine.partner_replies(given, language)}
    for route in conversation.interrupts_said:
        spec = engine.flow.interrupts.get(route)
        if spec is not None:
            said.update(engine.text(words, language) for words in (*spec.then.say, *(spec.then.say_closed or ())))
    return [reply for reply in result.replies if reply.text not in said]


def _decided(engine: Engine, late: Late, found: Flag) -> bool:
    """Whether the message's own reading (its start, read inline) already raised what its late reading raises:
    the same interrupt, no partner more. Its windows then add nothing to do (a higher score for the same risk)."""
    before = engine.decide(late.text, late.first).flag if late.first is not None else None
    return before is not None and before.route == found.route and set(found.partners) <= set(before.partners)


def _joined(engine: Engine, conversation: Conversation, text: str) -> str | None:
    """The previous message's last words (:data:`SAID`) and ``text``, when together they read a risk that neither
    read alone (only a risk class: understanding only raises); else None."""
    said = conversation.engine.get(SAID) if conversation.engine else None
    if not said or not text.strip():
        return None
    joined = f"{said} {text}"
    found = engine.decide(joined).flag
    return joined if found is not None and found.risk is not Risk.NONE else None


def _remember(engine: Engine, conversation: Conversation, inbound: Inbound, *, quiet: bool) -> None:
    """Keep this message's last words for the next one (:data:`SAID`) when it read nothing (``quiet``), alone or
    joined, and was not a button pressed (the bot's words); the conversation has engine state."""
    if not conversation.engine:
        return
    quiet = quiet and not engine.pressed(inbound.text, inbound.payload)
    conversation.engine = {**conversation.engine, SAID: " ".join(said_words(engine, inbound.text)) if quiet else ""}


def said_words(engine: Engine, text: str) -> list[str]:
    """The last :data:`SAID_WORDS` words of ``text`` kept for the next message: its canonical form, with the emoji
    the keywords read written as words (``keywords.with_emoji_words``), so that "🩹" then "encore ce soir" reads as
    one message would, where the canonical form alone drops the emoji and keeps nothing."""
    return (keywords.with_emoji_words(text) or engine.canonical(text)).split()[-SAID_WORDS:]


ENDING_ALONE_CHARS = 80
"""Longer than this, a message is not an ending phrase alone ("stop", "laisse tomber", "arrête stp"): not looked at
for one after an end."""


def _only_ends(decision: Decision) -> bool:
    """Whether the message is an ending interrupt's phrase alone ("stop", "laisse tomber") that only ends: nothing
    referred, no listener offered (a short goodbye must not stand in for those)."""
    if decision.ending is None:
        return False
    then = decision.ending[1]
    return then.handoff is None and not then.refer and then.offer_listener is None


def unsubscribed(conversation: Conversation) -> bool:
    """Whether the young person unsubscribed from this WhatsApp line (STOP; ``left_how`` ``blocked``, lifted by START
    only: Twilio refuses every message to them until then, 21610, whatever else they write)."""
    return conversation.channel == ChannelName.WHATSAPP and conversation.left_how == "blocked"


BLOCK_DATE_SLACK = timedelta(seconds=60)
"""How much earlier than its conversation's opening, or than the young person's last message in it
(``gateway.leaving._wrote_since``), a block must be dated to be taken as late (``gateway.leaving.provider_says``):
Telegram dates to the second, and a message may have waited in the durable inbox; a stale block is minutes or hours
old. A genuine block within it is taken (and, were it ignored, the next send refused would mark it). Likewise how
much earlier than the block marked an unblock must be dated to be taken as late (``gateway.leaving._late_unblock``):
a mark set by a send refused is dated when the refusal was recorded, a little after the send Telegram refused; and a
message, not to lift the mark (:func:`written_before_the_block`). Here, where the message path reads it."""


def written_before_the_block(conversation: Conversation, inbound: Inbound) -> bool:
    """Whether ``inbound`` was written more than :data:`BLOCK_DATE_SLACK` before the block its conversation is marked
    with (``left_at``: Telegram's date of the block, or when a refused send marked it): taken late (Telegram redelivers
    after an outage, in any order across update types), it says nothing of an unblock, and does not lift the mark.
    Until 2026-12-06 it did: the card said the young person reachable and the listeners' replies went to a bot they
    had blocked. An undated message (every channel but Telegram) lifts it, as ever."""
    left = conversation.left_at
    return inbound.sent_at is not None and left is not None and inbound.sent_at < left - BLOCK_DATE_SLACK


def unblocked_since(conversation: Conversation, at: datetime) -> bool:
    """Whether the young person unblocked the line (WhatsApp's START, Telegram's ``member``:
    ``Conversation.unblocked_at``) after a block or an opt-out dated ``at``, or close enough that it cannot be told:
    that one, taken late, is superseded (the last of the two wins, Twilio's rule for STOP and START) and marks nothing.
    Within :data:`BLOCK_DATE_SLACK` the unblock wins, as in ``gateway.leaving._late_unblock`` the other way round, so
    whatever order the two are taken in: Telegram dates both to the second (a tie says nothing of their order), and a
    WhatsApp STOP is dated when its webhook took it, seconds after it was sent, while a START caught up is dated by
    Twilio's ``date_sent`` (truncated to the second). A wrong mark silences the young person, a missed one costs one
    send (refused: 21610, Telegram's 403, which marks). Until 2026-12-06 they were compared without slack: a STOP whose
    webhook came seconds late, processed after a START sent just after it, marked the conversation again ("désabonnée"
    on the card, a listener's reply refused) until that START's message lifted it a second time; a Telegram block of
    the same second as the unblock, redelivered after it, marked it."""
    return conversation.unblocked_at is not None and at < conversation.unblocked_at + BLOCK_DATE_SLACK


def written_at(conversation: Conversation, inbound: Inbound, now: datetime) -> datetime:
    """The conversation's ``last_inbound_at`` once ``inbound`` is taken at ``now``: when the young person wrote it as
    the channel dates it (``Inbound.sent_at``: Telegram's ``date``, Messenger's ``timestamp``, the ``date_sent`` of a
    WhatsApp message caught up from Twilio's list), never after ``now`` (a clock ahead), never before the last message
    already taken (redelivered out of order); ``now`` when undated (a live WhatsApp webhook, processed at once; web
    chat), as ever. Until 2026-12-06 it was always ``now``: a Telegram message taken hours late after an outage read as
    just written, and a block the young person made after it, dated before ``now``, was taken for a late one and ignored
    (gateway/leaving.py, ``_wrote_since``): the card said them reachable; and the reply windows of Messenger and
    WhatsApp, which the platforms count from when the young person wrote, were counted from when the gateway took the
    message: open hours longer than the platform's, the idle close's goodbye planned after it had closed (refused)."""
    if inbound.sent_at is None:
        return now
    at, last = min(now, inbound.sent_at), conversation.last_inbound_at
    return at if last is None or at > last else last


def _just_ended(conversation: Conversation, now: datetime, window: timedelta) -> bool:
    """Whether the conversation ended (not purged) at most ``window`` before ``now``: a thank-you goes there."""
    closed = conversation.closed_at
    return not conversation.active and conversation.purged_at is None and closed is not None and now - closed <= window


def _hours(window: timedelta) -> int:
    return int(window.total_seconds() // 3600)


def outbox_item(
    conversation: Conversation, entry: TranscriptEntry, now: datetime, *, urgent: bool = False
) -> OutboxItem:
    """The outbox item that delivers a reply entry of a provider channel's conversation (its id is the entry's);
    ``urgent`` (a risk read in this turn: :meth:`Dispatcher.emit`): due ``URGENT_AHEAD`` before ``now``."""
    outbound = Outbound(
        id=entry.id, conversation_id=conversation.id, channel=conversation.channel,
        recipient=conversation.sender, text=entry.text, choices=entry.choices, author=entry.author.value,
    )  # fmt: skip
    payload = encode_outbound(outbound)
    return OutboxItem(id=entry.id, conversation_id=conversation.id, payload=payload, created_at=now,
                      next_attempt_at=now - URGENT_AHEAD if urgent else None,
                      awaits_read=conversation.channel in WATERMARKED)  # fmt: skip


def closed_line_told(conversation: Conversation) -> bool:
    """Whether the closed-line notice was given during this wait (the one that began at ``queued_at``) since the line
    was last found open (``Timers._queue_reassure`` forgets it then: until 2026-12-05 a wait through two nights was
    told the first closing only)."""
    told = conversation.closed_notice_for
    return told is not None and (conversation.queued_at is None or told == conversation.queued_at)
