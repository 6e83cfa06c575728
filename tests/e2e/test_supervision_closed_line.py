"""A supervisor watching the board around closing time and the morning after, through the real app and Chromium.

The board says the line is closed now (with when it reopens), as the listeners' console does, and how many young
people waiting were told so and where to turn meanwhile, still in the morning once the line reopened: live, without a
reload, at the closing time and at the closed-line notice. Until 2026-12-06 the board said none of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from tests.conftest import PARIS, Clock
from tests.e2e.conftest import french_window
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import log_in
from tests.e2e.test_console_closed_line import CLOSED_LINE, fired_until
from tests.e2e.test_console_drafts import add

pytestmark = pytest.mark.browser


async def test_the_board_says_the_line_is_closed_and_how_many_waiting_were_told(
    desk: BrowserContext, browser: Browser, server: TestServer, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)  # open until 23:00
    await add(server, "sam", supervisor=True)
    async with french_window(browser, 390, 780) as phone:
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        clock.now = datetime(2026, 3, 10, 22, 59, 58, tzinfo=PARIS).astimezone(UTC)  # two seconds before closing
        sam = await log_in(desk, server, "sam")
        await sam.get_by_role("link", name="Supervision").click()
        board = sam.locator("#board-closed")
        await expect(sam.locator("#live-waiting")).to_have_text("1")
        await expect(sam.locator("#live-told")).to_have_text("0")
        await expect(board).to_be_hidden()

        clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)  # closed: the board reads it again
        await expect(board).to_be_visible()
        await expect(board).to_contain_text("Ligne fermée maintenant (Écoutant·es du 3018)")
        await expect(board).to_contain_text("réouverture mercredi")
        await fired_until(server, young, CLOSED_LINE)  # the queue's timer tells the closed line: the count, live
        await expect(sam.locator("#live-told")).to_have_text("1")
        await sam.get_by_role("button", name="EN", exact=True).click()
        await expect(board).to_contain_text("Line closed now (3018 listeners), reopens")
        await expect(sam.locator("#tile-told")).to_contain_text("told the line is closed")
        await sam.get_by_role("button", name="FR", exact=True).click()

        clock.now = datetime(2026, 3, 11, 9, 5, tzinfo=PARIS).astimezone(UTC)  # the morning after
        await fired_until(server, young, "a rouvert")
        await sam.reload()
        await expect(sam.locator("#connection")).to_have_text("En direct")
        await expect(sam.locator("#live-waiting")).to_have_text("1")
        await expect(board).to_be_hidden()
        await expect(sam.locator("#live-told")).to_have_text("1")  # who was told overnight, still
