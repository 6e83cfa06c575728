"""A listener's reply whose answer is lost with the connection (the request reached the server, its answer never
came back) is said in the console, and sent again with Enter it reaches the young person once: the console keeps
the reply's id for its resends, the server records it once (tests/console/test_reply_once.py for the API).

Chromium on the real app; the first reply's answer dropped by Playwright after the server handled the request."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.store import Author, Listener
from tests.conftest import password_hash
from tests.e2e.test_chat import Silent
from tests.e2e.test_console import log_in
from tests.e2e.test_console_take import anne_and_a_phone, queue_young

pytestmark = pytest.mark.browser

TEXT = "Je suis là, prends ton temps."


async def taken_and_answer_lost(listener: Page, phone: BrowserContext, server: TestServer) -> Page:
    """A young person queued, taken by the listener, whose reply is sent and its answer lost with the connection
    (the server recorded and sent it): the console says so. The young person's page."""
    young = await queue_young(phone, server)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#reply")).to_be_focused()
    handled: list[int] = []

    async def lose_the_first_answer(route: Route) -> None:
        if handled:
            await route.continue_()
            return
        handled.append((await route.fetch()).status)  # the server recorded and sent the reply
        await route.abort("connectionreset")  # its answer never reaches the console

    await listener.route("**/api/conversations/*/messages", lose_the_first_answer)
    await listener.keyboard.type(TEXT)
    await listener.keyboard.press("Enter")
    await expect(listener.locator("#composer-error")).to_contain_text("Pas de réponse du serveur")
    assert handled == [201]
    return young


async def sent_once(listener: Page, young: Page, server: TestServer) -> None:
    await expect(listener.locator("#reply")).to_have_value("")
    await expect(listener.locator('#transcript .msg[data-author="listener"] .text')).to_have_text([TEXT])
    await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text([TEXT])
    store = server.app[STORE]
    [held] = await store.conversations_by_status(Status.WITH_LISTENER)
    assert [e.text for e in await store.transcript(held.id) if e.author == Author.LISTENER] == [TEXT]


async def test_a_reply_whose_answer_was_lost_is_sent_again_once(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    async with anne_and_a_phone(desk, browser, server) as (listener, phone):
        young = await taken_and_answer_lost(listener, phone, server)
        await expect(listener.locator("#send")).to_be_enabled()
        await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text([TEXT])
        await listener.locator("#reply").press("Enter")  # the text is still there: sent again
        await expect(listener.locator("#composer-error")).to_have_text("")
        await sent_once(listener, young, server)


async def test_a_reply_whose_answer_was_lost_is_sent_once_after_a_reload(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """Sent again after the listener reloaded the page (the natural thing to do when the console says the connection
    was cut): the text comes back in the box (drafts.js) and Enter sends it again; it went twice, a new id drawn by
    the new page (a review of the console, 2026-12-05). The reply's id is kept with the draft, not only in the page."""
    async with anne_and_a_phone(desk, browser, server) as (listener, phone):
        young = await taken_and_answer_lost(listener, phone, server)
        await listener.reload()  # "connexion coupée ?": the listener reloads the console
        await expect(listener.locator("#reply")).to_have_value(TEXT)  # the draft is back in the box
        await listener.locator("#reply").press("Enter")  # and sent again, as the console said to
        await sent_once(listener, young, server)


async def test_a_reply_left_unanswered_by_a_dead_connection_is_said_and_can_be_sent_again(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """Found with a listener's network gone silent (2026-12-02: a proxy dropping every byte, as a Wi-Fi that went
    away without a word): the reply's request never ended, so the Send button stayed disabled and nothing was said,
    for as long as the connection took to die. After 15 s without an answer the console says so and sends again."""
    async with anne_and_a_phone(desk, browser, server) as (listener, phone):
        young = await queue_young(phone, server)
        await listener.locator("#waiting .card .take").click()
        await expect(listener.locator("#reply")).to_be_focused()

        held: list[Route] = []

        async def never_answer_the_first(route: Route) -> None:
            if held:
                await route.continue_()
                return
            held.append(route)  # neither answered nor failed: a connection that went silent

        await listener.clock.install()
        await listener.route("**/api/conversations/*/messages", never_answer_the_first)
        await listener.keyboard.type(TEXT)
        await listener.keyboard.press("Enter")
        await expect(listener.locator("#send")).to_be_disabled()
        await listener.clock.run_for(16_000)
        await expect(listener.locator("#composer-error")).to_contain_text("Pas de réponse du serveur")
        await expect(listener.locator("#send")).to_be_enabled()

        await listener.locator("#reply").press("Enter")  # the text is still there: sent again
        try:
            await expect(listener.locator("#reply")).to_have_value("")
        except AssertionError as failed:  # failed once under load (2026-12-07): say what the console showed
            said = await listener.locator("#composer-error").text_content()
            raise AssertionError(f"{failed}; the console said: {said!r}; held: {len(held)}") from None
        await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text([TEXT])


async def test_a_console_whose_connection_died_silently_connects_again_by_itself(
    desk: BrowserContext, server: TestServer
) -> None:
    """Found with a proxy dropping every byte (2026-12-02): the console stayed "En direct" on a dead connection for
    over a minute and never reconnected once the network was back, showing no new conversation. The server speaks
    at least every 20 s (a keepalive frame when nothing else); 50 s without a frame, the console connects again."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    silent = Silent()
    await desk.clock.install()
    await desk.route_web_socket("**/api/events", silent.route)
    listener = await log_in(desk, server, "anne")
    silent.silent = True
    await listener.clock.run_for(30_000)  # quiet, not yet taken for dead
    assert silent.sockets == 1
    await listener.clock.run_for(21_000)
    await expect(listener.locator("#connection")).to_have_text("En direct")  # after "Reconnexion…"
    assert silent.sockets == 2
