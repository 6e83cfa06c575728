"""Blocking from the console and lifting from the supervision page, in a real Chromium: the young person gets
the neutral notice with the emergency numbers, the supervisor sees the block, the flood and the audit log."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser


async def test_a_listener_blocks_a_sender_and_a_supervisor_lifts_the_block(
    context: BrowserContext, desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne", supervisor="sam")
    young = await open_chat(context, server)
    await walk_to_queue(young)

    anne = await log_in(desk, server, "anne")
    await anne.locator("#waiting .card .take").click()
    await anne.get_by_role("button", name="Bloquer").click()
    await anne.get_by_label("Durée").select_option("30d")
    await anne.get_by_label("Raison (pour les superviseur·es)").fill("insultes répétées")
    await anne.locator("#block-send").click()
    await expect(anne.locator("#toast")).to_have_text("Expéditeur bloqué")

    await type_answer(young, "encore moi")
    notice = young.locator('.msg[data-author="bot"] .text').last
    await expect(notice).to_contain_text("ne peut pas recevoir tes messages")
    await expect(notice).to_contain_text("3114")
    await expect(notice).to_contain_text("112")

    supervisor = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    board = await log_in(supervisor, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    row = board.locator("#blocks tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("insultes répétées")
    await expect(row).to_contain_text("anne")
    await expect(board.locator("#audit")).to_contain_text("blocage")
    await row.get_by_role("button", name="Lever").click()
    await expect(board.locator("#blocks tbody tr")).to_contain_text("Rien pour l'instant.")
    await expect(board.locator("#audit li").first).to_contain_text("blocage levé")
    await supervisor.close()
