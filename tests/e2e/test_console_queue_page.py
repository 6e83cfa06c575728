"""A long queue in the console: the first ``QUEUE_PAGE`` cards drawn, the count of all who wait in the heading and
the page's title, the others said below the cards, and an arrival past the page still heard (its toast). Since
2026-12-07 ``GET /api/queue`` sends the first page only (``tests/console/test_queue_page.py``). A card a take pulls
onto the page is no arrival: no beep, no toast on any console (until 2026-12-07 (evening) every take of a long
queue sounded "Nouvelle conversation en attente" everywhere, nobody new arrived)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.console.api import QUEUE_PAGE
from gateway.conversation import Conversation, Priority, Status
from gateway.events import QueueChanged
from gateway.messages import ChannelName
from gateway.store import Store
from tests.e2e.test_console import PASSWORD, add_listeners, log_in

pytestmark = pytest.mark.browser


async def waiting(store: Store, n: int) -> None:
    at = datetime.now(UTC) - timedelta(minutes=200 - n)
    await store.save_conversation(Conversation(
        id=f"c{n:04d}", channel=ChannelName.WEBCHAT, sender=f"s{n}", pseudonym=f"Loutre-{n}", created_at=at,
        updated_at=at, status=Status.QUEUED, queue="listeners", queued_at=at, waiting_since=at,
    ))  # fmt: skip
    await store.enqueue(f"c{n:04d}", "listeners", Priority.NORMAL, at)


async def test_a_long_queue_shows_its_first_page_counts_them_all_and_an_arrival_past_it_is_heard(
    desk: BrowserContext, server: TestServer
) -> None:
    store: Store = server.app[STORE]
    for n in range(QUEUE_PAGE + 5):
        await waiting(store, n)
    await add_listeners(server, "anne")
    anne = await log_in(desk, server, "anne")
    await expect(anne.locator("#waiting .card")).to_have_count(QUEUE_PAGE)
    await expect(anne.locator("#waiting-count")).to_have_text(str(QUEUE_PAGE + 5))
    await expect(anne.locator("#waiting-more")).to_contain_text("Et 5 autres en attente")
    assert f"({QUEUE_PAGE + 5})" in await anne.title()

    await waiting(store, QUEUE_PAGE + 5)  # the last in line, past the page
    await store.publish(QueueChanged())
    await expect(anne.locator("#waiting-count")).to_have_text(str(QUEUE_PAGE + 6))
    await expect(anne.locator("#waiting-more")).to_contain_text("Et 6 autres en attente")
    await expect(anne.locator("#toast")).to_have_text("Nouvelle conversation en attente")
    await expect(anne.locator("#waiting .card")).to_have_count(QUEUE_PAGE)


BEEPS = "() => { window.beeps = 0; var beep = HG.beep; HG.beep = function (u) { window.beeps += 1; return beep(u); }; }"


async def test_a_card_a_take_pulls_onto_the_page_is_no_arrival(desk: BrowserContext, server: TestServer) -> None:
    """105 wait; bob takes the first: card 101 moves onto anne's page. Her console neither beeps nor says "Nouvelle
    conversation en attente" (before: one beep and the toast for each take); a real arrival after it still does."""
    store: Store = server.app[STORE]
    for n in range(QUEUE_PAGE + 5):
        await waiting(store, n)
    await add_listeners(server, "anne", "bob")
    anne = await log_in(desk, server, "anne")
    await expect(anne.locator("#waiting .card")).to_have_count(QUEUE_PAGE)
    await anne.evaluate(BEEPS)  # counts the beeps the console plays (each still played)
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as bob:
        assert (await bob.post("/api/session", json={"name": "bob", "password": PASSWORD})).status == 200
        for n in range(2):  # two takes, each pulling one card onto the page
            assert (await bob.post(f"/api/conversations/c{n:04d}/take", json={})).status == 200
            await expect(anne.locator("#waiting-count")).to_have_text(str(QUEUE_PAGE + 4 - n))
            await expect(anne.locator("#waiting .card", has_text=f"Loutre-{QUEUE_PAGE + n}")).to_have_count(1)
    assert await anne.evaluate("window.beeps") == 0, "a card moved onto the page sounded as an arrival"
    await expect(anne.locator("#toast")).not_to_have_text("Nouvelle conversation en attente")

    await waiting(store, QUEUE_PAGE + 5)  # a real arrival, past the page
    await store.publish(QueueChanged())
    await expect(anne.locator("#toast")).to_have_text("Nouvelle conversation en attente")
    assert await anne.evaluate("window.beeps") == 1
