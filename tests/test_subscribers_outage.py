"""An instance is ready again as soon as Redis is back after a long outage: the workers that follow the store's
events (presence, the typing relay) subscribe again by themselves within a second (``gateway/sockets.py``'s
``Forwarding``), and are never left in the supervisor's backoff, which a few failures grow to many seconds: while
a worker waits there, ``/readyz`` names it ``down`` and answers 503 (a load balancer takes every instance out at
once, after the store is back), and the supervision board shows it troubled. Found by the chaos soak (seed 46,
2026-12-07: ``presence`` and ``typing`` restarted 12 times for one 4 s Redis restart; the other workers wait).

Its own redis-server (tests/test_redis_restart.py's), since the test stops it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.app import METRICS, STORE
from gateway.errors import StoreError
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis

SUBSCRIBERS = ("presence", "typing")  # the supervised workers that hold a subscription of the store's events
# The outage lasts until the supervisor has restarted each of them 8 times (0.1 s doubling: its next try then
# 12.8 s away), or OUTAGE_SECONDS when they are not restarted at all.
RESTARTS, OUTAGE_SECONDS = 8, 14.0
READY_SECONDS = 8.0  # /readyz 200 after the store answers again: well under the 12.8 s an old backoff takes


async def test_an_instance_is_ready_again_once_redis_is_back_after_a_long_outage(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    store, metrics = client.app[STORE], client.app[METRICS]
    loop = asyncio.get_running_loop()

    def restarts(worker: str) -> float:
        found = metrics.registry.get_sample_value("gateway_worker_restarts_total", {"worker": worker})
        return found or 0.0

    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while (await client.get("/readyz")).status != 200:  # subscribed and serving before the outage
            await asyncio.sleep(0.05)
    own_redis.stop()
    stopped = loop.time()
    async with asyncio.timeout(60):
        while min(map(restarts, SUBSCRIBERS)) < RESTARTS and loop.time() - stopped < OUTAGE_SECONDS:
            await asyncio.sleep(0.05)
    own_redis.start()
    async with asyncio.timeout(60):  # the store answers this process again (its pool reconnected)
        while True:
            try:
                await store.find_active_conversation(ChannelName.WEBCHAT, "nobody")
                break
            except StoreError:
                await asyncio.sleep(0.05)
    back, answers = loop.time(), []
    async with asyncio.timeout(60):
        while True:
            answer = await client.get("/readyz")
            body: dict[str, Any] = await answer.json()
            answers.append(body)
            if answer.status == 200:
                break
            await asyncio.sleep(0.05)
    down = [body["workers"] for body in answers if set(SUBSCRIBERS) & set(body.get("workers", {}))]
    assert not down, f"after the store was back, /readyz named them (first of {len(down)}): {down[0]}"
    assert loop.time() - back < READY_SECONDS, f"ready only {loop.time() - back:.1f} s after the store: {answers[-2]}"
    assert not any(map(restarts, SUBSCRIBERS)), {worker: restarts(worker) for worker in SUBSCRIBERS}
