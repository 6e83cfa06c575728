"""Hand-off: the young person is told their position and an honest wait estimate."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Priority
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.store import Listener
from tests.conftest import AppFactory, Clock, login, password_hash
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, receive_until, say

Client = TestClient  # type: ignore[type-arg]


async def queued_message(client: Client, person: str) -> str:
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = []
        for number, answer in enumerate(WALK_TO_QUEUE):
            frames += await say(ws, f"{person}-{number}", answer)
        # the acknowledgement may overtake the replies (they come through the store's events): wait for the queue's
        if not any("position" in text for text in bot_texts(frames)):
            frames += await receive_until(ws, lambda f: any("position" in text for text in bot_texts([f])))
    return next(t for t in bot_texts(frames) if "position" in t)


@contextlib.asynccontextmanager
async def listener_online(client: Client) -> AsyncIterator[None]:
    """Anne logged in with the console open (its live socket is what counts her online)."""
    await client.app[STORE].add_listener(Listener("anne", password_hash(), capacity=5))
    await login(client, "anne")
    async with client.ws_connect("/api/events") as events:
        await events.receive_json(timeout=10)  # hello: counted from here
        yield


async def test_without_recent_figures_the_flow_average_is_used(client: Client) -> None:
    async with listener_online(client):
        first = await queued_message(client, "a")
        assert "position 1" in first and "environ 12 minutes" in first  # average_minutes: 12, one listener online
        second = await queued_message(client, "b")
        assert "position 2" in second and "environ 24 minutes" in second


async def test_nobody_online_is_said_instead_of_a_wait(client: Client) -> None:
    message = await queued_message(client, "a")
    assert "position 1" in message and "Aucun·e écoutant·e n'est connecté·e" in message
    assert "minutes" not in message and "119" in message and "3114" in message and "17" in message


async def test_an_urgent_wait_always_comes_with_the_emergency_numbers(client: Client) -> None:
    """The danger route refers to the emergency partner itself (given, not repeated); an urgent conversation a
    listener transfers back to a queue gets them with its new wait."""
    async with listener_online(client):
        await queued_message(client, "a")
        waiting = (await (await client.get("/api/queue")).json())["waiting"]
        conversation = waiting[0]["id"]
        assert (await client.post(f"/api/conversations/{conversation}/take", json={})).status == 200
        store = client.app[STORE]
        record = await store.get_conversation(conversation)
        assert record is not None
        record.priority = Priority.URGENT
        await store.save_conversation(record)
        moved = await client.post(f"/api/conversations/{conversation}/transfer", json={"queue": "listeners"})
        assert moved.status == 200
        transcript = await store.transcript(conversation)
        last = [e.text for e in transcript if e.author.value == "bot"][-2:]
        assert "position 1" in last[0] and "environ 12 minutes" in last[0]
        assert "appelle le 17 (police) ou le 112" in last[1] and "SMS au 114" in last[1]


async def test_the_pace_of_the_last_hour_replaces_the_average(client: Client, clock: Clock) -> None:
    async with listener_online(client):
        for person in ("a", "b", "c"):
            await queued_message(client, person)
            waiting = (await (await client.get("/api/queue")).json())["waiting"]
            assert (await client.post(f"/api/conversations/{waiting[0]['id']}/take", json={})).status == 200
            clock.advance(minutes=10)
        message = await queued_message(client, "d")
        assert "position 1" in message and "environ 20 minutes" in message  # 3 takes in the last hour: one per 20 min

        clock.advance(hours=2)  # the pace is from too long ago: back to the flow's figure
        later = await queued_message(client, "e")
        assert "position 2" in later and "environ 24 minutes" in later


async def test_the_dev_setting_opens_every_queue_at_night(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    clock.advance(hours=9, minutes=30)  # 23:30 in Paris: the line is closed
    night = await make_client(settings)
    assert "fermé" in await queued_or_closed(night, "a")
    trying = await make_client(settings.replace(dev_always_open=1))
    message = await queued_or_closed(trying, "b")
    assert "position 1" in message and "fermé" not in message


async def queued_or_closed(client: Client, person: str) -> str:
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = []
        for number, answer in enumerate(WALK_TO_QUEUE):
            frames += await say(ws, f"{person}-{number}", answer)
        # the acknowledgement may overtake the replies (they come through the store's events): wait for the last
        if not any(_final(text) for text in bot_texts(frames)):
            frames += await receive_until(ws, lambda f: any(_final(text) for text in bot_texts([f])))
    return next(text for text in reversed(bot_texts(frames)) if _final(text))


def _final(text: str) -> bool:
    return "position" in text or "fermé" in text


def test_the_dev_setting_is_off_unless_set_and_checked() -> None:
    assert Settings.from_env({}, env_file=None).dev_always_open == 0
    assert Settings.from_env({"GATEWAY_DEV_ALWAYS_OPEN": "1"}, env_file=None).dev_always_open == 1
    with pytest.raises(ConfigError, match="GATEWAY_DEV_ALWAYS_OPEN"):
        Settings.from_env({"GATEWAY_DEV_ALWAYS_OPEN": "yes"}, env_file=None)
    with pytest.raises(ConfigError, match="GATEWAY_DEV_ALWAYS_OPEN"):
        Settings.from_env({"GATEWAY_DEV_ALWAYS_OPEN": "2"}, env_file=None)
