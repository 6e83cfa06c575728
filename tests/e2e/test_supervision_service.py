"""What the supervision page tells a shift supervisor, in a real Chromium, when things go wrong beneath the board
(docs/console.md, "Supervision"): replies that do not go out (Telegram's fake API down), and a store that stops
answering (a real redis-server stopped, then started again), in French and in English, never an identifier."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE, SUPERVISOR, create_app
from gateway.settings import Settings
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
from tests.conftest import Clock, shared_understanding
from tests.e2e.channel_support import eventually
from tests.e2e.conftest import ServerFactory
from tests.e2e.test_console import add_listeners, log_in
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # fixture used below

pytestmark = pytest.mark.browser

SECRET = "webhook_secret-123"
CHAT = 424242


async def test_replies_that_do_not_go_out_are_told_on_the_board(
    desk: BrowserContext, make_server: ServerFactory, settings: Settings, telegram: FakeTelegramAPI, clock: Clock
) -> None:
    """Telegram down, the bot's answer waits in the outbox: past GATEWAY_OUTBOX_ALERT_SECONDS the board says that
    replies are not going out and since when, in French then in English; before, it showed nothing of it."""
    server = await make_server(settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET,
                                                telegram_api_url=telegram.url, outbox_alert_seconds=60))  # fmt: skip
    await add_listeners(server, supervisor="sam")
    telegram.down()
    update = json.dumps(telegram_update(900000001, CHAT, "bonjour"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/webhooks/telegram"), headers=telegram_headers(SECRET), data=update) as response,
    ):
        assert response.status == 200
    store = server.app[STORE]

    async def pending() -> bool:
        return await store.outbox_oldest_pending() is not None

    await eventually(pending)
    clock.advance(seconds=150)
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    service = board.locator("#service")
    await expect(service).to_contain_text("Des réponses ne partent pas : la plus ancienne attend depuis 2 min")
    await expect(board.locator("#tile-outbox")).to_have_class("tile alert")
    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(service).to_contain_text("Replies are not going out: the oldest has waited 2 min")
    assert str(CHAT) not in await service.inner_text()


@pytest.mark.redis
async def test_a_store_that_stops_answering_is_told_on_the_board(
    desk: BrowserContext, make_server: ServerFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    """Redis stopped under an open board: the page says it cannot be updated and that what it shows dates from
    before (before, it kept showing the last figures as live, saying nothing); Redis back, the notice goes."""
    server = await make_server(settings.replace(store=own_redis.url))
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#connection")).to_have_text("En direct")
    await expect(board.locator("#live-waiting")).to_have_text("0")
    service = board.locator("#service")
    await expect(service).to_be_hidden()
    own_redis.stop()
    try:  # at the latest the board's own reload every 30 s; a failed read of the figures or an event sooner
        await expect(service).to_contain_text(
            "Le tableau n'est plus à jour : le serveur ne peut pas lire ses données", timeout=40_000
        )
        await expect(board.locator(".tiles")).to_have_class("tiles stale")
        await board.get_by_role("button", name="EN", exact=True).click()
        await expect(service).to_contain_text("The board is out of date: the server cannot read its data")
    finally:
        own_redis.start()
    await expect(service).to_be_hidden(timeout=60_000)
    await expect(board.locator(".tiles")).to_have_class("tiles")


async def test_an_instance_that_stops_answering_is_told_on_the_board(
    desk: BrowserContext, make_server: ServerFactory, settings: Settings
) -> None:
    """The instance the page was served by goes away (a crash, a machine lost): the board says it is out of date
    because the server does not answer, instead of showing its last figures as live."""
    server = await make_server(settings)
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#live-waiting")).to_have_text("0")
    await server.close()
    await expect(board.locator("#service")).to_contain_text("Le tableau n'est plus à jour : le serveur ne répond pas")
    await expect(board.locator(".tiles")).to_have_class("tiles stale")


async def test_a_worker_failing_in_a_loop_is_told_on_the_board(
    desk: BrowserContext, aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, clock: Clock
) -> None:
    """A background worker the supervisor restarts in a loop (it fails at once each time): the board says that a
    task of the service keeps failing, by its name, in French then in English (the server side, across instances:
    tests/console/test_supervision_service.py); before, only /readyz and the metrics said it."""
    app = await create_app(settings, clock=clock, worker_poll_seconds=0.05, **shared_understanding(settings))

    async def broken() -> None:
        raise RuntimeError("a fault of this worker")

    app[SUPERVISOR].add("broken", broken)
    server = await aiohttp_server(app)
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    service = board.locator("#service")
    await expect(service).to_contain_text("Une tâche de fond du service est arrêtée ou échoue en boucle (broken)")
    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(service).to_contain_text("A background task of the service is stopped or keeps failing (broken)")
