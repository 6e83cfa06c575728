"""The supervision board's risk flags read an index of the open conversations with a flag, never every open
conversation (``ConversationStore.flagged_conversations``; Redis ``hg:{index}:flagged``, SQLite the
``flagged_us`` column and its partial index), on SQLite, Redis and Cluster: a flag lists its conversation, the latest
first; ending or erasing it takes it out; a store written before the index has it made once (SQLite when the file
is opened, Redis at the first read); the index holds ids and times only. ``console/flagged.py``'s cost is counted
by Redis itself (``INFO commandstats``) and by the SQLite statements its connection runs."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis

from gateway.console.flagged import MAX_SHOWN, flagged
from gateway.conversation import Conversation, RiskFlag, Status
from gateway.messages import ChannelName
from gateway.store import Author, Store, TranscriptEntry
from gateway.store import redis_keys as K
from gateway.store.sqlite import path_from_url
from tests.store.test_contract_read_receipts import Statements, is_redis, reopened_without

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
DANGER = RiskFlag("imminent_danger", 1.0, "keywords", ("couteau",))
SUICIDE = RiskFlag("suicide", 0.87, "model")
WORDS = "il a un couteau il arrive"


def at(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


async def opened(store: Store, n: int, status: Status = Status.QUEUED) -> Conversation:
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, f"70{n:014d}", at(n))
    conversation.status = status
    await store.save_conversation(conversation)
    return conversation


async def flag(store: Store, conversation: Conversation, n: int, risk: RiskFlag = DANGER) -> None:
    """As the dispatcher records a flagged message: its entry, then the record with the flag and its time."""
    entry = TranscriptEntry(f"u{n:04d}", conversation.id, at(n), Author.USER, WORDS, flag=risk)
    await store.append_transcript(entry)
    conversation.flag, conversation.flagged_at, conversation.updated_at = risk, at(n), at(n)
    await store.save_conversation(conversation)


async def ids(store: Store, limit: int = MAX_SHOWN) -> list[str]:
    return [c.id for c in await store.flagged_conversations(limit)]


async def test_a_flag_lists_its_open_conversation_the_latest_first(store: Store) -> None:
    statuses = (Status.QUEUED, Status.WITH_LISTENER, Status.QUEUED, Status.BOT)
    quiet, first, second, bot = [await opened(store, n, s) for n, s in enumerate(statuses)]
    assert await ids(store) == []
    await flag(store, first, 10)
    await flag(store, second, 11, SUICIDE)
    await flag(store, bot, 12)
    assert await ids(store) == [bot.id, second.id, first.id]
    assert await ids(store, 2) == [bot.id, second.id]
    await flag(store, first, 13, SUICIDE)  # a weaker flag later: the strongest kept, first again
    first.flag = DANGER
    await store.save_conversation(first)
    assert await ids(store) == [first.id, bot.id, second.id]
    [shown, *_] = await store.flagged_conversations(3)
    assert shown == first and shown.flag == DANGER
    assert quiet.id not in await ids(store)


async def test_an_ended_or_erased_conversation_leaves_the_index(store: Store) -> None:
    closed, referred, erased, kept = [await opened(store, n) for n in range(4)]
    for n, conversation in enumerate((closed, referred, erased, kept)):
        await flag(store, conversation, 10 + n)
    await store.save_conversation(replace(closed, status=Status.CLOSED, closed_at=at(20)))
    await store.save_conversation(replace(referred, status=Status.REFERRED, closed_at=at(21)))
    await store.erase_conversation(erased.id)
    assert await ids(store) == [kept.id]


async def test_a_stale_id_is_dropped_and_the_board_still_shows_its_fill(store: Store, store_url: str) -> None:
    """Redis: a crash between a record's last save and the index's step after it leaves an ended conversation
    listed; a read skips it (and drops it) and still returns ``limit`` open ones when there are."""
    conversations = [await opened(store, n) for n in range(5)]
    for n, conversation in enumerate(conversations):
        await flag(store, conversation, 10 + n)
    ended = conversations[-1]
    await store.save_conversation(replace(ended, status=Status.CLOSED, closed_at=at(30)))
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url)
        try:
            client.zadd(K.FLAGGED, {ended.id: 10**18, "gone": 10**18 + 1})  # as a crash leaves it: the latest
            assert await ids(store, 2) == [conversations[3].id, conversations[2].id]  # "gone": no record (expired)
            assert client.zscore(K.FLAGGED, ended.id) is None and client.zscore(K.FLAGGED, "gone") is None
        finally:
            client.close()
    assert await ids(store, 2) == [conversations[3].id, conversations[2].id]


async def test_the_index_holds_ids_and_times_never_words(store: Store, store_url: str) -> None:
    conversation = await opened(store, 1)
    await flag(store, conversation, 10)
    assert await ids(store) == [conversation.id]
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url, decode_responses=True)
        try:
            listed = client.zrange(K.FLAGGED, 0, -1, withscores=True)
        finally:
            client.close()
        assert listed == [(K.FLAGGED_MADE, 0.0), (conversation.id, float(int(at(10).timestamp() * 1_000_000)))]
    else:
        with sqlite3.connect(path_from_url(store_url)) as conn:
            rows = conn.execute("SELECT flagged_us FROM conversations WHERE flagged_us IS NOT NULL").fetchall()
        assert rows == [(int(at(10).timestamp() * 1_000_000),)]


async def test_a_store_written_before_the_index_has_it_made_once(store: Store, store_url: str) -> None:
    """The old layout, written as the code before it wrote it: records without ``flagged_at`` (the old codec wrote
    no such field), no ``hg:{index}:flagged`` on Redis, no ``flagged_us`` column on SQLite. Redis makes the index
    at the first read (then never scans again); SQLite fills the column when the file is opened."""
    old, later, closed = [await opened(store, n) for n in range(3)]
    for n, conversation in enumerate((old, later, closed)):
        conversation.flag, conversation.updated_at = DANGER, at(10 + n)  # no flagged_at: a record from before
        await store.save_conversation(conversation)
    await store.save_conversation(replace(closed, status=Status.CLOSED))
    if is_redis(store_url):
        client = redis.Redis.from_url(store_url)
        try:
            client.delete(K.FLAGGED)
            client.config_resetstat()
            assert await ids(store) == [later.id, old.id]  # their last change stands for their flag's time
            assert client.info("commandstats")["cmdstat_smembers"]["calls"] == 3  # the statuses open, once
            client.config_resetstat()
            assert await ids(store) == [later.id, old.id]
            assert "cmdstat_smembers" not in client.info("commandstats")  # made: never again
        finally:
            client.close()
        return
    again = await reopened_without(store, store_url, "conversations", "flagged_us", "conversations_flagged")
    try:
        assert await ids(again) == [later.id, old.id]
    finally:
        await again.close()


async def test_the_board_reads_what_it_shows_not_every_open_conversation(store: Store, store_url: str) -> None:
    """``console/flagged.py`` with 3 flagged conversations among 120 open: the records it reads are those it shows
    (Redis: GET calls; SQLite: no statement reading the conversations by status, one on the flagged index)."""
    conversations = [await opened(store, n) for n in range(120)]
    for n in (5, 50, 100):
        await flag(store, conversations[n], 200 + n)
    await store.flagged_conversations(1)  # Redis: the index made once (the mark: a store that began without it)

    def card(conversation: Conversation, now: datetime) -> dict[str, object]:
        return {"id": conversation.id, "status": str(conversation.status), "summary": "not shown"}

    if is_redis(store_url):
        client = redis.Redis.from_url(store_url, decode_responses=True)
        try:
            client.config_resetstat()
            shown = await flagged(store, card, at(999))
            stats = client.info("commandstats")
        finally:
            client.close()
        assert stats["cmdstat_get"]["calls"] <= 3 and "cmdstat_smembers" not in stats, stats
    else:
        async with Statements(store) as statements:
            shown = await flagged(store, card, at(999))
        reads = [s for s in statements if " FROM conversations " in s]
        assert reads and all("flagged_us IS NOT NULL" in s for s in reads), reads
        run = getattr(store, "_run")  # noqa: B009  # the store's thread
        plan = str([tuple(row) for row in await run(lambda c: c.execute("EXPLAIN QUERY PLAN " + reads[0]).fetchall())])
        assert "USING INDEX conversations_flagged" in plan and "TEMP B-TREE" not in plan, plan  # 50 rows read
    assert [c["id"] for c in shown] == [conversations[n].id for n in (100, 50, 5)]
    assert all(set(c) == {"id", "status", "messages"} and len(c["messages"]) == 1 for c in shown)
    assert WORDS not in str(shown)
