"""The eraser on both stores (``gateway/erasure.py`` through a real dispatcher): after a young person's erasure,
no row, key or value names their conversations' ids, their channel identity or its keyed hash, their words, or
the de-duplication keys of their messages; another young person's data is untouched. Redis is searched with SCAN
over every key and value."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from gateway.console.actions import Actions
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.erasure import EPOCH, FAR, Eraser
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.inbox import sender_key as sender_of
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.store import DoneMark, InboxItem, OutboxItem, Store, open_store
from gateway.store import redis_keys as K
from gateway.store.sqlite import path_from_url
from gateway.testing import store_keys
from tests.store.test_contract_retention import everything
from tests.test_webchat import WALK_TO_QUEUE

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
WORDS = "ma mère ne sait pas que je vais mal"
OTHER_WORDS = "un autre jeune raconte sa journée"
CHAT, OTHER = "70707070", "80808080"


def message(sender: str, number: int, text: str) -> Inbound:
    return Inbound(ChannelName.TELEGRAM, sender, f"upd-{sender}-{number}", text)


async def test_an_erasure_leaves_nothing_about_the_person(store: Store, store_url: str) -> None:
    now = [T0]
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=lambda: now[0])
    keyed = KeyedHash("test-secret-key-0123456789")

    def sender_key(channel: ChannelName, sender: str) -> str:
        return keyed.sender(channel.value, sender)

    for number, text in enumerate(["bonjour", WORDS, "au revoir"]):
        await dispatcher.handle_inbound(message(CHAT, number, text))
    [first] = await store.list_conversations(EPOCH, FAR)
    first.status, first.closed_at = Status.CLOSED, now[0]  # an earlier conversation, ended
    await store.save_conversation(first)
    now[0] += timedelta(days=2)
    await dispatcher.handle_inbound(message(CHAT, 10, WORDS))  # the same person, again
    await dispatcher.handle_inbound(message(OTHER, 1, OTHER_WORDS))
    key = sender_key(ChannelName.TELEGRAM, CHAT)
    await store.outbox_put(OutboxItem("n-gate", "notice-" + key, {"recipient": CHAT, "text": "limité"}, now[0]))
    late = InboxItem("in:telegram:late", sender_of(keyed, message(CHAT, 99, "")), {"sender": CHAT}, now[0])
    await store.inbox_put([late])
    conversations = [c for c in await store.list_conversations(EPOCH, FAR) if c.sender == CHAT]
    assert len(conversations) == 2  # the words sealed at rest: read back through the store
    assert WORDS in [entry.text for c in conversations for entry in await store.transcript(c.id)]

    eraser = Eraser(store, dispatcher, flows, sender_key, clock=lambda: now[0])
    erased = await eraser.erase_person(ChannelName.TELEGRAM, CHAT, "sam", "test")

    assert erased.conversations == 2 and erased.entries > 6
    dump = everything(store_url)
    names = [*(c.id for c in conversations), CHAT, key, WORDS, "bonjour", "au revoir",
             *(inbound_key(message(CHAT, n, "")) for n in (0, 1, 2, 10))]  # fmt: skip
    for name in names:
        assert name not in dump, name
    [left] = await store.list_conversations(EPOCH, FAR)  # the other young person's data stays (sealed at rest)
    assert left.sender == OTHER and OTHER_WORDS in [entry.text for entry in await store.transcript(left.id)]
    [entry] = await store.audit_log()
    assert (entry.actor, entry.action) == ("sam", "erase")
    assert entry.subject == ", ".join(c.pseudonym for c in conversations) and "2 conversation(s)" in entry.detail


async def test_an_erasure_forgets_the_marks_of_the_listeners_replies(store: Store, store_url: str) -> None:
    """A listener's reply carries the console's id, de-duplicated by a mark kept 8 days (``Actions.reply``): the
    erasure forgets it with the conversation; another young person's stays."""
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=lambda: T0)
    actions = Actions(dispatcher, store, flows, clock=lambda: T0)
    keyed = KeyedHash("test-secret-key-0123456789")
    marks, keys = {}, {}
    for sender in (CHAT, OTHER):
        for number, text in enumerate(WALK_TO_QUEUE):
            await dispatcher.handle_inbound(message(sender, number, text))
        conversation = await store.find_active_conversation(ChannelName.TELEGRAM, sender)
        assert conversation is not None and conversation.status == Status.QUEUED
        await actions.take(conversation.id, "anne", 3)
        before = set(await store.seen_keys())
        sent = await actions.reply(conversation.id, "anne", "Je suis là, on prend le temps.", key="c-1")
        assert await actions.reply(conversation.id, "anne", "Je suis là, on prend le temps.", key="c-1") == sent
        [marks[sender]] = set(await store.seen_keys()) - before  # the reply's mark, kept 8 days
        assert marks[sender] in await store.marks_of(conversation.id)
        keys[sender] = "reply:" + hashlib.sha256(f"{conversation.id}:anne:c-1".encode()).hexdigest()[:32]

    eraser = Eraser(store, dispatcher, flows, lambda c, s: keyed.sender(c.value, s), clock=lambda: T0)
    await eraser.erase_person(ChannelName.TELEGRAM, CHAT, "sam", "test")

    left = await store.seen_keys()
    assert marks[CHAT] not in left and marks[OTHER] in left
    dump = everything(store_url)
    assert marks[CHAT] not in dump and keys[CHAT] not in dump  # Redis keeps the digest, SQLite the key
    assert marks[OTHER] in dump or keys[OTHER] in dump


async def test_a_sqlite_file_from_before_the_marks_column_opens_and_records_them(tmp_path: Path) -> None:
    """Marks saved before ``seen.conversation_id`` name no conversation (they lapse in their 8 days); new ones do."""
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, CHAT, T0)
    await store.save_conversation(conversation, done=DoneMark("in:telegram:old", 3600))
    await store.close()
    with sqlite3.connect(path_from_url(url)) as conn:
        conn.execute("ALTER TABLE seen DROP COLUMN conversation_id")
    store = await open_store(url, keys=store_keys(url))
    try:
        assert await store.marks_of(conversation.id) == []
        await store.save_conversation(conversation, done=DoneMark("in:telegram:new", 3600))
        assert await store.marks_of(conversation.id) == [seen_digest("in:telegram:new")]
    finally:
        await store.close()


def _eraser(store: Store, now: datetime) -> Eraser:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    keyed = KeyedHash("test-secret-key-0123456789")
    dispatcher = Dispatcher(store, flows, clock=lambda: now)
    return Eraser(store, dispatcher, flows, lambda c, s: keyed.sender(c.value, s), clock=lambda: now)


def _ended(n: int, sender: str, days: int) -> Conversation:
    at = T0 - timedelta(days=days)
    return Conversation(id=f"c{n:05d}", channel=ChannelName.TELEGRAM, sender=sender, pseudonym=f"Lynx-{n}",
                        created_at=at, updated_at=at, status=Status.CLOSED, closed_at=at)  # fmt: skip


async def test_an_erasure_finds_a_conversation_older_than_the_indexed_days(store: Store) -> None:
    """Retention strips the identity after ``closed_days`` (may be more than 31): an erasure finds what still names
    the person, however old."""
    for c in (_ended(1, CHAT, 400), _ended(2, CHAT, 40), _ended(3, CHAT, 0), _ended(4, OTHER, 40)):
        await store.save_conversation(c)
    erased = await _eraser(store, T0).erase_person(ChannelName.TELEGRAM, CHAT, "sam", "test")
    assert erased.conversations == 3
    assert [c.id for c in await store.list_conversations(EPOCH, FAR)] == ["c00004"]


async def test_an_erasure_asked_from_a_conversation_its_index_misses_erases_it(store: Store, store_url: str) -> None:
    """The conversation an erasure is asked from is erased even if the person's index lost it (a cut): read by id."""
    for c in (_ended(1, CHAT, 3), _ended(2, CHAT, 0)):
        await store.save_conversation(c)
    if not store_url.startswith("sqlite"):  # SQLite's index is the record's column: it cannot miss it
        with redis.Redis.from_url(store_url) as client:
            client.zrem(K.person(store_keys(store_url).identity(ChannelName.TELEGRAM, CHAT)), "c00001")
    erased = await _eraser(store, T0).erase_conversation("c00001", "sam", "test")
    assert erased is not None and erased.conversations == 2
    assert await store.list_conversations(EPOCH, FAR) == []


async def test_an_erasure_reads_the_persons_records_not_every_record(store: Store, store_url: str) -> None:
    """Until 2026-12-06 every erasure read and decoded every conversation record the store kept (O(history)): now
    the person's index, with 2,000 others kept. Counted by the store itself: on Redis ``keyspace_hits`` (keys found
    by a read), on SQLite the steps of its virtual machine (a progress handler on the store's own connection)."""
    others = [_ended(n, f"9{n:07d}", n % 60) for n in range(10, 2010)]
    for start in range(0, len(others), 100):
        await asyncio.gather(*(store.save_conversation(c) for c in others[start : start + 100]))
    for c in (_ended(1, CHAT, 40), _ended(2, CHAT, 0)):
        await store.save_conversation(c)
    eraser = _eraser(store, T0)
    await store.conversations_of(ChannelName.TELEGRAM, CHAT, EPOCH, FAR, 1)  # any index made once before counting
    if store_url.startswith("sqlite"):
        run, steps = getattr(store, "_run"), [0]  # noqa: B009  # the store's thread, the only one on its connection

        def counted() -> int:
            steps[0] += 1
            return 0

        await run(lambda conn: conn.set_progress_handler(counted, 100))
        erased = await eraser.erase_person(ChannelName.TELEGRAM, CHAT, "sam", "test")
        await run(lambda conn: conn.set_progress_handler(None, 100))
        read = steps[0]
    else:
        with redis.Redis.from_url(store_url) as client:
            client.config_resetstat()
            erased = await eraser.erase_person(ChannelName.TELEGRAM, CHAT, "sam", "test")
            read = client.info("stats")["keyspace_hits"]
    assert erased.conversations == 2
    assert read < 100, read  # before: Redis 2,007 (every record read), SQLite 305 (30,500 steps); now 7 and 1
    assert len(await store.list_conversations(EPOCH, FAR)) == 2000
