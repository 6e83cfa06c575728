"""The supervision page's period figures, in a real Chromium: a young person still waiting when the figures are
drawn (the line closed on them) is counted there, "encore en attente", in French and in English; until 2026-12-05
they were in no figure of the period, only "en attente" on the live board."""

from __future__ import annotations

import re

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


async def test_a_period_asked_without_an_answer_says_so(desk: BrowserContext, server: TestServer) -> None:
    """ "Afficher" whose request gets no answer (the connection dropped) says "Pas de réponse du serveur" under the
    period, and the next answer clears it; until 2026-12-06 nothing was said, the figures of the period before
    still shown as if they were the ones asked."""
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#total")).to_have_text("0")
    said = board.locator("#period-error")
    await board.route("**/api/stats?*", lambda route: route.abort())
    await board.get_by_role("button", name="Afficher").click()
    await expect(said).to_have_text(re.compile(r"^Pas de réponse du serveur .*ceux d.avant"))
    await board.unroute("**/api/stats?*")
    await board.get_by_role("button", name="Afficher").click()
    await expect(said).to_have_text("")


async def test_a_period_refused_says_what_a_period_may_be(desk: BrowserContext, server: TestServer) -> None:
    """A year and more asked ("Afficher" from 2025-01-01 to 2026-06-30) is refused 400: the board says why in its
    words, the limits the server gave (at most 366 days, the end after the start, years 2000 to 2999); until
    2026-12-06 "Période invalide." alone (the day before, the server's English), a supervisor left guessing."""
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#total")).to_have_text("0")
    await board.locator("#from").fill("2025-01-01")
    await board.locator("#to").fill("2026-06-30")
    await board.get_by_role("button", name="Afficher").click()
    said = board.locator("#period-error")
    await expect(said).to_have_text(re.compile(r"^Période invalide : .*366 jours.*2000 et 2999"))
    await board.get_by_role("button", name="EN", exact=True).click()
    await board.get_by_role("button", name="Show").click()
    await expect(said).to_have_text(re.compile(r"^Invalid period: .*366 days.*2000 and 2999"))
