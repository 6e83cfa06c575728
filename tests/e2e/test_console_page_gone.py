"""A web chat young person whose page is gone (the tab closed: no socket for 90 s, ``gateway/leaving.py``) is said
so on their card in the console, live, and no longer once they are back on the conversation; taking them is still
possible (they may come back). Until 2026-12-06 only the open conversation's header said it: a listener choosing
from the queue took a card whose page nobody had open any more and wrote into the void. The real app and Chromium."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.app import STORE, TIMERS
from gateway.leaving import GONE_AFTER
from gateway.store import TimerKind
from tests.conftest import Clock
from tests.e2e.channel_support import eventually
from tests.e2e.conftest import french_window
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import log_in
from tests.e2e.test_console_drafts import add

pytestmark = pytest.mark.browser


async def test_a_web_chat_card_says_the_page_is_gone_and_that_it_came_back(
    desk: BrowserContext, browser: Browser, server: TestServer, clock: Clock
) -> None:
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone:
        bruno = await log_in(desk, server, "bruno")
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        card = bruno.locator("#waiting .card")
        await expect(card).to_have_count(1)
        await expect(card).not_to_contain_text("page du chat fermée")
        await young.close()  # the tab closed: the socket goes, the gone timer is armed 90 s on

        async def armed() -> bool:  # the server saw the socket close
            due = await server.app[STORE].due_timers(clock.now + GONE_AFTER)
            return any(t.kind == TimerKind.WEBCHAT_GONE for t in due)

        await eventually(armed)
        clock.advance(seconds=GONE_AFTER.total_seconds() + 1)
        await server.app[TIMERS].fire_due()
        await expect(card.locator(".pill.left")).to_have_text("page du chat fermée")  # live, no reload
        await expect(card.locator(".take")).to_be_visible()  # still to take: they may come back

        back = await phone.new_page()  # the same browser comes back to the conversation
        await back.goto(str(server.make_url("/chat")))
        await expect(card).not_to_contain_text("page du chat fermée")  # live too
