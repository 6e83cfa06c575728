"""The bot's suggested answers in the web chat, in a real Chromium: what may take them away (a review of chat.js,
2026-12-06). Only the line's next message does (the question answered, or moved on); a notice of the gate's (a
flood refused, a full network) is not one of its questions and leaves them to answer the question still asked."""

from __future__ import annotations

import asyncio
import json

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, WebSocketRoute, expect

from gateway.app import GATE
from gateway.settings import Settings
from tests.e2e.conftest import ServerFactory
from tests.e2e.test_chat import bot_messages, open_chat, type_answer

pytestmark = __import__("pytest").mark.browser


class HeldMessages:
    """The page's chat socket passed through to the server, but the young person's messages while ``holding``: kept
    until :meth:`release` sends them on, in order (what a slow network does to a burst typed fast)."""

    def __init__(self) -> None:
        self.holding = False
        self.held: list[tuple[WebSocketRoute, str | bytes]] = []
        self.changed = asyncio.Event()

    async def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(data: str | bytes) -> None:
            if self.holding and json.loads(data).get("type") == "message":
                self.held.append((server, data))
                self.changed.set()
            else:
                server.send(data)

        ws.on_message(from_page)

    async def holds(self, count: int) -> None:
        """Until ``count`` messages are held (the page's sends reach the test through Playwright's connection)."""
        async with asyncio.timeout(15):
            while len(self.held) < count:
                self.changed.clear()
                await self.changed.wait()

    def release(self, count: int) -> None:
        for server, data in self.held[:count]:
            server.send(data)
        del self.held[:count]


async def test_the_flood_notice_leaves_the_buttons_of_the_question_still_asked(
    context: BrowserContext, make_server: ServerFactory, settings: Settings
) -> None:
    """A young person types fast: their age, then "moi", past the flood limit. The bot's next question ("pour toi ou
    pour quelqu'un d'autre ?") comes with its buttons, then the refusal's notice, which took the buttons away (every
    bot entry put its own choices in their place, a notice's none): the question stayed asked above, with nothing to
    answer it but typing, which the flood refused too. The buttons stay now (after a reload too, the kept message
    refused again), and one of them answers it."""
    server: TestServer = await make_server(settings.replace(limit_messages_per_conversation="3/minute"))
    sockets = HeldMessages()
    await context.route_web_socket("**/chat/ws", sockets.route)
    page = await open_chat(context, server)
    await page.get_by_role("button", name="Non", exact=True).click()  # 1
    await page.get_by_role("button", name="Français").click()  # 2
    await expect(bot_messages(page).last).to_contain_text("âge")
    await expect(page.locator(".msg.pending")).to_have_count(0)  # both acknowledged

    sockets.holding = True
    await type_answer(page, "j'ai 14 ans")  # 3
    await type_answer(page, "moi")  # 4: past the limit
    await sockets.holds(2)
    sockets.release(1)  # the age: the bot asks who they write for, with its buttons
    await expect(page.get_by_role("button", name="Pour moi")).to_be_visible()
    sockets.holding = False
    sockets.release(1)  # "moi": refused, with the gate's notice
    await expect(page.locator('.msg.pending.failed[data-author="user"]')).to_contain_text("Pas encore envoyé.")
    await expect(bot_messages(page).last).to_contain_text("3114")  # the notice, shown like a bot message
    await expect(page.get_by_role("button", name="Pour moi")).to_be_visible()

    # reloaded: the session's history ends on the question (its buttons), then "moi", kept, is sent again and
    # refused again, the new socket's notice after them
    await page.reload()
    await expect(page.locator('.msg.pending.failed[data-author="user"]')).to_contain_text("Pas encore envoyé.")
    await expect(bot_messages(page).last).to_contain_text("3114")
    await expect(page.get_by_role("button", name="Pour moi")).to_be_visible()

    await server.app[GATE].limits.storage.reset()  # a minute later: the flood's window is over
    await page.get_by_role("button", name="Pour moi").click()
    await expect(bot_messages(page).last).to_contain_text("Qu'est-ce qui se passe")
    await expect(page.get_by_role("button", name="Cyberharcèlement")).to_be_visible()
