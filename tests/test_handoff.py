"""Hand-off: the young person is told their position and an honest wait estimate."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.console.auth import hash_password
from gateway.store import Listener
from tests.conftest import PASSWORD, Clock, login
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, say

Client = TestClient  # type: ignore[type-arg]


async def queued_message(client: Client, person: str) -> str:
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = []
        for number, answer in enumerate(WALK_TO_QUEUE):
            frames += await say(ws, f"{person}-{number}", answer)
    return next(t for t in bot_texts(frames) if "position" in t)


async def test_without_recent_figures_the_flow_average_is_used(client: Client) -> None:
    first = await queued_message(client, "a")
    assert "position 1" in first and "environ 12 minutes" in first  # average_minutes: 12, one listener assumed
    second = await queued_message(client, "b")
    assert "position 2" in second and "environ 24 minutes" in second


async def test_the_pace_of_the_last_hour_replaces_the_average(client: Client, clock: Clock) -> None:
    await client.app[STORE].add_listener(Listener("anne", hash_password(PASSWORD), capacity=5))
    await login(client, "anne")
    for person in ("a", "b", "c"):
        await queued_message(client, person)
        waiting = (await (await client.get("/api/queue")).json())["waiting"]
        assert (await client.post(f"/api/conversations/{waiting[0]['id']}/take")).status == 200
        clock.advance(minutes=10)
    message = await queued_message(client, "d")
    assert "position 1" in message and "environ 20 minutes" in message  # 3 takes in the last hour: one per 20 min

    clock.advance(hours=2)  # the pace is from too long ago: back to the flow's figure
    later = await queued_message(client, "e")
    assert "position 2" in later and "environ 24 minutes" in later
