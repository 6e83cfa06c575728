"""The supervision page's period figures, in a real Chromium: a young person still waiting when the figures are
drawn (the line closed on them) is counted there, "encore en attente", in French and in English; until 2026-12-05
they were in no figure of the period, only "en attente" on the live board."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser


async def test_a_young_person_still_waiting_is_counted_in_the_figures(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, supervisor="sam")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    figures = board.locator("p.meta", has=board.locator("#total"))
    await expect(board.locator("#total")).to_have_text("1")
    await expect(figures).to_contain_text(
        "0 parties avant d'être prises en charge · 0 parties après un retour en file,"
        " avant d'être reprises · 1 encore en attente."
    )
    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(figures).to_contain_text(
        "0 left before being answered · 0 left after going back to a queue, before being taken again · 1 still waiting."
    )
