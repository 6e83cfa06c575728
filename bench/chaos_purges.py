"""The purges of ``bench/chaos.py --purges N``: conversations whose retention ends during the run, and their audit.

``retention.closed_days`` is whole days on the wall clock (at least 1, ``gateway/flows/privacy.py``): nothing a run of
minutes ended can be due. So before the instances start, N conversations of their own (slot ``PURGE_SLOT``, on the
provider channels in use) are written to Redis through the store, as the gateway leaves an ended one: a young
person's message (its real entry id and processed mark), the bot's reply sent (its provider id, its outbox item), a
listener's note, a web chat upload, a timer armed far ahead, a summary and answers holding the young person's words;
each closed ``closed_days`` before a moment drawn in the run (``DUE_FROM`` s after the seed to ``DUE_MARGIN`` s before
its end), so the instances' purge (every ``PURGE_EVERY`` s) meets it due while the faults happen. As many more are
closed so that their retention ends an hour after the run: never due, they must stay whole. The transcript's TTL
(``expire_transcript``, the purge's backstop, set when a conversation ends) is not set: what goes is the purge's doing.

The audit (:func:`audit_purges`, after the drain), for each conversation due by then: its record stripped
(``purged_at``, no sender, answers, summary), its transcript empty, its message's mark gone from ``seen_keys``, and
every key and value of Redis scanned (as ``bench/chaos_erasures.py`` does) for its young person's address, identity
hash, words, note, the reply's provider id, the mark and the upload's name (``left``); the keys still naming its id
are listed by shape (the stripped record and the figures' indexes are meant to stay). For each never due: its record,
transcript (3 entries), mark and person's index as written (``touched`` otherwise). Prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.chaos_channels import sender_id
from bench.chaos_erasures import EPOCH, FAR, bench_keys, every_key_and_value
from gateway.conversation import Conversation, Status
from gateway.ids import inbound_entry_id, inbound_key, seen_digest
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Delivery, DoneMark, OutboxItem, Store, TimerKind, TranscriptEntry

PURGE_SLOT = 700  # a purged young person's slot in its address: apart from the load's, floods' and erasers'
DUE_FROM, DUE_MARGIN = 20.0, 30.0  # s: the retention ends this long after the seed at the soonest, before the end
MARK_SECONDS = 8 * 86_400  # a processed mark's life (``ids``: 8 days)


@dataclass
class Seeded:
    """One conversation written for the purge."""

    id: str
    channel: ChannelName
    sender: str
    words: str
    note: str
    provider_id: str
    mark: str
    upload: str
    due_at: float  # monotonic: when its retention ends (never, for a control: inf)
    identity: str = ""


@dataclass
class PurgeAudit:
    due: int = 0
    kept: int = 0
    not_due_yet: int = 0  # seeded as due but its retention ended after the audit began (a slow run)
    purged: int = 0
    not_purged: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # what of a purged conversation is still in Redis
    touched: list[str] = field(default_factory=list)  # a never-due conversation changed
    shapes: Counter[str] = field(default_factory=Counter)  # keys still naming a purged id, the id as <id>


class Purges:
    def __init__(self, store_url: str, rng: random.Random) -> None:
        self.store_url, self.rng = store_url, rng
        self.seeded: list[Seeded] = []

    async def seed(self, count: int, channels: list[ChannelName], duration: float, closed_days: int) -> None:
        """``count`` conversations due during the run and ``count`` never due, written before the instances start."""
        from gateway.store import open_store

        if not count or not channels:
            return
        store = await open_store(self.store_url, keys=bench_keys(self.store_url))
        now, began = datetime.now(UTC), time.monotonic()
        try:
            for n in range(2 * count):
                channel = channels[n % len(channels)]
                due = n < count
                after = self.rng.uniform(DUE_FROM, max(DUE_FROM + 1, duration - DUE_MARGIN)) if due else duration + 3600
                ended = now - timedelta(days=closed_days) + timedelta(seconds=after)
                seeded = await self._one(store, channel, n, ended, began + after if due else float("inf"))
                seeded.identity = bench_keys(self.store_url).identity(channel.value, seeded.sender)
                self.seeded.append(seeded)
        finally:
            await store.close()

    async def _one(self, store: Store, channel: ChannelName, n: int, ended: datetime, due_at: float) -> Seeded:
        sender, token = sender_id(channel, PURGE_SLOT + n, n), f"{n}-{self.rng.getrandbits(40):010x}"
        created = ended - timedelta(minutes=20)
        conversation, _ = await store.active_conversation(channel, sender, created)
        inbound = Inbound(channel, sender, f"purge-{token}", f"mes mots {token}")
        words, note, provider_id = f"mes mots {token}", f"note privée {token}", f"SMpurge{token.replace('-', '')}"
        user = inbound_entry_id(inbound)
        await store.append_transcript(TranscriptEntry(user, conversation.id, created, Author.USER, words,
                                                      delivery=Delivery.DELIVERED))  # fmt: skip
        reply = f"r-purge-{token}"
        answer = TranscriptEntry(reply, conversation.id, created, Author.BOT, "Réponse : " + words,
                                 delivery=Delivery.SENT, provider_message_id=provider_id)  # fmt: skip
        await store.append_transcript(answer)
        await store.append_transcript(TranscriptEntry(f"n-purge-{token}", conversation.id, ended, Author.NOTE, note))
        await store.outbox_put(OutboxItem(reply, conversation.id, {"recipient": sender, "text": words}, created))
        await store.outbox_mark_sent(conversation.id, reply, provider_id)
        upload = f"{conversation.id}/{token}"
        await store.put_upload(upload, "image/png", b"PNG " + words.encode())
        await store.set_timer(conversation.id, TimerKind.IDLE_CLOSE, ended + timedelta(days=400))
        conversation.summary = [("Sujet", words)]
        conversation.engine = {"answers": {"topic": words}, "language": "fr"}
        conversation.status, conversation.closed_at, conversation.outcome = Status.CLOSED, ended, "listened"
        conversation.updated_at = ended
        await store.save_conversation(conversation, done=DoneMark(inbound_key(inbound), MARK_SECONDS))
        return Seeded(conversation.id, channel, sender, words, note, provider_id, seen_digest(inbound_key(inbound)),
                      upload, due_at)  # fmt: skip

    @property
    def addresses(self) -> set[tuple[ChannelName, str]]:
        return {(s.channel, s.sender) for s in self.seeded}

    @property
    def ids(self) -> set[str]:
        return {s.id for s in self.seeded}


def _stripped(conversation: Conversation | None) -> bool:
    return (conversation is not None and conversation.purged_at is not None and not conversation.sender
            and not conversation.engine and not conversation.summary)  # fmt: skip


async def audit_purges(purges: Purges) -> PurgeAudit:
    from gateway.store import open_store

    result = PurgeAudit()
    if not purges.seeded:
        return result
    audited_at = time.monotonic()
    dump = await asyncio.to_thread(every_key_and_value, purges.store_url)
    store = await open_store(purges.store_url, keys=bench_keys(purges.store_url))
    try:
        marks = set(await store.seen_keys())
        for s in purges.seeded:
            record = await store.get_conversation(s.id)
            entries = await store.transcript(s.id)
            label = f"{s.channel} {s.id[:8]}"
            if s.due_at == float("inf"):
                result.kept += 1
                of_person = await store.conversations_of(s.channel, s.sender, EPOCH, FAR, 10)
                if record is None or record.purged_at is not None or record.sender != s.sender:
                    result.touched.append(f"{label}: its record {'gone' if record is None else 'stripped'}")
                if len(entries) != 3 or s.mark not in marks or s.id not in {c.id for c in of_person}:
                    result.touched.append(f"{label}: {len(entries)} entries, mark {s.mark in marks}, "
                                          f"in the person's index {s.id in {c.id for c in of_person}}")  # fmt: skip
                continue
            if s.due_at > audited_at:
                result.not_due_yet += 1
                continue
            result.due += 1
            if not _stripped(record) or entries:
                result.not_purged.append(f"{label}: record {'stripped' if _stripped(record) else 'whole'}, "
                                         f"{len(entries)} entries")  # fmt: skip
                continue
            result.purged += 1
            names = {"address": s.sender, "identity hash": s.identity, "words": s.words, "note": s.note,
                     "provider id": s.provider_id, "mark": s.mark, "upload": s.upload}  # fmt: skip
            for what, value in names.items():
                hits = [line[:100] for line in dump if value in line]
                if hits:
                    result.left.append(f"{label}: {what} in {len(hits)} key(s), e.g. {hits[0]}")
            if s.mark in marks:
                result.left.append(f"{label}: its message's mark in seen_keys")
            for line in dump:
                key, _, value = line.partition(" = ")
                if s.id in key:
                    result.shapes[key.replace(s.id, "<id>")] += 1
                elif s.id in value:
                    result.shapes[f"{key} (a member or value)"] += 1
    finally:
        await store.close()
    return result


def show_purges(result: PurgeAudit) -> None:
    if not (result.due or result.kept or result.not_due_yet):
        return
    print(
        f"purges: {result.due} due by the audit ({result.not_due_yet} not yet), {result.purged} purged, not purged"
        f" {len(result.not_purged)}; left in Redis {len(result.left)}; never due {result.kept}, touched"
        f" {len(result.touched)}"
    )
    shapes = ", ".join(f"{key} {n}" for key, n in sorted(result.shapes.items()))
    print(f"  keys still naming a purged id (the stripped record, the figures' indexes): {shapes or 'none'}")
    for line in [*result.not_purged, *result.left, *result.touched][:15]:
        print(f"    {line}")
