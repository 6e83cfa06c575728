"""What a listener does to a conversation: take, reply, note, refer, transfer, hand back, close.

Every action runs under the conversation's lock and through the lifecycle machine, so an action that does not
fit the conversation's status (replying to a closed one, taking one already taken) is refused with a clear
:class:`ActionRefused` (HTTP 409) and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

from gateway import leaving
from gateway.clock import Clock
from gateway.conversation import Conversation, Status
from gateway.dispatcher import CLAIM_SECONDS, DEDUPE_TTL_SECONDS, Dispatcher, unsubscribed
from gateway.errors import ActionRefused, Conflict, IllegalTransition, LockTimeout, StoreError
from gateway.events import DeliveryChanged, NoteAdded, QueueChanged, Typing
from gateway.flows import lifecycle
from gateway.flows.engine import Engine
from gateway.flows.lifecycle import Trigger
from gateway.flowset import FlowSet
from gateway.ids import derived_from, derived_id, derived_ids, new_id
from gateway.language import language_of
from gateway.messages import Reply
from gateway.store import (
    ANYONE,
    AuditEntry,
    AuditStore,
    Author,
    BatchStore,
    Claim,
    ClaimState,
    ConversationStore,
    DedupeStore,
    Delivery,
    DoneMark,
    EventStore,
    LockStore,
    OutboxStore,
    QueueEntry,
    QueueStore,
    TimerKind,
    TimerStore,
    TranscriptEntry,
    TranscriptStore,
)

log = logging.getLogger(__name__)

MAX_TEXT = 4000
WITHDRAWN = "withdrawn: {why} before it was listed to be sent (a {kind} cut short)"
ENDED_FIRST = "its conversation ended"  # why, the usual case: closed, idle-closed or abandoned before the check
ENDING = (
    "the conversation is ending (closed for inactivity, by the young person or in a bulk close): it is being completed"
)
# An ending cut short and completed by the check (``_complete_ending``): its audit line and what it was, but a quick
# exit's and a "Terminer"'s (``leaving_completed``, "a leaving").
COMPLETED = {"idle_close": ("idle_close_completed", "an idle close"),
             "closed_in_bulk": ("bulk_close_completed", "a bulk close")}  # fmt: skip
CLOSING = timedelta(hours=2)  # a reply window with less than this left is shown as closing
AUTOMATIC = "gateway"  # the mover an automatic hand-back is listed as begun by (with its hold: ``_automatic``)
LOCK_SECONDS = 10.0  # how long a listener's action waits for a conversation's lock (``locked_batch``'s default)


@dataclass(frozen=True, slots=True)
class _Once:
    """An action to make (:meth:`Actions._once`): ``mark``, the processed mark of its console id, saved with its record
    (None: sent without an id)."""

    mark: DoneMark | None


class ActionsRoles(
    ConversationStore, TranscriptStore, QueueStore, TimerStore, EventStore, LockStore, DedupeStore, AuditStore,
    BatchStore, OutboxStore, Protocol,
):  # fmt: skip
    """What the listeners' actions need of the store (replies and status changes go through the dispatcher; the
    audit log: a hand-back of the gateway's own; a batch: a hand-back's writes together; the outbox: a cut
    transfer's messages withdrawn)."""


class Actions:
    def __init__(
        self, dispatcher: Dispatcher, store: ActionsRoles, flows: FlowSet, *, clock: Clock,
        lock_seconds: float = LOCK_SECONDS,
    ) -> None:  # fmt: skip
        """``lock_seconds``: how long each action waits for a conversation's lock (``locked_batch``), then
        ``LockTimeout``: a listener's click, :data:`LOCK_SECONDS`; the alert check's repairs, a shorter wait (since
        2026-12-07 the app gives the check its own ``Actions``, ``alerts.REPAIR_LOCK_SECONDS``: each busy conversation
        held a round up for 10 s before it was skipped, several of them minutes)."""
        self.dispatcher, self.store, self.flows, self.clock = dispatcher, store, flows, clock
        self.lock_seconds = lock_seconds

    async def _load(self, conversation_id: str) -> Conversation:
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            raise ActionRefused("not_found", "no such conversation")
        return conversation

    def _mine(self, conversation: Conversation, listener: str) -> None:
        if conversation.status != Status.WITH_LISTENER or conversation.listener != listener:
            raise ActionRefused("not_yours", "take the conversation first (it is not with you)")

    async def take(self, conversation_id: str, listener: str, capacity: int) -> Conversation:
        # The listener's own lock: two takes from two tabs cannot both pass the capacity check.
        async with self.store.lock(f"listener:{listener}"):
            # A take sent again (a double click on "Prendre", a resend after its answer was lost): theirs already, it is
            # answered as the take it repeats, the young person told once; refused, it said a colleague took it.
            conversation = await self._load(conversation_id)
            if conversation.status == Status.WITH_LISTENER and conversation.listener == listener:
                return conversation
            held = await self.store.held_by(listener)
            if held >= capacity:
                raise ActionRefused("capacity", f"you already hold {held} conversation(s), your capacity")
            return await self._take(conversation_id, listener)

    async def _take(self, conversation_id: str, listener: str) -> Conversation:
        """The queue step (``store.take``: the entry taken, Conflict when it does not wait), then the timer, the
        status, the young person told and the record, in the conversation's batch (``locked_batch``). SQLite holds
        the queue step in the batch's one transaction: an instance dying halfway writes none of it. Redis makes it
        at once (another slot than the record's), then the rest in one pipeline, the record last: a crash in
        between leaves a record that says queued beside a taken entry, which the next alert check settles
        (:meth:`back_in_line`): the take completed when the young person was told a listener joined (the message's
        id derives from the take, :func:`_take_key`), else the young person back in line. Never a young person in
        no queue and with no listener for longer, nor told a listener joined while nobody holds them. The take is
        listed with its taker (``store.begin_take``, first in the pipeline, after the queue step) until its record is
        written (``store.end_take``, after it): cut after its message was written and before it was listed, then
        ended before that check (closed, idle-closed, abandoned: no longer queued), the message is withdrawn by the
        check (:meth:`complete_take`), never sent after the goodbye nor left pending."""
        status: Status | None = None
        try:
            async with self.store.locked_batch(conversation_id, self.lock_seconds):
                conversation = await self._load(conversation_id)
                status, now = conversation.status, self.clock()
                lifecycle.advance(conversation.status, Trigger.TAKE)  # refused before the store's take
                entry = await self.store.take(conversation_id, listener, now)
                await self.store.begin_take(conversation_id, listener)  # before anything the take tells
                await self._told_of_move(conversation, entry, now)  # before the take changes the record
                await self._join(conversation, listener, now, entry)
                await self.store.end_take(conversation_id)
        except (IllegalTransition, Conflict):  # nothing was changed (SQLite: the batch's transaction dropped)
            if status == Status.QUEUED and conversation_id in await self.store.leavings_begun():
                raise ActionRefused("not_active", "the young person left or the conversation is closing: it no longer"
                                    " waits for a listener") from None  # fmt: skip
            if status in (Status.QUEUED, Status.WITH_LISTENER):  # a colleague's take came first
                raise ActionRefused("taken", "another listener took this conversation") from None
            raise ActionRefused("not_active", "this conversation is no longer waiting for a listener") from None
        self.dispatcher.kick_outbox()  # the outbox may have looked before the batch's writes were made
        return conversation

    async def _told_of_move(self, conversation: Conversation, entry: QueueEntry, now: datetime) -> None:
        """A waiting conversation's transfer cut short after its queue step (on Redis), taken from the new queue
        before the check completed it (its ``entry`` is not where its record says it waits): the messages the
        transfer wrote (their place, an urgent one's emergency numbers) may be written and not listed to be sent, and
        the check, finding the conversation held, would not list them. They are written again with their ids (the
        store keeps the entries and items, and lists an item not listed yet), before the take's own message: sent
        once, in the order a transfer and a take not cut would have told them. A transfer cut before its messages
        wrote none: nothing told (the listener's joining says where they stand). Read only after such a cut."""
        if conversation.status != Status.QUEUED or (entry.queue, entry.at) == (conversation.queue,
                                                                               conversation.queued_at):  # fmt: skip
            return
        key = _transfer_key(conversation, entry.queue)  # the record as the transfer found it: unchanged
        written = {e.id: e for e in await self.store.transcript(conversation.id)}
        told = [written[i] for i in itertools.takewhile(written.__contains__,
                                                        (derived_id(key, n) for n in itertools.count(1)))]  # fmt: skip
        if told:
            with derived_ids(key):
                await self.dispatcher.emit(conversation, [Reply(e.text, e.choices) for e in told], Author.BOT, now)

    async def _join(self, conversation: Conversation, listener: str, now: datetime, entry: QueueEntry) -> None:
        """A take's writes after its queue step: the queue's timer cancelled, the new status, the young person told a
        listener joined (the message's id derived from the take: written again, by a take completed after a cut, it
        is the same entry and outbox item, which the store ignores), the record last. The record names the queue
        its taken ``entry`` waited in, and its arrival there: the same but for a waiting conversation's transfer cut
        after its queue step (on Redis), taken from the new queue before the check completed it, whose record still
        named the old one (:meth:`complete_move` then finds it held: nothing left to complete)."""
        key = _take_key(conversation, listener)  # before the take changes the record
        if conversation.taken_at is None:  # the first take: the wait the period figures measure
            waited = (now - (conversation.waiting_since or entry.at)).total_seconds()
            conversation.first_wait_seconds = max(int(waited), 0)
        conversation.listener, conversation.taken_at = listener, now
        conversation.queue, conversation.queued_at = entry.queue, entry.at
        # a listener answers on the gateway's own thread now: the pause of the queue's timed messages a page admin's
        # answer or another app's thread set (``standby_at``) ends, so a hand-back is told its place or the closed
        # line again (until 2026-12-06 it stayed paused until the young person wrote: told nothing, even at night)
        conversation.standby_at = None
        await self.store.cancel_timers(conversation.id, TimerKind.QUEUE_REASSURE)
        await self.dispatcher.transition(conversation, Trigger.TAKE, now)
        engine = self.flows.for_version(conversation.flow_version)
        joined = engine.message("listener_joined", language_of(conversation, engine.flow))
        with derived_ids(key):
            await self.dispatcher.emit(conversation, [Reply(joined)], Author.BOT, now)
        await self.store.save_conversation(conversation)

    async def reply(self, conversation_id: str, listener: str, text: str, key: str | None = None) -> TranscriptEntry:
        """Send the listener's reply. ``key``: the console's id of this reply, the same when it sends it again (its
        answer lost with the connection): a reply already recorded under it is answered as it was, never sent twice
        (a de-duplication claim, as for a young person's message, marked done with the conversation's save)."""
        text = _clean(text)
        async with self.store.lock(conversation_id):
            conversation = await self._load(conversation_id)
            self._mine(conversation, listener)
            await self._not_ending(conversation_id)
            return await self._send(conversation, listener, text, key)

    async def _send(self, conversation: Conversation, listener: str, text: str, key: str | None) -> TranscriptEntry:
        """The listener's ``text`` to the young person (a reply, a partner's message), under the conversation's lock;
        once per ``key`` (:meth:`_claim_reply`): one sent already under it is answered as it was."""
        claim = None if key is None else await self._claim_reply(conversation.id, listener, key)
        if isinstance(claim, TranscriptEntry):
            return claim  # sent already
        try:
            self._check_window(conversation)
            now = self.clock()
            entries = await self.dispatcher.emit(conversation, [Reply(text)], Author.LISTENER, now)
            conversation.updated_at = now
            done = None if claim is None else DoneMark(claim.key, DEDUPE_TTL_SECONDS)
            await self.store.save_conversation(conversation, done=done)
        except BaseException:
            if claim is not None:
                with contextlib.suppress(StoreError):
                    await self.store.release(claim.key, claim.owner)
            raise
        return entries[0]

    async def _not_ending(self, conversation_id: str) -> None:
        """A listener's send (a reply, a referral) refused (``not_active``) while an ending of the conversation is
        listed as begun (``store.leavings_begun``: on Redis a held conversation's idle close or "Terminer" cut short
        after its goodbye, before its record, which still says held; the check completes it within seconds): sent now,
        it would reach the young person after their goodbye. One read (``HGETALL`` of a hash empty but for an ending
        under way or cut short) a send: no script of the send's slots can read that list; SQLite lists nothing."""
        if conversation_id in await self.store.leavings_begun():
            raise ActionRefused("not_active", ENDING)

    async def _claim_reply(self, conversation_id: str, listener: str, key: str) -> Claim | TranscriptEntry:
        """The reply ``key``'s claim, its entry ids derived from it (:func:`derived_from`); or its entry when it was
        sent already. Under the conversation's lock (:meth:`reply`, :meth:`refer`), as every claim of the key is made
        and saved done or released (its digest names the conversation): a claim of another owner still within its
        lease is one whose instance died mid-send, or whose lock lapsed (its writes refused by the lock's fence), so
        it is taken over (``claim(take_over=True)``): DONE when the record saved it, else sent now under the same
        ids, written and sent once. Since 2026-12-07; until then the console's retry was refused ``409 sending``
        for the rest of the dead claim's lease (``CLAIM_SECONDS``, 10 s: ``tests/console/test_reply_taken_over.py``).
        """
        digest = hashlib.sha256(f"{conversation_id}:{listener}:{key}".encode()).hexdigest()[:32]
        claim = Claim(f"reply:{digest}", secrets.token_hex(8), CLAIM_SECONDS)
        state = await self.store.claim(claim.key, claim.owner, claim.lease_seconds, take_over=True)
        derived_from(claim.key)  # the reply's entry id: the same at every try
        if state is ClaimState.CLAIMED:
            return claim
        entry_id = new_id()
        sent = [e for e in await self.store.transcript(conversation_id) if e.id == entry_id]  # a duplicate only
        if state is ClaimState.BUSY or not sent:  # BUSY: the claim changed hands as it was taken over (Redis's retries)
            raise ActionRefused("sending", "this reply is being sent: try again in a moment")
        return sent[0]

    def window(self, conversation: Conversation) -> dict[str, object]:
        """The channel's reply window for a listener: ``open``, ``closing`` (under :data:`CLOSING`), ``closed``,
        or ``none`` when the channel has no window (web chat, Telegram) or the young person never wrote."""
        limit = self.dispatcher.reply_window(conversation, Author.LISTENER)
        if limit is None or conversation.last_inbound_at is None:
            return {"state": "none", "closes_at": None, "hours": None}
        closes_at = conversation.last_inbound_at + limit
        left = closes_at - self.clock()
        state = "closed" if left < timedelta(0) else "closing" if left < CLOSING else "open"
        return {"state": state, "closes_at": closes_at.isoformat(), "hours": int(limit.total_seconds() // 3600)}

    def _check_window(self, conversation: Conversation) -> None:
        if unsubscribed(conversation):  # Twilio would refuse it (21610): said now, not as a failure later
            raise ActionRefused("unsubscribed", "they unsubscribed (STOP): nothing reaches them before START")
        limit = self.dispatcher.closed_window(conversation, Author.LISTENER, self.clock())
        if limit is not None:
            hours = int(limit.total_seconds() // 3600)
            raise ActionRefused(
                "window_closed",
                f"{conversation.channel.value} refuses messages more than {hours} h after the young person's last one",
            )

    async def typing(self, conversation_id: str, listener: str) -> None:
        """The listener is typing: told to the young person (channels that show it) and the console; only by the
        conversation's holder."""
        self._mine(await self._load(conversation_id), listener)
        await self.store.publish(Typing(conversation_id, "listener"))

    async def note(self, conversation_id: str, listener: str, text: str, key: str | None = None) -> TranscriptEntry:
        """A private note: in the transcript for listeners, never sent to the young person. ``key``: the console's id
        of this note, the same when it sends it again (its answer lost): its entry's id derives from it, and a note
        already recorded under it is answered as it was, never recorded twice."""
        text = _clean(text)
        async with self.store.lock(conversation_id):
            await self._load(conversation_id)
            entry_id = new_id() if key is None else derived_id(f"note:{conversation_id}:{listener}:{key}", 1)
            if key is not None and await self.store.entries_written(conversation_id, [entry_id]):
                return next(e for e in await self.store.transcript(conversation_id) if e.id == entry_id)
            entry = TranscriptEntry(
                id=entry_id, conversation_id=conversation_id, at=self.clock(), author=Author.NOTE,
                text=f"{listener}: {text}",
            )  # fmt: skip
            await self.store.append_transcript(entry)
            await self.store.publish(NoteAdded(conversation_id, entry))
            return entry

    async def refer(self, conversation_id: str, listener: str, partner: str, key: str | None = None) -> TranscriptEntry:
        """Send a partner's referral message (from flows.yaml) in the young person's language. ``key``: the console's
        id of this "Orienter", the same when it sends it again (its answer lost): sent once, as a reply is."""
        async with self.store.lock(conversation_id):
            conversation = await self._load(conversation_id)
            self._mine(conversation, listener)
            await self._not_ending(conversation_id)
            self._check_window(conversation)  # a listener's send, like reply: refused (409) once the window shut
            engine = self.flows.knowing(conversation.flow_version, lambda e: partner in e.flow.partners)
            if engine is None:
                raise ActionRefused("unknown_partner", f"no partner '{partner}' in the flow")
            language = language_of(conversation, engine.flow)
            text = engine.text(engine.flow.partners[partner].message, language)
            if partner not in conversation.partners_given:  # given: not again at a hand-back (Dispatcher.owed)
                conversation.partners_given += (partner,)
            return await self._send(conversation, listener, text, None if key is None else f"refer:{partner}:{key}")

    async def transfer(
        self, conversation_id: str, listener: str, queue: str, *, supervisor: bool = False, key: str | None = None
    ) -> Conversation:
        """Cold transfer to another queue: the summary and transcript go along. A ``supervisor`` may transfer another
        listener's conversation. ``key``: the console's id of this transfer, made once (:meth:`_once`).

        In the conversation's batch (``locked_batch``): SQLite writes the transfer in one transaction (the place
        told is read with the held queue step, ``position``, without committing it). Redis makes the queue step
        first (another slot, with the place read), then the message, the status and the record in one pipeline: a
        crash in between leaves a held record beside a waiting entry, which the next alert check completes
        (:meth:`complete_hand_back`): as this transfer when the young person was told their place (the message's
        ids derive from the transfer, :func:`_transfer_key`), told once; else as a hand-back cut short, their place
        told by the queue's timer. The transfer is listed with its mover (``store.begin_move``, in the queue step's
        round trip, before it) until its record is written (``store.end_move``, after it): cut in between, a waiting
        one's entry in the new queue beside a record naming the old one, it is completed by the next alert check
        (:meth:`complete_move`); either completion names the mover. A supervisor's transfer of a conversation another
        listener holds is audited (who, which, from whom) in the batch, after the record (since 2026-12-07; until then
        before it, and a record refused by the lock's fence left the line of a transfer not made:
        :meth:`_audit_for_other`): a cut before the record leaves the check's completion naming the supervisor, one
        between the record and the line the transfer without its line. An earlier transfer to another queue cut after
        its queue step and not completed yet has its messages written and never listed withdrawn first
        (:meth:`_withdraw_moved`): this transfer's place is the one told. Its record refused by the lock's fence
        (``LockLost``, the console's 503: nothing made), the store undoes its queue step under the lock taken again
        (``RedisStore._unqueue_refused``: the entry put back as the record says, the listing removed), so the check
        completes nothing and the retry with the same key is made once; until 2026-12-07 the check completed it and
        the retry was refused ``same_queue`` (``tests/console/test_transfer_refused.py``). The queue step names the
        holder it expects (the record's listener, read under the lock; none for a waiting conversation): an entry
        another listener holds is left to them, Conflict (the console's 503), nothing moved (since 2026-12-08: until
        then a Redis step landing after its lock lapsed, an instance stalled, replaced the next holder's entry by a
        waiting one and the alert check completed a transfer they never made; a waiting conversation whose take was
        cut short, its entry held, was moved, the take undone: now refused until the check settles the take;
        ``tests/console/test_transfer_late_enqueue.py``)."""
        async with self._once(conversation_id, listener, "transfer", key) as (conversation, once):
            if once is None:
                return conversation  # made already: answered as it stands
            if conversation.status == Status.WITH_LISTENER and not supervisor:
                self._mine(conversation, listener)
            if await self._waits_in(conversation, queue):  # nothing to move: made, it sent them to the back of it
                await self._not_ending(conversation_id)  # an ending under way says so first, as the queue step would
                raise ActionRefused("same_queue", "it already waits in this queue")
            engine = self.flows.knowing(conversation.flow_version, lambda e: queue in e.flow.queues)
            if engine is None:
                raise ActionRefused("unknown_queue", f"no queue '{queue}' in the flow")
            now, holder = self.clock(), conversation.listener if conversation.status == Status.WITH_LISTENER else None
            moving = conversation.status in (Status.QUEUED, Status.WITH_LISTENER)  # its entry moves before its record
            if moving:  # before this transfer lists itself: the listing names an earlier one cut short, if any
                await self._withdraw_moved(conversation, queue, listener)
            try:
                if moving:
                    await self.store.begin_move(conversation_id, listener)
                with derived_ids(_transfer_key(conversation, queue)):  # before the transfer changes the record
                    await self.dispatcher.enqueue(conversation, engine, queue, conversation.priority, now,
                                                  unless_leaving=moving, holder=holder)  # fmt: skip
            except IllegalTransition as exc:
                raise ActionRefused("not_active", str(exc)) from None
            except Conflict:  # its ending listed as begun, or its entry another's (the queue step's script read it)
                if conversation_id in await self.store.leavings_begun():  # read only when refused
                    raise ActionRefused("not_active", ENDING) from None
                raise  # held by another than the record says (a late step, a take cut short): 503, nothing moved
            await self.store.save_conversation(conversation, done=once.mark)
            if holder is not None and holder != listener:  # a supervisor's: audited once its record was kept
                detail = f"{conversation.pseudonym}: from {holder}"
                await self.store.audit(AuditEntry(now, listener, "transfer", conversation_id, detail))
            if moving:
                await self.store.end_move(conversation_id)
        self.dispatcher.kick_outbox()  # the outbox may have looked before the batch's writes were made
        return conversation

    async def _waits_in(self, conversation: Conversation, queue: str) -> bool:
        """Whether the conversation waits in ``queue`` already, its record and its entry agreeing (a transfer cut after
        its queue step left its entry elsewhere: moved back, it moves). One read, for a waiting conversation only."""
        if conversation.status != Status.QUEUED or conversation.queue != queue:
            return False
        entry = await self.store.queue_entry(conversation.id)
        return entry is not None and entry.taken_by is None and entry.queue == queue

    async def _withdraw_moved(self, conversation: Conversation, queue: str, mover: str) -> None:
        """Before a transfer to ``queue`` (under the lock): an earlier transfer of the conversation to another queue,
        cut short on Redis after its queue step (listed as begun, ``store.moves_begun``; its entry waiting where the
        record does not say) and not completed yet, may have written the young person's place there (and an urgent
        one's emergency numbers) and never listed them to be sent. This transfer's ``end_move`` would unlist it, and
        nothing would look at those messages again: pending for good in an active conversation; sent, a place no longer
        true, after (or before) this transfer's own. Withdrawn instead (:meth:`_withdraw`: only those still pending and
        listed nowhere; their ids derived from that transfer, :func:`_transfer_key`, the record unchanged by the cut),
        audited ``transfer_withdrawn`` naming its mover. Made again to the same queue, the earlier transfer's ids are
        this one's: written again, listed, told once. One read when no transfer of it is listed (on SQLite none)."""
        listed = await self.store.moves_begun()
        if conversation.id not in listed:
            return
        entry = await self.store.queue_entry(conversation.id)
        if (
            entry is None or entry.taken_by is not None or entry.queue == queue
            or (entry.queue, entry.at) == (conversation.queue, conversation.queued_at)
        ):  # fmt: skip
            return  # no transfer of it cut after its queue step, or one to this queue: its ids are this transfer's
        key = _transfer_key(conversation, entry.queue)
        written = {e.id for e in await self.store.transcript(conversation.id)}
        told = list(itertools.takewhile(written.__contains__, (derived_id(key, n) for n in itertools.count(1))))
        why = f"its conversation was transferred again (to {queue}{_by(mover)})"
        await self._withdraw(conversation, "transfer", listed[conversation.id], told, why=why)

    async def hand_back(
        self, conversation_id: str, listener: str, *, supervisor: bool = False, key: str | None = None,
        gone: Callable[[], int] | None = None, leaving: bool = False, wait: float | None = None,
    ) -> Conversation:  # fmt: skip
        """Back to the queue, at its arrival time. A ``supervisor`` may give back any listener's conversation (one held
        by somebody who left their console: nobody else may answer it), audited in the batch (:meth:`_audit_for_other`).
        ``key``: the console's id of this hand-back, made once (:meth:`_once`). ``gone``: the listener is leaving (a
        logout, :meth:`hand_back_all`), the young person told so first (:meth:`_listener_gone`); it says how many
        other listeners are at a console. Its record refused by the lock's fence (``LockLost``, the console's 503:
        nothing made), the store puts its entry back as the record says, taken by the listener again
        (``RedisStore._unqueue_refused``), so the check completes nothing and the retry with the same key is made
        once; until 2026-12-07 the check completed it (audited ``gateway hand_back``) and the retry was refused
        ``not_yours`` (``tests/console/test_handback_refused.py``).

        ``leaving`` (:meth:`hand_back_all`: a logout, a logout everywhere, an account removed): the listener is gone,
        so a refused record is not undone (the young person would wait ``GATEWAY_HELD_HANDBACK_SECONDS`` held by
        nobody there): its queue step stays for the alert check to complete (:meth:`complete_hand_back`), and one
        that tells the young person (``gone``) is listed as begun by ``AUTOMATIC`` as :meth:`hand_back_absent` is,
        so that completion writes its message when it was refused with the record, with the hold's id: told once.
        Since 2026-12-07 (later that day): until then a logout's refused hand-back was put back as held by the
        listener who had just left.

        ``wait``: how long to wait for the conversation's lock (LockTimeout after it; None: ``lock_seconds``): a
        logout tries each conversation without waiting first (:meth:`hand_back_each`, since 2026-12-07)."""
        undo = not leaving  # a console's action the listener stays for: undone when refused
        once_made = self._once(conversation_id, listener, "hand_back", key, undo=undo, wait=wait)
        async with once_made as (conversation, once):
            if once is None:
                return conversation  # made already: answered as it stands
            if not (supervisor and conversation.status == Status.WITH_LISTENER):
                self._mine(conversation, listener)
            now = self.clock()
            audited = self._audit_for_other(conversation, listener, "hand_back", now)  # before it changes the record
            told = None if gone is None else self._listener_gone(conversation, now, others=gone())
            try:
                # a logout's: the message's id derived from this hold (as hand_back_absent's), so a try again after a
                # cut writes the same entry and outbox item, which the store ignores (until 2026-12-06 a random id)
                listed = leaving and told is not None
                if listed:  # before its queue step and its message, as an automatic hand-back's
                    await self.store.begin_move(conversation_id, _automatic(conversation))
                with derived_ids(_hold_key(conversation)) if told is not None else contextlib.nullcontext():
                    await self._requeue(conversation, now, told=told, unless_leaving=True, done=once.mark)
                if audited is not None:  # after the record (``_audit_for_other``)
                    await self.store.audit(audited)
                if listed:  # Redis: sent once the record was answered written (refused, kept for the check)
                    await self.store.end_move(conversation_id)
            except Conflict:  # no entry, or its ending listed as begun (the queue step's script read it)
                if conversation_id in await self.store.leavings_begun():  # read only when refused
                    raise ActionRefused("not_active", ENDING) from None
                raise
        return conversation

    def _audit_for_other(
        self, conversation: Conversation, listener: str, action: str, now: datetime
    ) -> AuditEntry | None:
        """The audit line (who, which, from whom) of a supervisor's hand-back or close of a conversation another
        listener holds, read from the record before the action changes it; the caller writes it in the action's batch
        after its record, as a transfer's is: never for an action sent again and not made. On Redis the line (slot
        ``{audit}``, which cannot read the lock) is then sent once the record was answered written (the save's second
        pipeline, ``HeldWrite.cut``): since 2026-12-07; until then it went before the record, and a record the lock's
        fence refused (``LockLost``: the action not made, the conversation still its listener's) left the line all the
        same (``tests/console/test_audit_refused.py``). A cut between the record and the line (an instance dying in
        that round trip) leaves the action made without its line."""
        if conversation.status == Status.WITH_LISTENER and conversation.listener != listener:
            detail = f"{conversation.pseudonym}: from {conversation.listener}"
            return AuditEntry(now, listener, action, conversation.id, detail)
        return None

    @contextlib.asynccontextmanager
    async def _once(
        self, conversation_id: str, listener: str, action: str, key: str | None, *, undo: bool = True,
        wait: float | None = None,
    ) -> AsyncIterator[tuple[Conversation, _Once | None]]:  # fmt: skip
        """The conversation's batch (``locked_batch``) for a hand-back, a transfer or a close, with the conversation
        read under its lock. ``key``: the console's id of the action, the same when it sends it again (its answer lost
        with the connection, a 503 while Redis restarts, a browser's retry): claimed as a reply's is
        (:meth:`_claim_reply`), its processed mark saved with the record the action writes (``_Once.mark``). Made
        already under it, the block gets None and answers the conversation as it stands, nothing made again: the
        console shows its own action as made, not "not yours" or "no longer active"; and a supervisor's hand-back or
        transfer sent again after a colleague took the conversation from the queue no longer takes it from them.
        Otherwise ``_Once`` (its mark None without a key). The claim of an action that failed is released: sent
        again, it is made. ``undo``: False for a hand-back of a listener who is gone (:meth:`hand_back`'s
        ``leaving``). A claim of another owner still within its lease is taken over, as a reply's is (every claim of
        the key is made under this lock: its owner died or lost the lock): since 2026-12-07; until then the retry of
        an action whose instance died was refused ``409 in_progress`` for the rest of its lease (10 s)."""
        claim = None
        try:
            # a refused commit (a 503, nothing made) has its queue step undone (Redis, ``undo_queue_step``)
            timeout = self.lock_seconds if wait is None else wait  # ``wait``: a logout's first try (hand_back_each)
            async with self.store.locked_batch(conversation_id, timeout, undo_queue_step=undo):
                conversation = await self._load(conversation_id)
                if key is None:
                    yield conversation, _Once(None)
                    return
                # not the record's hold: a supervisor's request sent again after a colleague's take names the hold it
                # was made for (the console makes a new id for what it shows since, and for a new take of its own)
                digest = hashlib.sha256(f"{conversation_id}:{listener}:{action}:{key}".encode()).hexdigest()
                claim = Claim(f"{action}:{digest[:32]}", secrets.token_hex(8), CLAIM_SECONDS)
                state = await self.store.claim(claim.key, claim.owner, claim.lease_seconds,
                                               kept_seconds=DEDUPE_TTL_SECONDS, take_over=True)  # fmt: skip
                if state is ClaimState.BUSY:  # the claim changed hands as it was taken over (Redis's retries)
                    raise ActionRefused("in_progress", "this action is being made: look again in a moment")
                done = state is ClaimState.DONE
                yield conversation, None if done else _Once(DoneMark(claim.key, DEDUPE_TTL_SECONDS))
        except BaseException:
            if claim is not None:
                with contextlib.suppress(StoreError):
                    await self.store.release(claim.key, claim.owner)
            raise

    async def hand_back_absent(
        self, conversation_id: str, listener: str, absent: Callable[[str], bool],
        signed_in: Callable[[str], Awaitable[bool]] | None = None,
    ) -> bool:  # fmt: skip
        """Back to the queue as :meth:`hand_back` does, ``listener`` having had no console open for too long
        (``gateway/alerts.py``), the young person told first (flows.yaml ``listener_disconnected``; its queue closed
        now, ``listener_disconnected_closed``, no other listener promised, the closed line following; open with no
        other listener at a console, ``listener_disconnected_offline``: back in line, nobody to promise). Checked again
        under the conversation's lock: still held by ``listener``, who is still ``absent``; so, with several instances
        deciding alike, one hands back and tells the young person, the others find it queued. Whether it went back.

        Told once, even across a crash: the queue step, the message, the new status and the audit line are one batch
        (one SQLite transaction; on Redis the queue step first, alone, then one pipeline, the record then the audit
        line last), and the message's entry id is derived from this hold (:func:`_hold_key`), so a try cut short after
        the message was written (a Redis prefix) is made again by the next check with the same entry and outbox item,
        which the store ignores; and made even if the listener came back meanwhile, since the young person was told.
        One cut right after the queue step is completed by the next check (:meth:`complete_hand_back`).

        Listed as begun as a transfer is (``store.begin_move``, its mover ``gateway``, before its queue step; ended
        after its audit line): cut after its message was written and before it was listed to be sent, then ended
        before that check by anything but a close from the console (which looks for the message itself,
        :meth:`_cut_before`): the idle timer, the young person's "Terminer", the check finds it in that list
        (:meth:`complete_move`) and withdraws the message (audited ``hand_back_withdrawn``), never sent after the
        goodbye nor left pending.

        ``signed_in`` (the check's hand-back of a listener who logged out, was logged out everywhere or removed while
        a conversation's lock was busy, :meth:`hand_back_each`; since 2026-12-07): whether ``listener`` is logged in
        anywhere, read again under the lock: logged in again meanwhile (another device, a new session), they keep it,
        as one back at a console does. Audited "logged out" rather than "no console open"."""
        try:
            async with self.store.locked_batch(conversation_id, self.lock_seconds):
                conversation = await self.store.get_conversation(conversation_id)
                if conversation is None or conversation.status != Status.WITH_LISTENER:
                    return False  # erased, handed back, closed or transferred meanwhile (by another instance, say)
                if conversation.listener != listener:
                    return False
                now = self.clock()
                with derived_ids(_hold_key(conversation)) as told_id:
                    back = not absent(listener) or (signed_in is not None and await signed_in(listener))
                    if back and not await self._told(conversation_id, told_id):
                        return False  # back at a console (or logged in again) meanwhile: they keep it
                    told = self._listener_gone(conversation, now, others=self.dispatcher.listeners_online())
                    await self.store.begin_move(conversation_id, _automatic(conversation))  # before its queue step
                    await self._requeue(conversation, now, told=told, unless_leaving=True)
                # For the supervisors (the audit list): whose absence it was; the log line has the id only. In the
                # batch: one SQLite transaction with the record; on Redis, the pipeline's step after the record.
                why = "no console open" if signed_in is None else "logged out, no console open"
                detail = f"{conversation.pseudonym}: from {listener}, {why}"
                await self.store.audit(AuditEntry(now, "gateway", "hand_back", conversation.id, detail))
                await self.store.end_move(conversation_id)
        except Conflict:  # no queue entry to go back to (nothing was changed): left with the alert
            return False
        self.dispatcher.kick_outbox()  # the outbox may have looked before the batch's writes were made
        return True

    def _listener_gone(self, conversation: Conversation, now: datetime, *, others: int) -> Reply:
        """What a young person is told when the listener holding their conversation is gone (no console open, logged
        out): ``listener_disconnected``; its queue closed now, ``listener_disconnected_closed`` (no other listener
        promised, the closed line follows); open with ``others`` (the listeners at a console but that one) none,
        ``listener_disconnected_offline``."""
        engine = self.flows.for_version(conversation.flow_version)
        queue = conversation.queue
        closed = queue is not None and queue in engine.flow.queues and not engine.is_open(queue, now)
        key = "listener_disconnected" + ("_closed" if closed else "_offline" if others <= 0 else "")
        return Reply(engine.message(key, language_of(conversation, engine.flow)))

    async def complete_hand_back(self, conversation_id: str, mover: str | None = None) -> bool:
        """Finish a hand-back or a transfer cut short after its queue step (``store.requeue``, ``store.enqueue``: its
        own step, another slot than the record's on Redis, before the batch): its entry waits in the queue while its
        record still says held, so nobody may take it and its holder, maybe back, answers a young person the queue
        lists as waiting. Found by the alert checks (``gateway/alerts.py``, every 10 s on each instance), whatever
        the holder's presence; checked again under the lock (a hand-back in progress holds it, and a take under it
        makes the two agree again). A transfer that got as far as telling the young person their place (its
        message's id, derived from the transfer, :func:`_transfer_key`, in the transcript) is completed as that
        transfer: its writes made again with the same ids (the message, which the store ignores: told once; the
        status, the queue's timers from now, the record), the entry's place kept; audited ``transfer_completed``.
        Else it is made as any hand-back: back in line, their place told by the queue's timer; audited; an automatic
        hand-back's message (:meth:`hand_back_absent`, its id derived from the hold) written again with its id when it
        was written, so that one cut before its listing is listed, sent once, not left pending for good; and written
        when it was not, the hand-back listed as begun by the gateway (``AUTOMATIC``): since 2026-12-07, until then an
        automatic hand-back whose record (and message, in the same pipeline) the lock's fence refused (``LockLost``: a
        failover) was completed here without it, the young person back in the queue untold
        (``tests/console/test_handback_refused.py``); its id is the hold's, so told once whatever the tries. ``mover``:
        who made the transfer, as listed with it (``store.moves_begun``; a supervisor's of another's conversation
        is named as a transfer not cut is audited), None for a hand-back (not listed): named in the audit line, and
        a transfer cut before its message is audited ``transfer_completed`` too. A mover counts only for an entry that
        moved: a hand-back's keeps its queue and arrival (the record's), a transfer's is at the transfer's time; so a
        hand-back cut short while a transfer cut before its queue step is still listed (until this check) is audited
        as the hand-back it is. The transfer's queue step, made again, expects the entry it read, waiting
        (``holder=None``): one another listener holds is left to them, Conflict, nothing changed (since 2026-12-08:
        until then it replaced whoever held it, and a check's step landing after its lock lapsed, its instance stalled
        while the next check completed and Bob took the young person, left Bob's entry waiting beside his record, a
        check's step being never undone; the check after it handed Bob's young person back;
        ``tests/console/test_check_late_enqueue.py``). Whether it was needed."""
        async with self.store.locked_batch(conversation_id, self.lock_seconds):
            conversation = await self.store.get_conversation(conversation_id)
            if conversation is None or conversation.status != Status.WITH_LISTENER:
                return False
            entries = [e for e in await self.store.waiting() if e.conversation_id == conversation_id]
            if not entries:
                return False  # taken: the record and the queue agree
            entry, holder, now = entries[0], conversation.listener, self.clock()
            # listed by an automatic hand-back (or a logout's) of this hold: its message owed; of an earlier hold (a
            # listing whose end was cut, outliving its record), nothing owed now (since 2026-12-07: until then any
            # listing by ``gateway`` made a later listener's hand-back cut short tell "your listener was disconnected")
            automatic = mover in (AUTOMATIC, _automatic(conversation))  # the bare name: an instance of before
            if (entry.queue, entry.at) == (conversation.queue, conversation.queued_at):
                mover = None  # its entry where it waited, at its arrival: a hand-back's, whatever transfer is listed
            key = _transfer_key(conversation, entry.queue)  # the record as the transfer found it: unchanged
            action, detail = "transfer_completed", f"from {holder} to {entry.queue}{_by(mover)}, a transfer cut short"
            if await self._told(conversation_id, derived_id(key, 1)):
                engine = self.flows.knowing(conversation.flow_version, lambda e: entry.queue in e.flow.queues)
                engine = engine or self.flows.for_version(conversation.flow_version)
                with derived_ids(key):
                    await self.dispatcher.enqueue(conversation, engine, entry.queue, conversation.priority, now,
                                                  at=entry.at, holder=None)  # fmt: skip
                await self.store.save_conversation(conversation)
            else:
                # a transfer cut before its message: the queue its entry waits in, since its arrival there
                conversation.queue, conversation.queued_at = entry.queue, entry.at
                hold = _hold_key(conversation)  # before the hand-back changes the record
                told = await self._written(conversation.id, hold)
                if told is None and automatic and mover is None:  # its message refused with its record: told now
                    told = self._listener_gone(conversation, now, others=self.dispatcher.listeners_online())
                with derived_ids(hold):  # an automatic hand-back's message, written again: listed, sent once
                    await self._requeue(conversation, now, told=told)
                if mover is None:  # not listed as a transfer: a hand-back
                    action, detail = "hand_back", f"from {holder}, a hand-back cut short"
            detail = f"{conversation.pseudonym}: {detail} completed"
            await self.store.audit(AuditEntry(now, "gateway", action, conversation.id, detail))
        self.dispatcher.kick_outbox()
        return True

    async def complete_move(self, conversation_id: str, mover: str | None = None) -> bool:
        """Finish a waiting conversation's transfer cut short after its queue step (on Redis the entry moves to the
        new queue, at its new arrival, in its own step, before the message and the record): the entry waits in the
        new queue while the record names the old one, so the console shows the old queue, and the young person may
        never have been told their new place. Found by the alert checks (``gateway/alerts.py``, every 10 s on each
        instance) among the transfers listed as begun (``store.moves_begun``); checked again under the lock (a
        transfer under way holds it and is found done). The transfer is completed as it was made: its writes made
        again with the same ids (the place's message, which the store ignores when it was written: told once), at
        the entry's place, the record last; audited ``transfer_completed``. Listed no more either way (a transfer
        cut before its queue step, or after its record, left nothing to complete; one taken from the new queue
        meanwhile is held, its record naming that queue: ``_join``; a held one's, listed too, is completed by
        :meth:`complete_hand_back`, and kept listed until it is: since 2026-12-07 (late), until then unlisted here when
        that completion was skipped in the same round, a ``LockLost`` or a lock held elsewhere, and an automatic
        hand-back's message owed by the listing never written: ``tests/console/test_handback_refused.py``). One whose
        conversation ended before the check (closed, idle-closed, abandoned)
        has its messages written and never listed withdrawn (:meth:`_withdraw`), an automatic hand-back's too (listed
        as a move by :meth:`hand_back_absent`; audited ``hand_back_withdrawn`` when the hold's message is among them).
        ``mover``: who made it, as listed, named in the audit line. Its queue step expects the entry it read, waiting
        (``holder=None``): one another listener holds is left to them, Conflict, nothing changed (since 2026-12-08:
        until then it replaced whoever held it, and a check's step landing after its lock lapsed, its instance
        stalled while the next check completed the transfer and Bob took the young person, left Bob's entry waiting
        beside his record, a check's step being never undone; the check after it handed Bob's young person back;
        ``tests/console/test_check_late_enqueue.py``). Whether it was completed."""
        async with self.store.locked_batch(conversation_id, self.lock_seconds):
            conversation = await self.store.get_conversation(conversation_id)
            entry = await self.store.queue_entry(conversation_id)
            cut = (
                conversation is not None and conversation.status == Status.QUEUED
                and entry is not None and entry.taken_by is None
                and (entry.queue, entry.at) != (conversation.queue, conversation.queued_at)
            )  # fmt: skip
            if cut:
                assert conversation is not None and entry is not None
                now, queue, before = self.clock(), entry.queue, conversation.queue
                engine = self.flows.knowing(conversation.flow_version, lambda e: queue in e.flow.queues)
                engine = engine or self.flows.for_version(conversation.flow_version)
                with derived_ids(_transfer_key(conversation, queue)):  # the record as the transfer found it
                    await self.dispatcher.enqueue(conversation, engine, queue, conversation.priority, now, at=entry.at,
                                                  holder=None)  # fmt: skip
                await self.store.save_conversation(conversation)
                # unlisted, then audited, once the record was answered written (Redis: ``end_move`` under the lock
                # starts the batch's second pipeline): refused by the lock's fence, the completion leaves its listing
                # for the next check and no line (since 2026-12-07; until then both were sent with the record)
                await self.store.end_move(conversation_id)
                moved = f"from {before} to {queue}{_by(mover)}"
                detail = f"{conversation.pseudonym}: {moved}, a transfer cut short completed"
                await self.store.audit(AuditEntry(now, "gateway", "transfer_completed", conversation_id, detail))
            else:
                if conversation is not None and not conversation.active:  # an automatic hand-back's message, or not
                    handed = await self._told(conversation_id, derived_id(_hold_key(conversation), 1))
                    await self._withdraw(conversation, *(("hand_back", None) if handed else ("transfer", mover)))
                pending = (
                    conversation is not None and conversation.status == Status.WITH_LISTENER
                    and entry is not None and entry.taken_by is None
                )  # fmt: skip
                if not pending:  # a held one's entry waiting: its listing is :meth:`complete_hand_back`'s to read
                    await self.store.end_move(conversation_id)
        if cut:
            self.dispatcher.kick_outbox()
        return cut

    async def _withdraw(
        self, conversation: Conversation, kind: str, by: str | None = None, ids: list[str] | None = None,
        *, why: str = ENDED_FIRST,
    ) -> bool:  # fmt: skip
        """A conversation that ended (closed, idle-closed, abandoned) while an operation of ``kind`` (a transfer, a
        take, a close), cut short on Redis after its messages were written and before they were listed to be sent,
        waited for the check: those messages (a place in a queue they are no longer in, an urgent one's emergency
        numbers, which the flow's goodbye gives again; a listener's joining; a goodbye of another category than the
        close made since) are not sent after the goodbye (nor at all after a quick exit), nor left pending for good:
        withdrawn (``store.outbox_withdraw``: each still pending and listed nowhere, failed with :data:`WITHDRAWN`,
        its entry shown failed; one listed is the outbox's, sent in order as an operation not cut would have been),
        audited ``<kind>_withdrawn`` (naming ``by``, who made it, when known) and logged by conversation id and count,
        never a text; each entry's new delivery published (the consoles show it failed). Nothing lists them any more:
        every completion needs an active record. ``ids``: only these (an active conversation's: the messages of one
        operation superseded, ``why``), else every bot entry still pending. Whether any was."""
        if ids is None:
            ids = [e.id for e in await self.store.transcript(conversation.id)
                   if e.author is Author.BOT and e.delivery is Delivery.PENDING]  # fmt: skip
        reason = WITHDRAWN.format(why=why, kind=kind)
        withdrawn = await self.store.outbox_withdraw(conversation.id, ids, reason)
        if not withdrawn:
            return False
        first = f"the conversation {conversation.status} first" if why == ENDED_FIRST else f"{why} first"
        detail = (f"{conversation.pseudonym}: {len(withdrawn)} message(s) written by an operation cut short, never"
                  f" listed to be sent, withdrawn ({kind}{_by(by)}): {first}")  # fmt: skip
        await self.store.audit(AuditEntry(self.clock(), "gateway", f"{kind}_withdrawn", conversation.id, detail))
        for entry_id in withdrawn:
            await self.store.publish(DeliveryChanged(conversation.id, entry_id, Delivery.FAILED, reason))
        log.warning("queue: conversation %s: %d message(s) written by an operation cut short (%s) never listed to be"
                    " sent: withdrawn (shown failed, not sent)", conversation.id, len(withdrawn), kind)  # fmt: skip
        return True

    async def complete_take(self, conversation_id: str, taker: str) -> bool:
        """A take listed as begun (``store.takes_begun``, with its ``taker``) and not ended, seen by the alert check
        (``gateway/alerts.py``) after its repairs: one cut short after its queue step whose record still says queued
        beside a taken entry (or none) is :meth:`back_in_line`'s, left listed until it is settled; one whose
        conversation ended meanwhile (closed, idle-closed, abandoned before the check: no longer queued, so that
        repair never looks at it) has its "listener joined" (and any message it wrote again for a transfer cut
        before it) written and never listed withdrawn (:meth:`_withdraw`); listed no more otherwise (held: made whole
        or completed; waiting: back in line). Under the lock: a take under way holds it and is found done. Whether a
        message was withdrawn."""
        withdrawn = False
        async with self.store.locked_batch(conversation_id, self.lock_seconds):
            conversation = await self.store.get_conversation(conversation_id)
            if await self._back_in_lines(conversation):
                return False
            if conversation is not None and not conversation.active:
                withdrawn = await self._withdraw(conversation, "take", taker)
            await self.store.end_take(conversation_id)
        return withdrawn

    async def _back_in_lines(self, conversation: Conversation | None) -> bool:
        """Whether an operation cut short after its queue step (the record still queued, its entry taken or gone) is
        :meth:`back_in_line`'s to settle (this check's or the next), not its own listing's."""
        if conversation is None or conversation.status != Status.QUEUED:
            return False
        entry = await self.store.queue_entry(conversation.id)
        return entry is None or entry.taken_by is not None

    async def back_in_line(self, conversation_id: str) -> bool:
        """Settle a young person the queue lost: their record says queued while no entry of theirs waits in any
        queue, so no listener sees them and none holds them. A take cut short after its queue step (on Redis the
        entry taken in its own step, another slot than the record's: :meth:`_take`), or a close after its queue step
        (the entry gone: :meth:`close`). Found by the alert checks (``gateway/alerts.py``, every 10 s on each
        instance); checked again under the lock (a take in progress holds it: found done, left to its listener).

        A close that got as far as the young person's goodbye (its id, derived from the close and its category, in
        the transcript: :meth:`close`) is completed, with that category. A take that got as far as telling the young
        person a listener joined (its message's id, derived from the take) is completed: held by the listener who
        took them, told once. Otherwise they are back in line (:meth:`_line_again`). Audited, naming who had taken
        them. Whether anything was needed.

        Its entry read waiting (after the queue's order said otherwise: another instance's check put it back in line
        meanwhile, this one stalled past its lock's lease), nothing is needed: since 2026-12-08, until then it was
        handed back all the same, its queue step unchecked (``requeue(holder=None)``), and landing after Bob took the
        young person it un-took his entry, the next check handing his young person back
        (``tests/console/test_transfer_late_enqueue.py``). Read waiting and still listed nowhere (Redis: its queue's
        order or the queues' names lost with their key), it is listed again where it is (``store.list_waiting``: its
        place kept, no re-queue), audited ``queue_listed_again``: since 2026-12-08, until then it waited unseen by
        every listener, round after round (``tests/console/test_queue_names_lost.py``)."""
        async with self.store.locked_batch(conversation_id, self.lock_seconds):
            conversation = await self.store.get_conversation(conversation_id)
            if conversation is None or conversation.status != Status.QUEUED or conversation.queue is None:
                return False
            if conversation_id in await self.store.waiting_ids():
                return False  # waiting: the record and the queue agree
            now = self.clock()
            entry = await self.store.queue_entry(conversation_id)
            if entry is not None and entry.taken_by is None:  # waiting now: put back in line meanwhile (a check)
                if not await self.store.list_waiting(conversation_id):
                    return False
                detail = f"{conversation.pseudonym}: waiting in {entry.queue}, listed in no queue: listed again"
                await self.store.audit(AuditEntry(now, "gateway", "queue_listed_again", conversation_id, detail))
                await self.store.publish(QueueChanged())
                return True
            holder = None if entry is None else entry.taken_by
            left = await self._left(conversation)
            outcome = None if left is not None else await self._closing(conversation)
            if left is not None:  # they left (quick exit, "Terminer"), or were idle-closed: never back in line
                await self._complete_ending(conversation, left, now)
                completed = True
            elif outcome is not None:  # told goodbye: the close is made whole
                await self._end(conversation, "gateway", outcome, "", now)
                detail = f"{conversation.pseudonym}: closed ({outcome}), a close cut short completed"
                await self.store.audit(AuditEntry(now, "gateway", "close_completed", conversation_id, detail))
                completed = True
            elif holder is not None and await self._told(conversation_id,
                                                         derived_id(_take_key(conversation, holder), 1)):  # fmt: skip
                assert entry is not None  # its holder is read from it
                await self._join(conversation, holder, now, entry)  # told a listener joined: the take is made whole
                detail = f"{conversation.pseudonym}: taken by {holder}, a take cut short completed"
                await self.store.audit(AuditEntry(now, "gateway", "take_completed", conversation_id, detail))
                completed = True
            else:
                await self._line_again(conversation, now, holder)
                taken = f"taken by {holder}" if holder is not None else "its entry gone"
                lost = "listed in no queue and held by no one"
                detail = f"{conversation.pseudonym}: {lost} ({taken}, a move cut short): back in line"
                await self.store.audit(AuditEntry(now, "gateway", "back_in_line", conversation_id, detail))
                completed = False
        if completed:
            self.dispatcher.kick_outbox()
        return True

    async def _line_again(self, conversation: Conversation, now: datetime, holder: str | None) -> None:
        """A queued young person with no entry waiting, back in line: their entry at its place (``requeue``), or, with
        none left, a new one at their arrival time, their priority and flag; their place told by the queue's timer.
        The queue step names the holder the check read (``holder``, its taken entry's; None: it found no entry, and
        the new one expects nobody holding it): an entry another listener holds is left to them, Conflict, nothing
        changed (since 2026-12-08: until then a Redis step landing after its lock lapsed, the check's instance stalled,
        un-took the next holder's entry, and the check after it handed their young person back to the queue;
        ``tests/console/test_transfer_late_enqueue.py``). Since 2026-12-08 (later that day) ``holder`` is the entry's
        and its only sign: until then a flag ``has_entry`` went beside it, and an entry read waiting passed None to
        ``requeue``, unchecked there (:meth:`back_in_line` now leaves such an entry as it is)."""
        assert conversation.queue is not None
        if holder is not None:
            await self.store.requeue(conversation.id, holder=holder)  # a take's entry: waiting again at its place
        else:
            at = conversation.queued_at or now
            await self.store.enqueue(conversation.id, conversation.queue, conversation.priority, at,
                                     flag=conversation.flag, holder=None)  # fmt: skip
        await self.store.set_timer(conversation.id, TimerKind.QUEUE_REASSURE, now)
        await self.store.publish(QueueChanged())

    async def _written(self, conversation_id: str, key: str) -> Reply | None:
        """The message an operation named ``key`` wrote (its id derived from ``key``: an automatic hand-back's, cut
        short after it), as a reply to write again with that id; None when it wrote none."""
        if not await self._told(conversation_id, entry_id := derived_id(key, 1)):
            return None
        entry = next(e for e in await self.store.transcript(conversation_id) if e.id == entry_id)
        return Reply(entry.text, entry.choices)

    async def _told(self, conversation_id: str, entry_id: str) -> bool:
        """Whether the transcript has this entry (a hand-back's message, written by a try cut short)."""
        return bool(await self.store.entries_written(conversation_id, [entry_id]))

    async def _requeue(
        self, conversation: Conversation, now: datetime, told: Reply | None = None, *, unless_leaving: bool = False,
        done: DoneMark | None = None,
    ) -> None:  # fmt: skip
        """The one hand-back (under the conversation's lock, in its batch: ``locked_batch``): its queue entry back at
        its place and priority (``store.requeue``: Conflict when it has none; SQLite holds it in the batch's
        transaction, Redis makes it at once, another slot, and again by a retry or :meth:`complete_hand_back`), then
        in the batch ``told`` to the young person, the new status, their place or the closed line by the queue's
        timer, and the record, written together. ``unless_leaving`` (a hand-back begun now, a listener's or the
        gateway's, not one completed by the check): Conflict, nothing changed, while the conversation's ending is
        listed as begun (an idle close or "Terminer" cut short after the goodbye: in a queue after it, the young person
        would be told their place; the queue step's script reads the list, no round trip more). ``done``: the processed
        mark of the console's id of a listener's hand-back (:meth:`_once`), saved with the record. The queue step names
        the holder it hands back from (the record's): an entry another listener holds is left to them, Conflict (since
        2026-12-08: until then a Redis step landing after its lock lapsed, an instance stalled, un-took the next
        holder's entry; ``tests/console/test_handback_late_requeue.py``). The priority step after it (words of danger
        read while held: ``enqueue`` at the record's priority, held in the batch, sent before its fenced writes) expects
        no holder (``holder=None``: the entry ``requeue`` just left waiting), since 2026-12-08: until then it replaced
        whoever held it (``ANYONE``), and landing after its lock lapsed it put the next holder's entry back in line, the
        next alert check handing their young person back (``tests/console/test_handback_late_priority.py``).
        A held record names its listener (only a take makes one, naming them first: :meth:`_join`); one that named
        none would be handed back from whoever holds its entry (``ANYONE``), as before 2026-12-08, when ``requeue``'s
        unchecked holder was None (``tests/console/test_handback_late_requeue.py``)."""
        holder = ANYONE if conversation.listener is None else conversation.listener
        entry = await self.store.requeue(conversation.id, unless_leaving=unless_leaving, holder=holder)
        if conversation.priority.rank < entry.priority.rank:  # words of danger while held: first in line, as waiting
            await self.store.enqueue(conversation.id, entry.queue, conversation.priority, entry.at,
                                     flag=conversation.flag, holder=None)  # fmt: skip
        # where to turn now, as a risk read while waiting tells it: the partners a risk read while held called for
        replies = [*([told] if told is not None else []), *self.dispatcher.owed(conversation)]
        if replies:
            await self.dispatcher.emit(conversation, replies, Author.BOT, now)
        conversation.listener, conversation.waiting_since = None, now  # its place by arrival, its wait from now
        conversation.closed_notice_for = None  # a new wait: a line closed meanwhile is told again, once
        await self.dispatcher.transition(conversation, Trigger.HAND_BACK, now)
        # Told at once where they stand, by the queue's timer (taking cancelled it): their place, or, the line
        # closed, where to turn now. Before, nothing was re-armed: silence, even through the night.
        await self.store.set_timer(conversation.id, TimerKind.QUEUE_REASSURE, now)
        await self.store.save_conversation(conversation, done=done)

    async def hand_back_all(self, listener: str, present: Callable[[str], bool] | None = None) -> int:
        """Every conversation ``listener`` holds, back to the queue as :meth:`hand_back` does: they logged out, were
        logged out everywhere or their account removed, and nobody else may answer a conversation they hold. The
        young person is told first that their listener is gone, as when one leaves their console
        (:meth:`_listener_gone`: the line closed, no other listener promised; open with nobody else at a console,
        none), then their place or the closed line. Before 2026-12-05 a young person in the middle of the exchange
        got only "Le chat du 3018 est fermé…" or "Merci, tu es en position 1…". ``present``: whether a listener is at
        a console (``listener``'s own, still open while the logout is answered, is not another); None where that is
        unknown (``gateway listeners remove``, another process): nothing said of the listener, nobody promised, the
        server's timer telling each young person their place or the closed line. How many went back.

        Every one is tried: one that fails in the store (refused by the lock's fence, ``LockLost``; a Redis timeout or
        a reset connection; its lock kept by another, ``LockTimeout``) is left to the alert check, which completes a
        hand-back cut after its queue step (:meth:`complete_hand_back`) or gives back, at the first check once its lock
        is free, one still held by the listener gone, logged in nowhere (:meth:`hand_back_absent` with ``signed_in``;
        until 2026-12-07 only after ``GATEWAY_HELD_HANDBACK_SECONDS``, 600 s later); the first
        such error is raised once the others were tried (the console's 503). Until 2026-12-07 the first ``LockLost``
        stopped the loop, then (later that day) any other store error still did: the listener's other conversations
        stayed held by someone who had left (``tests/console/test_handback_refused.py``). Each is tried first without
        waiting for its lock, one after the other (a reset connection fails the one in flight only); those whose lock
        was busy then all at once, each waiting ``lock_seconds`` for its own: the logout waits for one lock at most,
        the others handed back meanwhile. Until 2026-12-07 each busy lock was waited for in turn (N x 10 s for N busy,
        the listener's page waiting for its answer and the others still held by the listener who had left;
        ``tests/console/test_logout_busy.py``)."""
        returned, refused = await self.hand_back_each(listener, present)
        if refused is not None:
            raise refused
        return returned

    async def hand_back_each(
        self, listener: str, present: Callable[[str], bool] | None = None
    ) -> tuple[int, StoreError | None]:
        """:meth:`hand_back_all`, its first store error returned beside how many went back rather than raised:
        ``gateway listeners remove`` removes the account whatever a hand-back's fate and says both (since
        2026-12-07)."""
        gone: Callable[[], int] | None = None
        if present is not None:
            at_a_console = present

            def others() -> int:
                return self.dispatcher.listeners_online() - (1 if at_a_console(listener) else 0)

            gone = others

        held = [c.id for c in await self.store.conversations_by_status(Status.WITH_LISTENER) if c.listener == listener]
        returned, refused, busy = 0, None, []
        for conversation_id in held:  # without waiting for a lock: a busy one holds none of the others back
            try:
                await self.hand_back(conversation_id, listener, gone=gone, leaving=True, wait=0.0)
            except (ActionRefused, Conflict):  # closed, handed back or transferred meanwhile: not theirs any more
                continue
            except LockTimeout:  # another holds its lock: waited for below, with the other busy ones
                busy.append(conversation_id)
                continue
            except StoreError as error:  # the others next, this one left to the alert check (below)
                refused = refused or error
                continue
            returned += 1
        # the busy ones all at once, each waiting ``lock_seconds`` for its lock: the logout waits for one lock at
        # most (since 2026-12-07: until then each in turn, N x 10 s)
        outcomes = await asyncio.gather(
            *(self.hand_back(i, listener, gone=gone, leaving=True) for i in busy), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, (ActionRefused, Conflict)):
                continue
            if isinstance(outcome, StoreError):  # its lock still kept, a store fault: left to the alert check
                refused = refused or outcome
                continue
            if isinstance(outcome, BaseException):  # a bug, the instance dying: raised once every one was tried
                raise outcome
            returned += 1
        return returned, refused

    async def close(
        self, conversation_id: str, listener: str, outcome: str, notes: str = "", *, supervisor: bool = False,
        key: str | None = None,
    ) -> Conversation:  # fmt: skip
        """Closed with a category from the flow, the young person told (``ended``). A ``supervisor`` may close another
        listener's conversation, which then names them as its listener: they ended it, with their category; its
        former holder, whom it was taken from, no longer sees it, notes it nor finds it in their history (as after a
        supervisor's transfer or hand-back, which name nobody).

        In the conversation's batch (``locked_batch``): SQLite writes the close in one transaction. Redis (the queue
        another slot than the record) orders its steps so that a cut anywhere leaves the close made, or not made
        and repairable, the goodbye told once (its id derives from the close and its category, :func:`_close_key`):

        * a waiting conversation leaves the queue first, alone, then the goodbye and the record: cut in between, its
          queued record with no entry is settled by the next alert check (:meth:`back_in_line`): the close completed
          when the goodbye was written, else back in line;
        * a held one's goodbye and record come first, its taken entry leaves after the record (``save_conversation``
          of an ended record): cut before that, the entry left only counts against its holder's capacity until
          ``held_by`` drops it; cut between the goodbye and the record, the next alert check completes it
          (:meth:`complete_close`: the close is listed, ``store.begin_close``, in its own round trip before the
          goodbye, until its record is written, ``store.end_close``), and closing it again meanwhile completes it
          too, without telling twice.

        Either is listed as begun (a waiting one's too): cut after its goodbye was written and before it was listed to
        be sent, then ended another way before the check (a waiting young person's quick exit, an idle close), the
        check withdraws that goodbye (:meth:`complete_close`), never sent after the end nor left pending. Closed again
        meanwhile with another category (another goodbye id), the close made again leaves the listing to the check,
        which withdraws the first goodbye if it was never listed: one goodbye told. Likewise a held conversation
        whose automatic hand-back was cut after its message (:meth:`hand_back_absent`): closed before the check that
        completes the hand-back, that message is withdrawn if it was never listed (:meth:`_cut_before`). And a
        listener's reply cut after it was written and before it was listed (its request failed; not sent again since)
        is withdrawn before the goodbye (:meth:`_withdraw_replies`). A conversation, held or waiting, whose idle close
        or "Terminer" was cut after its goodbye was written and before its record (listed as begun,
        ``gateway/leaving.py``) is refused (``not_active``): the young person was told goodbye, and the check
        completes that ending; closed here, they would be told twice (:meth:`_cut_before`, the read it makes already;
        a waiting one's since branch rel31, whose close was allowed before and the idle goodbye withdrawn when never
        listed, sent beside the close's when listed). ``key``: the console's id of this close, made once
        (:meth:`_once`)."""
        async with self._once(conversation_id, listener, "close", key) as (conversation, once):
            if once is None:
                return conversation  # made already: answered as it stands
            if conversation.status == Status.WITH_LISTENER and not supervisor:
                self._mine(conversation, listener)
            if self.flows.knowing(conversation.flow_version, lambda e: _closes_with(e, outcome)) is None:
                raise ActionRefused("unknown_outcome", f"no closing category '{outcome}' in the flow")
            try:
                lifecycle.advance(conversation.status, Trigger.CLOSE)  # refused before the goodbye is sent
            except IllegalTransition as exc:
                raise ActionRefused("not_active", str(exc)) from None
            closing = conversation.status in (Status.QUEUED, Status.WITH_LISTENER)  # listed until its record
            earlier, handing, ending = await self._cut_before(conversation) if closing else (None, False, False)
            if ending:  # told goodbye by an ending cut short: the check completes it (never a second goodbye)
                raise ActionRefused("not_active", "the conversation is ending (closed for inactivity, by the young"
                                    " person or in a bulk close; told goodbye): it is being completed")  # fmt: skip
            if conversation.status == Status.QUEUED:  # out of the queue before the goodbye (Redis: alone, first)
                await self.store.remove_from_queue(conversation_id)
            if closing:
                await self.store.begin_close(conversation_id, listener)  # its closer, before the goodbye
                await self._withdraw_replies(conversation, listener)  # before the goodbye: never sent after it
            now = self.clock()
            audited = self._audit_for_other(conversation, listener, "close", now)  # before _end names the closer
            await self._end(conversation, listener, outcome, notes, now, done=once.mark)
            if audited is not None:  # after the record (``_audit_for_other``)
                await self.store.audit(audited)
            if closing and earlier in (None, outcome) and not handing:  # else the check withdraws what they wrote
                await self.store.end_close(conversation_id)
        self.dispatcher.kick_outbox()  # the outbox may have looked before the batch's writes were made
        return conversation

    async def _withdraw_replies(self, conversation: Conversation, closer: str) -> None:
        """A close's look (under the lock, before its goodbye) for a listener's reply cut short on Redis after it was
        written and before it was listed to be sent (:meth:`reply`: not a batch; the outbox's line another slot than the
        item): the console's request failed, and the same reply sent again (the same key) would have listed it; closed
        first, nothing lists it any more. Sent now, it would reach the young person with or after the goodbye, a reply
        its listener believes failed: withdrawn instead (:meth:`_withdraw`: each reply still pending and listed nowhere,
        failed with its reason, shown failed on the consoles; one listed is the outbox's, sent, as its listener saw),
        audited ``reply_withdrawn`` naming the conversation's holder (whose reply it was) and the closer. One read of
        the transcript a close."""
        replies = [e.id for e in await self.store.transcript(conversation.id)
                   if e.author is Author.LISTENER and e.delivery is Delivery.PENDING]  # fmt: skip
        if replies:
            holder = conversation.listener if conversation.status == Status.WITH_LISTENER else None
            why = f"its conversation was closed (by {closer})"
            await self._withdraw(conversation, "reply", holder, replies, why=why)

    async def _end(
        self, conversation: Conversation, listener: str, outcome: str, notes: str, now: datetime,
        done: DoneMark | None = None,
    ) -> None:  # fmt: skip
        """A close's writes but a waiting conversation's queue step: the note, the goodbye (ids derived from the close:
        written again by a close completed or made again, the same entries, which the store ignores), the outcome,
        the new status (a held one's entry leaves with its record), the record (with ``done``, the processed mark of
        the console's id of the close: :meth:`_once`)."""
        key = _close_key(conversation.id, outcome)
        if notes.strip():
            with derived_ids(key + ":note"):
                await self.store.append_transcript(TranscriptEntry(
                    id=new_id(), conversation_id=conversation.id, at=now, author=Author.NOTE,
                    text=f"{listener}: {_clean(notes)}",
                ))  # fmt: skip
        engine = self.flows.for_version(conversation.flow_version)
        ended = engine.message("ended", language_of(conversation, engine.flow))
        with derived_ids(key):
            await self.dispatcher.emit(conversation, [Reply(ended)], Author.BOT, now)
        conversation.outcome = outcome
        if conversation.status == Status.WITH_LISTENER:  # a supervisor closing another's: theirs now
            conversation.listener = listener
        await self.dispatcher.transition(conversation, Trigger.CLOSE, now)
        await self.store.save_conversation(conversation, done=done)

    async def _left(self, conversation: Conversation) -> leaving.Ending | None:
        """How the conversation ended, when an ending with the bot or in the queue (a quick exit, "Terminer", an idle
        close) was cut short after its first entry (``leaving.begun``: its id derives from the conversation and the
        ending), else None."""
        begun = leaving.begun(conversation.id)
        written = await self.store.entries_written(conversation.id, list(begun))
        return next((how for entry_id, how in begun.items() if entry_id in written), None)

    async def _complete_ending(self, conversation: Conversation, how: leaving.Ending, now: datetime) -> None:
        """An ending cut short completed as that ending (``leaving.complete``), audited: ``leaving_completed`` (a quick
        exit, "Terminer"), ``idle_close_completed`` or ``bulk_close_completed`` (the supervision page's bulk close,
        ``leaving.close_in_bulk``), the pseudonym and how it ends, no text."""
        await leaving.complete(self.dispatcher, self.store, conversation, how, now)
        action, what = COMPLETED.get(how, ("leaving_completed", "a leaving"))
        detail = f"{conversation.pseudonym}: {conversation.status} ({how}), {what} cut short completed"
        await self.store.audit(AuditEntry(now, "gateway", action, conversation.id, detail))

    async def complete_leaving(self, conversation_id: str, how: str) -> bool:
        """An ending listed as begun (``store.leavings_begun``: a quick exit, "Terminer", an idle close of a
        conversation with the bot or in the queue; "Terminer" or an idle close of a held one, cut before its record,
        the young person told goodbye; ``gateway/leaving.py``) and not ended, seen by the alert check
        (``gateway/alerts.py``, every 10 s on each instance): checked again under the lock (an ending under way holds
        it and is found done). Its conversation still active, it was cut short, maybe before its queue step (its entry
        still waiting beside a record that says queued: no comparison of ids finds it, and the young person who
        pressed the quick exit, or was told goodbye, would wait on a listener's list): completed as that ending
        (:meth:`_complete_ending`), never back in line, told goodbye once. Ended another way first (a close from the
        console made before the ending wrote its goodbye, or by an instance of before rel31, which allowed a waiting
        conversation's close once it was written; a quick exit), what it wrote and never listed to be sent (an idle
        close's goodbye, on a channel with an outbox) is withdrawn (:meth:`_withdraw`), not sent after the close's
        goodbye nor left pending. Listed no more either way. Whether it was completed."""
        if how not in leaving.ENDINGS:
            how = "quick_exit"  # a value no instance writes: the young person's leaving, the least told
        ending = cast(leaving.Ending, how)
        completed = False
        async with self.store.locked_batch(conversation_id, self.lock_seconds):
            conversation = await self.store.get_conversation(conversation_id)
            if conversation is not None and conversation.active:
                await self._complete_ending(conversation, ending, self.clock())
                completed = True
            else:
                if conversation is not None:
                    await self._withdraw(conversation, "leaving")
                await self.store.end_leaving(conversation_id)
        if completed:
            self.dispatcher.kick_outbox()
        return completed

    async def _closing(self, conversation: Conversation) -> str | None:
        """The category of a close cut short after its goodbye was written (its id, derived from the close and the
        category, in the transcript), or None. A flow without categories takes any: such a close is not found."""
        goodbyes = self._goodbyes(conversation)
        written = await self.store.entries_written(conversation.id, list(goodbyes))
        return next((category for entry_id, category in goodbyes.items() if entry_id in written), None)

    async def _cut_before(self, conversation: Conversation) -> tuple[str | None, bool, bool]:
        """What operations cut short wrote before this close (one read, ``entries_written``): the category of a
        close's goodbye (:meth:`_closing`), whether a held conversation's automatic hand-back wrote its message
        (its id derived from this hold, :func:`_hold_key`: a hand-back made whole changes the record), and whether an
        ending that says goodbye (the idle close, "Terminer": ``leaving.goodbye_id``) wrote its goodbye, the
        conversation held or waiting (cut before its record, which still says held or queued; listed as begun, the
        check completes it, so the close is refused: never a second goodbye). The first two, if never listed, are
        withdrawn by the check once this close ended it (it leaves its listing)."""
        goodbyes = self._goodbyes(conversation)
        held = conversation.status == Status.WITH_LISTENER
        told = derived_id(_hold_key(conversation), 1) if held else None
        said = [leaving.goodbye_id(conversation.id, how) for how in leaving.SAYING_GOODBYE]
        looked = [*goodbyes, *said, *([told] if told is not None else [])]
        written = await self.store.entries_written(conversation.id, looked)
        category = next((category for entry_id, category in goodbyes.items() if entry_id in written), None)
        return category, told is not None and told in written, any(i in written for i in said)

    def _goodbyes(self, conversation: Conversation) -> dict[str, str]:
        """The id a close's goodbye would have, for each closing category the console offers the conversation (its
        flow version's, then the current flow's: :meth:`FlowSet.knowing`) → the category."""
        engines = (self.flows.for_version(conversation.flow_version), self.flows.engine())
        categories = dict.fromkeys(o.id for engine in engines for o in engine.flow.outcomes)
        return {derived_id(_close_key(conversation.id, category), 1): category for category in categories}

    async def complete_close(self, conversation_id: str, closer: str) -> bool:
        """Finish a held conversation's close cut short after its goodbye (on Redis its goodbye and record come first,
        its taken entry after: cut between the two, the record still says held while the young person was told goodbye).
        Found by the alert checks (``gateway/alerts.py``, every 10 s on each instance) among the closes listed as begun
        (``store.closes_begun``: one read however many conversations are held); checked again under the lock (still
        held, the goodbye of a category in its transcript: ``entries_written``, the goodbye's id deriving from the close
        and its category): the close's writes made again with their ids (the goodbye, which the store ignores: told
        once), the category read from the goodbye's id, the record ended, its taken entry leaving after it; named by its
        ``closer``, listed with it before the goodbye (a supervisor's close of another's names the supervisor, as the
        close not cut does); audited ``close_completed``, naming the closer. Listed no more either way (a close cut
        before its goodbye leaves the conversation its holder's, who may close it again; one under way holds the lock
        and is found done). Before, its listener had to close it again. A waiting conversation's close, listed too, cut
        after its queue step (the record queued, no entry) is :meth:`back_in_line`'s, left listed until settled. One
        whose conversation ended another way first (a quick exit, an idle close, closed again with another category)
        has its goodbye written and never listed withdrawn (:meth:`_withdraw`). Whether it was completed."""
        completed = False
        async with self.store.locked_batch(conversation_id, self.lock_seconds):
            conversation = await self.store.get_conversation(conversation_id)
            if await self._back_in_lines(conversation):
                return False
            held = conversation is not None and conversation.status == Status.WITH_LISTENER
            outcome = await self._closing(conversation) if conversation is not None and held else None
            if conversation is not None and outcome is not None:
                now = self.clock()
                await self._end(conversation, closer, outcome, "", now)
                detail = f"{conversation.pseudonym}: closed ({outcome}) by {closer}, a close cut short completed"
                await self.store.audit(AuditEntry(now, "gateway", "close_completed", conversation_id, detail))
                completed = True
            elif conversation is not None and not conversation.active:
                await self._withdraw(conversation, "close", closer)
            await self.store.end_close(conversation_id)
        if completed:
            self.dispatcher.kick_outbox()
        return completed


def _by(mover: str | None) -> str:
    """Who made a transfer, for an audit line: `` by <name>``, or nothing when unknown; an automatic hand-back's listing
    (:func:`_automatic`) named ``gateway``, without its hold."""
    return "" if mover is None else f" by {mover.partition(':')[0]}"


def _automatic(conversation: Conversation) -> str:
    """The mover an automatic hand-back (or a logout's) of the conversation's current hold is listed as begun by
    (``store.begin_move``): ``gateway:`` and the id of its message, derived from the hold (:func:`_hold_key`; a name
    holds no ``:``, so no listener's transfer reads as one). Since 2026-12-07: until then ``gateway`` alone, and a
    listing whose end was cut (its record written) was taken at the next check for one of any later hold."""
    return f"{AUTOMATIC}:{derived_id(_hold_key(conversation), 1)}"


def _hold_key(conversation: Conversation) -> str:
    """What names one hold of the conversation (a listener's take, until it ends): the ids of its hand-back's writes
    derive from it, the same at every try."""
    taken = conversation.taken_at.isoformat() if conversation.taken_at else ""
    return f"handback:{conversation.id}:{conversation.listener}:{taken}"


def _take_key(conversation: Conversation, listener: str) -> str:
    """What names one take (``listener`` taking the conversation as its record is before the take): the id of its
    "listener joined" message derives from it, the same for the take and for its completion after a cut
    (:meth:`Actions.back_in_line`), which reads the record the cut take left unchanged. Each take made sets
    ``taken_at``, so the next take, by anyone, has another key."""
    taken = conversation.taken_at.isoformat() if conversation.taken_at else ""
    return f"take:{conversation.id}:{listener}:{taken}"


def _transfer_key(conversation: Conversation, queue: str) -> str:
    """What names one transfer to ``queue`` (the record as it is before the transfer): the ids of the young person's
    message telling their place derive from it, the same for the transfer and for its completion after a cut
    (:meth:`Actions.complete_hand_back`; a waiting one's, :meth:`Actions.complete_move`), which reads the record the
    cut transfer left unchanged. A held conversation's record changes ``taken_at`` at each take, a waiting one's
    ``queued_at`` at each transfer: the next transfer, to any queue, has another key."""
    taken = conversation.taken_at.isoformat() if conversation.taken_at else ""
    queued = conversation.queued_at.isoformat() if conversation.queued_at else ""
    return f"transfer:{conversation.id}:{conversation.listener}:{taken}:{queued}:{queue}"


def _close_key(conversation_id: str, outcome: str) -> str:
    """What names a conversation's close with ``outcome`` (a conversation is closed once): its goodbye's id derives
    from it, so the close's completion (:meth:`Actions.back_in_line`) finds it, and with it the category."""
    return f"close:{conversation_id}:{outcome}"


def _closes_with(engine: Engine, outcome: str) -> bool:
    """Whether the flow has this closing category (a flow without categories takes any)."""
    return not engine.flow.outcomes or outcome in {o.id for o in engine.flow.outcomes}


def _clean(text: str) -> str:
    text = text.strip()
    if not text:
        raise ActionRefused("empty", "the message is empty")
    if len(text) > MAX_TEXT:
        raise ActionRefused("too_long", f"at most {MAX_TEXT} characters")
    return text
