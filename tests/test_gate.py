"""The gate (``gateway/gate.py``) on a Redis that keeps the rate limits' counters too: the block and the message
limit's hit in one round trip (``CountingBlockStore``), counted on the ``limits`` library's own key; on Redis and
SQLite, the gate's read also answers the inbox check that follows (SQLite: the block and the inbox in one hop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from limits.aio.storage import MemoryStorage

from gateway.flowset import FlowSet
from gateway.gate import Gate, Refusal
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.ratelimit import Limit, LimitStorage, RateLimits, open_limit_storage
from gateway.settings import Settings
from gateway.store import Block, CountingBlockStore, InboxItem, Store, open_store
from gateway.testing import store_keys
from tests.store.conftest import flush_cluster, redis_cluster_url, redis_url  # noqa: F401  (the session's servers)

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings(secret_key="k" * 32, limit_messages_per_conversation="3/minute")
NOW = datetime.now(UTC)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis_url", marks=pytest.mark.redis),
        pytest.param("redis_cluster_url", marks=pytest.mark.redis),
    ]
)
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, LimitStorage]]:
    cluster = request.param == "redis_cluster_url"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    else:
        url = request.getfixturevalue(request.param)
        if cluster:
            flush_cluster(url)
        else:
            with redis.Redis.from_url(url) as client:
                client.flushdb()
    store = await open_store(url, keys=store_keys(url), cluster=cluster)
    counters = open_limit_storage(url, cluster=cluster)
    try:
        yield store, counters
    finally:
        await counters.close()
        await store.close()


def gate(store: Store, counters: LimitStorage, metrics: Metrics) -> Gate:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    limits = RateLimits.from_settings(SETTINGS, counters.storage, metrics)
    keyed = KeyedHash(SETTINGS.secret_key.get_secret_value())
    return Gate(store, flows, limits, keyed, metrics, clock=lambda: NOW, on_outgoing=lambda: None)


async def test_the_block_and_the_message_limit_are_one_read_sharing_the_librarys_count(
    opened: tuple[Store, LimitStorage],
) -> None:
    store, counters = opened
    if not isinstance(store, CountingBlockStore):
        pytest.skip("SQLite: the counters are in memory, the block one read")
    metrics = Metrics()
    checked = gate(store, counters, metrics)
    messages = [Inbound(ChannelName.TELEGRAM, "5001", f"m{n}", "bonjour") for n in range(4)]
    assert [await checked.check(message) for message in messages[:3]] == [None, None, None]
    assert await checked.check(messages[3]) is Refusal.RATE_LIMITED  # the fourth in the minute
    # the library's own hit (another limit's path, an instance of before) counts on the same key
    assert not await checked.limits.allow(Limit.MESSAGES, "telegram\n5001")
    assert metrics.rate_limited.labels("messages_per_conversation")._value.get() == 2
    other = Inbound(ChannelName.TELEGRAM, "5002", "m2", "bonjour")
    await store.put_block(Block(checked.sender_key(other.channel, other.sender), other.channel, None, "abuse",
                                "supervisor", NOW))  # fmt: skip
    assert await checked.check(other) is Refusal.BLOCKED
    assert metrics.refused.labels("blocked")._value.get() == 1


async def test_the_gates_read_answers_the_inbox_check_that_follows_once(opened: tuple[Store, LimitStorage]) -> None:
    """The gate's pipeline (SQLite: its block's hop) also reads whether the sender has messages waiting in the inbox,
    for the webhook's next step (``inbox_waiting``): the answer of that moment, used once, then read again."""
    store, counters = opened
    checked = gate(store, counters, Metrics())
    message = Inbound(ChannelName.TELEGRAM, "5003", "m3", "bonjour")
    key = checked.sender_key(message.channel, message.sender)
    await store.inbox_put([InboxItem("in:telegram:m0", key, {"text": "before"}, NOW)])
    assert await checked.check(message) is None
    assert await store.inbox_waiting(key)  # as the gate read it
    [item] = await store.inbox_due(NOW, 10)
    assert await store.inbox_done(item.id)
    assert not await store.inbox_waiting(key)  # read again: the gate's read was used once
    assert await checked.check(message) is None
    assert not await store.inbox_waiting(key)
    await store.inbox_put([InboxItem("in:telegram:m1", key, {"text": "meanwhile"}, NOW)])
    assert await store.inbox_waiting(key)  # the gate's read of this key was used: read now


async def test_a_message_is_counted_once_however_often_it_comes_and_decided_as_the_first_time(
    opened: tuple[Store, LimitStorage],
) -> None:
    """A provider's redelivery (or a retry after a 503) of a message is not one more hit: it gets its first attempt's
    decision, so a burst redelivered is no flood and a message whose first attempt failed is not refused for its own
    count; a message past the limit stays refused, and new messages past it are refused as before. The risky bound
    past the flood counts each message once too (on a Cluster, each counter's mark is in the counter's slot)."""
    store, counters = opened
    metrics = Metrics()
    checked = gate(store, counters, metrics)
    messages = [Inbound(ChannelName.TELEGRAM, "5004", f"m{n}", "bonjour") for n in range(5)]
    for _ in range(3):  # each delivered, then redelivered twice
        assert [await checked.check(message) for message in messages[:3]] == [None, None, None]
    assert await checked.check(messages[3]) is Refusal.RATE_LIMITED
    assert await checked.check(messages[3]) is Refusal.RATE_LIMITED  # its redelivery: as the first time
    assert await checked.check(messages[2]) is None  # still kept: it was within the limit
    danger = [Inbound(ChannelName.TELEGRAM, "5004", f"d{n}", "je veux mourir") for n in range(12)]
    assert [await checked.check(message) for message in danger[:10]] == [None] * 10  # the risky bound: 10 an hour
    assert [await checked.check(message) for message in danger[:10]] == [None] * 10  # redelivered: no more hits
    assert await checked.check(danger[10]) is Refusal.RATE_LIMITED  # the eleventh
    assert metrics.rate_limited.labels("risky_messages_per_conversation")._value.get() == 1
    assert await checked.check(messages[4], once=False) is Refusal.RATE_LIMITED  # an upload's: every try counts


async def test_a_flood_past_the_limit_leaves_no_mark_per_refused_message(
    opened: tuple[Store, LimitStorage], request: pytest.FixtureRequest
) -> None:
    """A troll's flood (the web chat's frames carry ids the page chooses, as fast as a socket sends them): the
    messages past the limit are refused and their redelivery is refused again, but they leave no mark each: the
    marks one sender keeps are bounded by the limit, not by how many messages the troll sends in its window."""
    store, counters = opened
    checked = gate(store, counters, Metrics())
    messages = [Inbound(ChannelName.WEBCHAT, "troll-token", f"x{n}", "bonjour") for n in range(200)]
    decisions = [await checked.check(message) for message in messages]
    assert decisions == [None] * 3 + [Refusal.RATE_LIMITED] * 197
    assert await checked.check(messages[150]) is Refusal.RATE_LIMITED  # redelivered: refused as the first time
    assert await checked.check(messages[1]) is None  # one within the limit: as the first time
    server = request.node.callspec.params["opened"]
    if server == "sqlite":
        assert isinstance(counters.storage, MemoryStorage)
        marks = [key for key in counters.storage.storage if ":once:" in key]
    else:
        url = request.getfixturevalue(server)
        client = redis.RedisCluster.from_url(url) if server == "redis_cluster_url" else redis.Redis.from_url(url)
        with client:
            assert not list(client.scan_iter(match="*:once:*", count=1000))  # one key per mark until 2026-12-06
            windows = list(client.scan_iter(match="*}:once", count=1000))
            marks = [field for window in windows for field in client.hkeys(window)]
        assert len(windows) == 1  # the window's marks: one hash
    assert len(marks) <= 3  # the three kept; before: one more per refused message, 200 in all
