"""A listener's console sessions over days of logins: the index of them the store keeps ("log out everywhere" and
every logout read it) holds the live sessions only, and "log out everywhere" still ends each live one (SQLite,
Redis, Cluster).

Found by the memory review (2026-12-05): on Redis the index was a plain set whose TTL each login renewed, so an
account logged into more often than every 12 h kept the key of every session it ever had, read whole at each logout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import redis

from gateway.store import ConsoleSession, Store, open_store
from gateway.testing import store_keys
from tests.store.conftest import emptied
from tests.test_receipt_race import HoldingProxy

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
LIFETIME = timedelta(hours=12)  # console/sessions.py, SESSION_HOURS


def listed(store_url: str, name: str) -> int:
    """How many sessions the store keeps for ``name``, ended or not: SQLite's rows, the members of Redis's indexes."""
    if store_url.startswith("sqlite"):
        with sqlite3.connect(urlsplit(store_url).path) as db:
            return int(db.execute("SELECT COUNT(*) FROM console_sessions WHERE name = ?", (name,)).fetchone()[0])
    with redis.Redis.from_url(store_url, decode_responses=True) as client:
        count = 0
        for key in client.scan_iter(match="hg:session*"):
            if not key.endswith(":" + name):
                continue
            kind = client.type(key)
            count += client.zcard(key) if kind == "zset" else client.scard(key) if kind == "set" else 0
        return count


async def login(store: Store, key: str, name: str, now: datetime) -> None:
    await store.put_session(ConsoleSession(key, name, now + LIFETIME), now)


async def test_logins_over_days_leave_only_the_live_sessions_listed(store: Store, store_url: str) -> None:
    """An account logged into every hour for two days: then the store keeps its 13 live sessions, not 50."""
    for hour in range(49):
        await login(store, f"k{hour}", "anne", T0 + timedelta(hours=hour))
    await login(store, "bruno1", "bruno", T0)  # another listener's, ended long ago
    now = T0 + timedelta(hours=48, minutes=30)
    await login(store, "last", "anne", now)
    live = [f"k{hour}" for hour in range(37, 49)] + ["last"]  # begun less than 12 h before now
    assert sorted(session.key for session in await store.live_sessions("anne", now)) == sorted(live)
    assert listed(store_url, "anne") == len(live)
    assert await store.end_sessions("anne") == len(live)
    assert [key for key in live if await store.get_session(key, now) is not None] == []
    assert len(await store.live_sessions("anne", now)) == 0


async def test_log_out_everywhere_ends_the_sessions_put_while_a_login_drops_the_ended_ones(
    store: Store, store_url: str
) -> None:
    """Logins at once, each dropping the sessions ended by then (from two clients of the store, as two instances):
    every live one stays listed, and "log out everywhere" ends them all."""
    other = await open_store(store_url, keys=store_keys(store_url))
    try:
        for hour in range(12):
            await login(store, f"old{hour}", "anne", T0 + timedelta(hours=hour))
        now = T0 + timedelta(hours=30)
        keys = [f"new{n}" for n in range(20)]
        await asyncio.gather(*(login(store if n % 2 else other, key, "anne", now) for n, key in enumerate(keys)))
        assert len(await store.live_sessions("anne", now)) == len(keys)
        assert listed(store_url, "anne") == len(keys)
        assert await other.end_sessions("anne") == len(keys)
        assert [key for key in keys if await store.get_session(key, now) is not None] == []
    finally:
        await other.close()


@pytest.mark.redis
@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "redis-cluster"])
async def test_the_plain_set_of_before_is_read_and_never_breaks_a_login_or_a_logout(
    request: pytest.FixtureRequest, cluster: bool
) -> None:
    """A store written by the version before (``hg:sessions:<name>`` a set, SADD): its sessions are counted and
    ended with the new ones; no WRONGTYPE for this version, nor for an instance of before still running (it keeps
    writing its set)."""
    url = emptied(request.getfixturevalue("redis_cluster_url" if cluster else "redis_url"))
    now = T0 + timedelta(hours=1)
    with redis.Redis.from_url(url, decode_responses=True) as client:  # as the version before wrote them
        for key, begun in [("before1", T0), ("before2", now)]:
            ttl_ms = int((begun + LIFETIME - now).total_seconds() * 1000)
            client.sadd("hg:sessions:anne", key)
            client.pexpire("hg:sessions:anne", ttl_ms)
            expires_us = int((begun + LIFETIME).timestamp() * 1_000_000)
            client.set(f"hg:session:{key}", f'{{"name": "anne", "expires_us": {expires_us}}}', px=ttl_ms)
    store = await open_store(url, keys=store_keys(url))
    try:
        assert len(await store.live_sessions("anne", now)) == 2
        await login(store, "new1", "anne", now)
        await login(store, "new2", "anne", now)
        assert len(await store.live_sessions("anne", now)) == 4
        assert await store.end_session("before1") and await store.end_session("new1")
        assert await store.get_session("before2", now) is not None
        assert len(await store.live_sessions("anne", now)) == 2
        with redis.Redis.from_url(url, decode_responses=True) as client:
            assert client.type("hg:sessions:anne") == "set"  # an instance of before still adds to it
            assert client.smembers("hg:sessions:anne") == {"before2"}
        assert await store.end_sessions("anne") == 2
        assert await store.get_session("before2", now) is None and await store.get_session("new2", now) is None
        assert len(await store.live_sessions("anne", now)) == 0
    finally:
        await store.close()


@pytest.fixture
async def holding(redis_url: str) -> AsyncIterator[HoldingProxy]:
    proxy = HoldingProxy(emptied(redis_url))
    proxy.server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    async with proxy.server:
        yield proxy


@pytest.mark.redis
async def test_a_login_while_a_log_out_everywhere_runs_stays_listed_for_the_next(
    redis_url: str, holding: HoldingProxy
) -> None:
    """A supervisor's "log out everywhere" on one instance has read the listener's index when the listener logs in on
    another: that new session is not ended by it (it came after the read), and must stay listed, so that the next
    "log out everywhere" (or the count at a logout) finds it. The first instance reaches Redis through a proxy that
    holds what Redis answers from its read of the index on (``tests/test_receipt_race.py``)."""
    slow = await open_store(holding.url, keys=store_keys(holding.url))
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        await login(store, "before", "anne", T0)
        holding.hold_on = b"before"
        ending = asyncio.create_task(slow.end_sessions("anne"))
        await until(lambda: not holding.open.is_set(), "the slow instance's read of the index")
        await login(store, "meanwhile", "anne", T0 + timedelta(seconds=1))
        holding.hold_on = None
        holding.open.set()
        assert await ending == 1
        assert await store.get_session("meanwhile", T0) is not None
        assert len(await store.live_sessions("anne", T0 + timedelta(seconds=1))) == 1
        assert await store.end_sessions("anne") == 1
        assert await store.get_session("meanwhile", T0) is None
    finally:
        holding.open.set()
        await slow.close()
        await store.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)
