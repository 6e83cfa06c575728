"""The console on a narrow screen: a listener's phone at 320 px, or a desktop window at 200 % zoom and 320 CSS px
wide (WCAG 1.4.10, reflow): everything in the width, nothing to scroll sideways to read or reach."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import french_window
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser

OUTSIDE = """() => Array.from(document.querySelectorAll("button, a, select, textarea, .msg"))
  .filter((node) => { const box = node.getBoundingClientRect(); return box.width > 0 && box.right > innerWidth + 1; })
  .map((node) => (node.id || node.className) + " ends at " + Math.round(node.getBoundingClientRect().right))"""


async def outside(page: Page) -> dict[str, Any]:
    await page.evaluate("() => scrollTo(0, 0)")
    return {
        "page": await page.evaluate("() => document.documentElement.scrollWidth"),
        "outside": await page.evaluate(OUTSIDE),
    }


async def test_at_320_px_the_console_needs_no_sideways_scrolling(
    context: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """Found at 320 px (2026-12, a review for accessibility): the top bar stayed on one line and pushed "Se
    déconnecter" and FR / EN out of the screen, and the canned responses' list, as wide as its longest title,
    made the conversation 360 px wide: each message's lines ran past the screen's edge (read by scrolling
    sideways, line after line) and "Envoyer" was cut in half."""
    await add_listeners(server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    async with french_window(browser, 320, 568) as phone:
        listener = await log_in(phone, server, "anne")
        assert await outside(listener) == {"page": 320, "outside": []}
        await listener.locator("#waiting .card .take").click()
        await expect(listener.locator("#composer")).to_have_attribute("data-mode", "reply")
        await expect(listener.locator('#transcript .msg[data-author="user"]').first).to_be_visible()
        assert await outside(listener) == {"page": 320, "outside": []}
