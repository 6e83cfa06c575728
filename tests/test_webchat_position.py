"""A queued young person's place in line, told to their web chat page as it moves (``WebChatHub.refresh_positions``).

A conversation's own events say when it leaves the line (taken, ended), not when those ahead of it leave: before,
the second in line read "position 2" on their page until the bot's next reassurance or a reconnection, however many
were taken meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from gateway.app import METRICS, STORE, SUPERVISOR, WEBCHAT
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.test_purge_outage import counted, until
from tests.test_redis_restart import OwnRedis, own_redis, ready
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

__all__ = ["own_redis"]  # the fixture, imported to be used here
WORKER = "webchat-positions"  # the supervisor's name of ``WebChatHub.refresh_positions``


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
    """The worker reading the places meets the store's failure while Redis is down: each pass is told once an outage
    (part ``webchat_positions``, ``gateway/outage_log.py``) and made again at the next period, the worker never
    stopped; it tells the second in line their new place once Redis is back: no restart of the gateway. Until
    2026-12-07 the failure stopped the worker: restarted by the supervisor, counted in ``gateway_worker_restarts``,
    ``down`` in ``/readyz`` during each backoff."""
    client = await make_client(settings.replace(store=own_redis.url, webchat_position_seconds=0.2))
    await add_listener(client, "anne")
    async with client.ws_connect("/chat/ws") as first, client.ws_connect("/chat/ws") as second:
        first_token = await queued(first, "a")
        await queued(second, "b")
        own_redis.stop()
        metrics = client.app[METRICS]

        async def met() -> bool:  # it met the outage (a restart fails at once below, not after the deadline)
            return counted(metrics, "failures", part="webchat_positions") >= 2 or restarts(client, WORKER) > 0

        await until(met, "passes of the places failed")
        assert restarts(client, WORKER) == 0  # waited for the store: no crash counted
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)
        store = client.app[STORE]
        first_conversation = await store.find_active_conversation(ChannelName.WEBCHAT, first_token)
        assert first_conversation is not None
        await login(client, "anne")
        assert (await client.post(f"/api/conversations/{first_conversation.id}/take", json={})).status == 200
        # told by the places' pass, or by the resync the event forwarding sends once subscribed again (the place then
        # read with the first taken: the pass finds it told)
        told = await receive_until(second, lambda f: f["type"] in ("status", "resync") and f.get("position") == 1)
    assert told[-1]["position"] == 1
    assert restarts(client, WORKER) == 0
    assert WORKER not in client.app[SUPERVISOR].problems()


async def test_a_pass_that_read_nothing_does_not_say_the_store_answered(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    """During an outage, a pass of the places whose every followed socket closed reads nothing from the store: the
    part stays in ``/readyz``'s ``store_waiting`` (``StoreOutages.waiting``). Until 2026-12-07 such a pass reported an
    answer, the part dropped from the list although the store was not asked."""
    client = await make_client(settings.replace(store=own_redis.url, webchat_position_seconds=0.2))
    metrics, hub = client.app[METRICS], client.app[WEBCHAT]
    async with client.ws_connect("/chat/ws") as chat:
        await queued(chat, "a")
        own_redis.stop()

        async def met() -> bool:
            return counted(metrics, "failures", part="webchat_positions") >= 1

        await until(met, "a pass of the places failed")
    try:

        async def forgotten() -> bool:  # the closed socket's place dropped by a pass
            return not hub.positions

        await until(forgotten, "the closed page's place forgotten")
        assert "webchat_positions" in metrics.outages.waiting()
    finally:
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)


def restarts(client: Any, worker: str) -> float:
    found = client.app[METRICS].registry.get_sample_value("gateway_worker_restarts_total", {"worker": worker})
    return found or 0.0
