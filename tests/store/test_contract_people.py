"""The store's indexes of a listener's ended conversations (``ended_with``) and of a young person's conversations
(``conversations_of``), on SQLite, Redis and a Redis Cluster: kept with the record (its end, a purge, an erasure),
bounded, and made once for a store written before them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.app import METRICS, STORE
from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.retention import stripped
from gateway.settings import Settings
from gateway.store import INDEXED_DAYS, Store, open_store
from gateway.store import redis_keys as K
from gateway.store.redis import RedisStore
from gateway.store.sqlite import path_from_url
from gateway.testing import store_keys
from tests.conftest import AppFactory
from tests.store.conftest import emptied

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
FAR = T0 + timedelta(days=1)
WEB = ChannelName.WEBCHAT


def conversation(n: int, sender: str, *, listener: str | None = "anne", status: Status = Status.CLOSED,
                 ended_minutes: int = 5, channel: ChannelName = WEB) -> Conversation:  # fmt: skip
    created = T0 - timedelta(hours=n)
    ended = created + timedelta(minutes=ended_minutes)
    return Conversation(id=f"c{n:03d}", channel=channel, sender=sender, pseudonym=f"Lynx-{n}", created_at=created,
                        updated_at=ended, status=status, listener=listener,
                        closed_at=ended if status == Status.CLOSED else None)  # fmt: skip


async def ids(found: list[Conversation]) -> list[str]:
    return [c.id for c in found]


async def test_a_listeners_ended_conversations_latest_ended_first_bounded_by_creation_and_limit(store: Store) -> None:
    for c in [
        conversation(1, "p1"), conversation(2, "p2", ended_minutes=200), conversation(3, "p3"),
        conversation(4, "p4", listener="bruno"), conversation(5, "p5", status=Status.WITH_LISTENER),
        conversation(6, "p6", status=Status.ABANDONED), conversation(7, "p7", listener=None),
        conversation(30 * 24, "p8"),  # begun 30 days ago: before ``since`` below
    ]:  # fmt: skip
        await store.save_conversation(c)
    since = T0 - timedelta(days=29)
    assert await ids(await store.ended_with("anne", since, FAR, 50)) == ["c002", "c001", "c003", "c006"]
    assert await ids(await store.ended_with("anne", since, FAR, 2)) == ["c002", "c001"]
    assert await ids(await store.ended_with("bruno", since, FAR, 50)) == ["c004"]
    assert await store.ended_with("carla", since, FAR, 50) == []
    # a conversation held then ended joins at its end
    ended = T0 + timedelta(hours=2)
    await store.save_conversation(replace(conversation(5, "p5"), updated_at=ended, closed_at=ended))
    assert (await ids(await store.ended_with("anne", since, FAR, 50)))[0] == "c005"


async def test_endings_at_the_same_moment_keep_the_order_of_their_creation(store: Store) -> None:
    same = T0 + timedelta(hours=1)
    for n in range(7):  # a page of 3 ends inside the tie
        await store.save_conversation(replace(conversation(n, f"p{n}"), closed_at=same))
    assert await ids(await store.ended_with("anne", T0 - timedelta(days=1), FAR, 3)) == ["c006", "c005", "c004"]


async def test_a_young_persons_conversations_by_their_identity_latest_first(store: Store) -> None:
    for c in [
        conversation(1, "alice"), conversation(2, "alice", listener=None, status=Status.QUEUED),
        conversation(3, "bob"), conversation(4, "alice", channel=ChannelName.WHATSAPP),
        conversation(5, "alice", status=Status.ABANDONED), conversation(40 * 24, "alice"),
    ]:  # fmt: skip
        await store.save_conversation(c)
    since = T0 - timedelta(days=30)
    assert await ids(await store.conversations_of(WEB, "alice", since, FAR, 10)) == ["c001", "c002", "c005"]
    assert await ids(await store.conversations_of(WEB, "alice", since, T0 - timedelta(hours=1), 10)) == ["c002", "c005"]
    assert await ids(await store.conversations_of(WEB, "alice", since, FAR, 1)) == ["c001"]
    assert await ids(await store.conversations_of(ChannelName.WHATSAPP, "alice", since, FAR, 10)) == ["c004"]
    assert await store.conversations_of(WEB, "nobody", since, FAR, 10) == []
    assert await store.conversations_of(WEB, "", since, FAR, 10) == []


async def test_a_new_conversation_joins_its_young_persons_index(store: Store) -> None:
    opened, _ = await store.active_conversation(WEB, "alice", T0)
    assert await ids(await store.conversations_of(WEB, "alice", T0 - timedelta(days=1), FAR, 10)) == [opened.id]


async def test_a_purge_takes_the_conversation_out_of_its_young_persons_index_not_its_listeners(
    store: Store, store_url: str
) -> None:
    kept, purged = conversation(1, "alice"), conversation(2, "alice")
    for c in (kept, purged):
        await store.save_conversation(c)
    await store.purge_conversation(stripped(purged, T0))
    since = T0 - timedelta(days=30)
    assert await ids(await store.conversations_of(WEB, "alice", since, FAR, 10)) == ["c001"]
    assert await ids(await store.ended_with("anne", since, FAR, 10)) == ["c001", "c002"]  # as the record keeps it
    if not store_url.startswith("sqlite"):
        with _client(store_url) as client:
            person = K.person(store_keys(store_url).identity(WEB, "alice"))
            assert client.zrange(person, 0, -1) == [b"c001"]


async def test_an_erasure_takes_the_conversation_out_of_both_indexes(store: Store, store_url: str) -> None:
    for c in (conversation(1, "alice"), conversation(2, "alice")):
        await store.save_conversation(c)
    await store.erase_conversation("c002")
    since = T0 - timedelta(days=30)
    assert await ids(await store.conversations_of(WEB, "alice", since, FAR, 10)) == ["c001"]
    assert await ids(await store.ended_with("anne", since, FAR, 10)) == ["c001"]
    if store_url.startswith("sqlite"):
        with sqlite3.connect(path_from_url(store_url)) as conn:
            assert conn.execute("SELECT conversation_id FROM ended").fetchall() == [("c001",)]
    else:
        with _client(store_url) as client:
            assert client.zrange(K.ended("anne"), 0, -1) == [b"c001"]
            assert client.zrange(K.person(store_keys(store_url).identity(WEB, "alice")), 0, -1) == [b"c001"]


def older(n: int, sender: str, days: int) -> Conversation:
    at = T0 - timedelta(days=days)
    return replace(conversation(n, sender), created_at=at, updated_at=at, closed_at=at)


async def test_a_listeners_index_keeps_its_last_days_only(store: Store, store_url: str) -> None:
    await store.save_conversation(older(1, "alice", 60))
    await store.save_conversation(conversation(2, "alice"))
    if store_url.startswith("sqlite"):
        with sqlite3.connect(path_from_url(store_url)) as conn:
            assert conn.execute("SELECT conversation_id FROM ended").fetchall() == [("c002",)]
        return
    with _client(store_url) as client:
        assert client.zrange(K.ended("anne"), 0, -1) == [b"c002"]
        assert 0 < client.ttl(K.ended("anne")) <= INDEXED_DAYS * 24 * 3600


async def test_a_young_persons_index_keeps_every_conversation_still_naming_them(store: Store, store_url: str) -> None:
    """Retention strips the identity after ``closed_days`` (flows.yaml, 30 by default, may be more): until then an
    erasure finds the conversation through the index, however old (until 2026-12-06 Redis kept 31 days of it)."""
    await store.save_conversation(older(1, "alice", 400))
    await store.save_conversation(older(2, "alice", 40))
    await store.save_conversation(conversation(3, "alice"))
    assert await ids(await store.conversations_of(WEB, "alice", EPOCH, FAR, 10)) == ["c003", "c002", "c001"]
    if not store_url.startswith("sqlite"):
        with _client(store_url) as client:
            assert client.ttl(K.person(store_keys(store_url).identity(WEB, "alice"))) == -1  # no expiry


async def test_a_store_written_before_the_indexes_has_them_made(store: Store, store_url: str) -> None:
    for c in (conversation(1, "alice"), conversation(2, "alice", status=Status.ABANDONED), conversation(3, "bob")):
        await store.save_conversation(c)
    await store.close()
    if store_url.startswith("sqlite"):
        with sqlite3.connect(path_from_url(store_url)) as conn:
            conn.execute("DROP TABLE ended")
            conn.execute("DROP INDEX conversations_sender")
    else:
        with _client(store_url) as client:
            for key in (K.ended("anne"), K.person(store_keys(store_url).identity(WEB, "alice")), K.PEOPLE_MADE,
                        K.PEOPLE_MADE_2):  # fmt: skip
                client.delete(key)
    again = await open_store(store_url, keys=store_keys(store_url))
    try:
        since = T0 - timedelta(days=30)
        assert await ids(await again.ended_with("anne", since, FAR, 10)) == ["c001", "c002", "c003"]
        assert await ids(await again.conversations_of(WEB, "alice", since, FAR, 10)) == ["c001", "c002"]
    finally:
        await again.close()


async def test_a_store_with_the_31_day_person_indexes_has_them_made_again_in_full(store: Store, store_url: str) -> None:
    """A Redis store written before 2026-12-06 kept 31 days of each person's index, with a TTL: rebuilt once from
    every conversation still naming someone (SQLite's index is the column itself: nothing to make)."""
    for c in (older(1, "alice", 90), older(2, "alice", 40), conversation(3, "alice"), older(4, "bob", 50)):
        await store.save_conversation(c)
    await store.purge_conversation(stripped(older(5, "carla", 45), T0))  # no identity left: in no person's index
    await store.close()
    if not store_url.startswith("sqlite"):
        keys = store_keys(store_url)
        alice, bob = K.person(keys.identity(WEB, "alice")), K.person(keys.identity(WEB, "bob"))
        with _client(store_url) as client:  # as the 31-day index left them
            client.zrem(alice, "c001", "c002")
            client.expire(alice, INDEXED_DAYS * 24 * 3600)
            client.delete(bob)
            client.delete(K.PEOPLE_MADE_2)
    again = await open_store(store_url, keys=store_keys(store_url))
    try:
        assert await ids(await again.conversations_of(WEB, "alice", EPOCH, FAR, 10)) == ["c003", "c002", "c001"]
        assert await ids(await again.conversations_of(WEB, "bob", EPOCH, FAR, 10)) == ["c004"]
        if not store_url.startswith("sqlite"):
            with _client(store_url) as client:
                assert client.ttl(alice) == -1 and client.ttl(bob) == -1
                assert client.exists(K.PEOPLE_MADE_2)
    finally:
        await again.close()


def _client(url: str) -> redis.Redis:
    """A plain client to the store's Redis; on the one-node Cluster of the suite, the node itself (every slot)."""
    return redis.Redis.from_url(url)


async def test_reads_at_once_after_the_upgrade_make_the_indexes_once(store: Store, store_url: str) -> None:
    """The first person reads after the upgrade (a burst: several young people's words after their end, an erasure, a
    listener's history) come together: one pass makes the indexes, the others wait for it. Until 2026-12-06 each read
    made them all again (every record read, a part at a time: minutes of one instance's CPU each on a year's store)."""
    for c in (conversation(1, "alice"), conversation(2, "bob")):
        await store.save_conversation(c)
    await store.close()
    if store_url.startswith("sqlite"):
        return  # SQLite's indexes are a table and a column: nothing to make
    with _client(store_url) as client:
        client.delete(K.PEOPLE_MADE_2)
        before = client.info("commandstats").get("cmdstat_zrange", {}).get("calls", 0)
    again = await open_store(store_url, keys=store_keys(store_url))
    try:
        found = await asyncio.gather(*(again.conversations_of(WEB, "alice", EPOCH, FAR, 10) for _ in range(5)))
        assert [await ids(f) for f in found] == [["c001"]] * 5
        with _client(store_url) as client:
            made = client.info("commandstats").get("cmdstat_zrange", {}).get("calls", 0) - before
        assert made == 1, f"the indexes were made {made} times"
    finally:
        await again.close()


async def _indexes_unmade(store: Store, store_url: str) -> int:
    """Two people's conversations, the store closed and its indexes marked unmade (a store from before the upgrade):
    the ``ZRANGE`` calls so far, to see the next pass begin."""
    for c in (conversation(1, "alice"), conversation(2, "bob")):
        await store.save_conversation(c)
    await store.close()
    with _client(store_url) as client:
        client.delete(K.PEOPLE_MADE_2)
        return int(client.info("commandstats").get("cmdstat_zrange", {}).get("calls", 0))


def _unretrieved() -> list[str]:
    """What the loop's exception handler is told from now on (a task's exception read by nobody)."""
    said: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _, context: said.append(f"{context['message']} {context.get('exception')!r}")
    )
    return said


async def _pass_begun(store: Store, admin: redis.Redis, before: int) -> asyncio.Task[list[Conversation]]:
    """A person read, started and waited for until the indexes' pass it starts has begun (a ``ZRANGE`` more)."""
    read: asyncio.Task[list[Conversation]] = asyncio.create_task(store.conversations_of(WEB, "alice", EPOCH, FAR, 10))
    while admin.info("commandstats").get("cmdstat_zrange", {}).get("calls", 0) == before:
        await asyncio.sleep(0.01)
    return read


async def test_a_store_closed_during_the_indexes_making_leaves_no_pass_behind(store: Store, store_url: str) -> None:
    """An instance stopped during the one-time making of the indexes after the upgrade (minutes on a year's store),
    its reads given up: the pass ends with the store, its outcome read, nothing of it left to the garbage collector.
    Until 2026-12-06 it was left running on the closed store, failed there, and its error, read by nobody, was
    written at some later moment ("Task exception was never retrieved ... the redis store is closed")."""
    if store_url.startswith("sqlite"):
        return  # SQLite's indexes are a table and a column: nothing to make
    before = await _indexes_unmade(store, store_url)
    loop, said = asyncio.get_running_loop(), _unretrieved()
    again = await open_store(store_url, keys=store_keys(store_url))
    admin = _client(store_url)
    admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")  # the pass cannot end: its writes wait
    try:
        read = await _pass_begun(again, admin, before)
        read.cancel()  # the request given up (the instance stopping)
        with contextlib.suppress(asyncio.CancelledError):
            await read
        await again.close()
        del again, read  # the app's end lets go of the store
        gc.collect()
        assert said == []
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        loop.set_exception_handler(None)


async def test_an_indexes_pass_failing_after_its_reads_gave_up_is_said_and_the_next_read_makes_them(
    store: Store, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The one-time making of the indexes fails (Redis cut it) after every read waiting for it gave up: its failure
    is logged once, by class, counted, and the next read makes them. Until 2026-12-06 nobody saw it: no line, only
    "Task exception was never retrieved" whenever the garbage collector came by."""
    if store_url.startswith("sqlite"):
        return  # SQLite's indexes are a table and a column: nothing to make
    before = await _indexes_unmade(store, store_url)
    loop, said = asyncio.get_running_loop(), _unretrieved()
    again = await open_store(store_url, keys=store_keys(store_url))
    counted: list[str] = []
    assert isinstance(again, RedisStore)
    again.watch_people(counted.append)
    admin = _client(store_url)
    admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")  # the pass cannot end: its writes wait
    try:
        read = await _pass_begun(again, admin, before)
        read.cancel()  # the request given up
        with contextlib.suppress(asyncio.CancelledError):
            await read
        with caplog.at_level(logging.WARNING, logger="gateway.store.redis"):
            admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # Redis cuts the pass
            while not counted:
                await asyncio.sleep(0.01)
        lines = [r.getMessage() for r in caplog.records if "indexes" in r.getMessage()]
        assert lines == ["redis: making the people's and listeners' indexes failed with ConnectionError: the next"
                         " person read makes them again"], lines  # fmt: skip
        assert counted == ["ConnectionError"]
        admin.execute_command("CLIENT", "UNPAUSE")
        assert await ids(await again.conversations_of(WEB, "alice", EPOCH, FAR, 10)) == ["c001"]
        with _client(store_url) as client:
            assert client.exists(K.PEOPLE_MADE_2)
        gc.collect()
        assert said == []
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        loop.set_exception_handler(None)
        with contextlib.suppress(NameError):
            await again.close()


@pytest.mark.redis
async def test_the_apps_failed_indexes_pass_is_counted_with_the_stores_failures(
    make_client: AppFactory, settings: Settings, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The app counts a failed pass in ``gateway_store_failures_total{part="people_indexes"}`` (here a record that
    does not open: the pass fails with the read that started it)."""
    client = await make_client(settings.replace(store=emptied(redis_url)))
    store, metrics = client.app[STORE], client.app[METRICS]
    await store.save_conversation(conversation(1, "alice"))
    with _client(redis_url) as admin:
        admin.delete(K.PEOPLE_MADE_2)
        admin.set(K.conversation("c001"), b"not a record")
    with caplog.at_level(logging.WARNING, logger="gateway.store.redis"), contextlib.suppress(Exception):
        await store.conversations_of(WEB, "alice", EPOCH, FAR, 10)
    samples = {
        s.labels["error"]: s.value
        for m in metrics.registry.collect() if m.name == "gateway_store_failures"
        for s in m.samples if s.name.endswith("_total") and s.labels.get("part") == "people_indexes"
    }  # fmt: skip
    assert samples == {"StoreError": 1.0}, samples
    assert [r.getMessage() for r in caplog.records if "indexes" in r.getMessage()] == [
        "redis: making the people's and listeners' indexes failed with StoreError: the next person read makes them"
        " again"
    ]
