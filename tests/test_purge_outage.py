"""The retention purge meets a Redis restart while its worker runs: it waits for the store, it does not restart.

The purge worker (``Retention.run``, under the supervisor) waits for the store as the outbox and timers do: a pass
the store's outage failed is counted and told once an outage (``gateway/outage_log.py``) and tried again, the worker
never stopped (until 2026-12-06 it raised to the supervisor: restarted, counted in ``gateway_worker_restarts``,
``down`` in ``/readyz`` during each backoff, 6 restarts in one chaos soak). The real dispatcher, store, supervisor
and a redis-server of the test's own, stopped and started again (``tests/test_redis_restart.py``'s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.app import FLOWS, METRICS
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.supervisor import Supervisor
from gateway.testing import store_keys
from tests.conftest import ROOT, AppFactory, Clock
from tests.test_redis_restart import OwnRedis, own_redis, ready

__all__ = ["own_redis"]  # the fixtures used below
pytestmark = pytest.mark.redis

SECRET = "je me sens seul depuis la rentrée"
DEADLINE = 120.0  # s: a bound on each wait for a condition, never reached on a machine that keeps up


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {DEADLINE:.0f} s: {what}"
        await asyncio.sleep(0.05)


async def ended(store: Store, dispatcher: Dispatcher, clock: Clock, sender: str) -> tuple[Conversation, Inbound]:
    """A young person's message processed (its transcript, its processed mark), then the conversation closed."""
    inbound = Inbound(ChannelName.MESSENGER, sender, f"m-{sender}", SECRET)
    await dispatcher.handle_inbound(inbound)
    found = await store.find_active_conversation(ChannelName.MESSENGER, sender)
    assert found is not None
    async with store.lock(found.id):
        conversation = await store.get_conversation(found.id)
        assert conversation is not None
        conversation.status, conversation.closed_at, conversation.outcome = Status.CLOSED, clock(), "listened"
        await store.remove_from_queue(conversation.id)
        await store.save_conversation(conversation)
    return conversation, inbound


def counted(metrics: Metrics, family: str, **labels: str) -> float:
    counter = {"restarts": metrics.worker_restarts, "failures": metrics.store_failures}[family]
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_a_redis_restart_makes_the_purge_wait_for_the_store_not_restart(
    own_redis: OwnRedis, clock: Clock
) -> None:
    store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    metrics = Metrics()
    dispatcher = Dispatcher(store, flows, clock=clock)
    retention = Retention(store, flows, clock=clock, interval_seconds=0.2, metrics=metrics)
    supervisor = Supervisor(metrics)
    supervisor.add("purge", retention.run)
    supervisor.start()
    try:
        own_redis.stop()  # Redis away while the purge runs every 0.2 s

        async def failed() -> bool:
            return counted(metrics, "failures", part="purge") >= 2

        await until(failed, "passes of the purge failed")
        own_redis.start()

        async def answers() -> bool:
            try:
                await store.first_created()
                return True
            except StoreError:
                return False

        await until(answers, "the store answers again")
        conversation, inbound = await ended(store, dispatcher, clock, "zoe")
        clock.advance(days=31)  # its retention over: the next pass purges it

        async def purged() -> bool:
            record = await store.get_conversation(conversation.id)
            return record is not None and record.purged_at is not None

        await until(purged, "the conversation purged once the store is back")
        assert seen_digest(inbound_key(inbound)) not in await store.seen_keys()
        assert counted(metrics, "restarts", worker="purge") == 0  # waited for the store: no crash counted
        assert "purge" not in supervisor.problems()

        async def answered() -> bool:  # its pass answered since: said once the pass that purged it has ended
            return "purge" not in metrics.outages.waiting()

        await until(answered, "the purge no longer waiting for the store")
    finally:
        await supervisor.stop()
        await store.close()
        metrics.outages.close()


async def test_the_app_s_purge_and_notices_outages_are_seen_by_readyz_and_metrics(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    """The app's purge and notices workers tell their outages to the app's own ``Metrics``: while Redis is away
    ``/readyz``'s ``store_waiting`` names ``purge`` and ``notices``, and ``/metrics`` counts their failures in
    ``gateway_store_failures_total`` (scraped during the outage too, since 2026-12-07). Built without
    metrics, each made a private ``Metrics`` of its own (until 2026-12-07 the constructors allowed it), whose
    outage nobody saw."""
    client = await make_client(settings.replace(store=own_redis.url, purge_interval_seconds=0.2))
    metrics = client.app[METRICS]
    assert client.app[FLOWS].engine().flow.notices is not None  # its sweep reads the store
    own_redis.stop()
    try:

        async def both_waiting() -> bool:
            body = await (await client.get("/readyz")).json()
            return {"purge", "notices"} <= set(body.get("store_waiting", []))

        await until(both_waiting, "/readyz naming the purge and the notices as waiting for the store")
        scraped = await (await client.get("/metrics")).text()
        for part in ("purge", "notices"):
            assert counted(metrics, "failures", part=part) >= 1
            assert any(line.startswith("gateway_store_failures_total{") and f'part="{part}"' in line
                       for line in scraped.splitlines()), part  # fmt: skip
    finally:
        own_redis.start()
        async with asyncio.timeout(DEADLINE):
            await ready(client)
