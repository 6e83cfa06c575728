"""The web chat in a real Chromium: walk the default flow to the queue, reload and find the history, and talk
with a listener who took the conversation through the API."""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, WebSocketRoute, expect

from gateway.app import STORE, create_app
from gateway.settings import Settings
from gateway.store import Listener, Status
from tests.conftest import PASSWORD, Clock, password_hash
from tests.e2e.conftest import ServerFactory

pytestmark = __import__("pytest").mark.browser


async def open_chat(context: BrowserContext, server: TestServer) -> Page:
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#choices button").first).to_be_visible()
    return page


async def type_answer(page: Page, text: str) -> None:
    await page.fill("#message-input", text)
    await page.keyboard.press("Enter")


def bot_messages(page: Page):  # type: ignore[no-untyped-def]
    return page.locator('.msg[data-author="bot"] .text')


async def walk_to_queue(page: Page) -> None:
    await page.get_by_role("button", name="Non", exact=True).click()  # not in danger now
    await page.get_by_role("button", name="Français").click()
    await expect(bot_messages(page).last).to_contain_text("âge")
    await type_answer(page, "j'ai 14 ans")
    await page.get_by_role("button", name="Pour moi").click()
    await page.get_by_role("button", name="Cyberharcèlement").click()
    await expect(bot_messages(page).last).to_contain_text("quelques mots")
    await type_answer(page, "Des élèves se moquent de moi sur un groupe.")
    await expect(page.locator("#status-line")).to_contain_text("position 1")


async def test_chat_walks_to_queue_reloads_and_talks_with_a_listener(
    context: BrowserContext, server: TestServer
) -> None:
    page = await open_chat(context, server)
    await expect(bot_messages(page).first).to_contain_text("confidentiel")
    await walk_to_queue(page)

    await page.reload()
    await expect(page.locator('.msg[data-author="user"]')).to_have_count(6)
    await expect(page.locator("#status-line")).to_contain_text("position 1")

    store = server.app[STORE]
    await store.add_listener(Listener("anne", password_hash(), capacity=2))
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as listener:
        assert (await listener.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 200
        waiting = (await (await listener.get("/api/queue")).json())["waiting"]
        conversation = waiting[0]["id"]
        assert (await listener.post(f"/api/conversations/{conversation}/take", json={})).status == 200
        await expect(page.locator("#status-line")).to_contain_text("écoutant·e est avec toi")
        reply = {"text": "Bonjour, je t'écoute."}
        sent = await listener.post(f"/api/conversations/{conversation}/messages", json=reply)
        assert sent.status == 201
        await expect(page.locator('.msg[data-author="listener"] .text')).to_have_text("Bonjour, je t'écoute.")
        await type_answer(page, "Merci <b>beaucoup</b>")
        detail = await (await listener.get(f"/api/conversations/{conversation}")).json()
        deadline = time.monotonic() + 30  # a wait on the message's arrival, not a bound (a loaded machine is slow)
        while detail["transcript"][-1]["text"] != "Merci <b>beaucoup</b>" and time.monotonic() < deadline:
            await page.wait_for_timeout(100)
            detail = await (await listener.get(f"/api/conversations/{conversation}")).json()
        assert detail["transcript"][-1]["author"] == "user"
    await expect(page.locator('.msg[data-author="user"] .text').last).to_have_text("Merci <b>beaucoup</b>")
    assert await page.locator(".msg b").count() == 0


async def test_quick_exit_clears_the_session(context: BrowserContext, server: TestServer) -> None:
    page = await open_chat(context, server)
    assert await page.evaluate("localStorage.getItem('hg-chat-token')")
    await page.route("https://www.google.com/**", lambda route: route.fulfill(status=200, body="meteo"))
    await page.get_by_role("button", name="Sortie rapide").click()
    await page.wait_for_url("https://www.google.com/**")
    await page.goto(str(server.make_url("/chat")))
    await expect(bot_messages(page).first).to_contain_text("confidentiel")
    await expect(page.locator('.msg[data-author="user"]')).to_have_count(0)


async def test_keyboard_only_and_english(context: BrowserContext, server: TestServer) -> None:
    page = await open_chat(context, server)
    await page.locator("#lang-toggle").click()
    await expect(page.locator("#send-button")).to_have_text("Send")
    await page.locator("#choices button").first.focus()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # the second choice: "no"
    await expect(page.locator('.msg[data-author="user"] .text')).to_have_count(1)


async def test_a_dropped_connection_loses_nothing_typed_meanwhile(
    context: BrowserContext, make_server: ServerFactory, settings: Settings, clock: Clock
) -> None:
    first = await make_server(settings)
    port = first.port
    page = await open_chat(context, first)
    await page.get_by_role("button", name="Non", exact=True).click()
    await expect(bot_messages(page).last).to_contain_text("anglais")
    # the bot's answer can reach the page before its acknowledgement of "Non" (the ack follows the processing):
    # closed in between, "Non" would be pending too (re-sent and de-duplicated later: nothing lost, but two pending)
    await expect(page.locator(".msg.pending")).to_have_count(0)

    await first.close()  # the server goes away mid-conversation
    await expect(page.locator("#connection")).to_be_visible()
    await type_answer(page, "Français")  # typed while disconnected: kept in the browser
    await expect(page.locator(".msg.pending")).to_have_count(1)

    app = await create_app(settings, clock=clock, worker_poll_seconds=0.05)
    second = TestServer(app, host="127.0.0.1", port=port)
    await second.start_server()
    try:
        await expect(bot_messages(page).last).to_contain_text("âge", timeout=30_000)
        await expect(page.locator(".msg.pending")).to_have_count(0)
        await expect(page.locator('.msg[data-author="user"]')).to_have_count(2)
        await expect(page.locator("#connection")).to_be_hidden()
    finally:
        await second.close()


async def test_the_widget_embeds_the_chat_with_one_script_tag(context: BrowserContext, server: TestServer) -> None:
    page = await context.new_page()
    host = server.make_url("/healthz")  # any page of the same origin hosts it; the widget is cross-origin-safe
    await page.goto(str(host))
    widget = server.make_url("/chat/widget.js")
    await page.set_content(f'<main><h1>Un site partenaire</h1></main><script src="{widget}"></script>')
    launcher = page.get_by_role("button", name="Besoin de parler ?")
    await launcher.click()
    frame = page.frame_locator('iframe[title="Chat d\'écoute"]')
    await expect(frame.locator('.msg[data-author="bot"] .text').first).to_contain_text("confidentiel")
    await frame.get_by_role("button", name="Non", exact=True).click()
    await expect(frame.locator('.msg[data-author="user"]')).to_have_count(1)
    await page.get_by_role("button", name="Fermer").click()
    await expect(page.get_by_role("dialog")).to_be_hidden()


async def test_the_widget_on_another_sites_page_writes_no_error_in_its_console(
    context: BrowserContext, server: TestServer
) -> None:
    """Found on a partner's page (2026-12-02): opening the launcher wrote "Failed to execute 'postMessage'" in the
    host site's console, the widget telling a frame that still held the host's about:blank. The host page here is
    another origin (a second local server)."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    widget = server.make_url("/chat/widget.js")
    html = f'<!doctype html><main><h1>Un site partenaire</h1></main><script src="{widget}"></script>'

    async def partner_page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def no_icon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    partner = web.Application()
    partner.router.add_get("/", partner_page)
    partner.router.add_get("/favicon.ico", no_icon)  # the partner's own icon
    async with TestServer(partner, host="127.0.0.1") as site:  # another port: another origin
        await page.goto(str(site.make_url("/")))
        await page.get_by_role("button", name="Besoin de parler ?").click()
        frame = page.frame_locator('iframe[title="Chat d\'écoute"]')
        await frame.get_by_role("button", name="Non", exact=True).click()
        await page.get_by_role("button", name="Fermer").click()
        await page.get_by_role("button", name="Besoin de parler ?").click()
        await expect(frame.locator('.msg[data-author="user"]')).to_have_count(1)
    assert errors == []


async def test_a_phone_is_told_of_the_quick_exit_button_not_of_a_key_it_lacks(
    browser: Browser, server: TestServer, context: BrowserContext
) -> None:
    """Found on a phone (2026-12-02): the hint said "press Escape twice", a key a phone has not. A touch screen
    without a mouse is told of the quick exit button instead, in the page's language; a computer keeps the key."""
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, locale="fr-FR", has_touch=True,
                                      is_mobile=True)  # fmt: skip
    try:
        page = await open_chat(phone, server)
        await expect(page.locator(".hint")).to_contain_text("Sortie rapide")
        await page.locator("#lang-toggle").click()
        await expect(page.locator(".hint")).to_contain_text("Quick exit")
    finally:
        await phone.close()
    computer = await open_chat(context, server)
    await expect(computer.locator(".hint")).to_contain_text("Échap")


async def test_the_language_switch_switches_the_bot_from_the_next_message_on(
    context: BrowserContext, server: TestServer
) -> None:
    page = await open_chat(context, server)  # the page (and so the bot) in French
    await page.locator("#lang-toggle").click()  # EN: the page's texts at once, the bot from the next message
    await expect(page.locator("#lang-toggle")).to_have_text("FR")
    await page.get_by_role("button", name="Non", exact=True).click()  # the question asked before the switch
    await expect(bot_messages(page).last).to_contain_text("Would you like to continue in English or in French?")


async def test_a_long_pasted_story_reaches_the_line_whole(context: BrowserContext, server: TestServer) -> None:
    """Found on a phone (2026-12-02): the message box's maxlength cut a pasted story at 4,000 characters without a
    word. A text longer than a message goes as several messages, every word of it stored."""
    page = await open_chat(context, server)
    await walk_to_queue(page)
    story = "\n".join(f"Phrase {n} : ils ont encore écrit des choses sur moi dans le groupe 😞." for n in range(150))
    assert len(story) > 2 * 4000
    await page.fill("#message-input", story)
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.pending")).to_have_count(0)
    assert await page.locator('.msg[data-author="system"]').count() == 0

    [conversation] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    stored = "\n".join(e.text for e in await server.app[STORE].transcript(conversation.id) if e.author == "user")
    assert all(f"Phrase {n} : " in stored for n in range(150))
    assert stored.endswith(story.rsplit("\n", 1)[1])


async def test_a_young_person_who_answers_english_gets_the_page_in_english(
    context: BrowserContext, server: TestServer
) -> None:
    """Found on a phone (2026-12-02): answering "English" to the bot's question turned the bot to English, but the
    page stayed French ("Sortie rapide", "Appuie deux fois sur Échap", "En attente d'un·e écoutant·e"), even after a
    reload, whose session frame said "en". The page takes the conversation's language: at each session, and with
    each status."""
    page = await open_chat(context, server)
    await page.get_by_role("button", name="Non", exact=True).click()
    await page.locator("#choices button", has_text="English").click()
    await expect(bot_messages(page).last).to_contain_text("How old are you?")
    await type_answer(page, "15")
    await page.locator("#choices button", has_text="For me").click()
    await page.locator("#choices button", has_text="Cyberbullying").click()
    await type_answer(page, "They make fun of me in a group chat.")
    await expect(page.locator("#status-line")).to_contain_text("Waiting for a listener — position 1")
    await expect(page.locator("#quick-exit")).to_have_text("Quick exit")

    await page.reload()
    await expect(page.locator('.msg[data-author="user"]')).to_have_count(6)
    await expect(page.locator("#quick-exit")).to_have_text("Quick exit")
    await expect(page.locator("#status-line")).to_contain_text("Waiting for a listener — position 1")
    assert await page.evaluate("document.documentElement.lang") == "en"


class Silent:
    """Passes the page's sockets through; once ``silent``, the socket open then carries nothing either way and never
    closes, as a connection that died without a word (a phone changing networks): the page is not told."""

    def __init__(self) -> None:
        self.silent = False
        self.sockets = 0

    async def route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        self.sockets += 1
        number = self.sockets

        def to_server(message: str | bytes) -> None:
            if not (self.silent and number == 1):
                server_side.send(message)

        def to_page(message: str | bytes) -> None:
            if not (self.silent and number == 1):
                page_side.send(message)

        page_side.on_message(to_server)
        server_side.on_message(to_page)


async def queued_then_silent(context: BrowserContext, server: TestServer) -> tuple[Page, Silent]:
    """A page on a clock the test moves (Playwright's), walked to the queue, whose first socket then dies silently."""
    page, silent = await context.new_page(), Silent()
    await page.clock.install()
    await page.route_web_socket("**/chat/ws", silent.route)
    await page.goto(str(server.make_url("/chat")))
    await walk_to_queue(page)
    silent.silent = True
    return page, silent


async def test_a_message_sent_into_a_connection_that_died_silently_gets_through(
    context: BrowserContext, server: TestServer
) -> None:
    """Found on a phone whose network went silent (2026-12-02): the message stayed "pending" with no reconnection,
    for as long as the browser took to notice the dead connection (minutes). Nothing heard 15 s after a message:
    the page connects again and sends it; the server records it once."""
    page, silent = await queued_then_silent(context, server)
    await type_answer(page, "Tu es là ?")
    await expect(page.locator(".msg.pending")).to_have_count(1)
    await page.clock.run_for(16_000)
    await expect(page.locator(".msg.pending")).to_have_count(0)
    assert silent.sockets == 2
    [conversation] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    texts = [e.text for e in await server.app[STORE].transcript(conversation.id) if e.author == "user"]
    assert texts.count("Tu es là ?") == 1


async def test_an_idle_page_whose_connection_died_silently_connects_again_by_itself(
    context: BrowserContext, server: TestServer
) -> None:
    """A young person waiting in the queue sends nothing: if the connection dies without a word, the page used to
    stay "connected" and deaf until the browser noticed (minutes), and a listener's answer stayed unseen. The server
    speaks at least every 20 s (a keepalive frame); 50 s without a frame, the page connects again and is resent
    what it missed."""
    page, silent = await queued_then_silent(context, server)
    [conversation] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    await page.clock.run_for(30_000)  # quiet, not yet taken for dead
    assert silent.sockets == 1
    await page.clock.run_for(21_000)
    await expect(page.locator("#connection")).to_be_hidden()  # shown while it connected again, hidden by the session
    assert silent.sockets == 2  # …of a second socket (the first carries nothing any more)
    store = server.app[STORE]
    assert [c.id for c in await store.conversations_by_status(Status.QUEUED)] == [conversation.id]  # the same one


async def test_enter_that_ends_a_word_being_composed_does_not_send(context: BrowserContext, server: TestServer) -> None:
    """A keyboard that composes words (an IME, some phones' keyboards) sends Enter to end the word: it sent the
    message half-written. Enter while composing is left to the keyboard; the next Enter sends (noted in a review
    of the console, 2026-12-05; the web chat's message box had the same handler)."""
    page = await open_chat(context, server)
    await page.fill("#message-input", "je suis harcel")
    composing = "new KeyboardEvent('keydown', {key: 'Enter', isComposing: true, bubbles: true, cancelable: true})"
    await page.locator("#message-input").evaluate(f"node => node.dispatchEvent({composing})")
    await expect(page.locator("#message-input")).to_have_value("je suis harcel")
    await expect(page.locator('.msg[data-author="user"]')).to_have_count(0)
    await page.fill("#message-input", "je suis harcelée")
    await page.keyboard.press("Enter")
    await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["je suis harcelée"])
