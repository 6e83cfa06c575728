"""The web chat in a real Chromium behind a network at its cap: the page shows the calm notice, and a young person
who then writes they are in danger is not sent away (``Gate.new_chat``, docs/security.md "Shared addresses")."""

from __future__ import annotations

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Priority, Status
from gateway.settings import Settings
from tests.e2e.conftest import ServerFactory, french_window
from tests.e2e.live_regions import announced, record
from tests.e2e.test_chat import bot_messages, open_chat, type_answer

pytestmark = __import__("pytest").mark.browser


async def test_a_pupil_behind_a_full_network_who_writes_danger_reaches_the_queue(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    await open_chat(context, server)  # a classmate's conversation: the school's address is at its cap
    async with french_window(browser, 390, 780) as phone:
        page = await phone.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")  # the notice, with the emergency numbers
        await type_answer(page, "je veux mourir")
        await expect(page.locator("#status-line")).to_contain_text("position 1")
        await expect(page.locator('.msg[data-author="user"]')).to_have_count(1)  # shown once, not pending
        await expect(page.locator(".msg.pending")).to_have_count(0)
        # typing before any session sent "typing" frames the server refused ("send hello first"), each said to the
        # young person as "Ce message n'a pas pu être envoyé." (a review of chat.js, 2026-12-05): none now
        await expect(page.locator('.msg[data-author="system"]')).to_have_count(0)
    waiting = await server.app[STORE].waiting()
    assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]


async def test_words_waiting_from_before_are_sent_when_a_full_network_refuses_the_hello(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """A young person wrote "je veux mourir" as the connection dropped (kept unsent in the page), and comes back when
    the school's network is at its cap. The refused hello opened no session, and the page sent what it kept only at a
    session: the words waited, "sending", for a session that would never come (a review of chat.js, 2026-12-05).
    Now the refusal says so (``refused`` without an id) and the page sends them on the held socket, where a danger
    opens the conversation."""
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    await open_chat(context, server)  # a classmate's conversation: the school's address is at its cap
    async with french_window(browser, 390, 780) as phone:
        page = await phone.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")  # the notice
        await page.evaluate("""() => localStorage.setItem("hg-chat-pending", JSON.stringify([
            {id: "kept-1", text: "je veux mourir", payload: null, at: Date.now() - 60 * 1000}]))""")
        await page.reload()
        await expect(page.locator("#status-line")).to_contain_text("position 1")
        await expect(page.locator(".msg.pending")).to_have_count(0)
        await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["je veux mourir"])
    waiting = await server.app[STORE].waiting()
    assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]


async def test_a_refused_message_says_not_sent_and_is_sent_by_try_again_once_there_is_room(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """A message a full network refused stayed drawn as "sending" for good, nothing telling the young person that it
    had not gone nor letting them send it again but a reload (a review of chat.js, 2026-12-05). Now it says "Pas
    encore envoyé." with "Réessayer", which sends it (the same id: recorded once) when the network has room again."""
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    classmate = await open_chat(context, server)
    async with french_window(browser, 390, 780) as phone:
        page = await phone.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")
        await type_answer(page, "bonjour")
        refused = page.locator('.msg.pending.failed[data-author="user"]')
        await expect(refused).to_contain_text("Pas encore envoyé.")
        await expect(bot_messages(page)).to_have_count(1)  # the hello's notice said it: not again for the message
        classmate.on("dialog", lambda dialog: dialog.accept())
        await classmate.get_by_role("button", name="Terminer").click()
        await expect(classmate.get_by_role("button", name="Nouvelle conversation")).to_be_visible()
        await refused.get_by_role("button", name="Réessayer").click()
        await expect(page.locator(".msg.pending")).to_have_count(0)
        await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["bonjour"])
        await expect(page.locator("#choices button").first).to_be_visible()  # the bot's welcome: a session
    users = [
        entry.text
        for conversation in await server.app[STORE].conversations_by_status(Status.BOT)
        for entry in await server.app[STORE].transcript(conversation.id)
        if entry.author == "user"
    ]
    assert users == ["bonjour"]


CUT_AT_NEXT_SEND = """
(() => {  // the network as the test wants it: at window.__cut, a frame sent drops the connection, none opens again
  const Native = window.WebSocket;
  window.WebSocket = function (url) {
    const ws = new Native(window.__cut ? "ws://127.0.0.1:9/" : url);
    const send = ws.send.bind(ws);
    ws.send = (data) => (window.__cut ? ws.close() : send(data));
    return ws;
  };
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();
"""


async def test_try_again_cut_by_a_lost_connection_says_not_sent_not_sending(
    browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """A message tried again says "Envoi en cours…" until the server answers. The connection lost as "Réessayer" was
    pressed (a phone changing networks) and no new one to be had: the bubble said "Envoi en cours…" for as long as the
    page stayed unconnected, beside "Reconnexion…", though nothing was being sent (a review, 2026-12-06). It says
    "Pas encore envoyé." again, as before it was pressed; the message is sent at the next session."""
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    async with french_window(browser, 390, 780) as classmates:
        await open_chat(classmates, server)  # the school's address is at its cap
        async with french_window(browser, 390, 780) as phone:
            await phone.add_init_script(CUT_AT_NEXT_SEND)
            page = await phone.new_page()
            await page.goto(str(server.make_url("/chat")))
            await expect(bot_messages(page).last).to_contain_text("3114")
            await type_answer(page, "bonjour")
            refused = page.locator('.msg.pending.failed[data-author="user"]')
            await expect(refused).to_contain_text("Pas encore envoyé.")
            await page.evaluate("() => { window.__cut = true; }")
            await refused.get_by_role("button", name="Réessayer").click()
            await expect(page.locator("#connection")).to_be_visible()  # "Reconnexion…": the socket is gone
            await expect(page.locator('.msg.pending[data-author="user"]')).to_contain_text("Pas encore envoyé")
            await expect(page.locator('.msg.pending[data-author="user"]')).not_to_contain_text("Envoi en cours")


async def test_try_again_refused_again_is_said_to_a_screen_reader(
    browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """A message tried again and refused again within the minute gets no new notice (once a minute per socket): the
    bubble's words are all that tell it, and the messages' log gives a screen reader what is added to it (``aria-
    relevant="additions"``), not a text changed in place. "Pas encore envoyé." was written over "Envoi en cours…":
    a young person reading by ear pressed "Réessayer" and heard nothing, neither the sending nor the refusal (a
    review, 2026-12-06); before the notice was once a minute, the notice said it. Both are added lines now."""
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    async with french_window(browser, 390, 780) as classmates:
        await open_chat(classmates, server)  # the school's address is at its cap
        async with french_window(browser, 390, 780) as phone:
            await record(phone)
            page = await phone.new_page()
            await page.goto(str(server.make_url("/chat")))
            await expect(bot_messages(page).last).to_contain_text("3114")
            await type_answer(page, "bonjour")
            refused = page.locator('.msg.pending.failed[data-author="user"]')
            await expect(refused).to_contain_text("Pas encore envoyé.")
            await announced(page)
            await refused.get_by_role("button", name="Réessayer").press("Enter")
            said = "() => window.__announced.some((given) => given.text.includes('Pas encore envoyé.'))"
            await page.wait_for_function(said)  # refused again (no room yet), and given to the screen reader
            await expect(bot_messages(page)).to_have_count(1)  # the hello's notice only
            given = " ".join(await announced(page, "messages"))
            assert "Envoi en cours…" in given and "Pas encore envoyé." in given, given
