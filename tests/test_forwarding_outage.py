"""A web chat page open through a long Redis outage gets its replies as soon as Redis is back: the instance's event
forwarding subscribes again within a second (``gateway/sockets.py``'s ``Forwarding``), not after the supervisor's
backoff, which a few failures had grown to many seconds (the chaos soak's web chat clients, bench/chaos_webchat.py:
sockets acknowledged a message and showed its reply only 30 s later, at their reconnection).

Its own redis-server (tests/test_redis_restart.py's), since the test stops it.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import METRICS, STORE
from gateway.errors import StoreError
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.test_redis_restart import Frames, OwnRedis, own_redis
from tests.test_webchat import hello, say

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis

# The outage lasts until the supervisor has restarted the forwarding 8 times (0.1 s doubling: its next try then
# 12.8 s away), or OUTAGE_SECONDS when it is not restarted at all.
RESTARTS, OUTAGE_SECONDS = 8, 14.0
REPLY_SECONDS = 8.0  # the reply's frame after the message was sent: well under the 12.8 s an old backoff takes


async def test_a_page_open_through_a_long_outage_gets_its_replies_once_redis_is_back(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    store, metrics = client.app[STORE], client.app[METRICS]
    loop = asyncio.get_running_loop()
    async with client.ws_connect("/chat/ws") as chat:
        token = (await hello(chat))["token"]
        await say(chat, "m1", "2")
        frames = Frames(chat)  # reads every frame from now on: the socket answers its pings through the outage
        try:
            own_redis.stop()
            stopped = loop.time()

            def restarts() -> float:
                found = metrics.registry.get_sample_value("gateway_worker_restarts_total", {"worker": "webchat"})
                return found or 0.0

            async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
                while restarts() < RESTARTS and loop.time() - stopped < OUTAGE_SECONDS:
                    await asyncio.sleep(0.05)
            own_redis.start()
            async with asyncio.timeout(60):  # the store answers this process again (its pool reconnected)
                while True:
                    try:
                        await store.find_active_conversation(ChannelName.WEBCHAT, token)
                        break
                    except StoreError:
                        await asyncio.sleep(0.05)
            await chat.send_json({"type": "message", "id": "m2", "text": "1"})
            sent = loop.time()
            async with asyncio.timeout(60):
                seen = await frames.until(lambda f: f["type"] in ("entry", "resync") and _has_bot_entry(f))
                if {"type": "ack", "id": "m2"} not in seen:  # the reply may come before the ack, or after it
                    await frames.until(lambda f: f == {"type": "ack", "id": "m2"})
            assert loop.time() - sent < REPLY_SECONDS, "the reply came only when the forwarding restarted"
        finally:
            await frames.close()


def _has_bot_entry(frame: dict[str, object]) -> bool:
    entries = [frame["entry"]] if frame["type"] == "entry" else frame["entries"]
    assert isinstance(entries, list)
    return any(isinstance(e, dict) and e.get("author") == "bot" for e in entries)
