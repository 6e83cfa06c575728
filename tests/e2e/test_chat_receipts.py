"""Delivered and read marks for the web chat, in a real Chromium: the page acknowledges the line's messages once
shown (delivered) and once the young person can see them (read: the tab in front), and the listener's console
shows the marks as it shows a provider's receipts."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, expect

from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser


async def set_hidden(page: Page, hidden: bool) -> None:
    """The young person switches to another tab (or back): what the browser tells the page."""
    await page.evaluate(
        "(hidden) => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


async def test_the_console_shows_a_listener_message_delivered_then_read_on_the_web_chat(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    listener = await log_in(desk, server, "anne")
    await listener.locator("#waiting .card .take").click()
    joined = listener.locator('#transcript .msg[data-author="bot"] .delivery').last
    await expect(joined).to_have_text("lu")  # "a listener joined", seen at once by the young person

    await set_hidden(young, True)
    await listener.locator("#reply").fill("Bonjour, je suis Anne.")
    await listener.locator("#send").click()
    await expect(young.locator('.msg[data-author="listener"]')).to_contain_text("Bonjour, je suis Anne.")
    mark = listener.locator('#transcript .msg[data-author="listener"] .delivery')
    await expect(mark).to_have_text("remis")  # on the page, in a tab behind another
    await expect(mark).to_have_class("delivery delivered")

    await set_hidden(young, False)
    await expect(mark).to_have_text("lu")
    await listener.reload()  # recorded, not only shown
    await expect(listener.locator('#transcript .msg[data-author="listener"] .delivery')).to_have_text("lu")
