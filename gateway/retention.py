"""Retention: what an ended conversation keeps once flows.yaml's ``retention.closed_days`` have passed.

A conversation closed, referred or abandoned more than ``closed_days`` ago (default 30) is *purged*: its transcript
(the young person's messages, the bot's and listeners' replies, private notes, attachments and the provider ids of
each), outbox items, timers, queue entry and the de-duplication marks of the young person's messages (they expire
after 8 days anyway; a shorter ``closed_days`` must not outlive them: named from its transcript and from its own
list of them, ``marks_of``, since on Redis the transcript's TTL deleted the transcript first until 2026-12-07; it
now lapses the purge's period and a day after the retention, 2 days at least: ``dispatcher.backstop_seconds``) are
deleted, and its record is saved stripped of content and identity: no sender (channel address), engine state
(answers), summary, client hash, nor the words a risk was read in. What the supervision figures count stays:
channel, times (created, queued, taken, closed), queue, priority, route, outcome, flow version, the risk class.
``purged_at`` marks it; ``gateway/console/stats.py`` gives the same figures before and after. A purge cut midway (a
store failure between a conversation's content and its stripped record) leaves it due: the next pass finishes it,
its marks forgotten before its content went (``_forget_marks``).

Each pass also deletes the erased identities kept past the WhatsApp catch-up's window (SQLite's lapsed ``erased``
rows, ``ErasedStore.forget_lapsed_erased``; Redis's go with their TTL).

Redis also holds the transcript keys with a TTL of ``closed_days`` and the purge's period and a day (2 days at
least, ``dispatcher.backstop_seconds``) from the end (set when the conversation ends, ``Store.expire_transcript``),
so that they go even if no purge runs, after the purge's own pass has named what they hold; the purge is what strips
the record.

The inbound messages the inbox set aside (``gateway/inbox.py``: a bug on that very message, ten times) hold their
sender's address and words in no conversation: the purge deletes those set aside ``closed_days`` ago or more.

Takedown notices keep their own retention (``notices.retention_days``, evidence copies deleted after the notice is
closed, ``gateway/notices/service.py``): a notice may outlive its conversation, so the purge leaves notices alone.

``gateway purge [--dry-run]`` runs it by hand; the server runs it under the supervisor every
``GATEWAY_PURGE_INTERVAL_SECONDS`` (a day), first a minute after starting. A pass the store's failure ended (a Redis
restart, a failover) is counted and told once an outage (``gateway/outage_log.py``, part ``purge``) and tried again
``OUTAGE_RETRY_SECONDS`` later, as the outbox and timers wait for the store; until 2026-12-06 it stopped the worker,
restarted by the supervisor (counted in ``gateway_worker_restarts``, ``down`` in ``/readyz`` while it waited:
6 restarts in one chaos soak), tests/test_purge_outage.py. Each purge that removed something
leaves an audit entry (counts only). Several instances may purge at once: each conversation is purged under its
lock, once. Conversations are read a day of creation at a time, from the oldest; after a first pass, a process
reads again only the last ``LIVING_DAYS`` before its previous cutoff, so the stripped records kept for the figures
are not decoded every day.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from gateway.conversation import Conversation
from gateway.flowset import FlowSet
from gateway.ids import seen_digests_of_entry
from gateway.metrics import Metrics
from gateway.store import (
    AuditEntry,
    AuditStore,
    Author,
    ConversationStore,
    ErasedStore,
    LockStore,
    RetentionStore,
    TranscriptStore,
)

FIRST_PURGE_DELAY = 60.0  # seconds after start: the gateway serves first
OUTAGE_RETRY_SECONDS = 5.0  # a pass the store's outage ended is tried again this soon (or at the interval, if shorter)
SCAN_WINDOW = timedelta(days=1)  # conversations are read a day of creation at a time
LIVING_DAYS = 30
"""A conversation created this long before the previous purge's cutoff and still open then is only found again
by the first purge after a restart (its transcript's Redis TTL applies meanwhile)."""


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge removed (or, dry, would remove): counts only."""

    conversations: int
    entries: int
    closed_days: int


def stripped(conversation: Conversation, now: datetime) -> Conversation:
    """The record left once the retention is over: what the figures count, nothing of the person."""
    flag = conversation.flag
    return replace(
        conversation, sender="", engine={}, summary=[], client=None, erase_asked_at=None, purged_at=now,
        flag=replace(flag, words=()) if flag is not None else None,
    )  # fmt: skip


def due(conversation: Conversation, cutoff: datetime) -> bool:
    """Ended at or before ``cutoff`` and not purged yet."""
    ended = conversation.closed_at or conversation.updated_at
    return not conversation.active and conversation.purged_at is None and ended <= cutoff


class RetentionRoles(ConversationStore, TranscriptStore, LockStore, RetentionStore, AuditStore, ErasedStore, Protocol):
    """What the purge does to the store."""


class Retention:
    def __init__(
        self,
        store: RetentionRoles,
        flows: FlowSet,
        *,
        clock: Callable[[], datetime],
        interval_seconds: float = 86_400,
        metrics: Metrics,
    ) -> None:
        self.store, self.flows, self.clock, self.interval_seconds = store, flows, clock, interval_seconds
        # the server's: its store outages, where :meth:`run` tells a failed pass (``/readyz``'s ``store_waiting``,
        # ``gateway_store_failures_total``); required: until 2026-12-07 one built without made a private one in run
        self.metrics = metrics
        self._scanned_before: datetime | None = None  # every conversation created before this was looked at

    def cutoff(self, now: datetime) -> tuple[datetime, int]:
        days = self.flows.engine().flow.retention.closed_days
        return now - timedelta(days=days), days

    async def purge(self, now: datetime, *, dry_run: bool = False, actor: str = "gateway") -> Purged:
        """Purge every conversation whose retention is over; ``dry_run``: count them, change nothing."""
        cutoff, days = self.cutoff(now)
        conversations = entries = aside = 0
        async for day in self._candidates(cutoff, dry_run):
            if dry_run:
                for listed in day:
                    conversations, entries = conversations + 1, entries + len(await self.store.transcript(listed.id))
                continue
            await self._forget_marks([listed.id for listed in day])
            for listed in day:
                async with self.store.lock(listed.id):
                    current = await self.store.get_conversation(listed.id)
                    if current is None or not due(current, cutoff):
                        continue  # another instance purged it meanwhile
                    entries += await self.store.purge_conversation(stripped(current, now))
                    conversations += 1
        if not dry_run:
            self._scanned_before = cutoff
            aside = await self.store.inbox_drop_aside(cutoff)
            await self.store.forget_lapsed_erased()  # an erased identity's keyed hash, past the catch-up's window
            if conversations or aside:
                await self.store.forget_freed()
        if (conversations or aside) and not dry_run:
            detail = f"{conversations} conversation(s), {entries} entries ({days} days after the end)"
            detail += f", {aside} inbound message(s) set aside" if aside else ""
            await self.store.audit(AuditEntry(now, actor, "purge", "", detail))
        return Purged(conversations, entries, days)

    async def _forget_marks(self, conversation_ids: list[str]) -> None:
        """The processed marks of the young people's messages of these conversations (a day's due), named from their
        entries (none read) and from each conversation's own list of them (``marks_of``, kept as long as its last
        mark: on Redis the transcript's TTL, ``closed_days`` from the end, deleted the transcript before the purge came
        until 2026-12-07, and still does when the purge stopped longer than its margin; until 2026-12-06 a
        ``closed_days`` under the marks' 8 days left them after the purge),
        forgotten before any of their contents goes: a purge cut after a content's deletion (a store failure) cannot
        name them again, and the next pass finds the record still due and finishes it. Read without the lock: an
        ended conversation past its retention gets no message. Two reads a conversation and one ``forget_seen`` a
        day of them (SQLite's reads every mark of the line: until 2026-12-07 one a conversation, ~80 ms each with
        40,000 marks, the store's thread held ~80 s by a purge of a thousand; until 2026-12-06 one a pass at its
        end, which a cut pass never reached: the marks stayed 8 days)."""
        marks: set[str] = set()
        for conversation_id in conversation_ids:
            users = {e.id for e in await self.store.transcript(conversation_id) if e.author is Author.USER}
            marks |= {d for e in users for d in seen_digests_of_entry(e)}
            marks |= set(await self.store.marks_of(conversation_id))
        if marks:
            await self.store.forget_seen(sorted(marks))

    async def _candidates(self, cutoff: datetime, dry_run: bool) -> AsyncIterator[list[Conversation]]:
        """Conversations due, a day of creation at a time (the event loop breathes between days; a day with none
        yields nothing). Ended before the cutoff means created before it; after a first pass, only the last
        ``LIVING_DAYS`` before the previous cutoff are read again (the stripped records of the figures are not decoded
        every day)."""
        first = await self.store.first_created()
        if first is None:
            return
        since = first
        if self._scanned_before is not None and not dry_run:
            since = max(first, self._scanned_before - timedelta(days=LIVING_DAYS))
        while since < cutoff:
            until = min(since + SCAN_WINDOW, cutoff)
            day = [c for c in await self.store.list_conversations(since, until) if due(c, cutoff)]
            if day:
                yield day
            since = until
            await asyncio.sleep(0)

    async def run(self) -> None:
        """The daily purge, for the app's lifetime (under the supervisor). A pass the store failed is told once an
        outage and tried again soon (what it purged stays purged; the rest is found due again); a bug stops the
        worker, which the supervisor logs, counts and restarts."""
        outages = self.metrics.outages
        await asyncio.sleep(FIRST_PURGE_DELAY if self.interval_seconds >= FIRST_PURGE_DELAY else 0)
        while True:
            if await outages.attempt("purge", self.purge(self.clock())):
                await asyncio.sleep(self.interval_seconds)
            else:
                await asyncio.sleep(min(OUTAGE_RETRY_SECONDS, self.interval_seconds))
