"""The web chat by keyboard alone: where the focus goes after each action, so that a young person who cannot use a
mouse (or who reads with a screen reader) is never left outside the chat or on nothing."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.settings import Settings
from tests.e2e.conftest import ServerFactory, french_window
from tests.e2e.test_chat import bot_messages, open_chat, type_answer

pytestmark = pytest.mark.browser


async def test_the_widget_opened_by_keyboard_takes_the_focus_into_the_chat(
    context: BrowserContext, server: TestServer
) -> None:
    """Found with the keyboard alone (2026-12, a review for accessibility): Enter on the launcher opened the panel
    but left the focus on the launcher, which comes after the panel in the page; Tab then left the page and came
    back through the whole host site before reaching the chat, and a screen reader said nothing had opened. Now
    the focus goes into the chat: three Tabs reach its quick exit, and typing goes to the chat's message box."""
    html = (
        '<!doctype html><main><h1>Un site partenaire</h1><nav><a href="#a">Accueil</a> <a href="#b">Actualités</a>'
        f' <a href="#c">Contact</a></nav></main><script src="{server.make_url("/chat/widget.js")}"></script>'
    )

    async def partner_page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    partner = web.Application()
    partner.router.add_get("/", partner_page)
    async with TestServer(partner, host="127.0.0.1") as site:  # another origin, as on a partner's site
        host = await context.new_page()
        await host.goto(str(site.make_url("/")))
        launcher = host.get_by_role("button", name="Besoin de parler ?")
        await launcher.focus()
        await host.keyboard.press("Enter")
        chat = host.frame_locator('iframe[title="Chat d\'écoute"]')
        await expect(chat.locator("#choices button").first).to_be_visible()
        for _ in range(3):
            await host.keyboard.press("Tab")
        await expect(chat.get_by_role("button", name="Sortie rapide")).to_be_focused()

        await launcher.focus()  # closed and opened again: the chat is loaded already
        await host.keyboard.press("Enter")
        await expect(host.get_by_role("dialog")).to_be_hidden()
        await host.keyboard.press("Enter")
        await expect(host.get_by_role("dialog")).to_be_visible()
        await expect(host.locator("iframe")).to_be_focused()  # back in the chat, where the young person was
        await host.keyboard.press("Shift+Tab")
        await expect(chat.locator("#end-button")).to_be_focused()


async def test_try_again_by_keyboard_keeps_the_focus_in_the_chat(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """Found with the keyboard alone (2026-12, a review for accessibility): "Réessayer" under a refused message took
    the focus with it as it went, and when the network refused the message again the new "Réessayer" was not
    focused: the focus was on nothing, Enter did nothing, and Tab started again from the top of the page. Now the
    focus stays on the message that is tried again: on its new "Réessayer" if it is refused again."""
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    classmate = await open_chat(context, server)  # a classmate's conversation: the school's address is at its cap
    async with french_window(browser, 390, 780) as phone:
        page = await phone.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")
        await type_answer(page, "bonjour")
        refused = page.locator('.msg.pending.failed[data-author="user"]')
        await expect(refused).to_contain_text("Pas encore envoyé.")
        await refused.get_by_role("button", name="Réessayer").focus()
        await page.keyboard.press("Enter")  # still no room: refused again, said in the bubble (the notice was)
        await expect(refused).to_contain_text("Pas encore envoyé.")
        await expect(refused.get_by_role("button", name="Réessayer")).to_be_focused()
        await expect(bot_messages(page)).to_have_count(1)

        classmate.on("dialog", lambda dialog: dialog.accept())
        await classmate.get_by_role("button", name="Terminer").click()  # room again
        await expect(classmate.get_by_role("button", name="Nouvelle conversation")).to_be_visible()
        await page.keyboard.press("Enter")  # on the same "Réessayer": sent now
        await expect(page.locator(".msg.pending")).to_have_count(0)
        await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["bonjour"])
        await expect(page.locator("#message-input")).to_be_focused()  # on to what comes next
