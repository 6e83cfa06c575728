"""A page whose first socket is cut after its hello, before the session frame reached it (a phone's connection
lost at that moment), opens no second conversation: chat.js sends the same opening key with its next hello, and
the server resumes the conversation the first one opened (issue 8, docs/webchat-protocol.md). In Chromium, with
the socket's traffic passed through Playwright: the first connection's session frame is kept from the page, which
is cut off instead."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, WebSocketRoute, expect

from gateway.app import STORE
from gateway.conversation import Status
from tests.e2e.test_chat import bot_messages

pytestmark = __import__("pytest").mark.browser


class Cutter:
    """Passes every socket's frames through, except the first socket's session frame: that socket is closed on both
    sides instead. Keeps the hellos the page sent."""

    def __init__(self) -> None:
        self.hellos: list[dict[str, Any]] = []
        self.sockets = 0
        self.cut = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        self.sockets += 1
        first = self.sockets == 1

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "hello":
                self.hellos.append(frame)
            server_side.send(message)

        def from_server(message: str | bytes) -> None:
            if first and json.loads(message).get("type") == "session":
                task = asyncio.create_task(self._cut(page_side, server_side))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif not (first and self.cut.is_set()):
                page_side.send(message)

        page_side.on_message(from_page)
        server_side.on_message(from_server)

    async def _cut(self, page_side: WebSocketRoute, server_side: WebSocketRoute) -> None:
        self.cut.set()
        await page_side.close()
        await server_side.close()


async def test_a_page_cut_off_before_its_session_frame_resumes_the_conversation_it_opened(
    context: BrowserContext, server: TestServer
) -> None:
    store, cutter = server.app[STORE], Cutter()
    page = await context.new_page()
    await page.route_web_socket("**/chat/ws", cutter.route)
    await page.goto(str(server.make_url("/chat")))
    await expect(bot_messages(page).first).to_contain_text("confidentiel")  # on its second socket
    assert cutter.cut.is_set() and cutter.sockets == 2
    [conversation] = await store.conversations_by_status(Status.BOT)  # one: the first hello's
    shown = await bot_messages(page).count()
    assert shown == len([e for e in await store.transcript(conversation.id) if e.author == "bot"])
    first, second = cutter.hellos
    assert first["token"] is None and second["token"] is None
    assert isinstance(first["opening"], str) and len(first["opening"]) >= 20
    assert second["opening"] == first["opening"]  # the same key: the same conversation
    assert await page.evaluate("localStorage.getItem('hg-chat-token')") == conversation.sender
    assert await page.evaluate("localStorage.getItem('hg-chat-opening')") is None  # the token speaks now

    await page.reload()  # with its token, the page sends no key
    await expect(bot_messages(page)).to_have_count(shown)
    assert cutter.hellos[-1]["token"] == conversation.sender and cutter.hellos[-1]["opening"] is None
    assert len(await store.conversations_by_status(Status.BOT)) == 1
