"""Alert-worthy states, as metrics and log lines an operator can alert on (a supervised worker).

Every ``every`` seconds: is the store answering (``gateway_store_up``; its failure told with every other part's,
once an outage, by ``gateway/outage_log.py``: ``alert: the store is unreachable`` … ``alert over``), how long has
the oldest undelivered message waited in the outbox (``gateway_outbox_oldest_pending_seconds``), and are inbound
messages set aside after failing repeatedly (``gateway_inbox_set_aside``: one ERROR line each time their number
grows)? Crossing into an alert state logs one ERROR/WARNING line, leaving it one INFO line, so a log-based alert
fires once per incident.
And is a young person held by a listener who is not at a console any more (``gateway_held_by_absent_listener``: the
conversations held by a listener with no console open on any instance for ``held_alert_seconds``; one WARNING line
when the first appears; absent since their last presence on any instance, as recorded in the store: each console
socket's close, and each check for those still here): nobody else may answer them, and a supervisor can give them
back to the queue (the supervision page's "Chez d'autres écoutant·es"), which logging out does by itself; a browser
closed or a laptop gone flat does not. Only a count: no name, no conversation id. Absent for ``handback_seconds``
(``GATEWAY_HELD_HANDBACK_SECONDS``, 600; 0: never), the conversation goes back to the queue by itself, at its place
and priority, the young person told (``Actions.hand_back_absent``: the supervisor's hand-back, checked again under the
conversation's lock, so that of several instances one hands back and tells, once; once too when an instance dies
halfway, its message and the new status written together); one WARNING line with its id,
``gateway_held_handed_back_total``. A listener back before then keeps it. One held by a listener logged in nowhere
(a logout, a logout everywhere or a removal whose hand-back found its lock busy past the wait) goes back once away
for the presence's grace (``Watch._hand_back_left``, since 2026-12-07; until then 600 s later). And a hand-back
cut right after its
queue step on Redis (the record still held, its entry waiting: nobody may take the young person) is completed at
the next check, within ``every`` (``Actions.complete_hand_back``; a transfer cut there too, as that transfer, its
mover named from the transfers listed as begun, ``QueueStore.moves_begun``); so is a take cut right after its
queue step (the entry taken, the record still queued: the young person in no queue's list and on no console), put
back in line at their place (``Actions.back_in_line``), and a held conversation's close cut after its goodbye (the
record still held), closed (``Actions.complete_close``: listed as begun until its record is written,
``QueueStore.closes_begun``), and a waiting conversation's transfer cut after its queue step (its entry in the new
queue, its record naming the old one: listed as begun with its mover until its record is written,
``QueueStore.moves_begun``), completed in the new queue (``Actions.complete_move``), naming its mover. A take
is listed as begun too (``QueueStore.takes_begun``) until its record is written: one cut after its "listener joined"
was written and before it was listed, its conversation ended before the check (so no longer queued, and not put back
in line), has that message withdrawn (``Actions.complete_take``), as a transfer's and a close's are (``_withdraw``).
A quick exit, a "Terminer" or an idle close of a conversation with the bot or in the queue is listed as begun
(``QueueStore.leavings_begun``) until its record is written: one cut short, even before its queue step (its entry
still waiting beside a queued record: no comparison of ids finds it), is completed as that ending
(``Actions.complete_leaving``), never put back in line; so is a "Terminer" or an idle close of a conversation a
listener holds (cut before its record, still held while the young person was told goodbye).
The check reads no record of a young person held by a listener at a console: who holds each held conversation
comes from its queue entry (``Store.holders``: on Redis two commands however many are held; before, every held
record was read and decrypted every 10 s on each instance); only those whose listener has been away for the alert's
threshold are read, to count them exactly; the queued ones are compared by id (``Actions.back_in_line`` reads the
few to repair), and whatever is acted on is checked against its record under the conversation's lock. One whose
lock is held elsewhere past the wait, or that changed meanwhile, is skipped until the next check, the rest of the
round made (:meth:`Watch._one`; until 2026-12-07 it ended the round), said once, then once an hour while it stays
busy (until 2026-12-07 every round). So is one whose repair fails by any error
but the store's (a bug, a record in a state no step expects: logged by class and code place, once, then once an hour
while it keeps failing; ``gateway_alert_conversations_stuck`` counts them; until 2026-12-07 it failed the whole
check, the supervisor restarting it, and as the same conversation failed first every round, no repair after it ran),
and one whose record this instance cannot open (``DataKeyError``), said as such, not as the store's outage.
Worker restarts are counted and logged by :mod:`gateway.supervisor`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar

from gateway.conversation import Status
from gateway.errors import Conflict, DataKeyError, LockLost, LockTimeout, StoreError
from gateway.metrics import Metrics
from gateway.store import PERSON_LISTED, ConversationStore, InboxStore, OutboxStore, PresentStore, QueueStore
from gateway.supervisor import where

log = logging.getLogger(__name__)

T = TypeVar("T")


WATCH_SECONDS = 10.0
"""How often the checks run: a store outage, an old outbox item or a listener away is said within it."""

REPAIR_LOCK_SECONDS = 2.0
"""How long each of the check's repairs waits for a conversation's lock before it is skipped until the next round
(the app wires the check's repairs on an ``Actions`` of this wait, and the erasure's, ``finish_confirmed``): a
listener's action waits 10 s. Until 2026-12-07 the repairs waited 10 s each: a few busy conversations made a round
last minutes, its hand-backs and erasures that much later."""

STUCK_TOLD_SECONDS = 3600.0
"""A conversation whose repair keeps failing (a bug, a record no step expects) is logged once, then once this often
while it fails (``gateway_alert_conversations_stuck`` says how many there are at each round)."""


class WatchRoles(OutboxStore, InboxStore, ConversationStore, QueueStore, PresentStore, Protocol):
    """What the alert checks need of the store: that it answers, the oldest undelivered item, the inbox items
    set aside, the conversations held by listeners, the queue's waiting entries, when listeners were last at a
    console."""

    async def ping(self) -> None: ...


class Watch:
    def __init__(
        self,
        store: WatchRoles,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime],
        outbox_alert_seconds: float,
        every: float = WATCH_SECONDS,
        listener_present: Callable[[str], bool] | None = None,
        held_alert_seconds: float = 300.0,
        hand_back: Callable[[str, str], Awaitable[bool]] | None = None,
        handback_seconds: float = 0.0,
        complete: Callable[[str, str | None], Awaitable[bool]] | None = None,
        back_in_line: Callable[[str], Awaitable[bool]] | None = None,
        listeners_here: Callable[[], Iterable[str]] | None = None,
        complete_close: Callable[[str, str], Awaitable[bool]] | None = None,
        complete_move: Callable[[str, str | None], Awaitable[bool]] | None = None,
        complete_take: Callable[[str, str], Awaitable[bool]] | None = None,
        complete_leaving: Callable[[str, str], Awaitable[bool]] | None = None,
        complete_erasure: Callable[[str, str], Awaitable[bool]] | None = None,
        signed_in: Callable[[str], Awaitable[bool]] | None = None,
        hand_back_left: Callable[[str, str], Awaitable[bool]] | None = None,
        left_seconds: float = 0.0,
    ) -> None:
        """``hand_back(conversation id, listener)``: give it back, the listener still absent (whether it went back);
        called once their absence has lasted ``handback_seconds`` (0: never). ``complete(conversation id, mover)``:
        finish a hand-back or a transfer cut short after its queue step (a held record whose queue entry waits),
        whether it was; ``mover``: who made the transfer, as listed with it (``store.moves_begun``), else None.
        ``back_in_line(conversation id)``: put back in line a young person whose record says queued while no entry
        of theirs waits (a take cut short after its queue step), whether it was needed.
        ``complete_close(conversation id, closer)``: finish a held conversation's close listed as begun with its closer
        (``store.closes_begun``) if it was cut short after its goodbye (the record still held), whether it was.
        ``complete_move(conversation id, mover)``: finish a waiting conversation's transfer listed as begun with its
        mover (``store.moves_begun``) if it was cut short after its queue step, whether it was.
        ``complete_take(conversation id, taker)``: settle a take listed as begun with its taker (``store.takes_begun``):
        its unlisted messages withdrawn if its conversation ended first, whether any was.
        ``complete_leaving(conversation id, how)``: finish an ending listed as begun (``store.leavings_begun``: a quick
        exit, "Terminer", an idle close; the last two held by a listener too) if it was cut short (its conversation
        still active), as that ending, never back in line; whether it was.
        ``complete_erasure(conversation id, key)``: finish an erasure a young person confirmed, listed as begun with
        their confirming message's key (``store.erasures_begun``), unless done meanwhile; whether it was done now.
        ``signed_in(listener)``: whether they are logged in anywhere (a live session of their account);
        ``hand_back_left(conversation id, listener)``: give back at once, at the first check that sees it, a
        conversation held by a listener away from every console for ``left_seconds`` (the app: the presence's own
        grace, ``2.5 × beat``) who is logged in nowhere (logged out, logged out everywhere or removed while its lock
        was busy: :meth:`_hand_back_left`), checked again under the lock, whether it went back; whatever
        ``handback_seconds``.
        ``listeners_here()``: those with a console open on this instance, recorded present at each check (with the
        time each socket closed, ``ListenerAPI``) for every instance: an absence counts from the last presence on
        any instance, as recorded (``PresentStore``), or from when this instance first saw it when none is."""
        self.store, self.metrics, self.clock = store, metrics, clock
        self.outbox_alert_seconds, self.every = outbox_alert_seconds, every
        self.outbox_late = False
        self.set_aside = 0
        self.listener_present, self.held_alert_seconds = listener_present, held_alert_seconds
        self.absent_since: dict[str, datetime] = {}  # conversation id → since when its listener was seen absent
        self.held_absent = 0
        self.hand_back, self.handback_seconds, self.complete = hand_back, handback_seconds, complete
        self.back_in_line = back_in_line
        self.listeners_here = listeners_here
        self.complete_close = complete_close
        self.complete_move = complete_move
        self.complete_take = complete_take
        self.complete_leaving = complete_leaving
        self.complete_erasure = complete_erasure
        self.signed_in, self.hand_back_left, self.left_seconds = signed_in, hand_back_left, left_seconds
        self.stuck: dict[tuple[str, str, str], tuple[datetime, int]] = {}  # (step, id, class) → when told, failures
        self._stuck_now: set[tuple[str, str, str]] = set()  # those failed in this round
        self.busy: dict[tuple[str, str, str], tuple[datetime, int]] = {}  # (step, id, class) → when told, skips
        self._busy_now: set[tuple[str, str, str]] = set()  # those skipped (lock busy, changed) in this round

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every)

    async def check(self) -> None:
        self._stuck_now, self._busy_now = set(), set()
        try:
            await self.store.ping()
            oldest = await self.store.outbox_oldest_pending()
            set_aside = await self.store.inbox_set_aside_count()
            followed = self.listener_present is not None or self.complete is not None
            held = await self.store.holders() if followed else {}
            queued = await self.store.conversation_ids_by_status(Status.QUEUED) if self.back_in_line else set()
            compared = bool(held and self.complete) or bool(queued)  # after the statuses: a take under way, re-checked
            waiting = await self.store.waiting_ids() if compared else set()
            held = await self._untaken(held, waiting)
            last_present = await self._present(held)
            moving = await self.store.moves_begun() if self.complete_move else {}
            closing = await self.store.closes_begun() if self.complete_close else {}
            taking = await self.store.takes_begun() if self.complete_take else {}
            leaving = await self.store.leavings_begun() if self.complete_leaving else {}
            erasing = await self.store.erasures_begun() if self.complete_erasure else {}
        except StoreError as exc:
            self.metrics.store_up.set(0)
            self.metrics.outages.failed("alerts", exc)
            return
        self.metrics.store_up.set(1)
        self.metrics.outages.answered("alerts", wrote=True)  # its probe (``ping``) is a write
        self._set_aside(set_aside)
        # Said as the store is read, before the repairs: each of those may wait for a conversation's lock (up to
        # REPAIR_LOCK_SECONDS, then skipped); until 2026-12-07 the alert and its gauge came after them, told later.
        age = max((self.clock() - oldest).total_seconds(), 0.0) if oldest else 0.0
        self.metrics.outbox_oldest.set(age)
        late = age > self.outbox_alert_seconds
        if late and not self.outbox_late:
            log.warning("alert: a message has waited %.0f s in the outbox (threshold %.0f s: GATEWAY_OUTBOX_ALERT_"
                        "SECONDS)", age, self.outbox_alert_seconds)  # fmt: skip
        elif self.outbox_late and not late:
            log.info("alert over: no message waits in the outbox longer than %.0f s", self.outbox_alert_seconds)
        self.outbox_late = late
        try:
            held = await self._complete(held, waiting, moving)
            held = await self._closed(held, closing)
            await self._left(leaving)
            await self._back_in_line(sorted(queued - waiting))
            await self._moved(moving)
            await self._taken(taking)
            held = await self._hand_back_left(held, last_present)
            await self._hand_back(await self._held(held, last_present))
            await self._erased(erasing)
        except StoreError as exc:
            self.metrics.outages.failed("alerts", exc)
            return
        self._round_made()

    async def _untaken(self, held: dict[str, str | None], waiting: set[str]) -> dict[str, str | None]:
        """The holders with the listener of each record whose queue entry is not taken nor waiting (none: a state no
        step leaves, or an id the status's set lists after its record left the status), read from those records
        only: the others' holders are their entries' (``Store.holders``), no record read, however many are held.
        One whose record is not held any more is left out."""
        for conversation_id in sorted(i for i, listener in held.items() if listener is None and i not in waiting):
            # one that cannot be read (a bug): left out this round (:meth:`_isolated`), not the round ended
            read = partial(self.store.get_conversation, conversation_id)
            conversation = await self._isolated("holders", conversation_id, read, None)
            if conversation is None or conversation.status != Status.WITH_LISTENER:
                del held[conversation_id]
            else:
                held[conversation_id] = conversation.listener
        return held

    async def _present(self, held: Mapping[str, str | None]) -> dict[str, datetime]:
        """Record the listeners at a console here as present now; when the absent holders of ``held`` were last."""
        here = list(self.listeners_here()) if self.listeners_here is not None else []
        if here:
            now = self.clock()
            await self.store.mark_present(dict.fromkeys(here, now))
        if self.listener_present is None:
            return {}
        away = {listener for listener in held.values() if listener is not None and not self.listener_present(listener)}
        return await self.store.last_present(sorted(away)) if away else {}

    async def _held(
        self, held: Mapping[str, str | None], last_present: dict[str, datetime]
    ) -> list[tuple[str, str, float]]:
        """Held conversations whose listener has had no console open for ``held_alert_seconds``: counted, and one
        line when the first appears, one when none is left. Those absent for ``handback_seconds``: id, listener, how
        long. An absence counts from the listener's last presence on any instance (``last_present``); unrecorded,
        from when this instance first saw it. The holders are the queue's (``Store.holders``); only the records of
        those whose listener is away that long are read (:meth:`_still_held`), so that a leftover entry (an ended
        record whose taken entry a crash left) is neither counted nor handed back; the hand-back checks the record
        again under the conversation's lock."""
        if self.listener_present is None:
            return []
        now, seen_absent, since = self.clock(), {}, {}
        for conversation_id, listener in held.items():
            if listener is not None and not self.listener_present(listener):
                seen_absent[conversation_id] = self.absent_since.get(conversation_id, now)
                since[conversation_id] = last_present.get(listener, seen_absent[conversation_id])
        self.absent_since = seen_absent  # a listener back, a conversation closed or given back: forgotten
        longest = min(self.held_alert_seconds, self.handback_seconds or self.held_alert_seconds)
        for conversation_id in [i for i, at in since.items() if (now - at).total_seconds() >= longest]:
            still = partial(self._still_held, conversation_id, held[conversation_id])
            if not await self._isolated("held", conversation_id, still, False):  # unreadable: not counted this round
                del since[conversation_id]
        count = sum(1 for at in since.values() if (now - at).total_seconds() >= self.held_alert_seconds)
        self.metrics.held_by_absent_listener.set(count)
        if count and not self.held_absent:
            log.warning("alert: %d conversation(s) held by a listener with no console open for %.0f s: nobody else may"
                        " answer them; a supervisor can give them back to the queue (GATEWAY_HELD_ALERT_SECONDS)",
                        count, self.held_alert_seconds)  # fmt: skip
        elif self.held_absent and not count:
            log.info("alert over: no conversation is held by a listener away from the console")
        self.held_absent = count
        if not self.handback_seconds:
            return []
        away = [(i, listener, (now - since[i]).total_seconds()) for i, listener in held.items() if i in since]
        return [(i, listener or "", seconds) for i, listener, seconds in away if seconds >= self.handback_seconds]

    async def _still_held(self, conversation_id: str, listener: str | None) -> bool:
        """Whether the record says held by ``listener`` (read for a conversation whose listener is away long enough
        to count)."""
        conversation = await self.store.get_conversation(conversation_id)
        return (
            conversation is not None
            and conversation.status == Status.WITH_LISTENER
            and (conversation.listener == listener)
        )

    async def _complete(
        self, held: dict[str, str | None], waiting: set[str], moving: Mapping[str, str | None]
    ) -> dict[str, str | None]:
        """Each held conversation whose queue entry waits (a hand-back or a transfer cut short after its queue step:
        an instance died there) finished now (its record checked under the lock: ``complete``), a transfer's mover
        named (``moving``: the transfers listed as begun); the others, still held."""
        kept = {}
        for conversation_id, listener in held.items():
            mover = moving.get(conversation_id)
            if (
                conversation_id in waiting
                and self.complete is not None
                and await self._one("complete", conversation_id, self.complete, mover)
            ):
                log.warning("held: conversation %s was half handed back or transferred (its queue entry waiting, its "
                            "record held): completed", conversation_id)  # fmt: skip
            else:
                kept[conversation_id] = listener
        return kept

    async def _closed(self, held: dict[str, str | None], begun: dict[str, str]) -> dict[str, str | None]:
        """Each held conversation's close listed as begun and not ended: completed when it was cut after its goodbye
        (an instance died there), else no longer listed; the others, still held. Only these ids: a close under way or
        cut short, not the conversations held."""
        closed = set()
        for conversation_id, closer in sorted(begun.items()):
            if self.complete_close and await self._one("close", conversation_id, self.complete_close, closer):
                closed.add(conversation_id)
                log.warning("held: conversation %s was told goodbye while its record said held (a close cut short): "
                            "closed", conversation_id)  # fmt: skip
        return {i: listener for i, listener in held.items() if i not in closed}

    async def _left(self, begun: Mapping[str, str]) -> None:
        """Each ending listed as begun and not ended (a quick exit, "Terminer", an idle close of a conversation with the
        bot or in the queue), with how: completed as that ending when it was cut short (before ``back_in_line``, which
        would otherwise find one cut after its queue step first, and does the same), else no longer listed. Only these
        ids: an ending under way or cut short."""
        for conversation_id, how in sorted(begun.items()):
            if self.complete_leaving and await self._one("leaving", conversation_id, self.complete_leaving, how):
                log.warning("queue: conversation %s was half ended (%s cut short, its record still active): "
                            "completed, not put back in line", conversation_id, how)  # fmt: skip

    async def _back_in_line(self, unlisted: list[str]) -> None:
        """Each conversation the status index says queued with no entry waiting (a take cut short after its queue
        step: the young person in no queue's list and held by no one) put back in line. Only these ids: the check
        compares the two indexes' ids and reads no record of a young person who waits in line (a record is read by
        ``back_in_line``, under the lock, for these few), so its cost does not grow with the queue's length."""
        for conversation_id in unlisted:
            if self.back_in_line and await self._one("back_in_line", conversation_id, self.back_in_line):
                log.warning("queue: conversation %s was listed in no queue and held by no one (an operation cut short):"
                            " settled (back in line, or the take, close or leaving completed: its audit line says"
                            " which)", conversation_id)  # fmt: skip

    async def _moved(self, begun: Mapping[str, str | None]) -> None:
        """Each transfer listed as begun and not ended, with its mover: a waiting conversation's completed when it was
        cut short after its queue step (its entry in the new queue, its record naming the old one), else (a held
        one's completed by ``complete``, or one not cut) no longer listed. Only these ids: a transfer under way or cut
        short, not the queue's length."""
        for conversation_id, mover in sorted(begun.items()):
            if self.complete_move and await self._one("move", conversation_id, self.complete_move, mover):
                log.warning("queue: conversation %s was half transferred (its entry in the new queue, its record "
                            "naming the old one): completed", conversation_id)  # fmt: skip

    async def _taken(self, begun: Mapping[str, str]) -> None:
        """Each take listed as begun and not ended, with its taker, after the repairs above (a take cut after its queue
        step is put back in line or completed by ``back_in_line`` first): its messages written and never listed
        withdrawn when its conversation ended first (logged by ``complete_take``), else no longer listed. Only these
        ids: a take under way or cut short."""
        for conversation_id, taker in sorted(begun.items()):
            if self.complete_take is not None:
                await self._one("take", conversation_id, self.complete_take, taker)

    async def _erased(self, begun: Mapping[str, str]) -> None:
        """Each erasure listed as begun and not done (a young person's, with their confirming message's key; since
        2026-12-07 a supervisor's or the CLI's too, ``erasure.asked_by``): finished (everything of theirs erased, a
        young person told ``erasure.done`` once, the asker's actor in the audit line) when it was cut short (its
        instance died midway, gave up after its retries, or its request failed), else (done meanwhile) nothing.
        Last: an erasure under way elsewhere holds its lock, which this waits for a moment; not had then, that one is
        skipped until the next round, the others finished (:meth:`_one`; until 2026-12-07 it ended the round, the
        erasures listed after it left undone while it lasted). One listed by a person with no conversation left
        (``store.PERSON_LISTED``: the keyed identity, since 2026-12-07) is no conversation: finished alike
        (``finish_confirmed`` opens the identity sealed in its listing), told without its id."""
        for listed, key in sorted(begun.items()):
            if self.complete_erasure is not None and await self._one("erasure", listed, self.complete_erasure, key):
                if listed.startswith(PERSON_LISTED):
                    log.warning("erasure: an erasure listed for a person with no conversation left was cut short: "
                                "finished")  # fmt: skip
                else:
                    log.warning("erasure: the erasure listed for conversation %s was cut short: finished",
                                listed)  # fmt: skip

    async def _hand_back_left(
        self, held: dict[str, str | None], last_present: Mapping[str, datetime]
    ) -> dict[str, str | None]:
        """Back to the queue now, each conversation held by a listener away from every console for ``left_seconds``
        (counted as :meth:`_held` counts an absence: from their last presence on any instance, else from when this
        instance first saw it; a logout's sockets' close records it) and logged in nowhere
        (``signed_in``: no live session of their account): they logged out, were logged out everywhere or removed
        while its lock was busy past the logout's wait (another instance's long step, a stalled holder), and the
        logout answered, the conversation left held by someone who had left. Until 2026-12-07 nothing marked it: the
        young person waited ``GATEWAY_HELD_HANDBACK_SECONDS`` (600 s) for nobody, shown taken on the consoles
        (``tests/console/test_logout_busy_check.py``). Whatever ``handback_seconds`` (0 included): this completes a
        logout's hand-back. Checked again under the lock (``hand_back_left``: still held by them, still away, still
        logged in nowhere; the message's id the hold's, as the logout's own: told once whichever makes it). One read
        of the sessions per listener away, each round; the others, still held."""
        if self.hand_back_left is None or self.signed_in is None or self.listener_present is None:
            return held
        now = self.clock()

        def away_long(conversation_id: str, listener: str) -> bool:
            since = last_present.get(listener, self.absent_since.get(conversation_id, now))
            return (now - since).total_seconds() >= self.left_seconds

        due = {i: name for i, name in held.items() if name is not None and not self.listener_present(name)}
        due = {i: name for i, name in due.items() if away_long(i, name)}
        left = {name for name in sorted(set(due.values())) if not await self.signed_in(name)}
        kept = dict(held)
        for conversation_id, listener in sorted(due.items()):
            if listener in left and await self._one("hand_back_left", conversation_id, self.hand_back_left, listener):
                del kept[conversation_id]
                self.metrics.held_handed_back.inc()
                log.warning("held: conversation %s handed back to the queue, its listener logged in nowhere (logged"
                            " out or removed while its lock was busy) and at no console", conversation_id)  # fmt: skip
        return kept

    async def _hand_back(self, due: list[tuple[str, str, float]]) -> None:
        """Back to the queue, each conversation whose listener stayed away too long (one whose lock is held
        elsewhere: the next round, :meth:`_one`)."""
        for conversation_id, listener, seconds in due:
            if (
                self.hand_back is not None
                and listener
                and await self._one("hand_back", conversation_id, self.hand_back, listener)
            ):
                self.metrics.held_handed_back.inc()
                log.warning("held: conversation %s handed back to the queue, its listener having had no console open"
                            " for %.0f s (GATEWAY_HELD_HANDBACK_SECONDS)", conversation_id, seconds)  # fmt: skip

    async def _one(
        self, step: str, conversation_id: str, call: Callable[..., Awaitable[bool]], *args: str | None
    ) -> bool:
        """``call(conversation_id, *args)``, one conversation's repair of ``step``: whether it acted (False when
        skipped: :meth:`_isolated`)."""
        return await self._isolated(step, conversation_id, lambda: call(conversation_id, *args), False)

    async def _isolated(self, step: str, conversation_id: str, call: Callable[[], Awaitable[T]], skipped: T) -> T:
        """``call()``, one conversation's part of the round (a repair of ``step``, or a read of its record), or
        ``skipped`` when it fails by an error of that conversation alone; the rest of the round made.

        Its lock held elsewhere past the wait (``LockTimeout``: an erasure, a message or an operation under way on
        another instance) or a conflicting change (``Conflict``): skipped until the next check, one WARNING line (the
        step, the id, the error's class; never its text) and ``gateway_alert_steps_skipped_total{step, error}`` (each
        skip counted). The line is said once, then once every ``STUCK_TOLD_SECONDS`` while that conversation stays
        busy at every round (:meth:`_busy`); until 2026-12-07 it was said every round (every 10 s on every instance
        for as long as the lock stayed held).
        Its lock lost under it (``LockLost``: its lease lapsed on the way, or a failover refused the writes made under
        it by the lock's fence) is that conversation's alike: nothing of the repair was kept, the next round makes it
        again. Until 2026-12-07 (late) a ``LockLost`` ended the round as an outage would.
        Until 2026-12-07 either ended the whole round, logged as lock contention: every repair after it (the other
        erasures listed, the hand-backs due, the cut steps of other conversations) skipped, every 10 s for as long as
        that lock was held. Any other store error still ends the round (an outage: the next conversation would fail
        alike).

        Any other error (a bug: ``IllegalTransition`` from a record in a state no step expects, a ``KeyError`` from
        an old record) is that conversation's alone (:meth:`_stuck`): skipped, counted alike, logged at ERROR by class
        and code place (``supervisor.where``; never its text, which may quote what a young person wrote) once, then
        once every ``STUCK_TOLD_SECONDS`` while it keeps failing, and counted in ``gateway_alert_conversations_stuck``
        at each round. Until 2026-12-07 it failed the whole check: the supervisor restarted the worker, and as the
        same conversation failed first every round, no repair after it ran again (hand-backs due, erasures cut
        short), one ERROR line every restart.

        A record this instance cannot open (``DataKeyError``: sealed with a data key not configured here, a rotation
        half deployed, or altered) is that conversation's alone too, said as what it is, not as a store outage: the
        store answered. Until 2026-12-07 it ended the round and was counted as the store's failure, told as
        ``alert: the store is unreachable`` (on-call sent after an outage that was not), every repair after it
        undone."""
        try:
            result = await call()
        except (LockTimeout, Conflict, LockLost) as exc:
            self._busy(step, conversation_id, exc)
            return skipped
        except DataKeyError as exc:  # the store answered: this record does not open here, not an outage
            self._stuck(step, conversation_id, exc)
            return skipped
        except StoreError:
            raise
        except Exception as exc:
            self._stuck(step, conversation_id, exc)
            return skipped
        for key in [k for k in self.stuck if k[:2] == (step, conversation_id)]:  # made now: told again if it fails
            del self.stuck[key]
        for key in [k for k in self.busy if k[:2] == (step, conversation_id)]:  # made now: told again if busy again
            del self.busy[key]
        return result

    def _busy(self, step: str, conversation_id: str, exc: LockTimeout | Conflict | LockLost) -> None:
        """One conversation's part of the round skipped, its lock held elsewhere or it changed meanwhile: counted
        each time, told when first seen (or ``STUCK_TOLD_SECONDS`` after it was last told, while it is skipped at
        every round), by class only. Since 2026-12-07 (before, one WARNING line every round)."""
        kind, now = type(exc).__name__, self.clock()
        self.metrics.alert_steps_skipped.labels(step, kind).inc()
        key = (step, conversation_id, kind)
        self._busy_now.add(key)
        told, skipped = self.busy.get(key, (None, 0))
        if told is not None and (now - told).total_seconds() < STUCK_TOLD_SECONDS:
            self.busy[key] = (told, skipped + 1)
            return
        why = "its lock held elsewhere" if isinstance(exc, LockTimeout) else "changed meanwhile"
        again = f"; skipped {skipped} more time(s) since last said" if told is not None else ""
        log.warning("alerts: %s of conversation %s skipped until the next check (%s: %s; said again in %.0f s while"
                    " it stays so%s)", step, conversation_id, kind, why, STUCK_TOLD_SECONDS, again)  # fmt: skip
        self.busy[key] = (now, 0)

    def _stuck(self, step: str, conversation_id: str, exc: Exception) -> None:
        """One conversation's part of the round failed by ``exc``, not the store's: counted, and told when first seen
        (or ``STUCK_TOLD_SECONDS`` after it was last told), by class and code place only."""
        kind, now = type(exc).__name__, self.clock()
        self.metrics.alert_steps_skipped.labels(step, kind).inc()
        key = (step, conversation_id, kind)
        self._stuck_now.add(key)
        told, failed = self.stuck.get(key, (None, 0))
        if told is not None and (now - told).total_seconds() < STUCK_TOLD_SECONDS:
            self.stuck[key] = (told, failed + 1)
            return
        again = f"; it failed {failed} more time(s) since last said" if told is not None else ""
        if isinstance(exc, DataKeyError):  # its text names the key id and the record's kind: no place needed
            log.error("alerts: %s of conversation %s skipped: its record does not open on this instance (DataKeyError:"
                      " sealed with a data key not configured here, or altered; the store answers: not an outage;"
                      " said again in %.0f s while it fails%s)", step, conversation_id, STUCK_TOLD_SECONDS,
                      again)  # fmt: skip
        else:
            log.error("alerts: %s of conversation %s failed by %s at %s: skipped, the rest of the round made (said"
                      " again in %.0f s while it fails%s)", step, conversation_id, kind, where(exc),
                      STUCK_TOLD_SECONDS, again)  # fmt: skip
        self.stuck[key] = (now, 0)

    def _round_made(self) -> None:
        """A round made to its end: the conversations that failed in it are the stuck ones (those that did not fail
        again, made or no longer listed, forgotten: told at once if they fail again); those skipped busy in it, the
        busy ones, alike."""
        self.stuck = {key: told for key, told in self.stuck.items() if key in self._stuck_now}
        self.busy = {key: told for key, told in self.busy.items() if key in self._busy_now}
        self.metrics.alert_stuck.set(len({conversation_id for _, conversation_id, _ in self._stuck_now}))

    def _set_aside(self, count: int) -> None:
        self.metrics.inbox_set_aside.set(count)
        if count > self.set_aside:
            log.error("alert: %d inbound message(s) set aside after failing repeatedly (kept in the store's inbox;"
                      " see the log lines 'inbox: … set aside')", count)  # fmt: skip
        self.set_aside = count
