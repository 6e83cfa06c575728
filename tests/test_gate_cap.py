"""The gate's cap of open chats per client network (``Gate._guards``, ``Store.client_at_cap``) on SQLite, a real
Redis and a Redis Cluster: what it costs, and what it lets in when the Redis set lists ids it should not.

Until 2026-12-07 every new chat and every held page's try read the network's set (``SMEMBERS``) and then every
record it listed (one ``GET`` each): a network with 9 open chats of its 10 cost 1 ``SMEMBERS`` and 9 ``GET`` a
try. The set never lists fewer ids than are open, so a set shorter than the cap already says "below": the
``SMEMBERS`` alone then, the records read only when the set lists the cap or more (a full network, or a crash's
leftovers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from limits.aio.storage import MemoryStorage

from gateway.conversation import Status
from gateway.flowset import FlowSet
from gateway.gate import Gate, Refusal
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.ratelimit import RateLimits
from gateway.retention import stripped
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.store.conftest import flush_cluster, redis_cluster_url, redis_url  # noqa: F401  (the session's servers)

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings(secret_key="k" * 32)
NOW = datetime.now(UTC)
CAP = 10
HOME = "203.0.113.7"  # one client address, no shared network declared


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis_url", marks=pytest.mark.redis),
        pytest.param("redis_cluster_url", marks=pytest.mark.redis),
    ]
)
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, str | None]]:
    """The store, and its Redis URL (None: SQLite). The gate's rates count in memory: Redis sees the store alone."""
    cluster = request.param == "redis_cluster_url"
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3" if request.param == "sqlite" else None
    if url is None:
        url = request.getfixturevalue(request.param)
        if cluster:
            flush_cluster(url)
        else:
            with redis.Redis.from_url(url) as client:
                client.flushdb()
    store = await open_store(url, keys=store_keys(url), cluster=cluster)
    try:
        yield store, None if request.param == "sqlite" else url
    finally:
        await store.close()


def gate(store: Store) -> Gate:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    metrics = Metrics()
    limits = RateLimits.from_settings(SETTINGS, MemoryStorage(), metrics)
    keyed = KeyedHash(SETTINGS.secret_key.get_secret_value())
    return Gate(store, flows, limits, keyed, metrics, clock=lambda: NOW, on_outgoing=lambda: None,
                max_waiting_per_client=CAP)  # fmt: skip


def client_key(checked: Gate) -> str:
    return checked.keyed("client", checked.networks.key(HOME))


async def open_chats(store: Store, client: str, count: int, prefix: str = "b") -> list[str]:
    ids = []
    for n in range(count):
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, f"{prefix}{n}", NOW)
        await store.save_conversation(replace(conversation, client=client, status=Status.QUEUED))
        ids.append(conversation.id)
    return ids


def commands(url: str) -> dict[str, int]:
    """Redis's count of each command run so far (the Cluster's one node holds every slot)."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_a_network_below_its_cap_reads_no_record(opened: tuple[Store, str | None]) -> None:
    store, url = opened
    checked = gate(store)
    await open_chats(store, client_key(checked), CAP - 1)
    await store.client_at_cap(client_key(checked), CAP)  # the script loaded (EVALSHA's NOSCRIPT, once per Redis)
    before = commands(url) if url else {}
    assert await checked.new_chat("browser-token", HOME) is None  # let in
    if url is None:
        return  # SQLite: a COUNT on its partial index (tests/store/test_contract_clients.py)
    # until 2026-12-07: {'smembers': 1, 'get': 9} (one GET per open chat of the network); then {'smembers': 1}
    assert sent(before, url) == {"evalsha": 1}  # ``client_count``: both sets read in Redis, no record


def sent(before: dict[str, int], url: str) -> dict[str, int]:
    """The commands sent since ``before`` (a script's own calls inside it left out: they are not round trips)."""
    after = commands(url)
    ran = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    for own in ("info", "hello", "select", "client|setinfo"):  # this test's own connection
        ran.pop(own, None)
    for inside in ("scard", "smismember", "smembers", "set"):  # ``client_count``'s (its mark: SET NX), when it ran
        if ran.get("evalsha"):
            ran.pop(inside, None)
    return ran


async def test_a_full_network_reads_no_record(opened: tuple[Store, str | None]) -> None:
    """A full school's held pages try again and again (``bench/held.py``: 43 tries/s at 2,000 pages): each try one
    script, whatever the cap. Until 2026-12-07 (later that day) each read the network's set and every record it
    listed: ``{'smembers': 1, 'get': 10}`` at a cap of 10, 61 commands at 60."""
    store, url = opened
    checked = gate(store)
    await open_chats(store, client_key(checked), CAP)
    await store.client_at_cap(client_key(checked), CAP)  # the script loaded
    before = commands(url) if url else {}
    refused = await checked.new_chat("browser-token", HOME)
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL
    if url is not None:
        assert sent(before, url) == {"evalsha": 1}


async def test_a_full_network_is_refused(opened: tuple[Store, str | None]) -> None:
    store, _ = opened
    checked = gate(store)
    await open_chats(store, client_key(checked), CAP)
    refused = await checked.new_chat("browser-token", HOME)
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL


async def test_stale_ids_in_the_set_never_refuse_what_the_records_let_in(opened: tuple[Store, str | None]) -> None:
    """Escalate, never silence: a crash's leftovers (ids of ended, erased or missing conversations still in the
    network's set, which then lists the cap or more) refuse nothing the records let in."""
    store, url = opened
    checked = gate(store)
    client = client_key(checked)
    ids = await open_chats(store, client, CAP - 1)
    ended = await open_chats(store, client, 1, prefix="e")
    record = await store.get_conversation(ended[0])
    assert record is not None
    await store.save_conversation(replace(record, status=Status.CLOSED))
    if url is not None:  # the removals a crash cut short
        with redis.Redis.from_url(url) as raw:  # the Cluster: one node, every slot
            raw.sadd(K.client(client), ended[0], "erased-long-ago")
            assert raw.scard(K.client(client)) == CAP + 1
    assert await checked.new_chat("browser-token", HOME) is None  # 9 open of 10: let in
    if url is not None:
        with redis.Redis.from_url(url) as raw:  # the Cluster: one node, every slot
            assert raw.smembers(K.client(client)) == {i.encode() for i in ids}  # the leftovers dropped


def raw_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)  # the Cluster: one node, every slot


async def exact(store: Store, url: str | None, client: str, ids: list[str]) -> None:
    """The network's exact set lists ``ids`` (Redis), and the gate's read says so at caps around their count."""
    if url is not None:
        with raw_redis(url) as raw:
            assert raw.smembers(K.client_open(client)) == set(ids)
    for cap in (len(ids), len(ids) + 1):
        assert await store.client_at_cap(client, cap) is (len(ids) >= cap), cap


async def test_the_exact_set_follows_each_end_erasure_and_purge(opened: tuple[Store, str | None]) -> None:
    """Added with the record that says open, left before it says ended, erased or purged: the same ids as the open
    conversations' at each step (and so the count, one script, no record read)."""
    store, url = opened
    client = client_key(gate(store))
    ids = await open_chats(store, client, 4)
    await exact(store, url, client, ids)
    ended = await store.get_conversation(ids[0])
    assert ended is not None
    await store.save_conversation(replace(ended, status=Status.CLOSED))
    await exact(store, url, client, ids[1:])
    taken = await store.get_conversation(ids[1])
    assert taken is not None
    await store.save_conversation(replace(taken, status=Status.WITH_LISTENER))  # a listener's: not counted
    await exact(store, url, client, ids[2:])
    await store.save_conversation(replace(taken, status=Status.QUEUED))  # handed back: waits again
    await exact(store, url, client, [ids[1], *ids[2:]])
    await store.erase_conversation(ids[2])
    await exact(store, url, client, [ids[1], ids[3]])
    last = await store.get_conversation(ids[3])
    assert last is not None
    await store.save_conversation(replace(last, status=Status.ABANDONED))
    await exact(store, url, client, [ids[1]])
    if url is not None:
        with raw_redis(url) as raw:  # as an instance from before the exact set leaves an ending: still listed
            raw.sadd(K.client_open(client), ids[3])
    ended_record = await store.get_conversation(ids[3])
    assert ended_record is not None
    await store.purge_conversation(stripped(ended_record, NOW + timedelta(days=31)))  # the purge drops it
    await exact(store, url, client, [ids[1]])


@pytest.mark.redis
async def test_a_crash_between_the_record_and_the_exact_set_misses_no_open_chat(
    opened: tuple[Store, str | None],
) -> None:
    """The record says open, the exact set was not written (a crash after the record on a Cluster, where the set
    joins after it; an instance from before the exact set, which writes the other set alone): the two sets
    disagree, the records are read: a full network is refused all the same, never "let everyone in". On one node
    the missed ids are joined by that read (the next try is one script again); on a Cluster by the record's next
    save."""
    store, url = opened
    if url is None:
        pytest.skip("SQLite: the count is the records' own")
    checked = gate(store)
    client = client_key(checked)
    ids = await open_chats(store, client, CAP)
    with raw_redis(url) as raw:
        raw.delete(K.client_open(client))  # every one opened by an instance from before (or each crash cut)
    refused = await checked.new_chat("browser-token", HOME)
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL
    with raw_redis(url) as raw:
        repaired = raw.smembers(K.client_open(client))
    assert repaired == (set(ids) if store.on_one_node else set())  # type: ignore[union-attr]
    assert await store.client_at_cap(client, CAP)


@pytest.mark.redis
async def test_ended_ids_left_in_the_exact_set_refuse_nothing(opened: tuple[Store, str | None]) -> None:
    """Ids of ended or erased conversations left in the exact set (an instance from before it ends them: it never
    leaves that set; a crash's leftovers on a Cluster) with the other set's removal done: the two disagree, the
    records decide (9 open of 10: let in, never "refuse everyone"), the leftovers dropped."""
    store, url = opened
    if url is None:
        pytest.skip("SQLite: the count is the records' own")
    checked = gate(store)
    client = client_key(checked)
    ids = await open_chats(store, client, CAP - 1)
    ended = (await open_chats(store, client, 1, prefix="e"))[0]
    record = await store.get_conversation(ended)
    assert record is not None
    await store.save_conversation(replace(record, status=Status.CLOSED))
    with raw_redis(url) as raw:
        raw.sadd(K.client_open(client), ended, "erased-long-ago")  # CAP + 1 listed there
    assert await checked.new_chat("browser-token", HOME) is None  # 9 of 10: the other set's size says below
    more = await open_chats(store, client, 1, prefix="m")  # 10 open: the two sets disagree, the records read
    refused = await checked.new_chat("browser-token", HOME)
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL
    with raw_redis(url) as raw:
        assert raw.smembers(K.client_open(client)) == {*ids, *more}  # the leftovers dropped by that read
    await exact(store, url, client, [*ids, *more])


@pytest.mark.redis
async def test_an_ending_cut_before_the_sets_removal_is_not_counted(opened: tuple[Store, str | None]) -> None:
    """An ending's record written, the other set's removal (after it) cut: the exact set left before the record,
    the two disagree, the records say ended: not counted (the gate never counts a conversation that ended)."""
    store, url = opened
    if url is None:
        pytest.skip("SQLite: the count is the records' own")
    client = client_key(gate(store))
    ids = await open_chats(store, client, 3)
    record = await store.get_conversation(ids[0])
    assert record is not None
    await store.save_conversation(replace(record, status=Status.CLOSED))
    with raw_redis(url) as raw:
        raw.sadd(K.client(client), ids[0])  # the removal the crash cut
    assert not await store.client_at_cap(client, 3)
    await exact(store, url, client, ids[1:])


async def test_a_chat_marked_with_its_network_under_its_lock_joins_the_exact_set(
    opened: tuple[Store, str | None],
) -> None:
    """The web chat marks a conversation with its network by the write that greets it or the commit of its first
    message, under the conversation's lock, its status unchanged (a fresh one is in the bot already): that save
    joins the exact set too, so a full network's next try is one script, no record read."""
    store, url = opened
    checked = gate(store)
    client = client_key(checked)
    ids = []
    for n in range(CAP):
        fresh, _ = await store.active_conversation(ChannelName.WEBCHAT, f"l{n}", NOW)
        async with store.lock(fresh.id):
            read = await store.get_conversation(fresh.id)  # read under the lock, as the dispatcher does
            assert read is not None and read.status in (Status.BOT, Status.QUEUED) and read.client is None
            await store.save_conversation(replace(read, client=client))
        ids.append(fresh.id)
    await exact(store, url, client, ids)
    if url is not None:
        before = commands(url)
        refused = await checked.new_chat("browser-token", HOME)
        assert refused is not None and refused.reason is Refusal.CLIENT_FULL
        assert sent(before, url) == {"evalsha": 1}


@pytest.mark.redis
async def test_an_ended_id_left_in_both_sets_is_counted_one_mark_at_most(opened: tuple[Store, str | None]) -> None:
    """A fault that leaves an ended conversation's id in both sets (on a Cluster, a commit held past its lease: its
    first set joined before its refused record, its exact set after; the next holder ended the conversation in
    between): the two agree, yet one of the ids is not open. At the cap the records are read again once the mark of
    the last reading lapsed (``K.client_read``, ``CLIENT_READ_MS``): 9 open of 10 let in, the id dropped from both."""
    store, url = opened
    if url is None:
        pytest.skip("SQLite: the count is the records' own")
    checked = gate(store)
    client = client_key(checked)
    ids = await open_chats(store, client, CAP - 1)
    ended = (await open_chats(store, client, 1, prefix="e"))[0]
    record = await store.get_conversation(ended)
    assert record is not None
    await store.save_conversation(replace(record, status=Status.CLOSED))
    with raw_redis(url) as raw:
        raw.sadd(K.client(client), ended)
        raw.sadd(K.client_open(client), ended)  # both list CAP ids, the same ones
    assert await checked.new_chat("browser-token", HOME) is None  # the records read: 9 open, let in
    with raw_redis(url) as raw:
        assert raw.smembers(K.client_open(client)) == raw.smembers(K.client(client)) == set(ids)
        raw.sadd(K.client(client), ended)
        raw.sadd(K.client_open(client), ended)  # the same fault again, within the mark's life
    assert await store.client_at_cap(client, CAP)  # trusted until the mark lapses (30 s at most)
    with raw_redis(url) as raw:
        raw.delete(K.client_read(client))  # lapsed
    assert not await store.client_at_cap(client, CAP)
