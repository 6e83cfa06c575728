"""An outbox hash Redis holds but this code cannot read (cut short by hand, written by a buggy version) is set
aside, and every other conversation's messages, and its own conversation's next ones, keep being handed out."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.events import EntryAdded
from gateway.store import Author, Delivery, OutboxItem, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import kept_provider_id, store_keys
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import emptied

pytestmark = pytest.mark.redis

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


async def test_a_corrupt_outbox_item_is_set_aside_and_the_others_flow(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        for item_id, conversation in (("a1", "A"), ("a2", "A"), ("b1", "B")):
            await store.append_transcript(TranscriptEntry(item_id, conversation, T0, Author.BOT, "bonjour"))
            await store.outbox_put(OutboxItem(item_id, conversation, {"text": "bonjour"}, T0))
        client.hdel(K.outbox_item("A", "a1"), "created_us")  # the hash cut short
        client.hset(K.outbox_item("A", "a1"), "attempts", "many")

        due = await store.outbox_due(T0, 10)
        assert [item.id for item in due] == ["b1"]  # the others flow
        assert client.hget(K.outbox_item("A", "a1"), "status") == "failed"
        assert "set aside" in (client.hget(K.outbox_item("A", "a1"), "last_error") or "")
        kept = client.ttl(K.outbox_item("A", "a1"))  # kept 7 days for an operator, as a failed item, then forgotten
        assert timedelta(days=7) - timedelta(minutes=1) < timedelta(seconds=kept) <= timedelta(days=7), kept
        [shown, *_] = await store.transcript("A")
        assert shown.delivery is Delivery.FAILED  # the listener sees it was not sent
        told = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
        # named by its conversation (random id), never by the item's id (derived from a provider's message id)
        assert any("conversation A" in m for m in told) and not any("a1" in m for m in told), told

        assert [item.id for item in await store.outbox_due(T0, 10)] == ["a2"]  # its conversation goes on
        assert await store.outbox_mark_sent("A", "a2", "m.a2") and await store.outbox_mark_sent("B", "b1", "m.b1")
        assert await store.outbox_due(T0, 10) == []
        assert client.exists(K.outbox_item("A", "a2")) == 0  # sent and recorded on its entry: nothing else kept
        await store.outbox_put(OutboxItem("a2", "A", {"text": "bonjour"}, T0))  # a reprocessing puts it again
        assert await store.outbox_due(T0, 10) == []  # never sent twice
    finally:
        client.close()
        await store.close()
    assert logging.ERROR in {r.levelno for r in caplog.records}


async def test_the_oldest_pending_reply_is_read_without_a_read_per_waiting_conversation(redis_url: str) -> None:
    """``outbox_oldest_pending`` (the alert, every 10 s) reads a sorted set kept by the lines' own steps: its
    commands do not grow with the conversations waiting (a provider down: every conversation answered)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        for n in range(200):
            await store.outbox_put(OutboxItem(f"i{n}", f"C{n}", {"text": "bonjour"}, T0 + timedelta(seconds=n)))
        await store.outbox_due(T0, 1)
        assert await store.outbox_mark_sent("C0", "i0", None)  # the oldest, sent: the next one is the oldest
        client.config_resetstat()
        assert await store.outbox_oldest_pending() == T0 + timedelta(seconds=1)
        calls = {name: stats["calls"] for name, stats in client.info("commandstats").items()}
        assert sum(calls.values()) <= 12, calls  # one ZRANGE, a page of HGETs (before: 1 + 2 per conversation)
    finally:
        client.close()
        await store.close()


def _evals(client: redis.Redis) -> int:
    """Scripts run so far: an EVALSHA refused as NOSCRIPT (this Redis had not seen the script yet: the first test of
    a worker on a fresh server; the client then loads it and calls again) is not a run."""
    stats = client.info("commandstats")
    return sum(
        int(stats[name]["calls"]) - int(stats[name].get("rejected_calls", 0)) - int(stats[name].get("failed_calls", 0))
        for name in ("cmdstat_eval", "cmdstat_evalsha")
        if name in stats
    )


@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_a_reply_entry_and_its_outbox_item_held_together_are_one_step(
    url: str, request: pytest.FixtureRequest
) -> None:
    """In a batch (a message's writes), a reply's entry and its outbox item go as one script, the transcript read
    once: the same entry and item as two steps, written once however often the processing is retried, and an
    item never put again once its entry records the send."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        entry = TranscriptEntry("r1", "A", T0, Author.BOT, "bonjour")
        item = OutboxItem("r1", "A", {"text": "bonjour"}, T0)
        before = _evals(client)
        async with store.batch():
            await store.append_transcript(entry)
            await store.outbox_put(item)
        assert _evals(client) - before == 2  # the entry with its item, then the conversation's line
        async with store.batch():  # a retried processing: nothing twice
            await store.append_transcript(entry)
            await store.outbox_put(item)
        assert [e.id for e in await store.transcript("A")] == ["r1"]
        [due] = await store.outbox_due(T0, 10)
        assert (due.id, due.payload) == ("r1", {"text": "bonjour"})
        assert await store.outbox_mark_sent("A", "r1", "m.r1")
        async with store.batch():  # retried after the send was recorded: never handed out again
            await store.append_transcript(entry)
            await store.outbox_put(item)
        assert await store.outbox_due(T0, 10) == []
        [shown] = await store.transcript("A")
        assert (shown.delivery, shown.provider_message_id) == (Delivery.SENT, kept_provider_id(store, "m.r1"))
    finally:
        client.close()
        await store.close()


@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_the_young_persons_entry_and_its_event_then_the_replies_are_one_step(
    url: str, request: pytest.FixtureRequest
) -> None:
    """A message's writes as the dispatcher holds them: the young person's entry, its event, then each reply's entry
    and outbox item. The young person's entry joins the replies' script at its place (before its event, first in
    the transcript): one script for every entry and item, the transcript read once, then the line's. The same
    outcomes as the steps one by one: every entry written once however often the processing is retried, in order,
    the event published, each reply handed out once."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    subscription = await store.subscribe()
    try:
        said = TranscriptEntry("u1", "A", T0, Author.USER, "salut", delivery=Delivery.DELIVERED)
        replies = [TranscriptEntry(f"r{n}", "A", T0, Author.BOT, f"bonjour {n}") for n in (1, 2)]

        async def message() -> None:
            async with store.batch():
                await store.append_transcript(said)
                await store.publish(EntryAdded("A", said))
                for reply in replies:
                    await store.append_transcript(reply)
                    await store.outbox_put(OutboxItem(reply.id, "A", {"text": reply.text}, T0))

        before = _evals(client)
        await message()
        assert _evals(client) - before == 2  # every entry and item, then the conversation's line
        async with asyncio.timeout(10):  # a safety net against a hang, not a timing assumption
            event = await anext(subscription)
        assert isinstance(event, EntryAdded) and event.entry.id == "u1"
        await message()  # a retried processing: nothing twice
        assert [(e.id, e.author, e.text) for e in await store.transcript("A")] == [
            ("u1", Author.USER, "salut"), ("r1", Author.BOT, "bonjour 1"), ("r2", Author.BOT, "bonjour 2")]  # fmt: skip
        assert [item.id for item in await store.outbox_due(T0, 10, run=8)] == ["r1", "r2"]
    finally:
        await subscription.aclose()
        client.close()
        await store.close()


@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_a_run_is_claimed_in_two_scripts_and_its_records_keep_the_line_held(
    url: str, request: pytest.FixtureRequest
) -> None:
    """A hand-off's four replies are claimed by two scripts (the heads' slot, then the conversation's), not two per
    reply; a record naming the run's next lease keeps the conversation's head at that lease's end, so no claim in
    between finds the next item leased (before: the head due at once, a claim round per reply), and the last
    record leaves the conversation due at once for what is put after the run."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        for n in range(1, 5):
            await store.outbox_put(OutboxItem(f"r{n}", "A", {"text": f"bonjour {n}"}, T0 + timedelta(seconds=n)))
        before = _evals(client)
        now = T0 + timedelta(seconds=5)
        run = await store.outbox_due(now, 10, run=8, lease_seconds=60)
        assert [(item.id, item.payload["text"]) for item in run] == [(f"r{n}", f"bonjour {n}") for n in range(1, 5)]
        assert _evals(client) - before == 2
        lease = now + timedelta(seconds=60)
        lease_us = int(lease.timestamp() * 1_000_000)
        for n in range(1, 4):
            assert await store.outbox_mark_sent("A", f"r{n}", f"m.r{n}", lease=lease, next_lease=lease)
            assert client.zscore(K.OUTBOX + "heads", "A") == lease_us  # held by the run: not due before its end
            assert await store.outbox_due(now, 10, run=8) == []
        assert await store.outbox_mark_sent("A", "r4", "m.r4", lease=lease)
        assert client.zscore(K.OUTBOX + "heads", "A") is None  # the line is empty
        await store.outbox_put(OutboxItem("r5", "A", {"text": "bonjour 5"}, now))
        assert [item.id for item in await store.outbox_due(now, 10, run=8)] == ["r5"]
    finally:
        client.close()
        await store.close()


@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_a_messages_replies_held_together_are_two_scripts_and_keep_their_order(
    url: str, request: pytest.FixtureRequest
) -> None:
    """A message's four replies (each entry, its item, its event, as ``Dispatcher.emit`` holds them) are two scripts,
    not eight: the entries with their items (the transcript read once), then the line. An item put meanwhile without
    its entry in the same line closes the group (the next reply is listed after it): the put order stays the line's."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        before = _evals(client)
        async with store.batch():
            for n in range(1, 5):
                entry = TranscriptEntry(f"r{n}", "A", T0 + timedelta(seconds=n), Author.BOT, f"bonjour {n}")
                await store.append_transcript(entry)
                await store.outbox_put(OutboxItem(entry.id, "A", {"text": entry.text}, entry.at))
                await store.publish(EntryAdded("A", entry))
        assert _evals(client) - before == 2
        async with store.batch():  # retried: nothing twice
            for n in range(1, 5):
                entry = TranscriptEntry(f"r{n}", "A", T0 + timedelta(seconds=n), Author.BOT, f"bonjour {n}")
                await store.append_transcript(entry)
                await store.outbox_put(OutboxItem(entry.id, "A", {"text": entry.text}, entry.at))
        assert [e.id for e in await store.transcript("A")] == ["r1", "r2", "r3", "r4"]
        async with store.batch():
            for item_id in ("b1", "lone", "b2"):
                if item_id != "lone":  # "lone": an item without a transcript entry (a notice, say)
                    await store.append_transcript(TranscriptEntry(item_id, "B", T0, Author.BOT, "bonjour"))
                await store.outbox_put(OutboxItem(item_id, "B", {"text": item_id}, T0))
        run = await store.outbox_due(T0 + timedelta(seconds=5), 10, run=8)
        assert [(i.id, i.payload["text"]) for i in run if i.conversation_id == "A"] == [
            (f"r{n}", f"bonjour {n}") for n in range(1, 5)
        ]
        assert [i.id for i in run if i.conversation_id == "B"] == ["b1", "lone", "b2"]
    finally:
        client.close()
        await store.close()


def _commands(client: redis.Redis) -> dict[str, int]:
    """Every command Redis ran since ``CONFIG RESETSTAT`` (a script's own calls counted), the test's own left out."""
    stats = client.info("commandstats")
    own = ("cmdstat_config", "cmdstat_info", "cmdstat_script")  # the reset, this read, redis-py's script loads
    return {name: int(s["calls"]) for name, s in stats.items() if not name.startswith(own)}


@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_a_messages_four_replies_cost_the_outbox_a_bounded_count_of_commands(
    url: str, request: pytest.FixtureRequest
) -> None:
    """A hand-off's four replies through the outbox as ``Outbox`` drives it (put in one batch, claimed as a run, each
    recorded sent with its provider id, the run's next lease held): every command Redis ran, a script's own calls
    included (``INFO commandstats``), within a budget. Issue 8's twenty-first pass cut it: a lease's check one
    ``HMGET``, a claim one ``HGETALL`` an item (its state and what is handed out), a line joined without the
    ``ZSCORE`` before its ``ZADD NX``, one ``INCRBY`` and one ``ZADD`` of the pending set for the message's replies,
    their entries awaiting a read receipt joined in one ``ZADD`` (Messenger's), a send's record no ``HSET`` on an
    item it deletes. The twenty-third pass, on one node: a send's record reads, applies and takes the receipt kept for
    it, writes its provider id's index and makes its line's step in one script (two ``HKEYS`` and an ``EVALSHA`` a
    reply fewer)."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))

    async def hand_off(conversation: str, prefix: str, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
        entries = [TranscriptEntry(f"{prefix}{n}", conversation, now + timedelta(seconds=n - 5), Author.BOT,
                                   f"bonjour {n}") for n in range(1, 5)]  # fmt: skip
        client.config_resetstat()
        async with store.batch():
            for entry in entries:
                await store.append_transcript(entry)
                await store.outbox_put(
                    OutboxItem(entry.id, conversation, {"text": entry.text}, entry.at, awaits_read=True)
                )
        put = _commands(client)
        client.config_resetstat()
        run = await store.outbox_due(now, 10, run=8, lease_seconds=60)
        assert [item.id for item in run] == [entry.id for entry in entries]
        lease = now + timedelta(seconds=60)
        takes = store.takes_kept_receipts
        for n, item in enumerate(run, 1):
            following = lease if n < 4 else None
            kept = None if takes else await store.kept_receipt(f"m.{item.id}")  # as ``Outbox`` reads around it
            assert await store.outbox_mark_sent(conversation, item.id, f"m.{item.id}", lease=lease,
                                                next_lease=following, receipt=kept, answered_at=now)  # fmt: skip
            if not takes:
                assert await store.kept_receipt(f"m.{item.id}") is None  # the look after the record
        return put, _commands(client)

    try:
        # a first hand-off loads the scripts into Redis: the one counted below is that of a running gateway, whatever
        # test ran before on this server (until 2026-12-06 run first it counted an EVALSHA's NOSCRIPT fall-back)
        await hand_off("W", "w", T0)
        now = T0 + timedelta(seconds=5)
        put, sent = await hand_off("A", "r", now)
        assert [(e.id, e.delivery, e.provider_message_id) for e in await store.transcript("A")] == [
            (f"r{n}", Delivery.SENT, kept_provider_id(store, f"m.r{n}")) for n in range(1, 5)]  # fmt: skip
        assert await store.outbox_due(now + timedelta(hours=1), 10) == []
        assert sum(put.values()) <= 26, put  # before: 45 (a ZSCORE, an INCR, a ZCARD, ZADD and PTTL an item joining)
        # the claim and the records with the reads of what was kept around each (``Outbox``'s): before the twenty-first
        # pass 95 (two HGETs a claim and a record, two HSETs a record), then 75; on one node 67 since the twenty-third
        # (the record, the kept receipt's read and take, the provider id's index and the line's step one script:
        # ``outbox_sent``), 75 still where they stay apart (a Cluster: here a plain client to a node in cluster mode);
        # since 2026-12-06 71 and 79: a record's script looks for a watermark kept for its reply (one HMGET each),
        # then 75 and 83: it scores its reply awaiting a read receipt by the answer's time (one ZADD XX each)
        assert sum(sent.values()) <= (75 if url == "redis_url" else 83), sorted(sent.items())
    finally:
        client.close()
        await store.close()


async def test_a_sends_record_in_a_batch_publishes_its_event_itself_once(redis_url: str) -> None:
    """The outbox's record of a send (``Outbox._record_sent``: the record in a batch, then the send's
    ``DeliveryChanged`` published in it): on one node the record's script publishes that event once the send is
    recorded, and the caller's publish of it is sent no more (issue 8's thirtieth pass: one command and one round
    trip less a reply). A subscriber reads it once. A send whose entry shows more (a receipt kept before the
    record), or a record outside a batch, publishes nothing itself: the caller's event goes as before."""
    from gateway.events import DeliveryChanged, QueueChanged

    async with cutting_proxy(emptied(redis_url)) as proxy:  # what the store sends, read on the wire
        sent = proxy.commands
        store = await open_store(proxy.url, keys=store_keys(redis_url))
        subscription = await store.subscribe()
        try:
            for item_id in ("r1", "r2", "r3"):
                await store.append_transcript(TranscriptEntry(item_id, "A", T0, Author.BOT, "bonjour"))
                await store.outbox_put(OutboxItem(item_id, "A", {"text": "bonjour"}, T0))
            await store.keep_receipt("m.r2", Delivery.DELIVERED)  # its receipt came before its record

            async def recorded(item_id: str) -> list[object]:
                """The events a subscriber reads up to a mark published after them (none is read twice)."""
                await store.publish(QueueChanged())
                read: list[object] = []
                async with asyncio.timeout(10):  # a safety net against a hang, not a timing assumption
                    while not isinstance(event := await anext(subscription), QueueChanged):
                        read.append(event)
                return read

            sent.clear()
            async with store.batch():
                assert await store.outbox_mark_sent("A", "r1", "m.r1") is Delivery.SENT
                await store.publish(DeliveryChanged("A", "r1", Delivery.SENT))
            assert "PUBLISH" not in sent  # the record alone (its script loaded first, if Redis had not seen it yet)
            assert await recorded("r1") == [DeliveryChanged("A", "r1", Delivery.SENT)]

            sent.clear()
            async with store.batch():
                assert await store.outbox_mark_sent("A", "r2", "m.r2") is Delivery.DELIVERED
                await store.publish(DeliveryChanged("A", "r2", Delivery.DELIVERED))
            assert sent == ["EVALSHA", "PUBLISH"]  # the record, then the caller's event
            assert await recorded("r2") == [DeliveryChanged("A", "r2", Delivery.DELIVERED)]

            sent.clear()
            assert await store.outbox_mark_sent("A", "r3", "m.r3") is Delivery.SENT  # outside a batch: nothing told
            assert await recorded("r3") == []
            await store.publish(DeliveryChanged("A", "r3", Delivery.SENT))
            assert await recorded("r3") == [DeliveryChanged("A", "r3", Delivery.SENT)]
            assert [entry.delivery for entry in await store.transcript("A")] == [
                Delivery.SENT, Delivery.DELIVERED, Delivery.SENT]  # fmt: skip
        finally:
            await subscription.aclose()
            await store.close()
