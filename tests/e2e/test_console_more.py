"""More of the console in a real Chromium: the English version and its toggle, a WhatsApp conversation's reply
window closing then closed, and an image a young person sent on WhatsApp, viewed through the gateway.

WhatsApp messages arrive as Twilio would post them (signed for the public URL) at the real server; the fake
Twilio API hosts the media. The app's clock is the test's (``tests/conftest.py`` ``Clock``); the page's clock is
Playwright's. Every wait is an ``expect`` with the context's generous timeout.
"""

from __future__ import annotations

import struct
import zlib

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.testing import (
    ACCOUNT_SID,
    BOT_TOKEN,
    WHATSAPP_FROM,
    FakeTelegramAPI,
    FakeTwilioAPI,
    sign_twilio,
    telegram_headers,
    twilio_form,
)
from tests.conftest import PASSWORD, TWILIO_TOKEN, Clock
from tests.e2e.channel_support import offline
from tests.e2e.conftest import ServerFactory
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

__all__ = ["offline"]  # the fixture used by the tests below

pytestmark = pytest.mark.browser

TOKEN = TWILIO_TOKEN
PUBLIC = "http://helpline.example.org:8080"  # what Twilio signs for; the test server listens elsewhere
PHONE = "whatsapp:+33612345678"
WALK = ["Bonjour", "2", "Français", "j'ai 15 ans", "pour moi", "on me harcèle", "On se moque de moi sur un groupe."]


@pytest.fixture
async def whatsapp_server(make_server: ServerFactory, settings: Settings, twilio: FakeTwilioAPI) -> TestServer:
    return await make_server(
        settings.replace(
            public_url=PUBLIC,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=TOKEN,
            twilio_whatsapp_from=WHATSAPP_FROM,
            twilio_api_url=twilio.url,
        )
    )


async def deliver(server: TestServer, form: dict[str, str]) -> None:
    """Post ``form`` to the WhatsApp webhook, signed as Twilio signs it."""
    path = "/webhooks/whatsapp"
    headers = {"X-Twilio-Signature": sign_twilio(TOKEN, PUBLIC + path, form)}
    async with aiohttp.ClientSession() as session, session.post(server.make_url(path), data=form, headers=headers) as r:
        assert r.status == 200, await r.text()


async def whatsapp_to_queue(server: TestServer) -> None:
    for number, text in enumerate(WALK):
        await deliver(server, twilio_form(PHONE, text, message_sid=f"SM{number:032d}"))


def png(width: int = 3, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels), so the browser can decode what the console shows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def test_the_english_toggle_switches_the_texts_and_survives_a_reload(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    listener = await log_in(desk, server, "anne")  # a French browser: the console starts in French
    await expect(listener.locator("html")).to_have_attribute("lang", "fr")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await expect(listener.locator("#waiting .card")).to_contain_text("attend depuis")

    await listener.get_by_role("button", name="EN", exact=True).click()
    await expect(listener.locator("html")).to_have_attribute("lang", "en")
    await expect(listener.get_by_role("button", name="EN", exact=True)).to_have_attribute("aria-pressed", "true")
    await expect(listener.locator("#logout")).to_have_text("Log out")
    await expect(listener.locator("#connection")).to_have_text("Live")
    await expect(listener.locator("#waiting-title")).to_contain_text("Waiting")
    card = listener.locator("#waiting .card")
    await expect(card).to_contain_text("waiting for")
    await expect(card).to_contain_text("Web chat")
    await expect(listener).to_have_title("(1) Listener console")

    await listener.reload()
    await expect(listener.locator("html")).to_have_attribute("lang", "en")
    await expect(listener.locator("#logout")).to_have_text("Log out")
    await expect(listener.locator("#placeholder")).to_contain_text("Choose a conversation from the queue.")
    await card.get_by_role("button", name="Take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("in progress · Normal · with anne")
    await expect(listener.locator('#transcript .msg[data-author="bot"] .who').first).to_contain_text("Bot")
    await expect(listener.locator("#send")).to_have_text("Send")
    placeholder = "Write to the young person… (type / for a canned response)"
    await expect(listener.locator("#reply")).to_have_attribute("placeholder", placeholder)
    await expect(listener.locator('#outcome option[value="cyberbullying"]')).to_have_text("Cyberbullying")
    await expect(listener.locator('#canned option[value="0"]')).to_have_text("/bonjour · Greeting")

    # A canned response is still inserted in the young person's language (French here), whatever the console's.
    await listener.locator("#reply").fill("/bonjour")
    await listener.locator("#reply").press("Enter")
    await expect(listener.locator("#reply")).to_have_value(
        "Bonjour, je suis écoutant·e au 3018. Merci de nous avoir écrit. Je lis ton message, prends ton temps pour "
        "m'expliquer."
    )

    await listener.get_by_role("button", name="FR", exact=True).click()
    await expect(listener.locator("html")).to_have_attribute("lang", "fr")
    await expect(listener.locator("#logout")).to_have_text("Se déconnecter")
    await expect(listener.locator("#conv-meta")).to_contain_text("en cours · Normal · avec anne")
    await expect(listener.locator('#outcome option[value="cyberbullying"]')).to_have_text("Cyberharcèlement")
    await expect(listener.locator("#reply")).to_have_value(
        "Bonjour, je suis écoutant·e au 3018. Merci de nous avoir écrit. Je lis ton message, prends ton temps pour "
        "m'expliquer."
    )  # switching does not lose what the listener was writing


async def test_an_english_browser_gets_the_english_login_and_supervision(browser: Browser, server: TestServer) -> None:
    await add_listeners(server, supervisor="sam")
    english = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="en-US")
    english.set_default_timeout(15_000)
    try:
        page = await english.new_page()
        await page.goto(str(server.make_url("/console/login")))
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page).to_have_title("Log in · Listener console")
        await page.get_by_label("Name").fill("sam")
        await page.get_by_label("Password").fill("wrong password!")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#connection")).to_have_text("Live")

        await page.get_by_role("link", name="Supervision").click()
        await expect(page.locator("#period-title")).to_have_text("Figures for the period")
        await expect(page.get_by_role("link", name="Export as CSV")).to_be_visible()
        await expect(page.locator("#reload")).to_contain_text("succeeded")
        await expect(page.locator('#chart-hours .column[data-key="14"]')).to_have_attribute("title", "14:00: 0")
        await page.get_by_role("button", name="FR", exact=True).click()
        await expect(page.locator("#period-title")).to_have_text("Chiffres de la période")
        await expect(page.locator("#reload")).to_contain_text("réussi")
        await expect(page.locator('#chart-hours .column[data-key="14"]')).to_have_attribute("title", "14h : 0")
    finally:
        await english.close()


async def test_a_whatsapp_reply_window_shows_closing_then_closed(
    desk: BrowserContext, whatsapp_server: TestServer, clock: Clock, offline: None
) -> None:
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    listener = await log_in(desk, whatsapp_server, "anne")
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("WhatsApp")
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    await expect(listener.locator("#window-warning")).to_be_hidden()

    # 22 h 30 after the young person's last message: 1 h 30 left of WhatsApp's 24 h.
    clock.advance(hours=22, minutes=30)
    await listener.clock.install()  # from here the page's timers are Playwright's, running in real time
    await listener.reload()
    warning = listener.locator("#window-warning")
    await expect(warning).to_be_visible()
    await expect(warning).to_have_attribute("data-state", "closing")
    await expect(warning).to_contain_text("La fenêtre de réponse de WhatsApp se ferme à")
    await expect(listener.locator("#send")).to_be_enabled()
    await expect(listener.locator("#mode-reply")).to_be_enabled()

    # The listener keeps the conversation open for two hours: the page sees the window close by itself.
    await listener.clock.fast_forward("02:00:00")
    await expect(warning).to_have_attribute("data-state", "closed")
    await expect(warning).to_contain_text("Fenêtre de réponse fermée : WhatsApp refuse les messages plus de 24 h")
    await expect(listener.locator("#mode-reply")).to_be_disabled()
    await expect(listener.locator("#mode-note")).to_have_attribute("aria-pressed", "true")  # notes still possible
    await expect(listener.locator("#send")).to_have_text("Enregistrer la note")

    # Loaded afresh once the server's clock is past the window, the reply box is refused from the start.
    clock.advance(hours=2)
    await listener.reload()
    await expect(warning).to_have_attribute("data-state", "closed")
    await expect(listener.locator("#mode-reply")).to_be_disabled()
    await listener.get_by_role("button", name="EN", exact=True).click()
    await expect(warning).to_contain_text("Reply window closed: WhatsApp refuses messages more than 24 h")


async def test_an_image_from_whatsapp_is_shown_through_the_gateway(
    desk: BrowserContext, whatsapp_server: TestServer, twilio: FakeTwilioAPI, offline: None
) -> None:
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    media_url = twilio.serve_media(twilio.media_path(), png(), "image/png")
    await deliver(whatsapp_server, twilio_form(PHONE, "", media=[(media_url, "image/png")]))
    [conversation] = await whatsapp_server.app[STORE].conversations_by_status(Status.QUEUED)

    listener = await log_in(desk, whatsapp_server, "anne")
    requested: list[str] = []
    listener.on("request", lambda request: requested.append(request.url))
    await listener.locator("#waiting .card .take").click()  # the transcript is for the listener who takes it
    show = listener.get_by_role("button", name="Afficher : Pièce jointe (image)")
    await show.click()

    image = listener.locator("#transcript img.attachment-image")
    await expect(image).to_have_attribute("src", f"/api/conversations/{conversation.id}/attachments/0")
    await expect(image).to_have_js_property("complete", True)
    assert await image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [3, 2]
    assert await image.get_attribute("alt") == "Pièce jointe (image)"
    assert any(url.endswith(f"/api/conversations/{conversation.id}/attachments/0") for url in requested)
    assert not [url for url in requested if url.startswith(twilio.url)]  # the browser never met the provider
    downloads = [r for r in twilio.requests if r.method == "GET" and r.endpoint != "Messages.json"]  # not the list
    assert downloads and all(twilio.authorised(r) for r in downloads)  # the gateway fetched it, with credentials


async def test_system_entries_follow_the_console_language(
    desk: BrowserContext, whatsapp_server: TestServer, offline: None
) -> None:
    """The server stores a system entry as a code and parameters: the console words it in French or English."""
    await add_listeners(whatsapp_server, "anne")
    await whatsapp_to_queue(whatsapp_server)
    listener = await log_in(desk, whatsapp_server, "anne")
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    await deliver(whatsapp_server, {**twilio_form(PHONE, "STOP", message_sid="SM" + "9" * 32), "OptOutType": "STOP"})
    entry = listener.locator('#transcript .msg[data-author="system"] .text')
    french = (
        "Le ou la jeune a bloqué la ligne ou s'est désabonné·e sur WhatsApp : les messages ne lui parviennent plus."
    )
    await expect(entry).to_have_text(french)  # at once, without a reload
    await expect(listener.locator("#conv-meta")).to_contain_text("S'est désabonné·e (STOP)")  # WhatsApp: not a block

    await listener.get_by_role("button", name="EN", exact=True).click()
    await expect(entry).to_have_text("The young person blocked the line or unsubscribed on WhatsApp: messages no longer"
                                     " reach them.")  # fmt: skip
    await expect(listener.locator("#conv-meta")).to_contain_text("Unsubscribed (STOP)")
    await listener.reload()
    await expect(entry).to_have_text("The young person blocked the line or unsubscribed on WhatsApp: messages no longer"
                                     " reach them.")  # fmt: skip
    await listener.get_by_role("button", name="FR", exact=True).click()
    await expect(entry).to_have_text(french)


async def test_a_forwarded_telegram_message_is_marked_as_someone_elses_words(
    desk: BrowserContext, make_server: ServerFactory, settings: Settings, telegram: FakeTelegramAPI, offline: None
) -> None:
    """The harasser's message a young person forwards on Telegram: a listener read it as the young person's own
    words. It comes with a mark saying it is someone else's."""
    from tests.e2e.test_telegram import SECRET, forwarded, walk

    server = await make_server(
        settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url)
    )
    await add_listeners(server, "anne")
    async with aiohttp.ClientSession() as session:
        for update in [*walk(), forwarded(900000800, 424242, "Envoie tes photos ou je montre tout")]:
            async with session.post(server.make_url("/webhooks/telegram"), json=update,
                                    headers=telegram_headers(SECRET)) as response:  # fmt: skip
                assert response.status == 200

    listener = await log_in(desk, server, "anne")
    await listener.locator("#waiting .card .take").click()
    message = listener.locator("#transcript li.msg.user", has_text="Envoie tes photos ou je montre tout")
    await expect(message.locator(".attachment")).to_have_text(
        "Message transféré : les mots de quelqu'un d'autre, pas les siens"
    )
    await expect(listener.locator("#transcript li.msg.user .attachment")).to_have_count(1)  # her own words: none
