"""A queued young person's place in line, told to their web chat page as it moves (``WebChatHub.refresh_positions``).

A conversation's own events say when it leaves the line (taken, ended), not when those ahead of it leave: before,
the second in line read "position 2" on their page until the bot's next reassurance or a reconnection, however many
were taken meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import aiohttp
from aiohttp.test_utils import TestClient

from gateway.app import METRICS, STORE, SUPERVISOR, WEBCHAT
from gateway.conversation import Conversation, Status
from gateway.events import Resync, StatusChanged, Typing
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.webchat import WebChatHub
from tests.conftest import AppFactory, add_listener, login
from tests.test_purge_outage import counted, until
from tests.test_redis_restart import OwnRedis, own_redis, ready
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say
from tests.test_webchat_resync_pass import Page, Placed, forwarding
from tests.test_webchat_resync_pass import until as until_true

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


class HeldAfterPlace(Placed):
    """``Placed`` that holds the first record read made while the hub has ``hold_at`` recorded as the conversation's
    place told (``WebChatHub.positions``), until ``release`` is set: a read between recording a place and sending it."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.hub: WebChatHub | None = None
        self.hold_at: int | None = None

    async def get_conversation(self, conversation_id: str, *args: Any, **kwargs: Any) -> Conversation | None:
        told = None if self.hub is None else self.hub.positions.get(conversation_id)
        if self.hold_at is not None and told is not None and told.position == self.hold_at:
            self.hold_at = None
            self.reading.set()
            await self.release.wait()
        return cast(Conversation | None, await self._store.get_conversation(conversation_id, *args, **kwargs))


@contextlib.asynccontextmanager
async def queued_page(client: TestClient[Any, Any]) -> AsyncIterator[tuple[HeldAfterPlace, WebChatHub, str, Page]]:
    """A hub of its own behind ``HeldAfterPlace``, one queued conversation shown by one page, told "position 3"."""
    store = client.app[STORE]
    held = HeldAfterPlace(store)
    async with forwarding(client, held, 1) as (hub, (only,), (page,)):
        held.hub = hub
        await until_true(lambda: page.resyncs() == 1, "the subscription's first pass")
        conversation = await store.get_conversation(only)
        assert conversation is not None
        await store.save_conversation(replace(conversation, status=Status.QUEUED, queue="listeners"))
        held.places[only] = 3
        await store.publish(Resync())
        await until_true(lambda: page.resyncs() == 2, "a pass that reads its place")
        await until_true(lambda: hub._passes is not None and not hub._passes.running, "the pass made")
        assert page.frames[-1]["position"] == 3 and hub.positions[only].position == 3
        yield held, hub, only, page


async def marked(client: TestClient[Any, Any], only: str, page: Page) -> None:
    """The forwarding past every event published before: a typing frame (sent at once) published and received."""
    typing = sum(1 for frame in page.frames if frame["type"] == "typing")
    await client.app[STORE].publish(Typing(only, "listener"))
    await until_true(lambda: sum(1 for f in page.frames if f["type"] == "typing") > typing, "the forwarding's marker")


async def test_a_refresh_whose_place_was_told_newer_meanwhile_sends_nothing(client: TestClient[Any, Any]) -> None:
    """The positions' pass records a place, reads the record, then sends the frame: a status event's frame that
    recorded and sent a newer place during that read is the page's last word. Until 2026-12-07 the pass's older frame
    came after it: the page showed "position 2", the hub took 1 as told, and no later pass told it again."""
    async with queued_page(client) as (held, hub, only, page):
        held.places[only], held.hold_at = 2, 2
        refresh = asyncio.create_task(hub._refresh_positions())
        async with asyncio.timeout(30):
            await held.reading.wait()  # the pass recorded 2 and reads the record, held
        held.places[only] = 1  # the next one ahead taken: its status event's frame reads and tells 1
        await client.app[STORE].publish(StatusChanged(only, Status.QUEUED, "listeners"))
        await marked(client, only, page)
        held.release.set()
        await refresh
        await hub._refresh_positions()  # the place unchanged since: nothing more told
    told = [frame["position"] for frame in page.frames if "position" in frame]
    assert told[-1] == 1 == hub.positions[only].position, told


async def test_a_status_events_frame_never_ends_up_after_a_newer_place(client: TestClient[Any, Any]) -> None:
    """A status event's frame reads the place, then the record for the frame's language: a pass of the places that
    told a newer place during that read was followed by the event's older frame until 2026-12-07 (the page left with
    "position 2", the hub with 1 as told). Now the record is read before the place, so the place recorded is the
    last sent (the hold below never happens: the next pass then finds it changed and tells it)."""
    async with queued_page(client) as (held, hub, only, page):
        held.places[only], held.hold_at = 2, 2
        await client.app[STORE].publish(StatusChanged(only, Status.QUEUED, "listeners"))
        await until_true(
            lambda: held.reading.is_set() or any(f.get("position") == 2 for f in page.frames), "the event's place read"
        )
        held.places[only] = 1
        await hub._refresh_positions()
        held.release.set()
        await marked(client, only, page)
        told = [frame["position"] for frame in page.frames if "position" in frame]
        assert told[-1] == hub.positions[only].position, told
        await hub._refresh_positions()
    told = [frame["position"] for frame in page.frames if "position" in frame]
    assert told[-1] == 1 == hub.positions[only].position, told
