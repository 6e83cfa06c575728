"""The listener's history (``GET /api/history``) and a conversation's earlier ones (``GET /api/conversations/{id}``)
read the store's indexes of a listener's ended conversations and of a young person's conversations, not every
conversation of the month: the same answers as the listing of the month gave (its filter is written here as the
reference), and, counted by the store itself, only the records shown read (SQLite and Redis)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.sqlite import SqliteStore
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.store.conftest import STORES, on_store, redis_url

__all__ = ["redis_url"]  # a fixture used through ``on_store``

Client = TestClient  # type: ignore[type-arg]
LISTENERS = ("anne", "bruno", "carla")
CHANNELS = (ChannelName.WEBCHAT, ChannelName.WHATSAPP)
ENDED = (Status.CLOSED, Status.REFERRED, Status.ABANDONED)


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


def month(now: datetime, count: int) -> list[Conversation]:
    """``count`` conversations over 40 days up to ``now``: of a few young people (one open each at most), ended,
    open, purged, held by one listener or none, some at the very same µs (ties)."""
    made: list[Conversation] = []
    for n in range(count):
        created = now - timedelta(days=n % 41, hours=n % 7, seconds=(n // 3) % 2)
        status = ENDED[n % 3] if n % 11 else Status.QUEUED
        person = f"person-{n % 9}" if status in ENDED else f"open-{n}"
        ended = created + timedelta(minutes=(n % 4) * 10)
        purged = n % 13 == 5 and status in ENDED
        made.append(Conversation(
            id=f"c{n:05d}", channel=CHANNELS[n % 2], sender="" if purged else person, pseudonym=f"Loutre-{n}",
            created_at=created, updated_at=ended, status=status,
            listener=LISTENERS[n % 4] if n % 4 < 3 and status != Status.QUEUED else None,
            outcome="cyberbullying" if status == Status.CLOSED else None,
            closed_at=ended if n % 5 else None, purged_at=ended if purged else None,
        ))  # fmt: skip
    return made


def reference_history(everything: list[Conversation], name: str, now: datetime) -> list[str]:
    """What ``/api/history`` answered before the index: the month listed, then filtered and sorted."""
    started = [c for c in everything if now - timedelta(days=30) <= c.created_at < now + timedelta(seconds=1)]
    started.sort(key=lambda c: (c.created_at, c.id))
    ended = [c for c in started if not c.active and c.listener == name]
    ended.sort(key=lambda c: c.closed_at or c.updated_at, reverse=True)
    return [c.id for c in ended[:50]]


def reference_earlier(everything: list[Conversation], conversation: Conversation, now: datetime) -> list[str]:
    started = [c for c in everything if now - timedelta(days=30) <= c.created_at < conversation.created_at]
    started.sort(key=lambda c: (c.created_at, c.id))
    return [
        c.id for c in reversed(started)
        if c.channel == conversation.channel and c.sender == conversation.sender and c.id != conversation.id
        and c.sender
    ][:10]  # fmt: skip


Seeded = tuple[Client, Store, list[Conversation]]


async def seeded(make_client: AppFactory, settings: Settings, clock: Clock, count: int) -> Seeded:
    client = await make_client(settings)
    store: Store = client.app[STORE]
    everything = month(clock.now, count)
    for conversation in everything:
        await store.save_conversation(conversation)
    for name in LISTENERS:
        await add_listener(client, name, supervisor=name == "carla")
    return client, store, everything


async def test_the_history_and_the_earlier_conversations_are_those_the_month_gave(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    client, _, everything = await seeded(make_client, store_settings, clock, 400)
    for name in LISTENERS:
        await login(client, name)
        shown = (await (await client.get("/api/history")).json())["ended"]
        assert [c["id"] for c in shown] == reference_history(everything, name, clock.now), name
        assert len(shown) > 5
    # carla supervises: every conversation opens, with its earlier ones
    with_earlier = 0
    for conversation in everything[::7]:
        detail = await (await client.get(f"/api/conversations/{conversation.id}")).json()
        expected = reference_earlier(everything, conversation, clock.now)
        assert [e["id"] for e in detail["earlier"]] == expected, conversation.id
        with_earlier += bool(expected)
    assert with_earlier > 10


def _gets(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def _statements(store: Store, read: Any) -> list[str]:
    """The SQL statements the SQLite store ran during ``read()`` (its connection's trace), with their plans."""
    assert isinstance(store, SqliteStore)
    conn: sqlite3.Connection = store._conn  # the trace is the store's own counter
    ran: list[str] = []
    await store._thread.run(conn.set_trace_callback, ran.append)
    try:
        await read()
    finally:
        await store._thread.run(conn.set_trace_callback, None)

    def plans() -> list[str]:
        return [sql + " => " + " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
                for sql in ran if "conversations" in sql]  # fmt: skip

    return await store._thread.run(plans)


async def test_the_history_and_the_earlier_ones_read_the_records_shown_not_the_month(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    """2,000 conversations in the month (of others, of other young people): anne's history reads hers, an opened
    conversation's earlier ones read that young person's; counted by Redis (``GET``s of records) and on SQLite by
    the plans of the statements run (a search on the listener's or the person's index, never the month's listing)."""
    client, store, everything = await seeded(make_client, store_settings, clock, 2000)
    await login(client, "anne")
    mine = reference_history(everything, "anne", clock.now)
    held = next(c for c in everything[::-1] if c.listener == "carla" and reference_earlier(everything, c, clock.now))

    async def reads() -> None:
        assert [c["id"] for c in (await (await client.get("/api/history")).json())["ended"]] == mine
        await login(client, "carla")
        detail = await (await client.get(f"/api/conversations/{held.id}")).json()
        assert [e["id"] for e in detail["earlier"]] == reference_earlier(everything, held, clock.now)

    if isinstance(store, SqliteStore):
        plans = await _statements(store, reads)
        listing = [p for p in plans if "conversations_created" in p or "SCAN c" in p or "SCAN conversations" in p]
        assert not listing, listing
        assert any("INDEX ended_listener" in p for p in plans), plans
        assert any("USING INDEX conversations_sender" in p for p in plans), plans
        return
    before = _gets(store_settings.store)
    await reads()
    read = _gets(store_settings.store) - before
    # the records shown (50 of anne's, 10 earlier), the held one, sessions and listeners: not the 2,000 of the month
    assert read < 200, read
