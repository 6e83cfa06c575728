"""The phone's network gone and back, as the browser says it (its ``offline`` and ``online`` events), in a real
Chromium taken offline without its socket cut (a review from a 14-year-old's phone, 2026-12-06): a metro's tunnel,
airplane mode, a Wi-Fi lost. The page's clock stands still (``page.clock``): nothing is left to its timers."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from tests.e2e.test_chat import bot_messages, type_answer
from tests.e2e.test_chat_waiting import user_texts

pytestmark = __import__("pytest").mark.browser


async def test_a_message_typed_offline_is_said_at_once_and_sent_once_the_network_is_back(
    context: BrowserContext, server: TestServer
) -> None:
    """The browser said it was offline, its socket still open to the page's eyes: the page said nothing (the message
    typed meanwhile looked sent but for its dashed outline) until 15 s without an answer, an idle page until 50 s;
    back online, it waited for its growing delay (up to 10 s) to try again. Now the page takes the connection for
    lost as the browser says so ("Reconnexion…", the message "Pas encore envoyé…") and connects again as soon as the
    browser is back online: the message recorded once."""
    errors: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.clock.install()
    await page.goto(str(server.make_url("/chat")))
    await page.get_by_role("button", name="Non", exact=True).click()
    await expect(bot_messages(page).last).to_contain_text("anglais")
    await expect(page.locator(".msg.pending")).to_have_count(0)

    await context.set_offline(True)
    await expect(page.locator("#connection")).to_have_text("Reconnexion…")
    await type_answer(page, "Français")
    waiting = page.locator('.msg.pending[data-author="user"]')
    await expect(waiting.locator(".waiting")).to_have_text("Pas encore envoyé…")

    await context.set_offline(False)
    await expect(bot_messages(page).last).to_contain_text("âge")
    await expect(page.locator(".msg.pending")).to_have_count(0)
    await expect(page.locator("#connection")).to_be_hidden()
    assert await user_texts(server, page) == ["Non", "Français"]
    await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["Non", "Français"])
    assert errors == []


async def test_the_language_chosen_while_offline_is_the_bots_once_back(
    context: BrowserContext, server: TestServer
) -> None:
    """A young person who switched the page to English while the phone was offline saw it in English, then, back
    online, the page turned French again (the session's language, the conversation's) and the bot went on in French:
    the switch was never told to the server. Now a switch the server has not confirmed is asked again after the
    next session, and the page keeps it."""
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await page.get_by_role("button", name="Non", exact=True).click()
    await page.get_by_role("button", name="Français").click()
    await expect(bot_messages(page).last).to_contain_text("âge")

    await context.set_offline(True)
    await expect(page.locator("#connection")).to_be_visible()
    await page.locator("#lang-toggle").click()
    await expect(page.locator("#send-button")).to_have_text("Send")
    await context.set_offline(False)
    await expect(page.locator("#connection")).to_be_hidden()
    await type_answer(page, "14")
    await expect(bot_messages(page).last).to_contain_text("Are you writing for yourself")
    await expect(page.locator("#send-button")).to_have_text("Send")
