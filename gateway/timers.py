"""Timers that run in the server: bot reminders and abandon, queue reassurance and closing, idle conversations.

Kinds (durations from flows.yaml ``timers``):

* ``bot_reminder``: the young person went quiet during the bot's questions → a reminder and the question again;
  arms ``bot_abandon``.
* ``bot_abandon``: still quiet → goodbye message, the conversation is abandoned.
* ``queue_reassure``: waiting for a listener → position and reassurance, re-armed; when the queue has closed
  meanwhile, the closed-line message instead (once a closing: a wait that outlasts a day is told again the next
  night); the first after the line reopened, a wait told it was closed, says it reopened (``reopened``, or
  ``reopened_offline`` while no listener is online yet: until 2026-12-05 the morning's first words were "On ne
  t'oublie pas : tu es maintenant en position 1", never that the line had reopened). Once the channel's reply
  window for the bot has closed (Messenger, WhatsApp: 24 h after the young person's last message) both are
  paused, with one system entry telling the listeners; they resume if the young person writes again. So are they
  while the young person's last message came on a Messenger thread another app owns (``standby``: a page admin
  answering in Meta's inbox; ``Conversation.standby_at``), or since a page admin answered them from Meta's inbox
  (an echo of an app in ``MESSENGER_HUMAN_ECHO_APPS``): until 2026-12-06 "On ne t'oublie pas…" went every five
  minutes over the admin's words; they resume once the young person writes on the gateway's own thread.
* ``webchat_gone``: no web chat socket for a while: the listeners are told the young person left
  (``gateway/leaving.py``).
* ``idle_close``: nothing happened for ``idle_close_hours`` → closed, with a message; on a channel whose reply
  window for the bot closes first (Messenger, WhatsApp: 24 h) a quarter of an hour before it, so that the message
  reaches the young person (``Dispatcher.idle_close_at``; recorded as not sent when the window has closed all the
  same: see ``Dispatcher.emit``).

The gateway away (a virtual machine suspended an hour, its wall clock set right on resume; a clock stepped forward;
the process stopped): the wall clock moved ``AWAY_AFTER`` or more beyond the time the gateway ran (``awake``, the
monotonic clock, and the loop's own time between passes). The timers of a young person's silence (:data:`SILENCE`) due
meanwhile are moved on by that much instead of firing at once on resume: nobody could write to a gateway that was
away. The queue's reassurance fires (they waited without news). Without ``awake`` (a test's clock) nothing is told.

The kinds are :class:`~gateway.store.TimerKind` (the stored values above); :meth:`Timers.handler` matches every
kind, and mypy fails the build when one has no handler (``assert_never``). Each timer is handled under the
conversation's lock, and only by the instance whose ``timer_postpone`` wins: that first moves the timer forward
by a backoff (the handling's lease), then the handling's writes go in one batch, and only then is the timer
removed (``timer_done`` on the moved timer, which leaves a timer the handler re-armed as it is). A handling that
fails, on a store outage or a bug, or dies with its instance, therefore leaves the timer armed for a retry with a
growing backoff (``BASE_DELAY`` doubling up to ``MAX_DELAY``), counted in ``gateway_timer_failures`` and logged by
conversation id and class: never dropped.

A timer handled whose removal the store did not take (an outage between the handling's batch and ``timer_done``)
is kept in memory and removed at the start of the next pass, before any timer is read: until 2026-12-02 it stayed
armed at its lease's end and fired again then (a second reminder and question for the young person, 10 s later).
The removal is fenced by the due time the handling moved the timer to: a timer re-armed meanwhile, or taken by
another instance once that lease lapsed, is left as it is.

A firing's writes have ids derived from the firing (:func:`_firing_key`: the conversation, the kind and the end of
the lease it ran under), and the transcript and the outbox ignore an id already present. A firing whose batch ran
but whose answer was lost (the connection cut once Redis ran it, a failover), or that died in its pipeline, leaves
its timer armed at its lease's end: the retry finds the first message of the firing whose lease ended at the due
time it read (``entries_written``) and makes that firing's writes again, with the same ids: nothing is sent twice,
on this instance or another, and what the cut left undone (the outbox's listing, the next timer, the record) is
made. Until 2026-12-03 the retry fired anew: the reminder and the question sent twice, 10 s apart. An instance
that dies between the batch and the removal leaves the same state: its timer's retry is told nothing more either.

The idle close is ``leaving.idle_close``: its goodbye's id derives from the conversation (it ends once), and it is
listed as begun until its record (``store.end_leaving``, after the save here), held by a listener too (since
2026-12-04, rel30). Its writes cancel every timer of the conversation (``StatusEffects.finished``) after the
goodbye's listing, in the pipeline sent before a waiting one's queue step and before a held one's record: cut after
that, no retry of the timer comes, and the alert check completes it (``Actions.complete_leaving``); cut before it,
the retry or the check, whichever comes first.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol, assert_never

from gateway import leaving
from gateway.clock import Clock
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher, closed_line_told
from gateway.errors import LockLost, StoreError
from gateway.events import QueueChanged
from gateway.flows.engine import Engine, State
from gateway.flows.lifecycle import Trigger
from gateway.flowset import FlowSet
from gateway.ids import derived_id, derived_ids
from gateway.language import language_of
from gateway.messages import Reply
from gateway.metrics import Metrics
from gateway.store import (
    Author,
    BatchStore,
    ConversationStore,
    LockStore,
    QueueStore,
    Timer,
    TimerKind,
    TimerStore,
    TranscriptStore,
)
from gateway.store.codec import to_us
from gateway.supervisor import where

log = logging.getLogger(__name__)

Handler = Callable[[Conversation, Engine, datetime], Awaitable[None]]

BASE_DELAY = 10.0  # seconds before the first retry of a failed handling (also the lease of every handling)
MAX_DELAY = 600.0
# The timers of a young person's silence: the time the gateway was away (:meth:`Timers._note_away`) is not theirs.
SILENCE = frozenset({TimerKind.BOT_REMINDER, TimerKind.BOT_ABANDON, TimerKind.IDLE_CLOSE, TimerKind.WEBCHAT_GONE})
AWAY_AFTER = timedelta(seconds=60)  # the wall clock moving this much more than the gateway ran: it was away
DUE_READ = 100  # due timers read at most a pass


class TimersRoles(TimerStore, LockStore, ConversationStore, QueueStore, BatchStore, TranscriptStore, Protocol):
    """What the timers need of the store (the dispatcher writes what a timer says; the transcript: whether an
    earlier firing wrote its message; the queue: the idle closes listed as begun, ``gateway/leaving.py``)."""


class Timers:
    def __init__(
        self, dispatcher: Dispatcher, store: TimersRoles, flows: FlowSet, metrics: Metrics, *, clock: Clock,
        poll_seconds: float = 1.0, awake: Callable[[], float] | None = None,
    ) -> None:  # fmt: skip
        self.dispatcher, self.store, self.flows, self.metrics, self.clock = dispatcher, store, flows, metrics, clock
        self.poll_seconds, self.awake = poll_seconds, awake
        self._seen: tuple[datetime, float] | None = None  # the last pass's start: the wall clock, ``awake``
        self._ended: float | None = None  # the loop's time at the end of the last pass
        self._away: list[tuple[datetime, datetime, timedelta]] = []  # (since, until, how long) the gateway was away
        self._postponed = 0  # silence timers moved on since the gateway came back
        self._failures: dict[tuple[str, TimerKind], int] = {}  # (conversation, kind) → failed handlings in a row
        # (conversation, kind) → the due times a firing under way or failed may leave its timer at, and its key: a
        # retry that reads one of them makes that firing's writes again (:meth:`_firing`)
        self._firings: dict[tuple[str, TimerKind], tuple[set[datetime], str]] = {}
        self._handled: list[Timer] = []  # handled, their removal not taken by the store (an outage): removed next

    async def run(self) -> None:
        """Fire until cancelled. Any failure of a pass is retried at the next poll: the store's counted and told
        once an outage (gateway/outage_log.py), any other logged (class, place)."""
        while True:
            try:
                await self.fire_due()
                self.metrics.outages.answered("timers")
            except StoreError as exc:
                self.metrics.outages.failed("timers", exc)
            except Exception as exc:  # a bug: the next pass still runs
                log.error("timers: unexpected %s at %s", type(exc).__name__, where(exc))
            await asyncio.sleep(self.poll_seconds)

    async def fire_due(self) -> int:
        """Handle every due timer once; returns how many were handled. A timer whose handling fails stays armed
        for a retry with backoff; the other timers keep firing (a store failure ends the pass)."""
        handled = 0
        try:
            await self._remove_handled()
            now = self.clock()
            self._note_away(now)
            due = await self.store.due_timers(now, DUE_READ)
            if len(due) < DUE_READ:
                self._forget_gone(due, now)
            for timer in due:
                handled += await self._handle(timer)
        finally:  # a pass the store's outage ended was no time away
            self._ended = asyncio.get_running_loop().time()
        if self._away and len(due) < DUE_READ:  # every timer due in the time away was seen: moved on or fired
            log.warning("timers: %d timer(s) of a young person's silence moved on by the time the gateway was away",
                        self._postponed)  # fmt: skip
            self._away, self._postponed = [], 0
        return handled

    def _forget_gone(self, due: list[Timer], now: datetime) -> None:
        """Forget the failed handlings (failures in a row, the firing a retry completes) of the timers no longer
        armed as they left them: every timer due by ``now`` was read (``due``), and one left due by then is not
        among them, so it was handled by another instance, re-armed or cancelled. Until 2026-12-05 each was kept for
        the process's life."""
        read = {(timer.conversation_id, timer.kind) for timer in due}
        for key in [key for key, (times, _) in self._firings.items() if key not in read and max(times) <= now]:
            self._firings.pop(key, None)
            self._failures.pop(key, None)

    def _note_away(self, now: datetime) -> None:
        """Whether the gateway was away since the last pass: the wall clock moved ``AWAY_AFTER`` more than ``awake``
        (a virtual machine suspended, then its clock set right on resume; a clock stepped forward), or the loop ran
        no pass that much longer than its poll (a process stopped). The silence timers due meanwhile are then moved
        on by that much (:meth:`_handle`): a young person could not write while the gateway was away, and until
        2026-12-05 every reminder, goodbye and idle close due in an hour's suspension was told at once on resume."""
        if self.awake is None:
            return
        seen, self._seen = self._seen, (now, self.awake())
        if seen is None:
            return
        away = (now - seen[0]) - timedelta(seconds=self._seen[1] - seen[1])
        if self._ended is not None:
            stopped = asyncio.get_running_loop().time() - self._ended - self.poll_seconds
            away += timedelta(seconds=max(stopped, 0.0))
        if away >= AWAY_AFTER:
            self._away.append((seen[0], now, away))
            log.warning("timers: the gateway was away for %.0f s (a suspended machine, a clock stepped forward): "
                        "the silence timers due meanwhile are moved on by as much", away.total_seconds())  # fmt: skip

    def _away_over(self, timer: Timer) -> timedelta | None:
        """How long the gateway was away when this silence timer came due (:meth:`_note_away`), else None."""
        if timer.kind not in SILENCE:
            return None
        return next((away for since, until, away in self._away if since < timer.due_at <= until), None)

    async def _handle(self, timer: Timer) -> int:
        key = (timer.conversation_id, timer.kind)
        async with self.store.lock(timer.conversation_id):
            failures = self._failures.get(key, 0)
            delay = min(BASE_DELAY * 2**failures, MAX_DELAY)
            retry = Timer(timer.conversation_id, timer.kind, self.clock() + timedelta(seconds=delay))
            firing_key = await self._firing(timer, retry)  # read before the postpone: nothing changed if it fails
            away = self._away_over(timer)
            if away is not None and firing_key == _firing_key(retry):  # not an earlier firing to complete
                self._postponed += await self.store.timer_postpone(timer, timer.due_at + away)
                return 0
            self._firings[key] = ({timer.due_at, retry.due_at}, firing_key)  # until done: the postpone may be lost
            if not await self.store.timer_postpone(timer, retry.due_at):  # handled elsewhere, re-armed, cancelled
                self._failures.pop(key, None)
                self._firings.pop(key, None)
                return 0
            read: list[Conversation] = []  # the record as the firing read it
            try:
                fired = await self._fire_saved(timer, firing_key, read)
            except Exception as exc:
                self._failures[key] = failures + 1
                self.metrics.timer_failures.labels(timer.kind).inc()
                if isinstance(exc, LockLost) and read:  # its own lock's task (the lost lock's context is not)
                    await asyncio.create_task(self._armed_again(retry, read[0]))
                if isinstance(exc, StoreError):
                    raise  # the store is down: the pass ends (told by run), the timer waits for its retry
                log.error("timers: %s %s failed (%s at %s); again in %.0f s", timer.conversation_id, timer.kind,
                          type(exc).__name__, where(exc), delay)  # fmt: skip
                return 0
            self._failures.pop(key, None)
            self._firings.pop(key, None)
            try:
                await self.store.timer_done(retry)  # a timer the handler re-armed stays armed
            except StoreError:  # removed before the next pass reads any timer, not fired again at ``retry``
                self._handled.append(retry)
                raise
            return fired

    async def _armed_again(self, retry: Timer, read: Conversation) -> None:
        """A firing whose record the lock's fence refused (``LockLost``: the lock's key lost, a failover) may have
        landed its timers' writes all the same (slot ``{timers}``, before the record): an ending's cancellation of
        every timer of the conversation (``StatusEffects.finished``) took this timer's own retry. Under the lock taken
        again, the record unchanged since the firing read it (nobody committed since: the refused writes alone
        moved its timers) and active, the retry is armed again where the handling put it. Since 2026-12-07: until
        then a refused abandon left the conversation with the bot, active, with no timer: never told goodbye nor
        abandoned (``tests/test_timers_stale.py``). A record changed since is its writer's, timers and all; the lock
        not had or the store failing, it is said and left as it was."""
        try:
            async with self.store.lock(retry.conversation_id):
                found = await self.store.get_conversation(retry.conversation_id)
                if found is None or not found.active or found != read:
                    return
                await self.store.set_timer(retry.conversation_id, retry.kind, retry.due_at)
        except StoreError as exc:
            log.warning("timers: %s %s refused by the lock's fence, its retry not checked (%s)",
                        retry.conversation_id, retry.kind, type(exc).__name__)  # fmt: skip

    async def _remove_handled(self) -> None:
        """Remove the timers handled whose removal failed (StoreError while the store is still away); each only
        as the handling moved it (``timer_done`` on its due time): one re-armed or taken since is left alone."""
        while self._handled:
            timer = self._handled[0]
            try:
                await self.store.timer_done(timer)
            except StoreError:
                raise
            except Exception as exc:  # a bug must not stop every timer: this one may fire again, logged
                log.error("timers: %s %s: removal failed (%s at %s)", timer.conversation_id, timer.kind,
                          type(exc).__name__, where(exc))  # fmt: skip
            del self._handled[0]

    async def _fire_saved(self, timer: Timer, firing_key: str, read: list[Conversation]) -> int:
        """Fire the timer and save the conversation, the writes in one batch (none made if it fails), their ids
        derived from ``firing_key`` (:meth:`_firing`); ``read`` gets a copy of the record as read."""
        conversation = await self.store.get_conversation(timer.conversation_id)
        if conversation is None or not conversation.active:
            return 0
        read.append(copy.deepcopy(conversation))
        with derived_ids(firing_key):
            told = conversation.closed_told_at
            async with self.store.batch():
                await self._fire(timer, conversation)
                await self.store.save_conversation(conversation)
                if timer.kind is TimerKind.WEBCHAT_GONE and conversation.left_how == "gone":
                    await self.dispatcher.store.publish(QueueChanged())  # its card: the page gone
                elif conversation.closed_told_at != told:  # its card, the board's count: told the line is closed
                    await self.dispatcher.store.publish(QueueChanged())
                if timer.kind is TimerKind.IDLE_CLOSE:  # listed as begun (``leaving.idle_close``), until its record
                    await self.store.end_leaving(conversation.id)
        return 1

    async def _firing(self, timer: Timer, lease: Timer) -> str:
        """The key this firing's ids derive from (:func:`_firing_key`): its lease's; or an earlier firing's whose
        writes may have been made (its batch ran and its answer was lost, or it was cut short), the timer left due
        where that firing left it (neither removed nor re-armed since), so that they are made again with the same
        ids, which the store ignores: told once. That firing is this instance's (kept in memory until done, through
        any number of retries), else one whose first entry the transcript holds, due at its lease's end (another
        instance's, or this one's before a restart)."""
        kept = self._firings.get((timer.conversation_id, timer.kind))
        if kept is not None and timer.due_at in kept[0]:
            return kept[1]
        earlier = _firing_key(timer)
        if await self.store.entries_written(timer.conversation_id, [derived_id(earlier, 1)]):
            return earlier
        return _firing_key(lease)

    async def _fire(self, timer: Timer, conversation: Conversation) -> None:
        engine = self.flows.for_version(conversation.flow_version)
        await self.handler(timer.kind)(conversation, engine, self.clock())

    def handler(self, kind: TimerKind) -> Handler:
        """The handler of each kind; mypy checks that every kind has one (``assert_never``)."""
        match kind:
            case TimerKind.BOT_REMINDER:
                return self._bot_reminder
            case TimerKind.BOT_ABANDON:
                return self._bot_abandon
            case TimerKind.QUEUE_REASSURE:
                return self._queue_reassure
            case TimerKind.WEBCHAT_GONE:
                return self._gone
            case TimerKind.IDLE_CLOSE:
                return self._idle_close
            case _:
                assert_never(kind)

    async def _gone(self, conversation: Conversation, engine: Engine, now: datetime) -> None:
        await leaving.gone(self.dispatcher, conversation, now)

    async def _say(self, conversation: Conversation, engine: Engine, now: datetime, *texts: Reply) -> None:
        await self.dispatcher.emit(conversation, texts, Author.BOT, now)

    async def _bot_reminder(self, conversation: Conversation, engine: Engine, now: datetime) -> None:
        if conversation.status != Status.BOT or not conversation.engine:
            return
        language = language_of(conversation, engine.flow)
        question = engine.current_question(State.from_dict(conversation.engine))
        await self._say(conversation, engine, now, Reply(engine.message("reminder", language)), *question)
        minutes = engine.flow.timers.bot_abandon_minutes
        await self.store.set_timer(conversation.id, TimerKind.BOT_ABANDON, now + timedelta(minutes=minutes))

    async def _bot_abandon(self, conversation: Conversation, engine: Engine, now: datetime) -> None:
        """Still quiet since the reminder: the goodbye, abandoned. Not when the young person wrote since the
        reminder that armed it (nothing cancels it while they answer the bot, each answer moving the reminder on):
        moved to where their last message's reminder would put it (``bot_reminder_minutes`` then
        ``bot_abandon_minutes`` after it), which that reminder sets again; never before it, also when the abandon
        is the shorter of the two. Until 2026-12-07 the status alone was checked: a young person answering 25
        minutes after the reminder was told "plus de nouvelles" and abandoned 5 minutes later
        (``tests/test_timers_stale.py``)."""
        if conversation.status != Status.BOT:
            return
        timers = engine.flow.timers
        quiet = timedelta(minutes=timers.bot_reminder_minutes + timers.bot_abandon_minutes)
        wrote = conversation.last_inbound_at
        if wrote is not None and wrote + quiet > now:  # written since it was armed: not quiet that long
            await self.store.set_timer(conversation.id, TimerKind.BOT_ABANDON, wrote + quiet)
            return
        language = language_of(conversation, engine.flow)
        await self._say(conversation, engine, now, Reply(engine.message("abandoned", language)))
        await self.dispatcher.transition(conversation, Trigger.ABANDON, now)

    async def _queue_reassure(self, conversation: Conversation, engine: Engine, now: datetime) -> None:
        if conversation.status != Status.QUEUED or conversation.queue is None:
            return
        queue = conversation.queue
        engine = self.flows.knowing(conversation.flow_version, lambda e: queue in e.flow.queues) or engine  # reloaded
        language = language_of(conversation, engine.flow)
        window = self.dispatcher.closed_window(conversation, Author.BOT, now)
        minutes: float = engine.flow.timers.queue_reassurance_minutes
        if window is not None:
            await self._paused(conversation, window, now)
        elif conversation.standby_at is not None:  # another app's thread, a page admin's answer: nothing over it, the
            pass  # listeners still see the wait; re-armed, it speaks again once they write on the gateway's thread
        elif queue in engine.flow.queues and not engine.is_open(queue, now):
            if not closed_line_told(conversation):  # once per wait
                text = engine.closed_line(conversation.queue, language, now)
                await self._say(conversation, engine, now, Reply(text))
                conversation.closed_notice_for = conversation.queued_at or now
                conversation.closed_told_at = now
        else:
            reopened = closed_line_told(conversation)  # told nobody answers before the reopening: say it reopened
            conversation.closed_notice_for = None  # open: the line's next closing during this wait is told again
            position = await self.store.position(conversation.id) or 1
            if self.dispatcher.listeners_online() > 0:
                text = engine.message("reopened" if reopened else "reassurance", language, position=position)
            else:  # nobody online: say so again rather than promise a listener "as soon as possible", less often
                text = engine.message("reopened_offline" if reopened else "queued_offline", language, position=position)
                minutes = offline_interval(minutes, now - (conversation.queued_at or now))
            await self._say(conversation, engine, now, Reply(text))
        await self.store.set_timer(conversation.id, TimerKind.QUEUE_REASSURE, now + timedelta(minutes=minutes))

    async def _paused(self, conversation: Conversation, window: timedelta, now: datetime) -> None:
        """Tell the listeners once per closed window that the young person gets no more queue messages."""
        told = conversation.window_paused_for
        if told is not None and told == conversation.last_inbound_at:
            return
        hours = int(window.total_seconds() // 3600)
        await self.dispatcher.system_note(
            conversation, "queue_paused", now, channel=conversation.channel.value, hours=str(hours)
        )
        conversation.window_paused_for = conversation.last_inbound_at

    async def _idle_close(self, conversation: Conversation, engine: Engine, now: datetime) -> None:
        """Closed for the young person's silence, unless they wrote since it was armed: the idle close their last
        message calls for (``Dispatcher.idle_close_at`` from it) not due yet, it is moved there instead. A message
        in the queue or with a listener arms it again, but one with the bot does not, and an idle close may be left
        on a record with the bot: a hand-off whose record the lock's fence refused (``LockLost``; its timers, slot
        ``{timers}``, landed beside it), one armed on another app's thread before the bot answered on the gateway's
        own. Until 2026-12-07 it closed such a conversation minutes after the young person wrote
        (``tests/test_timers_stale.py``)."""
        wrote = conversation.last_inbound_at
        due = None if wrote is None else self.dispatcher.idle_close_at(conversation, engine, wrote)
        if due is not None and due > now:
            await self.store.set_timer(conversation.id, TimerKind.IDLE_CLOSE, due)
            return
        await leaving.idle_close(self.dispatcher, self.store, conversation, now)


OFFLINE_REPEAT_MAX_MINUTES = 30


def offline_interval(minutes: float, waited: timedelta) -> float:
    """When ``queued_offline`` is said again to a young person waiting while no listener is online: every
    ``queue_reassurance_minutes`` at first, then half their wait so far, at most every 30 minutes. Each is a
    notification on their phone (Messenger, WhatsApp, Telegram), maybe seen by someone beside them: until 2026-12-05
    an evening with nobody online (18:00 to 23:00) was 60 times the same text; now 14. A listener coming online is
    told at the next time (then every ``queue_reassurance_minutes`` again)."""
    return max(minutes, min(OFFLINE_REPEAT_MAX_MINUTES, waited.total_seconds() / 120))


def _firing_key(lease: Timer) -> str:
    """What names one firing of a timer: its conversation, its kind and the end of the lease it is handled under
    (the due time :meth:`Timers._handle` moves it to; a retry reads that very time). Each firing has its own lease's
    end, so a timer fired again later (re-armed, or failed and retried) has another key."""
    return f"timer:{lease.conversation_id}:{lease.kind}:{to_us(lease.due_at)}"
