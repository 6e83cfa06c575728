"""Messages written while the web chat has no connection, in a real Chromium (the browser taken offline, its sockets
closed): what the page says of them, and what becomes of them when two tabs of the chat are open on one browser
(a review of chat.js in Chromium, 2026-12)."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, WebSocketRoute, expect

from gateway.app import STORE
from gateway.messages import ChannelName
from tests.e2e.live_regions import announced, record
from tests.e2e.test_chat import bot_messages, type_answer

pytestmark = __import__("pytest").mark.browser


class Sockets:
    """Every chat socket of the context, passed through to the server, so that a test can cut them."""

    def __init__(self) -> None:
        self.open: list[WebSocketRoute] = []

    async def route(self, ws: WebSocketRoute) -> None:
        ws.connect_to_server()
        self.open.append(ws)

    async def cut(self) -> None:
        """The connections drop (the browser is offline: the pages' new sockets fail until it is back)."""
        for ws in self.open:
            await ws.close()
        self.open.clear()


async def chat_page(context: BrowserContext, server: TestServer) -> Page:
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#choices button").first).to_be_visible()
    return page


async def test_a_message_written_offline_says_in_words_that_it_is_not_sent_yet(
    context: BrowserContext, server: TestServer
) -> None:
    """A message typed while the connection was down was told apart only by a dashed outline: a screen reader (and
    anyone who cannot see the outline) was given "Toi · Français" like any sent message. It now says "Pas encore
    envoyé…" in words, given to the messages' log as it is added, until the server acknowledges it."""
    sockets = Sockets()
    await context.route_web_socket("**/chat/ws", sockets.route)
    await record(context)
    page = await chat_page(context, server)
    await page.get_by_role("button", name="Non", exact=True).click()
    await expect(bot_messages(page).last).to_contain_text("anglais")
    await expect(page.locator(".msg.pending")).to_have_count(0)  # "Non" acknowledged

    await context.set_offline(True)
    await sockets.cut()
    await expect(page.locator("#connection")).to_be_visible()
    await announced(page)
    await type_answer(page, "Français")
    waiting = page.locator('.msg.pending[data-author="user"]')
    await expect(waiting).to_contain_text("Français")
    await expect(waiting.locator(".waiting")).to_have_text("Pas encore envoyé…")
    await expect(waiting.locator(".waiting")).to_be_visible()
    assert "Pas encore envoyé…" in " ".join(await announced(page, "messages"))

    await page.locator("#lang-toggle").click()  # in the page's language
    await expect(waiting.locator(".waiting")).to_have_text("Not sent yet…")
    await page.locator("#lang-toggle").click()

    await context.set_offline(False)
    await expect(bot_messages(page).last).to_contain_text("âge", timeout=30_000)
    await expect(page.locator(".msg.pending")).to_have_count(0)
    await expect(page.locator(".msg .waiting")).to_have_count(0)  # acknowledged: no longer said
    await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["Non", "Français"])


async def user_texts(server: TestServer, page: Page) -> list[str]:
    """The young person's messages as the server recorded them, in the conversation of the page's browser."""
    token = await page.evaluate("() => localStorage.getItem('hg-chat-token')")
    conversation = await server.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    return [e.text for e in await server.app[STORE].transcript(conversation.id) if e.author == "user"]


async def test_a_tab_closed_offline_leaves_its_message_to_the_other_tab(
    context: BrowserContext, server: TestServer
) -> None:
    """Two tabs of the chat on one browser kept one list of waiting messages in localStorage, each writing only its
    own: the second tab's message wrote over the first's, and the first tab, closed before it could reconnect, lost
    its message for good. Now each tab keeps the others' messages when it writes, and the tab that reconnects sends
    them (each recorded once)."""
    sockets = Sockets()
    await context.route_web_socket("**/chat/ws", sockets.route)
    first = await chat_page(context, server)
    second = await chat_page(context, server)  # the same browser: the same conversation
    await expect(second.locator('.msg[data-author="bot"]')).to_have_count(await bot_messages(first).count())

    await context.set_offline(True)
    await sockets.cut()
    await expect(first.locator("#connection")).to_be_visible()
    await expect(second.locator("#connection")).to_be_visible()
    await type_answer(first, "écrit dans le premier onglet")
    await expect(first.locator(".msg.pending")).to_have_count(1)
    await type_answer(second, "écrit dans le second")
    await expect(second.locator(".msg.pending")).to_have_count(1)
    await first.close()  # before it could reconnect

    await context.set_offline(False)
    texts = second.locator('.msg[data-author="user"] .text')
    await expect(texts).to_have_count(2, timeout=30_000)  # the first tab's message too, shown after its own
    await expect(second.locator(".msg.pending")).to_have_count(0)
    assert sorted(await texts.all_inner_texts()) == ["écrit dans le premier onglet", "écrit dans le second"]
    assert await user_texts(server, second) == ["écrit dans le premier onglet", "écrit dans le second"]  # as written
    assert await second.evaluate("() => JSON.parse(localStorage.getItem('hg-chat-pending'))") == []


async def test_two_tabs_that_both_come_back_send_each_message_once(context: BrowserContext, server: TestServer) -> None:
    """Both tabs reconnect: each sends what it holds, the other's too, and the server records each message once;
    neither tab is left showing a message as waiting."""
    sockets = Sockets()
    await context.route_web_socket("**/chat/ws", sockets.route)
    first = await chat_page(context, server)
    second = await chat_page(context, server)
    await expect(second.locator('.msg[data-author="bot"]')).to_have_count(await bot_messages(first).count())

    await context.set_offline(True)
    await sockets.cut()
    await expect(first.locator("#connection")).to_be_visible()
    await expect(second.locator("#connection")).to_be_visible()
    await type_answer(first, "un")
    await expect(first.locator(".msg.pending")).to_have_count(1)
    await type_answer(second, "deux")
    await expect(second.locator(".msg.pending")).to_have_count(1)
    await type_answer(first, "trois")
    await expect(first.locator(".msg.pending")).to_have_count(2)

    await context.set_offline(False)
    for page in (first, second):
        await expect(page.locator('.msg[data-author="user"] .text')).to_have_count(3, timeout=30_000)
        await expect(page.locator(".msg.pending")).to_have_count(0)
    assert sorted(await user_texts(server, second)) == ["deux", "trois", "un"]
