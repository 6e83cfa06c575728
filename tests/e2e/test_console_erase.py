"""A supervisor erases a young person's data from the console, in a real Chromium: a confirmation dialog first
(cancelling changes nothing), then the listener holding the conversation sees it erased and ended, and the
supervision page's audit log shows the erasure."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Status
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser


async def test_a_supervisor_erases_after_confirming_and_the_listener_is_told(
    context: BrowserContext, desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne", supervisor="sam")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    anne = await log_in(desk, server, "anne")
    await anne.locator("#waiting .card .take").click()
    await expect(anne.locator("#composer")).to_have_attribute("data-mode", "reply")
    await expect(anne.locator("#erase-open")).to_be_hidden()  # listeners cannot erase
    [conversation] = await server.app[STORE].conversations_by_status(Status.WITH_LISTENER)

    supervisor = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    sam = await log_in(supervisor, server, "sam")
    await sam.goto(str(server.make_url(f"/console#c={conversation.id}")))
    await sam.reload()  # a hash change alone does not open it
    await sam.get_by_role("button", name="Effacer les données").click()
    dialog = sam.get_by_role("dialog", name="Effacer toutes les données de cette personne ?")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Annuler").click()
    await expect(dialog).to_be_hidden()
    assert await server.app[STORE].get_conversation(conversation.id) is not None  # cancelled: nothing erased

    await sam.get_by_role("button", name="Effacer les données").click()
    await dialog.get_by_role("button", name="Effacer définitivement").click()
    await expect(sam.locator("#toast")).to_have_text("Données effacées")
    await expect(anne.locator('#transcript .msg[data-author="system"]').last).to_contain_text("effacée")
    assert await server.app[STORE].get_conversation(conversation.id) is None

    await sam.get_by_role("link", name="Supervision").click()
    await expect(sam.locator("#audit li").first).to_contain_text("effacement")
    await expect(sam.locator("#audit li").first).to_contain_text(conversation.pseudonym)
    await supervisor.close()
