"""Erasure and purge, proved by difference on SQLite, Redis and Redis Cluster: every key (every node of a Cluster),
member, field and row is listed before the young person's conversations exist (another young person's
conversation present as a control), then after their erasure (or purge). What was added must be gone, except the
allow-list below; what the control had must all still be there; and every sealed value left is opened with the
data keys and must not hold the person's words, note, sender id or phone number.

Keys and members that do not contain the conversation id (the provider ids in the day indexes ``hg:p:<day>:<n>``,
the inbound keys in ``hg:{seen}:<day>:<n>``, inbox items by keyed hash) are why a search by id or text is not
enough: the values are sealed, so only a diff finds them.

The allow-list, and why each may remain (docs/security.md):

* ``texts`` / ``hg:texts``: flows.yaml's shared bot texts, sealed once for all conversations (nothing personal);
* the audit log: the erasure's own entry (actor, pseudonyms, counts);
* global sequence counters (``…:seq``): numbers only;
* SQLite's ``sqlite_sequence``: the tables' row counters;
* takedown notices (``notices`` / ``hg:notice:<id>`` and their indexes): the record of what the helpline sent, with
  no identity (docs/security.md); an erasure deletes their evidence copies;
* after an erasure only (checked apart, with what each holds): a WhatsApp identity's keyed hash for the catch-up's
  window, and each erased web chat conversation's (``KeyedHash.erased_conversation``, 30 days: a page naming it is
  told it ended, one a failover lost is not), a keyed hash and an instant, naming neither conversation nor person;
* after a purge only: the conversation's stripped record (no identity, no content), its place in the status and
  creation indexes and its queue takes (conversation id, queue, time), so that it is still counted; and the
  notices' evidence, which follows the notice's own retention (gateway/retention.py).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.crypto import SEALED_BYTES, SEALED_RECORD, DataKeys
from gateway.dispatcher import Dispatcher
from gateway.erasure import EPOCH, FAR, Eraser
from gateway.errors import DataKeyError
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.inbox import sender_key as sender_of
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.notices.record import Evidence, Notice
from gateway.retention import Retention
from gateway.store import Author, ClaimState, Delivery, InboxItem, OutboxItem, Store, TranscriptEntry
from gateway.store import redis_keys as K
from gateway.testing import store_keys

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
PHONE, OTHER_PHONE = "+33612345678", "+33798765432"
WORDS = "ma mère ne sait pas que je vais mal"
NOTE = "note privée : suivi par l'infirmière scolaire"
OTHER_WORDS = "un autre jeune raconte sa journée"
PERSONAL = (PHONE, PHONE.removeprefix("+"), WORDS, NOTE, "infirmière", "sait pas")
LATE = RiskFlag("suicide", 0.81, "model")
KINDS = ("conversation", "entry", "outbox", "inbox", "notice", "referral", "evidence", "upload", "texts", "audit")

NOTICES = ("hg:notice:", "hg:notices:")
Item = tuple[str, ...]  # (where, key or table, member / field / row…)


def _allowed_after_erasure(item: Item) -> bool:
    where, name = item[0], item[1]
    if where == "sqlite":
        return name in ("texts", "audit", "sqlite_sequence", "notices")
    return name in ("hg:texts", "hg:audit", "hg:notices") or name.endswith(":seq") or name.startswith(NOTICES)


def _allowed_after_purge(item: Item, conversation_id: str) -> bool:
    """The stripped record, and the indexes that count it (by its id, never by anything personal)."""
    if _allowed_after_erasure(item):
        return True
    where, name = item[0], item[1]
    if name in ("evidence",) or name.startswith("hg:evidence:"):
        return True  # a notice's evidence follows the notice's own retention
    if where == "sqlite":
        return name in ("conversations", "takes") and item[2].startswith(repr((conversation_id,))[:-2])
    return name in (K.conversation(conversation_id), "hg:{index}:created") or (
        name.startswith(("hg:{index}:status:", "hg:{queue}:takes:")) and item[2] == conversation_id
    )


def _their_mark(item: Item, keys: set[str]) -> bool:
    """A processed mark of one of the young person's WhatsApp messages, unlinked from any conversation: kept by the
    erasure (``erasure.DELIVERED_AGAIN``: Twilio lists their messages to the catch-up again)."""
    if item[0] == "sqlite":
        digests = {seen_digest(k) for k in keys}  # never the key: it names the provider's message id
        return item[1] == "seen" and any(item[2].startswith(f"('{d}', ") for d in digests) and item[2].endswith("None)")
    return item[1].startswith("hg:{seen}:") and item[2] in {seen_digest(k) for k in keys}


def _mutable(item: Item) -> bool:
    """What may change under the control's feet: sequence counters."""
    return item[1].endswith(":seq") or (item[0] == "sqlite" and item[1] == "sqlite_sequence")


@dataclass(frozen=True, slots=True)
class Snapshot:
    items: frozenset[Item]
    sealed: tuple[bytes, ...]


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def snapshot(store_url: str) -> Snapshot:
    """Every row of every table (SQLite), or every key with each member, field and value (Redis, every node)."""
    items: set[Item] = set()
    values: list[bytes] = []
    if store_url.startswith("sqlite:///"):
        conn = sqlite3.connect(Path(store_url.removeprefix("sqlite:///")))
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in conn.execute(f"SELECT * FROM {table}"):
                    items.add(("sqlite", table, repr(row)))
                    values += [bytes(v) for v in row if isinstance(v, bytes | memoryview)]
        finally:
            conn.close()
        return Snapshot(frozenset(items), tuple(values))
    client: redis.Redis | redis.RedisCluster = redis.Redis.from_url(store_url)
    if client.info("cluster").get("cluster_enabled"):  # every node's keys
        client.close()
        client = redis.RedisCluster.from_url(store_url)
    try:
        for raw in client.scan_iter(count=1000):
            for parts, value in _members(client, raw):
                items.add(("redis", _text(raw), *(_text(p) for p in parts)))
                if value is not None:
                    values.append(value)
    finally:
        client.close()
    return Snapshot(frozenset(items), tuple(values))


def _members(client: redis.Redis | redis.RedisCluster, key: bytes) -> Iterator[tuple[tuple[bytes, ...], bytes | None]]:
    kind = _text(client.type(key))
    if kind == "string":
        value = client.get(key)
        yield (value,), value
    elif kind == "list":
        for value in client.lrange(key, 0, -1):
            yield (value,), value
    elif kind == "set":
        for member in client.smembers(key):
            yield (member,), member
    elif kind == "zset":
        for member in client.zrange(key, 0, -1):
            yield (member,), member
    elif kind == "hash":
        for field, value in client.hgetall(key).items():
            yield (field, value), value
    else:
        raise AssertionError(f"a key of an unexpected type: {kind}")


def opened(keys: DataKeys, value: bytes) -> str:
    """The text of a value: opened with the data keys when it is sealed (whatever its kind), else as it is."""
    start = value.find(SEALED_RECORD) if SEALED_RECORD in value else value.find(SEALED_BYTES)
    if start < 0:
        return _text(value)
    sealed = value[start:]
    for kind in KINDS:
        try:
            return keys.open_bytes(kind, sealed).decode("utf-8", "replace") if sealed.startswith(
                SEALED_BYTES) and kind == "upload" else keys.open(kind, sealed)  # fmt: skip
        except DataKeyError:
            continue
    raise AssertionError(f"a sealed value that no kind opens: {value[:40]!r}")


def assert_nothing_personal(keys: DataKeys, after: Snapshot) -> None:
    texts = [opened(keys, value) for value in after.sealed] + ["\n".join(map(repr, after.items))]
    for secret in PERSONAL:
        assert not [t for t in texts if secret in t], secret


class Helpline:
    """A dispatcher on the store under test, and two young people on WhatsApp."""

    def __init__(self, store: Store) -> None:
        self.now = [T0]
        self.store = store
        self.flows = FlowSet(ROOT / "flows.yaml")
        self.flows.reload()
        self.dispatcher = Dispatcher(store, self.flows, clock=lambda: self.now[0])
        self.keyed = KeyedHash("test-secret-key-0123456789")
        self.numbers = iter(range(1000))
        self.theirs: set[str] = set()  # the de-duplication keys of the young person's messages processed

    def sender_key(self, channel: ChannelName, sender: str) -> str:
        return self.keyed.sender(channel.value, sender)

    def message(self, sender: str, text: str) -> Inbound:
        return Inbound(ChannelName.WHATSAPP, sender, f"wamid-{sender[-4:]}-{next(self.numbers)}", text)

    async def handled(self, inbound: Inbound) -> None:
        await self.dispatcher.handle_inbound(inbound)
        self.theirs.add(inbound_key(inbound))

    async def conversation_of(self, sender: str) -> Conversation:
        found = [c for c in await self.store.list_conversations(EPOCH, FAR) if c.sender == sender]
        return max(found, key=lambda c: c.created_at)

    async def control(self) -> Conversation:
        for text in ("bonjour", OTHER_WORDS):
            await self.dispatcher.handle_inbound(self.message(OTHER_PHONE, text))
        other = await self.conversation_of(OTHER_PHONE)
        await self.store.append_transcript(TranscriptEntry("note-other", other.id, T0, Author.NOTE, "vu"))
        await self.store.put_upload(f"{other.id}/0123abcd", "image/png", b"PNG other")
        await self.store.enqueue(other.id, "general", Priority.NORMAL, T0)
        while due := await self.store.outbox_due(T0 + timedelta(hours=1), 100):  # sent, with provider ids
            for item in due:
                await self.store.outbox_mark_sent(item.conversation_id, item.id, "wamid.OTHER" + item.id,
                                                  lease=item.next_attempt_at)  # fmt: skip
                await self.store.keep_receipt("wamid.OTHER" + item.id, Delivery.READ)  # another person's: kept
        return other

    async def everything_about_the_person(self) -> list[Conversation]:
        """Two conversations (one ended), messages and the bot's replies, outbox items sent (with provider ids)
        and pending, dedupe and processed marks, a claim its owner's crash left (its key: the provider's id),
        timers, a queue entry taken, a note, an upload, the gate's notice, an inbox item still waiting."""
        for text in ("bonjour", WORDS, "au revoir"):
            await self.handled(self.message(PHONE, text))
        first = await self.conversation_of(PHONE)
        await self._outbox_sent_and_pending(first)
        first.status, first.closed_at = Status.CLOSED, self.now[0]
        await self.store.save_conversation(first)
        self.now[0] += timedelta(days=2)
        await self.handled(self.message(PHONE, WORDS))  # the same person, again
        second = await self.conversation_of(PHONE)
        assert second.id != first.id
        said = [e for e in await self.store.transcript(second.id) if e.author is Author.USER]
        assert await self.store.flag_entry(second.id, said[-1].id, LATE)  # a late reading's flag on their words
        await self._outbox_sent_and_pending(second)
        await self.store.append_transcript(TranscriptEntry("note-" + second.id, second.id, self.now[0], Author.NOTE,
                                                           NOTE))  # fmt: skip
        await self.store.put_upload(f"{second.id}/4567cdef", "image/png", b"PNG " + WORDS.encode())
        notice = Notice("notice-" + second.id[:8], second.id, second.pseudonym, "instagram", "harassment",
                        ("https://instagram.example/p/1",), "Compte qui harcèle", "fr", "anne", self.now[0],
                        self.now[0], evidence=(1,))  # fmt: skip
        await self.store.put_notice(notice)
        await self.store.put_evidence(notice.id, [Evidence("capture.png", "image/png", b"PNG capture")])
        second.client = self.keyed("client", "203.0.113.7")  # the web chat's cap per client indexes it
        await self.store.save_conversation(second)
        await self.store.enqueue(second.id, "general", Priority.NORMAL, self.now[0])
        await self.store.take(second.id, "anne", self.now[0])
        key = self.sender_key(ChannelName.WHATSAPP, PHONE)
        await self.store.outbox_put(OutboxItem("n-gate", "notice-" + key, {"recipient": PHONE, "text": "limité"},
                                               self.now[0]))  # fmt: skip
        crashed = self.message(PHONE, WORDS)  # its owner died while processing it: the claim is left, lapsed
        async with self.store.lock(second.id):  # as the dispatcher claims under the lock: it names the conversation
            assert await self.store.claim(inbound_key(crashed), "dead-owner", 0.001) is ClaimState.CLAIMED
        late = self.message(PHONE, WORDS)
        await self.store.inbox_put([InboxItem(inbound_key(late), sender_of(self.keyed, late),
                                              {"sender": PHONE, "text": WORDS}, self.now[0])])  # fmt: skip
        return [first, second]

    async def _outbox_sent_and_pending(self, conversation: Conversation) -> None:
        """The bot's first reply sent (with a provider id), the others left pending; one more pending item."""
        due = [i for i in await self.store.outbox_due(self.now[0] + timedelta(hours=1), 100)
               if i.conversation_id == conversation.id]  # fmt: skip
        assert due, "the bot answered"
        provider_id = f"wamid.HBgLMzM2{next(self.numbers)}"  # a provider's id names neither conversation nor person
        await self.store.outbox_mark_sent(conversation.id, due[0].id, provider_id, lease=due[0].next_attempt_at)
        await self.store.keep_receipt(provider_id, Delivery.DELIVERED)  # kept, its take still to come
        payload: dict[str, Any] = {"recipient": PHONE, "text": "Réponse : " + WORDS}
        await self.store.outbox_put(OutboxItem("late-" + conversation.id, conversation.id, payload, self.now[0]))


def added(before: Snapshot, after: Snapshot) -> set[Item]:
    return set(after.items - before.items)


def _show(items: set[Item]) -> str:
    return "\n".join(sorted(re.sub(r"[^\x20-\x7e]", "?", repr(i))[:160] for i in items))


async def test_an_erasure_leaves_nothing_that_was_added_for_the_person(store: Store, store_url: str) -> None:
    helpline = Helpline(store)
    other = await helpline.control()
    before = snapshot(store_url)
    conversations = await helpline.everything_about_the_person()
    during = snapshot(store_url)
    assert WORDS not in "\n".join(map(repr, during.items))  # sealed at rest: only the diff and the keys find it
    assert any(WORDS in opened(store_keys(store_url), v) for v in during.sealed)  # the decrypt check sees it
    assert store_url.startswith("sqlite") or [i for i in added(before, during) if i[1].startswith("hg:client:")]

    eraser = Eraser(store, helpline.dispatcher, helpline.flows, helpline.sender_key, clock=lambda: helpline.now[0],
                    erased_key=lambda c, s: helpline.keyed.erased(c.value, s))  # fmt: skip
    erased = await eraser.erase_person(ChannelName.WHATSAPP, PHONE, "sam", "test")

    assert erased.conversations == 2
    after = snapshot(store_url)
    marks = {i for i in added(before, after) if _their_mark(i, helpline.theirs)}
    assert len(marks) == len(helpline.theirs) == 4  # kept: the catch-up would process them again
    digest = helpline.keyed.erased(ChannelName.WHATSAPP.value, PHONE)  # kept for the catch-up's window, alone
    identity = {i for i in added(before, after) if i[1] in ("erased", K.erased(digest))}
    assert len(identity) == 1 and digest in repr(identity)
    linked = (helpline.sender_key(ChannelName.WHATSAPP, PHONE), *erased.pseudonyms, *(c.id for c in conversations))
    assert not [what for what in linked if what in repr(identity)]  # nothing that names what was erased
    left = {i for i in added(before, after) if not _allowed_after_erasure(i)} - marks - identity
    assert not left, "left after the erasure:\n" + _show(left)
    lost = {i for i in before.items - after.items if not _mutable(i)}
    assert not lost, "the control lost:\n" + _show(lost)
    assert_nothing_personal(store_keys(store_url), after)
    assert not [c for c in conversations if await store.get_conversation(c.id) is not None]
    assert OTHER_WORDS in [e.text for e in await store.transcript(other.id)]


async def test_a_purge_keeps_a_record_without_content(store: Store, store_url: str) -> None:
    helpline = Helpline(store)
    other = await helpline.control()
    before = snapshot(store_url)
    first, second = await helpline.everything_about_the_person()
    second.status, second.closed_at = Status.CLOSED, helpline.now[0]
    await store.remove_from_queue(second.id)
    await store.save_conversation(second)
    key = helpline.sender_key(ChannelName.WHATSAPP, PHONE)
    await store.erase_conversation("notice-" + key)  # what the purge of ended conversations does not cover:
    await store.inbox_forget(sender_of(helpline.keyed, helpline.message(PHONE, "")))  # the gate and inbox expire

    later = helpline.now[0] + timedelta(days=400)
    purged = await Retention(store, helpline.flows, clock=lambda: later, metrics=Metrics()).purge(later)

    assert purged.conversations == 2

    after = snapshot(store_url)
    left = {i for i in added(before, after) if not _allowed_after_purge(i, first.id) and
            not _allowed_after_purge(i, second.id)}  # fmt: skip
    assert not left, "left after the purge:\n" + _show(left)
    lost = {i for i in before.items - after.items if not _mutable(i)}
    assert not lost, "the control lost:\n" + _show(lost)
    assert_nothing_personal(store_keys(store_url), after)
    for conversation in (first, second):
        record = await store.get_conversation(conversation.id)
        assert record is not None and record.purged_at == later and record.sender == ""
        assert record.summary == [] and record.engine == {} and await store.transcript(conversation.id) == []
    assert OTHER_WORDS in [e.text for e in await store.transcript(other.id)]


async def test_a_web_chat_erasure_keeps_only_each_conversations_mark(store: Store, store_url: str) -> None:
    """A web chat young person's two conversations erased: what stays is one mark each (``KeyedHash.
    erased_conversation``, for ``erasure.WEBCHAT_ERASED_FOR``: a page naming it is told it ended, one whose
    conversation a failover lost is not), a keyed hash alone, naming neither the conversation nor the browser."""
    helpline = Helpline(store)
    await helpline.control()
    token = "a-browsers-token-0123456789abcdef"
    before = snapshot(store_url)
    for n, text in enumerate(("bonjour", WORDS)):
        await helpline.dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, token, f"w{n}", text))
    first = await helpline.conversation_of(token)
    first.status, first.closed_at = Status.CLOSED, helpline.now[0]
    await store.save_conversation(first)
    await helpline.dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, token, "w2", WORDS))  # a second one
    conversations = [c for c in await store.list_conversations(EPOCH, FAR) if c.sender == token]
    assert len(conversations) == 2

    eraser = Eraser(store, helpline.dispatcher, helpline.flows, helpline.sender_key, clock=lambda: helpline.now[0],
                    conversation_key=helpline.keyed.erased_conversation)  # fmt: skip
    erased = await eraser.erase_person(ChannelName.WEBCHAT, token, "sam", "test")

    after = snapshot(store_url)
    digests = {helpline.keyed.erased_conversation(c.id) for c in conversations}
    marks = {i for i in added(before, after) if i[1] in ("erased", *(K.erased(d) for d in digests))}
    assert len(marks) == 2 and all(any(d in repr(i) for d in digests) for i in marks)
    linked = (token, helpline.sender_key(ChannelName.WEBCHAT, token), *erased.pseudonyms,
              *(c.id for c in conversations))  # fmt: skip
    assert not [what for what in linked if what in repr(marks)]  # nothing that names what was erased
    left = {i for i in added(before, after) if not _allowed_after_erasure(i)} - marks
    assert not left, "left after the erasure:\n" + _show(left)
    assert_nothing_personal(store_keys(store_url), after)
    assert not [c for c in conversations if await store.get_conversation(c.id) is not None]
