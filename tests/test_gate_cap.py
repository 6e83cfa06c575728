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
from datetime import UTC, datetime
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
    before = commands(url) if url else {}
    assert await checked.new_chat("browser-token", HOME) is None  # let in
    if url is None:
        return  # SQLite: a COUNT on its partial index (tests/store/test_contract_clients.py)
    after = commands(url)
    ran = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    for own in ("info", "hello", "select", "client|setinfo"):  # this test's own connection
        ran.pop(own, None)
    # until 2026-12-07: {'smembers': 1, 'get': 9} (one GET per open chat of the network)
    assert ran == {"smembers": 1}, ran


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
