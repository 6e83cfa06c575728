"""A web chat socket closes while Redis is down: the "young person gone" timer is armed once Redis is back, and
each failed try is counted (``gateway_timer_arming_failures``) and logged by class, never left unretrieved.

Its own redis-server (tests/test_redis_restart.py's), since the test stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from gateway.app import METRICS, STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import TimerKind
from tests.conftest import AppFactory, Clock
from tests.test_redis_restart import OwnRedis, own_redis, ready
from tests.test_webchat import hello, say

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not await condition():
            await asyncio.sleep(0.05)


async def test_a_gone_timer_is_armed_once_redis_is_back(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, clock: Clock
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    store, metrics = client.app[STORE], client.app[METRICS]
    async with client.ws_connect("/chat/ws") as chat:
        token = (await hello(chat))["token"]
        await say(chat, "m1", "bonjour")
        own_redis.stop()

    async def failed_once() -> bool:  # the closed socket's handler tried to arm the timer while Redis was down
        failed = metrics.registry.get_sample_value("gateway_timer_arming_failures_total", {"kind": "webchat_gone"})
        return (failed or 0) >= 1

    await until(failed_once)
    own_redis.start()
    await ready(client)

    async def armed() -> bool:
        found = await store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert found is not None
        due = await store.due_timers(clock.now + timedelta(minutes=5))
        return any(t.conversation_id == found.id and t.kind == TimerKind.WEBCHAT_GONE for t in due)

    await until(armed)  # armed once Redis answered again
