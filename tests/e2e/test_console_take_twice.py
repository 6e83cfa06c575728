"""A listener who double-clicks "Prendre" (or whose take is sent again) holds the conversation and is told so: never
that a colleague took it. The second take, arriving once the first made them its holder, is answered as the take
it repeats (the server: the conversation they hold, 200), not refused as a colleague's ("taken")."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Route, expect

from tests.e2e.test_console_take import anne_and_a_phone, queue_young

pytestmark = pytest.mark.browser


async def test_a_take_sent_twice_says_the_conversation_is_ones_own(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    async with anne_and_a_phone(desk, browser, server) as (listener, phone):
        await queue_young(phone, server)
        answers: list[int] = []
        both = asyncio.Event()

        async def in_order(route: Route) -> None:  # the second click's take reaches the server after the first's
            response = await route.fetch()
            answers.append(response.status)
            await route.fulfill(response=response)
            if len(answers) == 2:
                both.set()

        await listener.route("**/api/conversations/*/take", in_order)
        await listener.locator("#waiting .card .take").dblclick()
        await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
        await asyncio.wait_for(both.wait(), 30)  # both takes answered
        await expect(listener.locator("#toast")).not_to_contain_text("autre écoutant")
        assert answers == [200, 200]
        await expect(listener.locator("#gone")).to_be_hidden()
        await expect(listener.locator("#mine .card")).to_have_count(1)
