"""A realistic console, photographed: three young people (one urgent), a conversation in progress with a note,
one closed; the listener's console on a desktop and a phone, and the supervision board.

Not part of ``make test``: ``make screenshots`` runs it and writes the pictures to ``docs/`` for the README
(``GATEWAY_SCREENSHOTS=docs``; without it, ``pytest -m screenshots`` writes them to a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from tests.conftest import ROOT, Clock
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = [pytest.mark.browser, pytest.mark.screenshots]


def folder(tmp_path: Path) -> Path:
    return ROOT / "docs" if os.environ.get("GATEWAY_SCREENSHOTS") == "docs" else tmp_path


async def young_person(browser: Browser, server: TestServer, *, urgent: bool = False) -> Page:
    context = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    context.set_default_timeout(15_000)
    page = await open_chat(context, server)
    if urgent:
        await page.get_by_role("button", name="Oui, maintenant").click()
        await expect(page.locator("#status-line")).to_contain_text("position")
    else:
        await walk_to_queue(page)
    return page


async def test_console_and_supervision_screenshots(
    browser: Browser, server: TestServer, clock: Clock, tmp_path: Path
) -> None:
    out = folder(tmp_path)
    desk = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="fr-FR")
    desk.set_default_timeout(15_000)
    await add_listeners(server, "anne", supervisor="claire")
    anne = await log_in(desk, server, "anne")

    closed = await young_person(browser, server)
    await expect(anne.locator("#waiting .card")).to_have_count(1)
    await anne.locator("#waiting .card .take").click()
    await anne.get_by_role("button", name="Clôturer").click()
    await anne.get_by_label("Catégorie").select_option("school_bullying")
    await anne.locator("#close-send").click()
    await expect(closed.locator(".ended")).to_be_visible()

    talking = await young_person(browser, server)
    clock.advance(minutes=4)
    await anne.reload()
    await anne.locator("#waiting .card .take").click()
    await type_answer(talking, "Bonjour, ils ont créé un faux compte avec mes photos et ils se moquent de moi")
    reply = anne.locator("#reply")
    await reply.fill("/bonjour")
    await reply.press("Enter")
    await reply.press("Enter")
    await type_answer(talking, "Je sais pas quoi faire, ça dure depuis 2 semaines")
    await reply.fill("/preuves")
    await reply.press("Enter")
    await reply.press("Enter")
    await type_answer(talking, "il m'a dit qu'il a un couteau et qu'il arrive")  # flagged, shown to anne and the board
    await anne.get_by_role("button", name="Note privée").click()
    await reply.fill("Faux compte Instagram : proposer le signalement, vérifier si les parents sont au courant.")
    await reply.press("Enter")
    await anne.get_by_role("button", name="Répondre").click()
    await expect(anne.locator('#transcript .msg[data-author="note"]')).to_have_count(1)

    await young_person(browser, server)
    clock.advance(minutes=7)
    await young_person(browser, server, urgent=True)
    clock.advance(minutes=1)
    await anne.reload()
    await expect(anne.locator("#waiting .card")).to_have_count(2)
    await expect(anne.locator("#transcript .msg").last).to_be_visible()
    await anne.screenshot(path=str(out / "console.png"))

    phone = await browser.new_context(viewport={"width": 390, "height": 800}, locale="fr-FR")
    try:
        mobile = await log_in(phone, server, "anne")
        await expect(mobile.locator("#waiting .card")).to_have_count(2)
        await mobile.screenshot(path=str(out / "console-mobile.png"))
        await mobile.locator("#mine .card-open").click()
        await expect(mobile.locator("#transcript .msg").last).to_be_visible()
        await mobile.screenshot(path=str(out / "console-mobile-conversation.png"))
    finally:
        await phone.close()

    board_context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    try:
        board = await log_in(board_context, server, "claire")
        await board.goto(str(server.make_url("/console/supervision")))
        await expect(board.locator("#live-waiting")).to_have_text("2")
        await expect(board.locator("#total")).to_have_text("4")
        await expect(board.locator("#live-online")).to_have_text("1")  # anne's desk: claire only watches the board
        await expect(board.locator("#diagram img")).to_have_js_property("complete", True)
        await expect(board.locator("#flagged .flagged-conversation")).to_have_count(1)
        await board.screenshot(path=str(out / "supervision.png"), full_page=True)
    finally:
        await board_context.close()
    for name in ("console.png", "console-mobile.png", "console-mobile-conversation.png", "supervision.png"):
        assert (out / name).stat().st_size > 10_000
