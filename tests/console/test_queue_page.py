"""The console's queue at a peak (``GET /api/queue``): the first ``QUEUE_PAGE`` waiting cards in the queue's order,
how many wait in all and the latest arrival, reading the page's records only. Until 2026-12-07 every waiting card
went to every console at each reload (one a change), each waiting record read: at 2,000 waiting and 40 consoles a
megabyte a reload, 0.9 MB a second a console (``bench/console.py``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis

from gateway.app import STORE
from gateway.console.api import OTHERS_PAGE, OWN_MARGIN, QUEUE_PAGE
from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_take_crash import commands_during
from tests.store.conftest import STORES, emptied, on_store, redis_url

__all__ = ["redis_url"]  # a fixture used through ``on_store``

WAITING = QUEUE_PAGE + 40


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


def _gets(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def _waiting(store: Store, clock: Clock, n: int, priority: Priority = Priority.NORMAL) -> str:
    at = clock.now - timedelta(minutes=WAITING - n)
    conversation = Conversation(id=f"c{n:04d}", channel=ChannelName.WEBCHAT, sender=f"s{n}", pseudonym=f"Loutre-{n}",
                                created_at=at, updated_at=at, status=Status.QUEUED, queue="listeners",
                                priority=priority, queued_at=at, waiting_since=at)  # fmt: skip
    await store.save_conversation(conversation)
    flag = RiskFlag("suicide", 0.9, "model") if priority == Priority.URGENT else None
    await store.enqueue(conversation.id, "listeners", priority, at, flag=flag)
    return conversation.id


async def test_a_console_is_sent_the_first_page_of_a_long_queue_and_how_many_wait(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    client = await make_client(store_settings)
    store: Store = client.app[STORE]
    ids = [await _waiting(store, clock, n) for n in range(WAITING - 1)]
    urgent = await _waiting(store, clock, WAITING - 1, Priority.URGENT)  # the latest arrival, first in line
    await add_listener(client, "anne")
    await login(client, "anne")

    before = _gets(store_settings.store) if "redis" in store_settings.store else 0
    body = await (await client.get("/api/queue")).json()
    read = _gets(store_settings.store) - before if "redis" in store_settings.store else 0

    shown = [card["id"] for card in body["waiting"]]
    assert len(shown) == QUEUE_PAGE, len(shown)  # until 2026-12-07: all 140
    assert shown == [urgent, *ids[: QUEUE_PAGE - 1]]  # the queue's order: urgent first, then by arrival
    assert body["waiting"][0]["flag"]["risk"] == "suicide"
    assert body["waiting_total"] == WAITING
    assert body["newest"] == {"id": urgent, "priority": "urgent", "at": body["newest"]["at"]}
    if "redis" in store_settings.store:  # the page's records, the session's and the account's: not the 140
        assert read <= QUEUE_PAGE + 10, read


async def test_the_boards_count_of_young_people_told_the_line_is_closed_still_counts_past_the_page(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    client = await make_client(settings)
    store: Store = client.app[STORE]
    for n in range(WAITING):
        await _waiting(store, clock, n)
    last = await store.get_conversation(f"c{WAITING - 1:04d}")
    assert last is not None and last.waiting_since is not None
    await store.save_conversation(replace(last, closed_told_at=clock.now))  # told at the back of the line
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    board = await (await client.get("/api/supervision")).json()
    assert board["live"]["told_closed"] == 1
    assert board["live"]["waiting"] == WAITING


@pytest.mark.redis
async def test_a_reload_reads_the_pages_queue_entries_not_every_waiting_one(
    make_client: AppFactory, settings: Settings, clock: Clock, redis_url: str
) -> None:
    """``GET /api/queue`` with 140 waiting reads the entries of its page (and of the latest arrival) only: the ids
    every command of the reload names in the queue's entries (``MONITOR``). Until 2026-12-07 every waiting entry was
    read at each shared read (140 here; 27 -> 36 ms of CPU a change from 2,000 to 5,000 waiting, bench/console.py)."""
    store_settings = settings.replace(store=emptied(redis_url))
    client = await make_client(store_settings)
    store: Store = client.app[STORE]
    ids = [await _waiting(store, clock, n) for n in range(WAITING)]
    await add_listener(client, "anne")
    await login(client, "anne")
    named: set[str] = set()

    async def reload() -> None:
        body = await (await client.get("/api/queue")).json()
        assert body["waiting_total"] == WAITING and len(body["waiting"]) == QUEUE_PAGE

    for command in await commands_during(store_settings.store, reload()):
        if "hg:{queue}:entries" in command:
            named |= set(ids) & set(command.split())
    assert 0 < len(named) <= QUEUE_PAGE + 1, len(named)  # the page and the latest arrival; until 2026-12-07: 140


async def _held(store: Store, clock: Clock, n: int, listener: str) -> str:
    conversation_id = await _waiting(store, clock, 1000 + n)
    await store.take(conversation_id, listener, clock.now)
    record = await store.get_conversation(conversation_id)
    assert record is not None
    await store.save_conversation(replace(record, status=Status.WITH_LISTENER, listener=listener))
    return conversation_id


async def test_a_supervisor_is_sent_a_page_of_the_conversations_others_hold_and_a_listener_reads_their_own(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    """152 young people held (150 by listeners not at a console, 2 by Anne): Sam, a supervisor, is sent the first
    :data:`OTHERS_PAGE` of them (those whose listener left first) and ``others_total``; Anne her 2, reading her own
    records only. Until 2026-12-07 every held record was read at each shared read and every held card sent to each
    supervisor at each reload (2,000 held: 1.1 MB a reload, ``bench/console.py --held``)."""
    client = await make_client(store_settings)
    store: Store = client.app[STORE]
    others = [await _held(store, clock, n, f"holder{n % 7}") for n in range(150)]
    annes = [await _held(store, clock, 150 + n, "anne") for n in range(2)]
    await add_listener(client, "anne")
    await add_listener(client, "sam", supervisor=True)
    await login(client, "anne")
    on_redis = "redis" in store_settings.store
    before = _gets(store_settings.store) if on_redis else 0
    body = await (await client.get("/api/queue")).json()
    read = _gets(store_settings.store) - before if on_redis else 0
    assert sorted(card["id"] for card in body["mine"]) == sorted(annes)
    if on_redis:  # Anne's records, her session's and account's: not the 152 held
        assert read <= 10, read
    await login(client, "sam")
    before = _gets(store_settings.store) if on_redis else 0
    body = await (await client.get("/api/queue")).json()
    read = _gets(store_settings.store) - before if on_redis else 0
    assert len(body["others"]) == OTHERS_PAGE, len(body["others"])  # until 2026-12-07: all 152
    assert body["others_total"] == 152
    assert {card["id"] for card in body["others"]} <= set(others + annes)
    assert all(card["listener_away"] for card in body["others"])
    holder = {i: f"holder{n % 7}" for n, i in enumerate(others)} | dict.fromkeys(annes, "anne")
    first = sorted(holder, key=lambda i: (holder[i], i))[: OTHERS_PAGE + OWN_MARGIN]  # every one away: by listener
    records = [await store.get_conversation(i) for i in first]
    shown = sorted((c for c in records if c is not None), key=lambda c: (c.created_at, c.id))[:OTHERS_PAGE]
    assert [card["id"] for card in body["others"]] == [c.id for c in shown]  # the same page as when all were sorted
    if on_redis:
        assert read <= OTHERS_PAGE + 30, read


@pytest.mark.redis
async def test_a_supervisors_reload_reads_no_held_entry_and_the_held_ones_of_its_page_only(
    make_client: AppFactory, settings: Settings, clock: Clock, redis_url: str
) -> None:
    """A supervisor's ``GET /api/queue`` reads how many each listener holds (``store.held_index``), not the held
    status's set nor any held entry, and the ids of the listeners of its page (``store.held_ids``). Until 2026-12-07
    the held entries were read twice a reload (8.6 ms of CPU each at 2,000 held, bench/console.py), then once
    (``store.holders``: the status's set and every held entry, ``HMGET``) until 2026-12-07 (late)."""
    store_settings = settings.replace(store=emptied(redis_url))
    client = await make_client(store_settings)
    store: Store = client.app[STORE]
    held = [await _held(store, clock, n, f"holder{n % 3}") for n in range(12)]
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    body: dict[str, Any] = {}

    async def reload() -> None:
        body.update(await (await client.get("/api/queue")).json())

    commands = await commands_during(store_settings.store, reload())
    assert body["others_total"] == 12 and {card["id"] for card in body["others"]} == set(held)
    reads = [c for c in commands if "status:with_listener" in c and "SMEMBERS" in c.upper()]
    assert reads == [], reads  # until 2026-12-07: 2, then 1
    entries = [c for c in commands if "hg:{queue}:entries" in c and set(held) & set(c.replace('"', " ").split())]
    assert entries == [], entries  # until 2026-12-07 (late): the 12 held entries' HMGET
