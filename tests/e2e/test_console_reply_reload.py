"""A listener's reply whose answer was lost with the connection, sent again after the listener reloaded the page
(the natural thing to do when the console says the connection was cut): the text comes back in the box (drafts.js)
and Enter sends it again; it must reach the young person once, as the console promises
("Renvoie : le message ne partira qu'une fois"). The reply's id is kept with the draft, not only in the page."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Route, expect

from gateway.app import STORE
from gateway.console.auth import hash_password
from gateway.conversation import Status
from gateway.store import Author, Listener
from tests.conftest import PASSWORD
from tests.e2e.test_console import log_in
from tests.e2e.test_console_take import queue_young

pytestmark = pytest.mark.browser

TEXT = "Je suis là, prends ton temps."


async def test_a_reply_whose_answer_was_lost_is_sent_once_after_a_reload(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await server.app[STORE].add_listener(Listener("anne", hash_password(PASSWORD), capacity=3))
    listener = await log_in(desk, server, "anne")
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    try:
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

        await listener.reload()  # "connexion coupée ?": the listener reloads the console
        await expect(listener.locator("#reply")).to_have_value(TEXT)  # the draft is back in the box
        await listener.locator("#reply").press("Enter")  # and sent again, as the console said to
        await expect(listener.locator("#reply")).to_have_value("")
        await expect(listener.locator('#transcript .msg[data-author="listener"] .text')).to_have_text([TEXT])
        await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text([TEXT])
        store = server.app[STORE]
        [held] = await store.conversations_by_status(Status.WITH_LISTENER)
        assert [e.text for e in await store.transcript(held.id) if e.author == Author.LISTENER] == [TEXT]
    finally:
        await phone.close()
