"""The web chat in a real Chromium: helpline numbers and URLs from the line are links (never in the young person's
own words, never javascript:), the quick exit (double Escape within 2 s) tells the listener at once, answering
by keyboard moves the focus on to the next question, messages say when, and a hidden tab or a closed widget
counts the unread."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.settings import Settings
from gateway.store import Listener
from tests.conftest import PASSWORD, Clock, password_hash
from tests.e2e.conftest import ServerFactory
from tests.e2e.test_chat import bot_messages, open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser

LISTENER_TEXT = "Appelle le 119 ou le 3114, SMS au 114, va sur https://www.allo119.gouv.fr. Pas javascript:alert(1)"


@pytest.fixture
async def exit_server(make_server: ServerFactory, settings: Settings) -> TestServer:
    return await make_server(settings.replace(quick_exit_url="about:blank"))  # nothing leaves loopback


async def test_numbers_and_urls_from_the_line_are_links_never_the_young_persons(
    context: BrowserContext, server: TestServer
) -> None:
    page = await open_chat(context, server)
    await walk_to_queue(page)
    await type_answer(page, "mon numéro c'est le 119 https://moi.example javascript:alert(1)")
    await expect(page.locator('.msg[data-author="user"] .text').last).to_contain_text("javascript:alert(1)")
    assert await page.locator('.msg[data-author="user"] a').count() == 0

    await server.app[STORE].add_listener(Listener("anne", password_hash()))
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as listener:
        assert (await listener.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 200
        conversation = (await (await listener.get("/api/queue")).json())["waiting"][0]["id"]
        assert (await listener.post(f"/api/conversations/{conversation}/take", json={})).status == 200
        sent = await listener.post(f"/api/conversations/{conversation}/messages", json={"text": LISTENER_TEXT})
        assert sent.status == 201

    said = page.locator('.msg[data-author="listener"] .text').last
    await expect(said).to_have_text(LISTENER_TEXT)  # the text is whole, links included
    links = said.locator("a")
    await expect(links).to_have_count(4)
    assert [await links.nth(i).get_attribute("href") for i in range(4)] == [
        "tel:119", "tel:3114", "sms:114", "https://www.allo119.gouv.fr",
    ]  # fmt: skip
    assert await links.nth(3).get_attribute("rel") == "noopener noreferrer"
    assert await links.nth(3).get_attribute("target") == "_blank"
    assert await page.locator('a[href^="javascript"]').count() == 0

    samu = "Si tu es blessé·e, appelle le 15 (SAMU). Depuis 15 jours, à 15 h, 15 ans ; call 15 (medical emergency)"
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as listener:
        assert (await listener.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 200
        sent = await listener.post(f"/api/conversations/{conversation}/messages", json={"text": samu})
        assert sent.status == 201
    said = page.locator('.msg[data-author="listener"] .text').last
    await expect(said).to_have_text(samu)
    hrefs = [await link.get_attribute("href") for link in await said.locator("a").all()]
    assert hrefs == ["tel:15", "tel:15"]  # the SAMU named, twice; never an age, a time, a count

    queued = page.locator('.msg[data-author="bot"] .text', has_text="position 1")
    await expect(queued).to_have_count(1)
    hrefs = [await link.get_attribute("href") for link in await queued.locator("a").all()]
    assert hrefs == ["tel:119", "tel:3114", "tel:17", "tel:112", "sms:114"]  # "position 1" is no link


async def test_double_escape_within_two_seconds_leaves_and_tells_the_listener(
    context: BrowserContext, desk: BrowserContext, exit_server: TestServer, clock: Clock
) -> None:
    await add_listeners(exit_server, "anne")
    listener = await log_in(desk, exit_server, "anne")
    young = await open_chat(context, exit_server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    await young.clock.install()
    await young.keyboard.press("Escape")
    await young.clock.fast_forward(2500)  # too late for a pair: the count starts again
    await young.keyboard.press("Escape")
    await expect(young.locator("#message-input")).to_be_visible()
    assert young.url.endswith("/chat")
    await young.keyboard.press("Escape")
    await young.wait_for_url("about:blank")

    system = listener.locator('#transcript .msg[data-author="system"] .text')
    await expect(system.last).to_contain_text("sortie rapide")
    await expect(listener.locator("#conv-meta")).to_contain_text("parti·e (sortie rapide)")


async def test_answering_by_keyboard_moves_the_focus_to_the_next_question(
    context: BrowserContext, server: TestServer
) -> None:
    page = await open_chat(context, server)
    await page.get_by_role("button", name="Non", exact=True).focus()
    await page.keyboard.press("Enter")
    first = page.locator("#choices button").first
    await expect(first).to_have_text("Français")
    await expect(first).to_be_focused()  # on to the next question's choices
    await page.keyboard.press("Enter")
    await expect(bot_messages(page).last).to_contain_text("âge")
    skip = page.locator("#choices button").first
    await expect(skip).to_have_text("Je préfère pas dire")
    await expect(skip).to_be_focused()  # the age question's only choice; Tab goes on to the message box
    await page.keyboard.press("Tab")
    await expect(page.locator("#message-input")).to_be_focused()
    await page.keyboard.type("14")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Pour moi")).to_be_visible()
    await expect(page.locator("#message-input")).to_be_focused()  # typing: the focus stays where it is


async def test_messages_tell_when_and_a_hidden_tab_counts_the_unread(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    page = await context.new_page()
    await page.clock.install(time=clock.now)  # the page's clock is the server's
    await page.goto(str(server.make_url("/chat")))
    first = page.locator('.msg[data-author="bot"] time.when').first
    await expect(first).to_have_text("à l'instant")
    assert (await first.get_attribute("datetime") or "").startswith(clock.now.date().isoformat())
    await page.clock.fast_forward("05:00")  # five minutes later, refreshed by itself
    await expect(first).to_have_text("il y a 5 min")

    await walk_to_queue(page)
    await expect(page).to_have_title("Chat d'écoute")
    await page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )  # the young person switched to another tab
    await server.app[STORE].add_listener(Listener("anne", password_hash()))
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as listener:
        assert (await listener.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 200
        conversation = (await (await listener.get("/api/queue")).json())["waiting"][0]["id"]
        assert (await listener.post(f"/api/conversations/{conversation}/take", json={})).status == 200
        await expect(page).to_have_title("(1) Chat d'écoute")  # "a listener joined"
        await listener.post(f"/api/conversations/{conversation}/messages", json={"text": "Bonjour !"})
        await expect(page).to_have_title("(2) Chat d'écoute")
    await page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    await expect(page).to_have_title("Chat d'écoute")


async def test_the_widget_launcher_counts_what_arrives_while_the_chat_is_closed(
    context: BrowserContext, server: TestServer
) -> None:
    host = await context.new_page()
    await host.goto(str(server.make_url("/healthz")))  # any page of a site that embeds the widget
    await host.add_script_tag(url=str(server.make_url("/chat/widget.js")))
    launcher = host.get_by_role("button", name="Besoin de parler ?")
    await launcher.click()
    chat = host.frame_locator("iframe")
    await chat.get_by_role("button", name="Non", exact=True).click()
    await chat.get_by_role("button", name="Français").click()
    await chat.locator("#message-input").fill("j'ai 14 ans")
    await chat.locator("#message-input").press("Enter")
    await chat.get_by_role("button", name="Pour moi").click()
    await chat.get_by_role("button", name="Cyberharcèlement").click()
    await chat.locator("#message-input").fill("Des élèves se moquent de moi.")
    await chat.locator("#message-input").press("Enter")
    await expect(chat.locator("#status-line")).to_contain_text("position 1")
    await host.get_by_role("button", name="Fermer").click()

    await server.app[STORE].add_listener(Listener("anne", password_hash()))
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as listener:
        assert (await listener.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 200
        conversation = (await (await listener.get("/api/queue")).json())["waiting"][0]["id"]
        assert (await listener.post(f"/api/conversations/{conversation}/take", json={})).status == 200
    await expect(host.locator("body > button").last).to_have_text("Besoin de parler ? (1)")
    await host.locator("body > button").last.click()  # opened: read
    await expect(host.locator("body > button").last).to_have_text("Besoin de parler ?")
