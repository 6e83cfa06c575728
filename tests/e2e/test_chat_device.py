"""What the web chat leaves on the device and how it comes back, in a real Chromium (a review of chat.js,
2026-12-05): the home may be where the danger is, so the next person to open the chat on the same phone must find
neither the young person's words nor the line's; and a server that closes every socket (a store outage) is not
asked again twice a second by every page."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, WebSocketRoute, expect

from gateway.app import STORE
from gateway.store import Status
from tests.e2e.test_chat import open_chat, walk_to_queue

pytestmark = __import__("pytest").mark.browser


async def test_the_quick_exit_on_a_slow_network_leaves_nothing_while_the_exit_page_loads(
    context: BrowserContext, server: TestServer
) -> None:
    """The page stayed on screen and connected until the exit page came: the beacon's end of the conversation came
    back on the socket as its status, and the page stored the line's last messages again after clearing the storage
    (shown for an hour to whoever opened the chat). Now the page is blank and silent at once."""
    page = await open_chat(context, server)
    await walk_to_queue(page)
    # the exit page answers "204 No Content": the browser stays on the chat's page, as a slow network keeps it
    await page.route("https://www.google.com/**", lambda route: route.fulfill(status=204))
    await page.get_by_role("button", name="Sortie rapide").click()
    store = server.app[STORE]
    deadline = time.monotonic() + 20
    while not await store.conversations_by_status(Status.ABANDONED):  # the beacon's end, made by the server
        assert time.monotonic() < deadline, "the quick exit's beacon never ended the conversation"
        await asyncio.sleep(0.05)
    # the status the server published for that end had time to reach an open socket: nothing was stored from it
    await page.wait_for_timeout(500)
    kept = await page.evaluate("() => Object.keys(localStorage)")
    assert kept == []
    await expect(page.locator("body")).to_be_hidden()  # blank at once


async def test_words_left_unsent_by_a_closed_tab_are_not_shown_to_the_next_person_an_hour_later(
    context: BrowserContext, server: TestServer
) -> None:
    """A message never acknowledged stays in the browser so that a reload sends it; kept for good, whoever opened
    the chat on the same device days later saw "Toi : <their words>", sent as theirs. Past an hour it is dropped,
    unshown and unsent; a recent one is still sent once."""
    page = await open_chat(context, server)
    await page.evaluate("""() => localStorage.setItem("hg-chat-pending", JSON.stringify([
        {id: "old-1", text: "mes mots d'avant", payload: null, at: Date.now() - 2 * 3600 * 1000},
        {id: "new-1", text: "encore là", payload: null, at: Date.now() - 60 * 1000},
    ]))""")
    await page.reload()
    await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["encore là"])
    await expect(page.locator(".msg.pending")).to_have_count(0)  # acknowledged
    texts = [
        entry.text
        for conversation in await server.app[STORE].conversations_by_status(Status.BOT)
        for entry in await server.app[STORE].transcript(conversation.id)
        if entry.author == "user"
    ]
    assert texts == ["encore là"]
    assert "mes mots" not in (await page.evaluate("() => localStorage.getItem('hg-chat-pending')") or "")


class Closing:
    """Every socket closed by the server's side right after the page's hello, as during a store outage (the gateway
    answers 1013 "try again later")."""

    def __init__(self) -> None:
        self.sockets = 0

    async def route(self, page_side: WebSocketRoute) -> None:
        self.sockets += 1

        def hello(message: str | bytes) -> None:
            asyncio.get_running_loop().create_task(page_side.close(code=1013, reason="try again later"))

        page_side.on_message(hello)


async def test_a_server_closing_every_socket_is_not_asked_again_twice_a_second(
    context: BrowserContext, server: TestServer
) -> None:
    """The delay before reconnecting went back to half a second at every socket opened, so during an outage that
    closes each socket after its hello every page came back twice a second. It grows until a session opens."""
    page, closing = await context.new_page(), Closing()
    await page.clock.install()
    await page.route_web_socket("**/chat/ws", closing.route)
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#connection")).to_be_visible()
    for _ in range(40):
        await page.clock.run_for(500)  # 20 s of the page's time
    assert 2 <= closing.sockets <= 8, closing.sockets


async def test_a_quick_exit_whose_leave_request_gets_no_answer_writes_no_error(
    context: BrowserContext, server: TestServer
) -> None:
    """The quick exit tells the line with a beacon, or, the beacon refused (the browser's quota for them full), with a
    fetch the page never waits for: that fetch unanswered (the network gone) was an "Uncaught (in promise) TypeError:
    Failed to fetch" in the page's console, on the page left blank (a review of chat.js's requests, 2026-12-06). Now
    nothing is written; the page still goes blank."""
    page = await open_chat(context, server)
    await walk_to_queue(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.evaluate("() => { navigator.sendBeacon = function () { return false; }; }")  # the beacon refused
    await page.route("https://www.google.com/**", lambda route: route.fulfill(status=204))  # the page stays
    await page.route("**/chat/leave", lambda route: route.abort("connectionrefused"))
    async with page.expect_event("requestfailed", lambda request: request.url.endswith("/chat/leave")):
        await page.get_by_role("button", name="Sortie rapide").click()
    await expect(page.locator("body")).to_be_hidden()
    await page.evaluate("() => new Promise(resolve => setTimeout(resolve, 0))")  # the rejection's turn has passed
    assert errors == []
