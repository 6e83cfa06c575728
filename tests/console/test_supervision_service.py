"""What the supervision board tells a shift supervisor of the service beneath it (docs/console.md, "Supervision"):
replies that do not go out, through the real app, two instances on one real Redis and the fake Telegram API on
127.0.0.1. The board says the same on either instance: it reads the shared store, not one instance's memory."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import STORE, SUPERVISOR, create_app
from gateway.settings import Settings
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
from tests.conftest import AppFactory, Clock, add_listener, shared_understanding
from tests.console.conftest import other_session
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis

Client = TestClient  # type: ignore[type-arg]
SECRET = "webhook_secret-123"
CHAT = 424242


@pytest.fixture
def redis_settings(settings: Settings, redis_url: str, telegram: FakeTelegramAPI) -> Settings:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return settings.replace(store=redis_url, telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET,
                            telegram_api_url=telegram.url, outbox_alert_seconds=60)  # fmt: skip


async def board(session: aiohttp.ClientSession) -> dict[str, Any]:
    response = await session.get("/api/supervision")
    assert response.status == 200
    return dict(await response.json())


async def test_replies_that_do_not_go_out_are_on_the_board_of_every_instance(
    make_client: AppFactory, redis_settings: Settings, telegram: FakeTelegramAPI, clock: Clock
) -> None:
    """Telegram down: the bot's answer to a young person waits in the outbox. Past the outbox alert's threshold
    (GATEWAY_OUTBOX_ALERT_SECONDS) the board says so on both instances, with how long, and nothing identifying.
    Before, the board showed nothing of it (only a metric and a log line for ops)."""
    one, two = await make_client(redis_settings), await make_client(redis_settings)
    await add_listener(one, "sam", supervisor=True)
    sams = [await other_session(one, "sam"), await other_session(two, "sam")]
    try:
        for sam in sams:  # nothing waits: nothing to say
            assert (await board(sam))["service"]["outbox"] == {"late": False, "oldest_seconds": None,
                                                               "alert_seconds": 60}  # fmt: skip
        telegram.down()
        update = telegram_update(900000001, CHAT, "bonjour")
        response = await one.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
        assert response.status == 200
        store, deadline = one.app[STORE], time.monotonic() + 10
        while await store.outbox_oldest_pending() is None:  # the bot's answer written, not sent
            assert time.monotonic() < deadline, "the bot never answered"
            await asyncio.sleep(0.05)
        for sam in sams:
            outbox = (await board(sam))["service"]["outbox"]
            assert outbox["late"] is False and 0 <= outbox["oldest_seconds"] < 60 and outbox["alert_seconds"] == 60
        clock.advance(seconds=90)
        for sam in sams:
            shown = await board(sam)
            assert shown["service"]["outbox"] == {"late": True, "oldest_seconds": 90, "alert_seconds": 60}
            assert str(CHAT) not in json.dumps(shown)
    finally:
        for sam in sams:
            await sam.close()


async def test_a_worker_failing_in_a_loop_on_one_instance_is_on_the_board_of_every_instance(
    aiohttp_client: Callable[..., Awaitable[Client]], make_client: AppFactory, redis_settings: Settings, clock: Clock
) -> None:
    """A background worker of instance one fails at once each time it starts (a fault the supervisor restarts in a
    loop): /readyz of instance one says 503, and a load balancer sends the supervisor's page to instance two, whose
    board must say it too. Before, only instance one's /readyz and metrics knew; no board said anything."""
    app = await create_app(
        redis_settings, clock=clock, worker_poll_seconds=0.05, **shared_understanding(redis_settings)
    )

    async def broken() -> None:
        raise RuntimeError("a fault of this worker")

    app[SUPERVISOR].add("broken", broken)
    one, two = await aiohttp_client(app), await make_client(redis_settings)
    await add_listener(two, "sam", supervisor=True)
    sam = await other_session(two, "sam")
    try:
        deadline = time.monotonic() + 20
        while (shown := await board(sam))["service"]["workers"] != ["broken"]:  # told by instance one's next beat
            assert time.monotonic() < deadline, shown["service"]
            await asyncio.sleep(0.05)
        ready = await one.get("/readyz")
        assert ready.status == 503 and "broken" in (await ready.json())["workers"]
        assert (await two.get("/readyz")).status == 200  # instance two itself is fine: its board tells of the other
    finally:
        await sam.close()
