"""Taking a conversation in the console always lands in reply mode, whatever the listener did before: the card's
"Prendre", the header's "Prendre" after reading the card, with the keyboard, with a private note chosen, with
another conversation open, after a hand-back. Each time the listener types straight away (the reply box has the
focus) and the young person receives the reply: a reply saved as a private note is the failure this guards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.app import STORE
from gateway.store import Listener
from tests.conftest import password_hash
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
async def young_people(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    """Five phones, each its own young person (the chat keeps its session in the browser's storage)."""
    contexts = []
    for _ in range(5):
        context = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
        context.set_default_timeout(15_000)
        contexts.append(context)
    yield contexts
    for context in contexts:
        await context.close()


@contextlib.asynccontextmanager
async def anne_and_a_phone(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> AsyncIterator[tuple[Page, BrowserContext]]:
    """Anne logged in to the console (capacity 3), and a young person's phone, closed after."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR")
    try:
        yield listener, phone
    finally:
        await phone.close()


async def queue_young(context: BrowserContext, server: TestServer) -> Page:
    young = await open_chat(context, server)
    await walk_to_queue(young)
    return young


async def expect_reply_mode(listener: Page) -> None:
    await expect(listener.locator("#composer")).to_have_attribute("data-mode", "reply")
    await expect(listener.locator("#composer")).not_to_have_class("composer note-mode")
    await expect(listener.locator("#mode-reply")).to_have_attribute("aria-pressed", "true")
    await expect(listener.locator("#send")).to_have_text("Envoyer")
    await expect(listener.locator("#reply-label")).to_have_text("Message au jeune")
    await expect(listener.locator("#reply")).to_be_focused()


async def reply_and_check_received(listener: Page, young: Page, text: str) -> None:
    """The listener types at once (no click into the box first) and presses Enter; the young person reads it."""
    await expect_reply_mode(listener)
    await listener.keyboard.type(text)
    await listener.keyboard.press("Enter")
    await expect(young.locator('.msg[data-author="listener"] .text').last).to_have_text(text)
    await expect(listener.locator('#transcript .msg[data-author="listener"] .text').last).to_have_text(text)
    await expect(listener.locator('#transcript .msg[data-author="note"]')).to_have_count(0)


async def pseudonym(listener: Page) -> str:
    return await listener.locator("#conv-title").inner_text()


async def test_every_way_of_taking_lands_in_reply_mode_and_the_young_person_receives(
    desk: BrowserContext, young_people: list[BrowserContext], server: TestServer
) -> None:
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=6))
    listener = await log_in(desk, server, "anne")
    waiting = listener.locator("#waiting .card")

    # 1. The card's "Prendre", nothing open.
    first = await queue_young(young_people[0], server)
    await expect(waiting).to_have_count(1)
    await waiting.locator(".take").click()
    await reply_and_check_received(listener, first, "Bonjour, je suis là. (1)")
    first_name = await pseudonym(listener)

    # 2. Read the card first (the composer can only write a note, and says so), then the header's "Prendre".
    second = await queue_young(young_people[1], server)
    await expect(waiting).to_have_count(1)
    await waiting.locator(".card-open").click()
    await expect(listener.locator("#composer")).to_have_attribute("data-mode", "note")
    await expect(listener.locator("#reply-label")).to_have_text("Note privée · jamais envoyée au jeune")
    await expect(listener.locator("#note-why")).to_contain_text("Tu n'as pas pris cette conversation")
    await expect(listener.locator("#mode-reply")).to_be_disabled()
    await expect(listener.locator("#transcript .msg")).to_have_count(0)  # waiting: the card, not the transcript
    await listener.locator("#take").click()
    await expect(listener.locator("#note-why")).to_be_hidden()
    await expect(listener.locator("#transcript .msg").first).to_be_visible()
    first_message = await listener.locator("#transcript .msg").first.element_handle()
    await reply_and_check_received(listener, second, "Bonjour, je suis là. (2)")
    assert await first_message.evaluate("node => node.isConnected")  # only new entries added: each announced once
    ids = await listener.locator("#transcript .msg").evaluate_all("nodes => nodes.map(n => n.dataset.entry)")
    assert len(ids) == len(set(ids))

    # A private note is one message: the next one goes to the young person again.
    await listener.get_by_role("button", name="Note privée").click()
    await expect(listener.locator("#composer")).to_have_attribute("data-mode", "note")
    await listener.keyboard.type("semble calme")
    await listener.keyboard.press("Enter")
    await expect(listener.locator('#transcript .msg[data-author="note"] .text')).to_contain_text("semble calme")
    await expect(listener.locator("#composer")).to_have_attribute("data-mode", "reply")

    # 3. Note mode chosen on a conversation of mine, then the card's "Prendre" of another one.
    third = await queue_young(young_people[2], server)
    await expect(waiting).to_have_count(1)
    await listener.get_by_role("button", name="Note privée").click()
    await waiting.locator(".take").click()
    await expect(listener.locator("#waiting .card")).to_have_count(0)
    await reply_and_check_received(listener, third, "Bonjour, je suis là. (3)")

    # 4. Read the card, choose "Note privée" on purpose, then take with the keyboard.
    fourth = await queue_young(young_people[3], server)
    await expect(waiting).to_have_count(1)
    await waiting.locator(".card-open").click()
    await expect(listener.locator("#take")).to_be_visible()
    await listener.get_by_role("button", name="Note privée").click()
    await listener.locator("#take").focus()
    await listener.keyboard.press("Enter")
    await expect(listener.locator("#take")).to_be_hidden()
    await reply_and_check_received(listener, fourth, "Bonjour, je suis là. (4)")

    # 5. Hand the first one back in note mode; with another waiting card open, take the first one from its card.
    fifth = await queue_young(young_people[4], server)
    await expect(waiting).to_have_count(1)
    await listener.locator("#mine .card", has_text=first_name).locator(".card-open").click()
    await expect(listener.locator("#conv-title")).to_have_text(first_name)
    await listener.get_by_role("button", name="Note privée").click()
    await listener.get_by_role("button", name="Rendre à la file").click()
    await expect(waiting).to_have_count(2)
    await waiting.filter(has_not_text=first_name).locator(".card-open").click()
    await expect(listener.locator("#composer")).to_have_attribute("data-mode", "note")
    await waiting.filter(has_text=first_name).locator(".take").click()
    await expect(listener.locator("#conv-title")).to_have_text(first_name)
    await reply_and_check_received(listener, first, "Me revoilà. (5)")

    # 6. And the last one from the header, after reading it.
    await waiting.locator(".card-open").click()
    await listener.locator("#take").click()
    await reply_and_check_received(listener, fifth, "Bonjour, je suis là. (6)")
