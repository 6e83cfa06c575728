"""A listener who double-clicks "Prendre" (or whose take is sent again) holds the conversation and is told so: never
that a colleague took it. The second take, arriving once the first made them its holder, is answered as the take
it repeats (the server: the conversation they hold, 200), not refused as a colleague's ("taken")."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Route, expect

from gateway.app import STORE
from gateway.console.auth import hash_password
from gateway.store import Listener
from tests.conftest import PASSWORD
from tests.e2e.test_console import log_in
from tests.e2e.test_console_take import queue_young

pytestmark = pytest.mark.browser


async def test_a_take_sent_twice_says_the_conversation_is_ones_own(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await server.app[STORE].add_listener(Listener("anne", hash_password(PASSWORD), capacity=3))
    listener = await log_in(desk, server, "anne")
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    try:
        await queue_young(phone, server)
        answers: list[int] = []

        async def in_order(route: Route) -> None:  # the second click's take reaches the server after the first's
            response = await route.fetch()
            answers.append(response.status)
            await route.fulfill(response=response)

        await listener.route("**/api/conversations/*/take", in_order)
        await listener.locator("#waiting .card .take").dblclick()
        await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
        for _ in range(100):  # both takes answered
            if len(answers) == 2:
                break
            await listener.wait_for_timeout(100)
        await expect(listener.locator("#toast")).not_to_contain_text("autre écoutant")
        assert answers == [200, 200]
        await expect(listener.locator("#gone")).to_be_hidden()
        await expect(listener.locator("#mine .card")).to_have_count(1)
    finally:
        await phone.close()
