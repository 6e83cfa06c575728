"""A young person who writes their problem at the first question (is it urgent?) instead of pressing Oui/Non: the
bot thanks them, keeps it, asks the danger question again with its buttons, and never asks the topic nor "what is
happening" (the story is its answer); the listener's card says what was kept and how.

Found by an explorer (2026-12): "on a piraté mon compte insta…" at the danger question got "je n'ai pas bien
compris", and the topic question came later. Chromium on the real app (the embedded model the tests share)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.store import Listener
from tests.conftest import password_hash
from tests.e2e.test_chat import bot_messages, open_chat, type_answer
from tests.e2e.test_console import log_in

pytestmark = pytest.mark.browser


async def test_a_story_at_the_danger_question_is_kept_and_the_question_asked_again(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    page = await open_chat(context, server)
    await type_answer(page, "on a piraté mon compte insta et il poste des trucs à ma place")

    await expect(bot_messages(page).nth(-2)).to_contain_text("Merci de me l'avoir dit")
    await expect(bot_messages(page).last).to_contain_text("es-tu en danger en ce moment")
    await expect(page.get_by_role("button", name="Non", exact=True)).to_be_visible()  # its buttons, again
    await expect(page.locator('.msg[data-author="bot"]', has_text="pas bien compris")).to_have_count(0)

    await page.get_by_role("button", name="Non", exact=True).click()
    await page.get_by_role("button", name="Français").click()
    await expect(bot_messages(page).last).to_contain_text("âge")
    await type_answer(page, "14")
    await page.get_by_role("button", name="Pour moi").click()
    await expect(page.locator("#status-line")).to_contain_text("position 1")  # straight to the queue
    for asked in ("Qu'est-ce qui se passe", "quelques mots"):  # the topic and the story: told already
        await expect(page.locator('.msg[data-author="bot"]', has_text=asked)).to_have_count(0)

    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=2))
    listener = await log_in(desk, server, "anne")
    card = listener.locator("#waiting .card")
    await expect(card).to_contain_text("Sujet : Compte piraté, usurpation (message précédent, mot-clé « pirate »)")
