"""A web chat page back on another instance after a Redis outage: the first instance, still trying to arm the "young
person gone" timer of the socket that closed during the outage, must not arm it once the page is back (else 90 s
later the listeners are told nobody reads while the young person is there, waiting).

Two apps on one redis-server of the test's own (tests/test_redis_restart.py's), since the test stops it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from gateway.app import METRICS, STORE, WEBCHAT
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import TimerKind
from gateway.webchat import ARM_RETRY
from tests.conftest import AppFactory, Clock
from tests.test_gone_timer_arming import until
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_webchat import hello, say

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis

FAILED_TRIES = 5  # the first instance's next try is then ARM_RETRY[0] * 2**4 = 8 s away: the page is back before
assert ARM_RETRY[0] * 2 ** (FAILED_TRIES - 1) >= 8.0


async def test_a_page_back_on_another_instance_is_not_marked_gone_by_the_first_ones_late_arming(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, clock: Clock
) -> None:
    shared = settings.replace(store=own_redis.url)
    first, second = await make_client(shared), await make_client(shared)
    store, hub, metrics = first.app[STORE], first.app[WEBCHAT], first.app[METRICS]
    async with first.ws_connect("/chat/ws") as chat:
        token = (await hello(chat))["token"]
        await say(chat, "m1", "2")
        found = await store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert found is not None
        own_redis.stop()  # the socket closes while Redis is down: the first instance cannot arm the timer yet

    async def tried_again() -> bool:
        failed = metrics.registry.get_sample_value("gateway_timer_arming_failures_total", {"kind": "webchat_gone"})
        return (failed or 0) >= FAILED_TRIES

    await until(tried_again)
    own_redis.start()
    clock.advance(seconds=5)  # the young person's page reconnects, to the other instance
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        chat, session = await back(second, token)
    try:  # the page stays open on the second instance
        assert session["token"] == token
        assert found.id in hub.arming, "the first instance armed before the page was back: nothing was tested"

        async def done() -> bool:  # the first instance tried again, with Redis back
            return found.id not in hub.arming

        await until(done)
        due = await store.due_timers(clock.now + timedelta(days=1))
        assert [t for t in due if t.conversation_id == found.id and t.kind == TimerKind.WEBCHAT_GONE] == []
    finally:
        await chat.close()


async def back(client: Any, token: str) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """The page reconnecting as it does, until a session (the first tries may meet the store's old connections)."""
    while True:
        chat = await client.ws_connect("/chat/ws")
        try:
            return chat, await hello(chat, token)
        except (AssertionError, TimeoutError, TypeError):
            await chat.close()
            await asyncio.sleep(0.05)  # the page's reconnection delay
