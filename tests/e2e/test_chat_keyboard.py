"""The web chat by keyboard alone: where the focus goes after each action, so that a young person who cannot use a
mouse (or who reads with a screen reader) is never left outside the chat or on nothing."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

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
