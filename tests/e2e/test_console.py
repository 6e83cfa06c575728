"""The listener console in a real Chromium, with several browser contexts at once: a young person in /chat and
listeners in /console go through the hand-off, messages both ways, a canned response, a private note, a hostile
message shown as text, and closing; two listeners race for one conversation; a supervisor watches the board."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.store import Listener
from tests.conftest import PASSWORD, password_hash
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"


async def add_listeners(server: TestServer, *names: str, supervisor: str | None = None) -> None:
    store = server.app[STORE]
    for name in (*names, *([supervisor] if supervisor else [])):
        await store.add_listener(Listener(name, password_hash(), supervisor=name == supervisor, capacity=3))


async def log_in(context: BrowserContext, server: TestServer, name: str) -> Page:
    page = await context.new_page()
    await page.goto(str(server.make_url("/console")))
    await expect(page).to_have_url(str(server.make_url("/console/login")))
    await page.get_by_label("Nom").fill(name)
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.locator("#me")).to_have_text(name)
    await expect(page.locator("#connection")).to_have_text("En direct")
    return page


async def test_first_start_tells_how_to_create_an_account(desk: BrowserContext, server: TestServer) -> None:
    page = await desk.new_page()
    await page.goto(str(server.make_url("/console/login")))
    await expect(page.locator("#first-account")).to_contain_text("gateway listeners add NOM --supervisor")
    await add_listeners(server, "anne")
    await page.reload()
    await expect(page.locator("#first-account")).to_be_hidden()
    await page.get_by_label("Nom").fill("anne")
    await page.get_by_label("Mot de passe").fill("wrong password!")
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.locator("#login-error")).to_have_text("Nom ou mot de passe incorrect.")


async def test_hand_off_messages_canned_note_hostile_text_and_close(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    listener = await log_in(desk, server, "anne")
    dialogs: list[str] = []
    listener.on("dialog", lambda dialog: dialogs.append(dialog.message))

    young = await open_chat(context, server)
    await walk_to_queue(young)

    card = listener.locator("#waiting .card")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text("Chat web")
    await expect(card).to_contain_text("attend depuis")
    await expect(card).to_contain_text("Cyberharcèlement")  # the summary the bot gathered
    await expect(listener).to_have_title("(1) Console d'écoute")
    await card.get_by_role("button", name="Prendre").click()

    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    await expect(listener.locator('#transcript .msg[data-author="bot"]').first).to_contain_text("confidentiel")
    await expect(young.locator("#status-line")).to_contain_text("écoutant·e est avec toi")

    await type_answer(young, "Bonjour, vous êtes là ?")
    await expect(listener.locator('#transcript .msg[data-author="user"] .text').last).to_have_text(
        "Bonjour, vous êtes là ?"
    )

    # The web chat tells the console the young person types (at most every 3 s: move the page's clock past that).
    await young.clock.set_fixed_time(datetime.now(UTC) + timedelta(hours=1))
    await young.fill("#message-input", "j'écris encore")
    await expect(listener.locator("#user-typing")).to_be_visible()
    await young.keyboard.press("Enter")

    reply = listener.locator("#reply")
    await reply.fill("/bonjour")
    await reply.press("Enter")  # a shortcut is replaced by its text; Enter again sends it
    await expect(reply).to_have_value(
        "Bonjour, je suis écoutant·e au 3018. Merci de nous avoir écrit. Je lis ton message, prends ton temps pour "
        "m'expliquer."
    )
    await reply.press("Enter")
    await expect(young.locator('.msg[data-author="listener"] .text').last).to_contain_text("je suis écoutant·e au 3018")
    # the web chat page acknowledges what it showed: the young person has it in sight (docs/webchat-protocol.md)
    await expect(listener.locator('#transcript .msg[data-author="listener"] .delivery').last).to_have_text("lu")

    await listener.get_by_role("button", name="Note privée").click()
    await reply.fill("Note : semble en sécurité chez elle")
    await listener.get_by_role("button", name="Enregistrer la note").click()
    await expect(listener.locator('#transcript .msg[data-author="note"] .text')).to_contain_text("semble en sécurité")

    await type_answer(young, HOSTILE)
    hostile = listener.locator('#transcript .msg[data-author="user"] .text').last
    await expect(hostile).to_have_text(HOSTILE)
    assert await listener.locator("#transcript img").count() == 0

    await listener.get_by_role("button", name="Clôturer").click()
    await listener.get_by_label("Catégorie").select_option(label="Cyberharcèlement")
    await listener.get_by_label("Notes (privées, jamais envoyées)").fill("Orientée vers les preuves")
    await listener.locator("#close-send").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("clôturée")
    await expect(young.locator(".ended")).to_be_visible()

    young_text = await young.locator("#messages").inner_text()
    assert "semble en sécurité" not in young_text and "Orientée vers les preuves" not in young_text
    assert dialogs == []
    conversation = (await server.app[STORE].conversations_by_status(Status.CLOSED))[0]
    assert conversation.outcome == "cyberbullying"


async def test_two_listeners_race_for_one_conversation(
    context: BrowserContext, desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne", "bruno")
    other = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="fr-FR")
    other.set_default_timeout(15_000)
    try:
        anne, bruno = await log_in(desk, server, "anne"), await log_in(other, server, "bruno")
        young = await open_chat(context, server)
        await walk_to_queue(young)
        buttons = []
        for page in (anne, bruno):
            await expect(page.locator("#waiting .card")).to_have_count(1)
            buttons.append(await page.locator("#waiting .card .take").element_handle())
        # Both click at once: the event is dispatched even if the card has just been re-rendered.
        await asyncio.gather(*(button.dispatch_event("click") for button in buttons if button))

        refused = "Un·e autre écoutant·e a déjà pris cette conversation."
        winners = []
        for name, page in (("anne", anne), ("bruno", bruno)):
            await expect(page.locator("#waiting .card")).to_have_count(0)
            await expect(page.locator("#toast")).to_be_visible()
            if (await page.locator("#toast").inner_text()) != refused:
                winners.append(name)
        assert len(winners) == 1
        winner = anne if winners == ["anne"] else bruno
        await expect(winner.locator("#conv-meta")).to_contain_text("avec " + winners[0])
        await expect(winner.locator("#mine .card")).to_have_count(1)
    finally:
        await other.close()


async def test_a_supervisor_sees_the_figures_move(
    context: BrowserContext, desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne", supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#live-waiting")).to_have_text("0")
    await expect(board.locator("#total")).to_have_text("0")
    await expect(board.locator("#reload")).to_contain_text("réussi")
    await expect(board.locator("#diagram img")).to_have_js_property("complete", True)
    assert await board.locator("#diagram img").evaluate("i => i.naturalWidth") > 0

    young = await open_chat(context, server)
    await walk_to_queue(young)
    await expect(board.locator("#live-waiting")).to_have_text("1")
    await expect(board.locator("#total")).to_have_text("1")
    await expect(board.locator('#chart-channels .bar[data-key="webchat"] .n')).to_have_text("1")

    helper = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="fr-FR")
    try:
        anne = await log_in(helper, server, "anne")
        await expect(board.locator("#live-online")).to_have_text("1")  # anne: sam only watches the board
        await anne.locator("#waiting .card .take").click()
        await expect(board.locator("#live-waiting")).to_have_text("0")
        await expect(board.locator("#live-progress")).to_have_text("1")
        await anne.get_by_role("button", name="Clôturer").click()
        await anne.get_by_label("Catégorie").select_option("school_bullying")
        await anne.locator("#close-send").click()
        await expect(board.locator('#chart-outcomes .bar[data-key="school_bullying"] .n')).to_have_text("1")
        await expect(board.locator('#chart-routes .bar[data-key="listener"] .n')).to_have_text("1")
    finally:
        await helper.close()
    csv_link = await board.locator("#csv").get_attribute("href")
    assert csv_link and csv_link.startswith("/api/stats.csv?from=")


async def test_refer_then_hand_back_then_transfer(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    await listener.get_by_role("button", name="Orienter").click()
    await listener.get_by_label("Partenaire").select_option("119")
    await listener.get_by_role("button", name="Envoyer l'orientation").click()
    await expect(young.locator('.msg[data-author="listener"] .text').last).to_contain_text("119")

    await listener.get_by_role("button", name="Rendre à la file").click()
    await expect(listener.locator("#waiting .card")).to_have_count(1)
    await expect(listener.locator("#conv-meta")).to_contain_text("en attente")
    await listener.get_by_role("button", name="Transférer").click()
    await listener.get_by_label("File").select_option("listeners")
    await listener.get_by_role("button", name="Transférer", exact=True).last.click()
    # the queue it waits in: nothing moves (it keeps its place in line), and the console says so
    await expect(listener.locator("#toast")).to_have_text(
        "Cette conversation attend déjà dans cette file : rien n'a été changé (elle garde sa place)."
    )
    await expect(listener.locator("#waiting .card")).to_have_count(1)
    await listener.locator("#take").click()  # held, it moves: to the back of the queue
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    await expect(listener.locator("#reply")).to_be_focused()  # the take's own reload done
    await listener.get_by_role("button", name="Transférer").click()
    await listener.get_by_label("File").select_option("listeners")
    await listener.get_by_role("button", name="Transférer", exact=True).last.click()
    # (its toast may give way to the queue's "Nouvelle conversation en attente": the card is back in the queue)
    await expect(listener.locator("#conv-meta")).to_contain_text("en attente")
    await expect(listener.locator("#waiting .card")).to_have_count(1)
