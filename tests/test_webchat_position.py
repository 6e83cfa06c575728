"""A queued young person's place in line, told to their web chat page as it moves (``WebChatHub.refresh_positions``).

A conversation's own events say when it leaves the line (taken, ended), not when those ahead of it leave: before,
the second in line read "position 2" on their page until the bot's next reassurance or a reconnection, however many
were taken meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from gateway.app import METRICS, STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.test_redis_restart import OwnRedis, own_redis, ready
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

__all__ = ["own_redis"]  # the fixture, imported to be used here


async def queued(ws: aiohttp.ClientWebSocketResponse, prefix: str) -> str:
    """A young person walked to the queue; their browser token."""
    token = (await hello(ws))["token"]
    frames: list[dict[str, Any]] = []
    for number, answer in enumerate(WALK_TO_QUEUE):
        await say(ws, f"{prefix}{number}", answer, frames=frames)
    if not any(f["type"] == "status" and f["status"] == "queued" for f in frames):  # it may come before the ack
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "queued")
    return str(token)


async def test_the_second_in_line_is_told_when_the_first_is_taken(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(webchat_position_seconds=0.2))
    await add_listener(client, "anne")
    async with client.ws_connect("/chat/ws") as first, client.ws_connect("/chat/ws") as second:
        first_token = await queued(first, "a")
        await queued(second, "b")
        store = client.app[STORE]
        first_conversation = await store.find_active_conversation(ChannelName.WEBCHAT, first_token)
        assert first_conversation is not None and await store.position(first_conversation.id) == 1
        await login(client, "anne")
        taken = await client.post(f"/api/conversations/{first_conversation.id}/take", json={})
        assert taken.status == 200
        frames = await receive_until(second, lambda f: f["type"] == "status" and f.get("position") == 1)
    assert frames[-1] == {"type": "status", "status": "queued", "position": 1, "language": "fr"}


async def test_the_places_are_told_again_after_a_redis_restart(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    """The worker reading the places fails while Redis is down (a store error), is restarted by the supervisor, and
    tells the second in line their new place once Redis is back: no restart of the gateway."""
    client = await make_client(settings.replace(store=own_redis.url, webchat_position_seconds=0.2))
    await add_listener(client, "anne")
    async with client.ws_connect("/chat/ws") as first, client.ws_connect("/chat/ws") as second:
        first_token = await queued(first, "a")
        await queued(second, "b")
        own_redis.stop()
        async with asyncio.timeout(30):
            while restarts(client, "webchat-positions") < 1:  # it met the outage
                await asyncio.sleep(0.05)
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)
        store = client.app[STORE]
        first_conversation = await store.find_active_conversation(ChannelName.WEBCHAT, first_token)
        assert first_conversation is not None
        await login(client, "anne")
        assert (await client.post(f"/api/conversations/{first_conversation.id}/take", json={})).status == 200
        frames = await receive_until(second, lambda f: f["type"] == "status" and f.get("position") == 1)
    assert frames[-1]["position"] == 1


def restarts(client: Any, worker: str) -> float:
    found = client.app[METRICS].registry.get_sample_value("gateway_worker_restarts_total", {"worker": worker})
    return found or 0.0
