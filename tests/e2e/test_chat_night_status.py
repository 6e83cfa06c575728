"""The web chat's status line while the line is closed, in a real Chromium with the app's clock pinned.

A young person still waiting when the line closes is told by the bot that nobody can answer until it reopens, and
where to turn meanwhile. Until 2026-12-06 the status line under it kept saying "En attente d'un·e écoutant·e —
position 1" all night, as if someone would answer soon. It now says the line is closed, when the listeners are back
and that the conversation keeps its place (from the server's hours, as the console's banner), and the place in line
again once the line opens."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, expect

from gateway.app import TIMERS
from gateway.settings import Settings
from tests.conftest import PARIS, Clock
from tests.e2e.conftest import ServerFactory
from tests.e2e.test_chat import bot_messages, open_chat, type_answer, walk_to_queue
from tests.e2e.test_chat_end import walk_while_closed

pytestmark = __import__("pytest").mark.browser

CLOSED_LINE = "fermé pour le moment"
CLOSED_STATUS = "Ligne fermée — les écoutant·es reprennent demain à 9h · ta conversation garde sa place"
CLOSED_STATUS_EN = "Line closed — listeners are back tomorrow at 9:00 · your conversation keeps its place"


async def closes(server: TestServer, page: Page, clock: Clock) -> None:
    """23:05 in Paris: the line closed at 23:00, and the queue's timer told the young person so."""
    clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)
    await server.app[TIMERS].fire_due()
    await expect(bot_messages(page).last).to_contain_text(CLOSED_LINE)


async def test_the_status_line_says_the_line_is_closed_all_night_then_the_place_again(
    context: BrowserContext, make_server: ServerFactory, settings: Settings, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)  # open until 23:00
    server = await make_server(settings.replace(webchat_position_seconds=0.2))
    page = await open_chat(context, server)
    await walk_to_queue(page)  # "position 1"
    await closes(server, page, clock)
    status = page.locator("#status-line")
    await expect(status).to_have_text(CLOSED_STATUS)
    await page.reload()  # the same after a reload (the session frame)
    await expect(status).to_have_text(CLOSED_STATUS)
    await page.locator("#lang-toggle").click()  # the page's own texts in English
    await expect(status).to_have_text(CLOSED_STATUS_EN)
    await page.locator("#lang-toggle").click()
    await expect(status).to_have_text(CLOSED_STATUS)

    clock.now = datetime(2026, 3, 11, 9, 1, tzinfo=PARIS).astimezone(UTC)  # the line opens: said live
    await expect(status).to_have_text("En attente d'un·e écoutant·e — position 1")


async def test_an_urgent_wait_at_night_promises_no_listener_either(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)
    page = await open_chat(context, server)
    await page.get_by_role("button", name="Oui, maintenant").click()  # in danger now: an urgent hand-off
    status = page.locator("#status-line")
    await expect(status).to_contain_text("position 1")
    await closes(server, page, clock)
    await expect(status).to_have_text(CLOSED_STATUS)
    await type_answer(page, "j'ai peur")
    await expect(page.locator('.msg[data-author="user"]').last).not_to_have_class("pending")
    await expect(status).to_have_text(CLOSED_STATUS)


async def test_a_conversation_begun_at_night_is_never_said_waiting(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 10, 23, 30, tzinfo=PARIS).astimezone(UTC)
    page = await open_chat(context, server)
    await expect(bot_messages(page).filter(has_text=CLOSED_LINE)).to_have_count(1)  # at the greeting
    await walk_while_closed(page)
    await expect(page.locator("#ended")).to_be_visible()  # the closed outcome: ended, the numbers in sight
    await expect(page.locator("#status-line")).to_be_hidden()
