"""The alert check's look at the conversations held by listeners (``gateway/alerts.py``, every 10 s on each
instance) reads no young person's record: who holds each comes from the queue's entries (``Store.holders``), so its
cost does not grow with the records' size nor decrypts them, and it still counts and hands back as before."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

import redis.asyncio

from gateway.alerts import Watch
from gateway.console.actions import Actions
from gateway.console.presence import Presence
from gateway.conversation import Priority, Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.console.test_take_crash import commands_during
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_alerts import sample

__all__ = ["redis_cluster_url", "redis_url", "store_url"]  # fixtures used below


class Reads:
    """The real store, counting the conversation records read through it (the check's only way to a record)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.records: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_conversation(self, conversation_id: str) -> Any:
        self.records.append(conversation_id)
        return await self._store.get_conversation(conversation_id)

    async def conversations_by_status(self, status: Status) -> Any:
        self.records.append(f"every {status}")
        return await self._store.conversations_by_status(status)


async def held(store: Store, clock: Clock, n: int, listener: str) -> str:
    """A young person waiting in line, then taken by ``listener`` (the queue step, then the record, as ``take``)."""
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, f"{listener}-{n}", clock())
    await store.enqueue(conversation.id, "listeners", Priority.NORMAL, clock())
    await store.save_conversation(replace(conversation, status=Status.QUEUED, queue="listeners"))
    await store.take(conversation.id, listener, clock())
    queued = await store.get_conversation(conversation.id)
    assert queued is not None
    await store.save_conversation(replace(queued, status=Status.WITH_LISTENER, listener=listener))
    return conversation.id


async def left_by_a_crash(store: Store, url: str, clock: Clock) -> str:
    """Redis: a conversation Bea held, closed, whose taken entry and held status's membership a crash left (the
    record ended first, the steps after it never made): its holder read from the queue is Bea."""
    conversation_id = await held(store, clock, 99, "bea")
    record = await store.get_conversation(conversation_id)
    assert record is not None
    await store.save_conversation(replace(record, status=Status.CLOSED))  # its entry and membership left after it
    await store.enqueue(conversation_id, "listeners", Priority.NORMAL, clock())
    await store.take(conversation_id, "bea", clock())
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.sadd(K.status(str(Status.WITH_LISTENER)), conversation_id)
    finally:
        await client.aclose()
    assert (await store.holders())[conversation_id] == "bea"
    return conversation_id


async def monitored(url: str, work: Any) -> list[str]:
    """Redis's commands while ``work`` was awaited (``MONITOR``), up to a marker sent after it; [] on SQLite."""
    if url.startswith("sqlite"):
        await work
        return []
    return await commands_during(url, work)


async def test_the_check_of_held_conversations_reads_none_of_their_records(store_url: str, clock: Clock) -> None:
    """30 young people held, 20 by Anne at her console, 10 by Bea whose console closed: the check reads no record
    (through the store, and on Redis no command names a record's key) while Bea has been away less than
    ``held_alert_seconds``; then it reads Bea's 10 only, to count them exactly, never Anne's; it hands them back
    once away for ``handback_seconds`` (the hand-back reads each under its lock, as before). On Redis, a taken entry
    and a held status's membership a crash left beside an ended record are read past: neither counted nor handed
    back. Before, each check read and decrypted every
    held record."""
    store = await open_store(store_url, keys=store_keys(store_url))
    reads, presence, metrics = Reads(store), Presence(), Metrics()
    handed: list[tuple[str, str]] = []

    async def hand_back(conversation_id: str, listener: str) -> bool:
        handed.append((conversation_id, listener))
        return True

    try:
        annes = [await held(store, clock, n, "anne") for n in range(20)]
        beas = [await held(store, clock, n, "bea") for n in range(10)]
        leftovers = [] if store_url.startswith("sqlite") else [await left_by_a_crash(store, store_url, clock)]
        presence.connections["anne"] += 1
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        actions = Actions(Dispatcher(reads, flows, clock=clock), cast(Any, reads), flows, clock=clock)
        # the app's wiring of the repairs that look at held conversations too: a close cut after its goodbye is
        # looked for by ids (its goodbye's), a waiting transfer cut by the list of those begun; neither reads a record
        watch = Watch(reads, metrics, clock=clock, outbox_alert_seconds=60, listener_present=presence.has,
                      held_alert_seconds=300, hand_back=hand_back, handback_seconds=600,
                      complete=lambda conversation_id, mover: asyncio.sleep(0, False),
                      complete_close=actions.complete_close, complete_move=actions.complete_move,
                      complete_take=actions.complete_take, complete_leaving=actions.complete_leaving)  # fmt: skip
        commands = await monitored(store_url, watch.check())
        assert reads.records == [] and sample(metrics, "gateway_held_by_absent_listener") == 0
        assert not [c for c in commands if any(f"hg:c:{{{i}}}" in c for i in annes + beas)], "a held record read"
        clock.advance(seconds=301)
        commands = await monitored(store_url, watch.check())
        assert sorted(reads.records) == sorted([*beas, *leftovers])  # away long enough: read, to count exactly
        assert sample(metrics, "gateway_held_by_absent_listener") == 10
        assert not [c for c in commands if any(f"hg:c:{{{i}}}" in c for i in annes)], "a record of Anne's read"
        assert handed == []
        clock.advance(seconds=300)
        await watch.check()
        assert sorted(handed) == sorted((i, "bea") for i in beas)
    finally:
        await store.close()


class Calls:
    """The real store, counting the calls made through it (the check's, and its repairs', only way to the store)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return found(*args, **kwargs)

        return counted


async def test_the_checks_cost_does_not_grow_with_the_conversations_held(store_url: str, clock: Clock) -> None:
    """2 young people held by Anne at her console, then 20, nothing to repair: the check, wired with every repair as
    the app wires it, makes as many store calls, and on Redis as many commands (``MONITOR``), for 20 as for 2.
    Before, it looked up each held conversation's goodbyes (``entries_written``, to complete a close cut after its
    goodbye): one more call and one more script each, every 10 s on each instance (SQLite, Redis, Cluster)."""
    store = await open_store(store_url, keys=store_keys(store_url))
    calls, presence = Calls(store), Presence()
    presence.connections["anne"] += 1
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    actions = Actions(Dispatcher(cast(Store, calls), flows, clock=clock), cast(Any, calls), flows, clock=clock)
    watch = Watch(cast(Any, calls), Metrics(), clock=clock, outbox_alert_seconds=60, listener_present=presence.has,
                  held_alert_seconds=300, hand_back=lambda conversation_id, listener: asyncio.sleep(0, False),
                  handback_seconds=600, complete=actions.complete_hand_back, back_in_line=actions.back_in_line,
                  complete_close=actions.complete_close, complete_move=actions.complete_move,
                  complete_take=actions.complete_take, complete_leaving=actions.complete_leaving)  # fmt: skip
    try:
        costs = []
        for n in range(20):
            await held(store, clock, n, "anne")
            if n + 1 in (2, 20):
                calls.calls.clear()
                commands = await monitored(store_url, watch.check())
                costs.append((len(calls.calls), len(commands)))
        assert costs[0] == costs[1], f"2 held: {costs[0]}, 20 held: {costs[1]} (store calls, Redis commands)"
    finally:
        await store.close()
