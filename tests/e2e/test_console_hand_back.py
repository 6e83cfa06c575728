"""A listener who took a conversation and closed their browser without logging out (their session lives on) leaves
it with nobody able to answer: the supervisor sees it under "Chez d'autres écoutant·es" with its holder, opens it
and has "Rendre à la file"; the young person, back in the queue, is told their place
(tests/console/test_listener_leaving.py for the API, logout and removal).

Chromium on the real app (the supervisor's give-back, close and transfer)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.app import STORE
from gateway.store import Listener
from tests.conftest import password_hash
from tests.e2e.test_console import log_in
from tests.e2e.test_console_take import queue_young

pytestmark = pytest.mark.browser


async def held_by_anne_who_left(browser: Browser, server: TestServer, phone: BrowserContext) -> Page:
    """A young person in the web chat (on ``phone``) whose conversation Anne took, then closed her browser without
    logging out; Sam is a supervisor. The young person's page."""
    store = server.app[STORE]
    await store.add_listener(Listener("anne", password_hash(), capacity=3))
    await store.add_listener(Listener("sam", password_hash(), supervisor=True, capacity=3))
    gone = await browser.new_context(locale="fr-FR")
    young = await queue_young(phone, server)
    anne = await log_in(gone, server, "anne")
    await anne.locator("#waiting .card .take").click()
    await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")
    await gone.close()  # no logout
    return young


async def test_a_supervisor_gives_back_a_conversation_held_by_a_listener_who_left(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    try:
        young = await held_by_anne_who_left(browser, server, phone)
        sam = await log_in(desk, server, "sam")
        others = sam.locator("#others .card")  # the supervisor's list of what other listeners hold
        await expect(others).to_have_count(1)
        await expect(others).to_contain_text("anne")
        await others.locator(".card-open").click()
        await sam.get_by_role("button", name="Rendre à la file").click()
        await expect(sam.locator("#waiting .card")).to_have_count(1)
        await expect(young.locator(".msg").last).to_contain_text("position 1")
    finally:
        await phone.close()


async def test_a_supervisor_closes_a_conversation_held_by_a_listener_who_left(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """The supervisor also has "Transférer" and "Clôturer" on another listener's conversation, as its holder: closed,
    the young person sees the end."""
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    try:
        young = await held_by_anne_who_left(browser, server, phone)
        sam = await log_in(desk, server, "sam")
        await sam.locator("#others .card .card-open").click()
        await expect(sam.get_by_role("button", name="Transférer")).to_be_visible()
        await sam.get_by_role("button", name="Clôturer").click()
        await sam.get_by_label("Catégorie").select_option("school_bullying")
        await sam.locator("#close-send").click()
        await expect(sam.locator("#others .card")).to_have_count(0)
        await expect(young.locator(".ended")).to_be_visible()
    finally:
        await phone.close()


async def test_a_supervisor_transfers_a_conversation_held_by_a_listener_who_left(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """The supervisor's "Transférer" on another listener's conversation, as its holder: waiting again in the queue
    chosen, held by nobody (gone from "Chez d'autres écoutant·es"), the young person told their place."""
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    try:
        young = await held_by_anne_who_left(browser, server, phone)
        sam = await log_in(desk, server, "sam")
        await sam.locator("#others .card .card-open").click()
        await sam.get_by_role("button", name="Transférer").click()
        await sam.get_by_label("File").select_option("listeners")
        await sam.get_by_role("button", name="Transférer", exact=True).last.click()
        await expect(sam.locator("#others .card")).to_have_count(0)  # the toast: "Nouvelle conversation en attente"
        await expect(sam.locator("#waiting .card")).to_have_count(1)
        await expect(young.locator(".msg").last).to_contain_text("position 1")
        [entry] = await server.app[STORE].waiting()
        conversation = await server.app[STORE].get_conversation(entry.conversation_id)
        assert conversation is not None and conversation.listener is None
    finally:
        await phone.close()
