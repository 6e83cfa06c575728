"""The web chat's language in a real Chromium: a browser in English, whose page has never chosen one, opens the chat
in English (the page's own texts and the bot's greeting), as the widget's launcher and the console already are."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.e2e.test_chat import bot_messages, type_answer

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("locale", "lang", "title", "greeting"), [
    ("en-GB", "en", "Need to talk?", "Hello, this is 3018"),
    ("fr-FR", "fr", "Besoin de parler ?", "Bonjour, ici le 3018"),
    ("es-ES", "fr", "Besoin de parler ?", "Bonjour, ici le 3018"),  # a language the line does not speak: the first
])  # fmt: skip
async def test_a_first_visit_opens_the_chat_in_the_browser_s_language(
    browser: Browser, server: TestServer, locale: str, lang: str, title: str, greeting: str
) -> None:
    context = await browser.new_context(locale=locale)
    try:
        page = await context.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).first).to_contain_text(greeting)
        await expect(page.locator("h1.title")).to_have_text(title)
        assert await page.evaluate("document.documentElement.lang") == lang
    finally:
        await context.close()


async def test_answering_english_to_the_bot_turns_the_page_s_own_texts_english(
    browser: Browser, server: TestServer
) -> None:
    """A French page, the young person answers "English" to the bot's language question: the bot goes on in English,
    and the page's quick exit, title and hint follow at once (before, they stayed French until the hand-off's status
    frame, while the English greeting named a "Quick exit" the page called "Sortie rapide")."""
    context = await browser.new_context(locale="fr-FR")
    try:
        page = await context.new_page()
        await page.goto(str(server.make_url("/chat")))
        await page.get_by_role("button", name="Non", exact=True).click()  # not in danger now: the language question
        await page.get_by_role("button", name="English", exact=True).click()
        await expect(bot_messages(page).last).to_contain_text("How old are you?")
        await expect(page.get_by_role("button", name="Quick exit")).to_be_visible()
        await expect(page.locator("h1.title")).to_have_text("Need to talk?")
    finally:
        await context.close()


@pytest.mark.parametrize("locale", ["es-ES", "ar-MA"])
async def test_a_browser_in_another_language_lets_english_words_turn_the_bot_english(
    browser: Browser, server: TestServer, locale: str
) -> None:
    """A browser in a language the line does not speak greets in French, as before, but that is no choice of the
    young person's: their English words turn the bot English, as on Messenger or WhatsApp. Before, the page told the
    server "fr" as if chosen, and "I want to kill myself" was answered in French only, the 3114 message included."""
    context = await browser.new_context(locale=locale)
    try:
        page = await context.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).first).to_contain_text("Bonjour, ici le 3018")
        await type_answer(page, "hi, i want to kill myself")
        await expect(bot_messages(page).filter(has_text="If you are thinking about suicide")).to_have_count(1)
        await expect(bot_messages(page).filter(has_text="Si tu penses au suicide")).to_have_count(0)
        await expect(page.locator("h1.title")).to_have_text("Need to talk?")  # the page's own texts follow
    finally:
        await context.close()
