"""A listener at the console around closing time and the morning after, through the real app and Chromium.

The console says the line is closed now (above the queue, with when it reopens), and a waiting card says the young
person was told so and where to turn, still in the morning, once the line reopened and the gateway forgot it for the
wait (``closed_notice_for``). Until 2026-12-06 the console said none of it: a listener arriving at 9:00 did not know
who was told what overnight."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.app import TIMERS
from tests.conftest import PARIS, Clock
from tests.e2e.conftest import french_window
from tests.e2e.test_chat import bot_messages, open_chat, walk_to_queue
from tests.e2e.test_console import log_in
from tests.e2e.test_console_drafts import add

pytestmark = pytest.mark.browser

CLOSED_LINE = "fermé pour le moment"


async def fired_until(server: TestServer, page: Page, words: str) -> None:
    """The app's due timers fired until the young person's page shows a bot message with ``words``."""
    await server.app[TIMERS].fire_due()
    await expect(bot_messages(page).last).to_contain_text(words)


async def test_the_console_says_the_line_is_closed_and_who_was_told_overnight(
    desk: BrowserContext, browser: Browser, server: TestServer, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)  # open until 23:00
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone:
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)  # closed
        await fired_until(server, young, CLOSED_LINE)  # the queue's timer tells the closed line, once

        bruno = await log_in(desk, server, "bruno")
        await expect(bruno.locator("#line-closed")).to_be_visible()
        await expect(bruno.locator("#line-closed")).to_contain_text("Ligne fermée maintenant (Écoutant·es du 3018)")
        await expect(bruno.locator("#line-closed")).to_contain_text("réouverture mercredi")
        card = bruno.locator("#waiting .card")
        await expect(card).to_contain_text("ligne fermée et où s'adresser")
        await bruno.get_by_role("button", name="EN", exact=True).click()
        await expect(bruno.locator("#line-closed")).to_contain_text("Line closed now (3018 listeners), reopens")
        await expect(card).to_contain_text("line closed and where to turn")
        await bruno.get_by_role("button", name="FR", exact=True).click()

        clock.now = datetime(2026, 3, 11, 9, 5, tzinfo=PARIS).astimezone(UTC)  # the morning after
        await fired_until(server, young, "a rouvert")  # the gateway forgets the notice for the wait here
        await bruno.reload()  # a listener arriving at 9:05
        await expect(bruno.locator("#connection")).to_have_text("En direct")
        await expect(bruno.locator("#line-closed")).to_be_hidden()
        await expect(card).to_contain_text("ligne fermée et où s'adresser")  # who was told what overnight
        await card.locator(".card-open").click()
        await expect(bruno.locator("#conv-meta")).to_contain_text("ligne fermée et où s'adresser")
