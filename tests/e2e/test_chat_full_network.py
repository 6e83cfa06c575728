"""The web chat in a real Chromium behind a network at its cap: the page shows the calm notice, and a young person
who then writes they are in danger is not sent away (``Gate.new_chat``, docs/security.md "Shared addresses")."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Priority
from gateway.settings import Settings
from tests.e2e.conftest import ServerFactory, french_window
from tests.e2e.test_chat import bot_messages, open_chat, type_answer

pytestmark = __import__("pytest").mark.browser


async def test_a_pupil_behind_a_full_network_who_writes_danger_reaches_the_queue(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    await open_chat(context, server)  # a classmate's conversation: the school's address is at its cap
    async with french_window(browser, 390, 780) as phone:
        page = await phone.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")  # the notice, with the emergency numbers
        await type_answer(page, "je veux mourir")
        await expect(page.locator("#status-line")).to_contain_text("position 1")
        await expect(page.locator('.msg[data-author="user"]')).to_have_count(1)  # shown once, not pending
        await expect(page.locator(".msg.pending")).to_have_count(0)
        # typing before any session sent "typing" frames the server refused ("send hello first"), each said to the
        # young person as "Ce message n'a pas pu être envoyé." (a review of chat.js, 2026-12-05): none now
        await expect(page.locator('.msg[data-author="system"]')).to_have_count(0)
    waiting = await server.app[STORE].waiting()
    assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]
