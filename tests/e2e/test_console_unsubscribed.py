"""A listener in the real console (Chromium) with a WhatsApp conversation whose young person sent STOP (Twilio's
``OptOutType``): nothing reaches them until they send START. The console says so before the listener types, on the
card and in the conversation, and closes the reply and the referrals until START. The real app and server, signed
webhooks, the fake Twilio API on 127.0.0.1, the app's clock pinned (``tests/conftest.py`` ``Clock``, the line open)."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.testing import FakeTwilioAPI, twilio_form
from tests.conftest import Clock
from tests.e2e.channel_support import offline
from tests.e2e.test_console import add_listeners, log_in
from tests.e2e.test_console_more import PHONE, deliver, whatsapp_server, whatsapp_to_queue

__all__ = ["offline", "whatsapp_server"]  # fixtures used below

pytestmark = pytest.mark.browser

UNSUBSCRIBED = "S'est désabonné·e (STOP) : rien ne lui parvient tant qu'il ou elle n'envoie pas START"
UNSUBSCRIBED_EN = "Unsubscribed (STOP): nothing reaches them until they send START"


def stop() -> dict[str, str]:
    return {**twilio_form(PHONE, "STOP", message_sid="SM" + "9" * 32), "OptOutType": "STOP"}


def start() -> dict[str, str]:
    return {**twilio_form(PHONE, "START", message_sid="SM" + "8" * 32), "OptOutType": "START"}


async def test_a_held_conversations_stop_closes_the_reply_before_typing_and_start_opens_it_live(
    desk: BrowserContext, whatsapp_server: TestServer, twilio: FakeTwilioAPI, offline: None
) -> None:
    """Before: the header said "a bloqué la ligne", the reply box stayed open and only the server's 409, after the
    listener had written, said that nothing reaches them. Now the header and a warning say it, a reply and the
    referrals are closed (a private note stays possible), and START opens them again without a reload."""
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    listener = await log_in(desk, whatsapp_server, "anne")
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    await expect(listener.locator("#mode-reply")).to_be_enabled()
    await expect(listener.locator("#refer-open")).to_be_enabled()

    await deliver(whatsapp_server, stop())
    meta, warning = listener.locator("#conv-meta"), listener.locator("#unsubscribed-warning")
    await expect(meta).to_contain_text(UNSUBSCRIBED)  # at once, without a reload
    await expect(meta).not_to_contain_text("a bloqué la ligne")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text(UNSUBSCRIBED)
    await expect(listener.locator("#mode-reply")).to_be_disabled()
    await expect(listener.locator("#mode-note")).to_have_attribute("aria-pressed", "true")  # a note still possible
    await expect(listener.locator("#send")).to_have_text("Enregistrer la note")
    await expect(listener.locator("#refer-open")).to_be_disabled()
    await listener.reload()  # loaded afresh: the same from the start
    await expect(warning).to_contain_text(UNSUBSCRIBED)
    await expect(listener.locator("#mode-reply")).to_be_disabled()
    await expect(listener.locator("#refer-open")).to_be_disabled()
    await listener.get_by_role("button", name="EN", exact=True).click()
    await expect(meta).to_contain_text(UNSUBSCRIBED_EN)
    await expect(warning).to_contain_text(UNSUBSCRIBED_EN)
    await listener.get_by_role("button", name="FR", exact=True).click()

    before = len(twilio.accepted())
    await deliver(whatsapp_server, start())
    await expect(warning).to_be_hidden()  # live, on the left.unblocked entry
    await expect(meta).not_to_contain_text(UNSUBSCRIBED)
    await expect(listener.locator("#mode-reply")).to_be_enabled()
    await expect(listener.locator("#refer-open")).to_be_enabled()
    await listener.locator("#mode-reply").click()
    await listener.locator("#reply").fill("Tu es là ?")
    await listener.locator("#send").click()
    await twilio.wait_accepted(before + 1)


async def test_a_waiting_conversations_stop_shows_on_its_card_live_and_it_can_still_be_closed(
    desk: BrowserContext, whatsapp_server: TestServer, offline: None
) -> None:
    """Before: a STOP while waiting changed nothing on the card until the queue was reloaded for another reason, and
    then it said "a bloqué la ligne". Now the card says at once that nothing reaches them, and it can be closed."""
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    listener = await log_in(desk, whatsapp_server, "anne")
    card = listener.locator("#waiting .card")
    await expect(card).to_have_count(1)

    await deliver(whatsapp_server, stop())
    await expect(card.locator(".pill.left")).to_have_text(UNSUBSCRIBED)  # live, without a reload

    await card.locator(".card-open").click()
    await expect(listener.locator("#conv-meta")).to_contain_text(UNSUBSCRIBED)
    await listener.get_by_role("button", name="Clôturer").click()
    await listener.get_by_label("Catégorie").select_option(label="Cyberharcèlement")
    await listener.locator("#close-send").click()
    await expect(listener.locator("#waiting .card")).to_have_count(0)
    [closed] = await whatsapp_server.app[STORE].conversations_by_status(Status.CLOSED)
    assert closed.outcome == "cyberbullying"


async def test_the_referral_dialog_says_a_refusal_in_the_consoles_words(
    desk: BrowserContext, whatsapp_server: TestServer, clock: Clock, offline: None
) -> None:
    """The consent question refused (409: the server's clock went a day on, the page's did not: past WhatsApp's 24 h
    window, or the conversation no longer the listener's, whichever the server's timers reach first) is said with
    the console's ``refused.*`` text, in its language, as the reply box says it; until 2026-12-06 the dialog showed
    the server's English ``message`` ("the channel's reply window has closed", "take the conversation first")."""
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    listener = await log_in(desk, whatsapp_server, "anne")
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    await listener.locator("#referral-open").click()
    await expect(listener.locator("#referral-dialog")).to_be_visible()

    clock.advance(hours=24, minutes=1)
    await listener.locator("#referral-ask").click()
    french = re.compile(r"^(La fenêtre de réponse du canal est fermée|Cette conversation n'est pas avec toi)")
    await expect(listener.locator("#referral-error")).to_have_text(french)


@pytest.mark.parametrize("width", [1280, 390])
async def test_a_stops_card_keeps_its_words_and_its_take_button_in_sight(
    desk: BrowserContext, whatsapp_server: TestServer, offline: None, width: int
) -> None:
    """The card's STOP pill kept on one line (``.pill``: nowrap) was wider than the queue's column: its words were
    cut ("rien ne lui parvient", without "until START") and it pushed the card's "Prendre" out of the card, out of
    sight, on a desktop as on a phone. Now it wraps within the card, its button in sight."""
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    listener = await log_in(desk, whatsapp_server, "anne")
    await listener.set_viewport_size({"width": width, "height": 800})
    card = listener.locator("#waiting .card")
    await expect(card).to_have_count(1)
    await deliver(whatsapp_server, stop())
    pill = card.locator(".pill.left")
    await expect(pill).to_have_text(UNSUBSCRIBED)
    await expect(card.locator(".take")).to_be_in_viewport(ratio=1)
    box, pill_box = await card.bounding_box(), await pill.bounding_box()
    take = await card.locator(".take").bounding_box()
    assert box is not None and pill_box is not None and take is not None
    right = box["x"] + box["width"] + 0.5
    assert pill_box["x"] + pill_box["width"] <= right and take["x"] + take["width"] <= right
