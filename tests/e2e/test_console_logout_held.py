"""Logging out with conversations held warns first, in the page: they go back to the queue (nobody else may answer
them while held), each young person told their listener left, and, the line closed now, nobody answers them before
it reopens. Until 2026-12-06 only unsent drafts were warned of: a listener logging out at 23:05 with a conversation
in hand sent it, without a word of warning, back to a closed queue. The real app and Chromium, the clock pinned."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from tests.conftest import PARIS, Clock
from tests.e2e.conftest import french_window
from tests.e2e.test_chat import bot_messages, open_chat, walk_to_queue
from tests.e2e.test_console import log_in
from tests.e2e.test_console_drafts import add

pytestmark = pytest.mark.browser


async def test_logging_out_after_closing_time_warns_that_held_conversations_go_back_to_a_closed_queue(
    desk: BrowserContext, browser: Browser, server: TestServer, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)  # open until 23:00
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone:
        bruno = await log_in(desk, server, "bruno")
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        await bruno.locator("#waiting .card .take").click()
        await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")
        await expect(bruno.locator("#mine .card")).to_have_count(1)
        clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)  # the line closed meanwhile

        dialog = bruno.locator("#logout-dialog")
        await bruno.get_by_role("button", name="Se déconnecter").click()  # no draft: it asks all the same
        await expect(dialog).to_contain_text("La conversation que tu tiens retournera dans la file")
        await expect(dialog).to_contain_text("La ligne est fermée maintenant")
        await expect(dialog).not_to_contain_text("brouillon")
        await expect(dialog.get_by_role("button", name="Annuler")).to_be_focused()
        await bruno.keyboard.press("Escape")  # cancelled: still logged in, still holding it
        await expect(dialog).to_be_hidden()
        await expect(bruno.locator("#mine .card")).to_have_count(1)

        await bruno.get_by_role("button", name="EN", exact=True).click()  # English second
        await bruno.get_by_role("button", name="Log out").click()
        await expect(dialog).to_contain_text("The conversation you hold will go back to the queue")
        await expect(dialog).to_contain_text("The line is closed now")
        await dialog.get_by_role("button", name="Log out and hand them back").click()
        await expect(bruno).to_have_url(str(server.make_url("/console/login")))
        await expect(bot_messages(young).last).to_contain_text("fermé")  # told, and where to turn


async def test_logging_out_says_the_conversations_are_kept_only_when_logged_in_elsewhere(
    desk: BrowserContext, browser: Browser, server: TestServer, clock: Clock
) -> None:
    """The dialog says the held conversation goes back to the queue, without "if you stay logged in elsewhere you keep
    them", when this is the listener's only session; logged in in another browser, it says they keep it (and answer it
    there), not that it goes back, and the logout keeps it. Until 2026-12-06 it gave both as general advice."""
    clock.now = datetime(2026, 3, 10, 15, 0, tzinfo=PARIS).astimezone(UTC)
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone, french_window(browser, 1280, 800) as other_desk:
        bruno = await log_in(desk, server, "bruno")
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        await bruno.locator("#waiting .card .take").click()
        await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")

        dialog = bruno.locator("#logout-dialog")
        await bruno.get_by_role("button", name="Se déconnecter").click()
        await expect(dialog).to_contain_text("La conversation que tu tiens retournera dans la file")
        await expect(dialog).not_to_contain_text("autre navigateur")  # there is none: it would be false comfort
        await bruno.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()

        elsewhere = await log_in(other_desk, server, "bruno")  # a second browser: another session
        await expect(elsewhere.locator("#mine .card")).to_have_count(1)
        await bruno.get_by_role("button", name="Se déconnecter").click()
        await expect(dialog).to_contain_text("Tu es connecté·e dans un autre navigateur : tu gardes la conversation")
        await expect(dialog).not_to_contain_text("retournera dans la file")
        await bruno.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await bruno.get_by_role("button", name="EN", exact=True).click()  # English second
        await bruno.get_by_role("button", name="Log out").click()
        await expect(dialog).to_contain_text("You are logged in in another browser: you keep the conversation")
        await expect(dialog).not_to_contain_text("will go back to the queue")
        await dialog.get_by_role("button", name="Log out", exact=True).click()
        await expect(bruno).to_have_url(str(server.make_url("/console/login")))
        await elsewhere.reload()
        await expect(elsewhere.locator("#mine .card")).to_have_count(1)  # kept, as the dialog said
        await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")  # told nothing
