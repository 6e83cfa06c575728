"""The console on a listener's bad network and keyboard: a take or a close whose request gets no answer (the
connection dropped) is said, never silent, and the listener can try again (a review of the console, 2026-12-05:
nothing was said, and a close left its dialog's state set); an IME's Enter does not send a reply half-written; an
arrival's toast never covers an error; a page admin's answer (Messenger's echo) drawn as the page's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, Route, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.events import EntryAdded
from gateway.store import Author, Listener, TranscriptEntry
from tests.conftest import password_hash
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import log_in
from tests.test_webchat import WALK_TO_QUEUE, hello, say

pytestmark = pytest.mark.browser

NO_ANSWER = "Pas de réponse du serveur (connexion coupée ?)"


async def test_a_take_and_a_close_without_an_answer_are_said_and_can_be_tried_again(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    card = listener.locator("#waiting .card")
    await expect(card).to_have_count(1)

    async def cut(route: Route) -> None:
        await route.abort("connectionreset")

    await listener.route("**/take", cut)
    await card.locator(".take").click()
    await expect(listener.locator("#toast")).to_contain_text(NO_ANSWER)
    await listener.unroute("**/take", cut)
    await card.locator(".take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    await listener.route("**/close", cut)
    await listener.get_by_role("button", name="Clôturer").click()
    await listener.get_by_label("Catégorie").select_option(label="Cyberharcèlement")
    await listener.locator("#close-send").click()
    await expect(listener.locator("#toast")).to_contain_text(NO_ANSWER)
    await listener.unroute("**/close", cut)
    await listener.get_by_role("button", name="Clôturer").click()
    await listener.get_by_label("Catégorie").select_option(label="Cyberharcèlement")
    await listener.locator("#close-send").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("clôturée")
    await expect(young.locator(".ended")).to_be_visible()
    assert [c.outcome for c in await server.app[STORE].conversations_by_status(Status.CLOSED)] == ["cyberbullying"]


async def test_an_arrival_never_covers_an_error_still_shown(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """Anne's take gets no answer: "Pas de réponse du serveur" is shown; a young person reaching the queue a moment
    later beeps, but their "Nouvelle conversation en attente" never covers the error before its time. Before, it did
    at once (a fresh-clone run on a busy machine saw a lost hand-back's own card do it, and that test failed)."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    card = listener.locator("#waiting .card")
    await expect(card).to_have_count(1)

    async def cut(route: Route) -> None:
        await route.abort("connectionreset")

    await listener.route("**/take", cut)
    await card.locator(".take").click()
    await expect(listener.locator("#toast")).to_contain_text(NO_ANSWER)
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/chat/ws")) as ws:
        await hello(ws)  # another young person reaches the queue at once, over the web chat's socket
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        await expect(card).to_have_count(2)
    shown = listener.locator("#toast")
    assert await shown.is_hidden() or NO_ANSWER in (await shown.text_content() or ""), await shown.text_content()


async def test_enter_that_ends_a_word_being_composed_sends_no_reply(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """An IME's Enter ends the word being composed: it sent the listener's reply half-written (a review of the
    console, 2026-12-05). Left to the keyboard; the next Enter sends."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#reply")).to_be_focused()
    await listener.fill("#reply", "Je suis là pour t'écou")
    composing = "new KeyboardEvent('keydown', {key: 'Enter', isComposing: true, bubbles: true, cancelable: true})"
    await listener.locator("#reply").evaluate(f"node => node.dispatchEvent({composing})")
    await expect(listener.locator("#reply")).to_have_value("Je suis là pour t'écou")
    await listener.fill("#reply", "Je suis là pour t'écouter.")
    await listener.keyboard.press("Enter")
    await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text(["Je suis là pour t'écouter."])


async def test_an_orienter_whose_answer_was_lost_sent_again_tells_the_young_person_once(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """Anne's "Orienter" reaches the server, its answer is lost (the connection reset on the way back): the console
    says so, she sends it again; the young person gets the 119's message once (the console's id kept until an answer
    came). Before, each click was another referral: the message twice (a review of the listener's actions done twice
    or cut, 2027-01)."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    async def answer_lost(route: Route) -> None:
        await route.fetch()  # made by the server
        await route.abort("connectionreset")  # its answer never reaches the page

    async def orienter() -> None:
        await listener.get_by_role("button", name="Orienter").click()
        await listener.get_by_label("Partenaire").select_option("119")
        await listener.get_by_role("button", name="Envoyer l'orientation").click()

    await listener.route("**/refer", answer_lost)
    await orienter()
    await expect(listener.locator("#toast")).to_contain_text(NO_ANSWER)
    await listener.unroute("**/refer", answer_lost)
    await orienter()
    await expect(listener.locator("#toast")).to_contain_text("Orientation envoyée")
    told = young.locator('.msg[data-author="listener"] .text')
    await expect(told).to_have_count(1)
    await expect(told).to_contain_text("119")
    conversation = (await server.app[STORE].conversations_by_status(Status.WITH_LISTENER))[0]
    sent = [e for e in await server.app[STORE].transcript(conversation.id) if e.author is Author.LISTENER]
    assert len(sent) == 1, [e.text for e in sent]


async def test_an_action_whose_network_went_silent_is_said_within_seconds(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """Anne's "Rendre à la file" leaves on a network gone silent (a Wi-Fi lost without a word: no reset, no answer,
    ever): within the console's answer wait the console says it got no answer, as it does for a reply; before, act()
    waited with no limit, nothing said for minutes, and the listener clicked again (a review of the listener's actions
    done twice or cut, 2027-01)."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    held: list[Route] = []

    async def silent(route: Route) -> None:
        held.append(route)  # never answered while the test looks

    await listener.clock.install()  # the console's answer wait (15 s) run on the page's clock, not waited for
    await listener.route("**/hand-back", silent)
    async with listener.expect_request("**/hand-back"):  # its wait started
        await listener.get_by_role("button", name="Rendre à la file").click()
    await listener.clock.run_for(16_000)
    await expect(listener.locator("#toast")).to_contain_text(NO_ANSWER)
    assert held, "the hand-back never left the page"  # and the page gave up on it (its request aborted)


async def test_a_logout_that_gets_no_answer_says_so_and_can_be_tried_again(
    desk: BrowserContext, server: TestServer
) -> None:
    """Anne presses "Se déconnecter" on a network gone silent: the session is not ended (the server never heard of
    it), and the console said nothing, staying as it was: she walked away from a shared desk still logged in. Now,
    after the wait, the page says the logout got no answer and to try again; tried again, it lands on the login page
    (a review of the listener's actions done twice or cut, 2027-01)."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    held: list[Route] = []

    async def silent(route: Route) -> None:
        if route.request.method == "DELETE":
            held.append(route)  # never answered while the test looks
        else:
            await route.continue_()

    await listener.clock.install()  # the logout's answer wait (15 s) run on the page's clock, not waited for
    await listener.route("**/api/session", silent)
    async with listener.expect_request(lambda r: r.method == "DELETE" and r.url.endswith("/api/session")):
        await listener.get_by_role("button", name="Se déconnecter").click()
    await listener.clock.run_for(16_000)
    await expect(listener.get_by_role("alert")).to_contain_text("Pas de réponse du serveur")
    assert held, "the logout never left the page"  # and the page gave up on it (its request aborted)
    await listener.unroute("**/api/session", silent)
    await listener.get_by_role("button", name="Se déconnecter").click()
    await expect(listener).to_have_url(f"{server.make_url('/console/login')}")


async def test_a_hand_back_whose_answer_was_lost_sent_again_is_said_made_not_refused(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """Anne's "Rendre à la file" reaches the server, its answer is lost and so is the reload after it (a Redis
    restart, a network coming and going): the panel still offers it, she clicks again. The console kept the hand-back's
    id, so the server answers it as made: "Conversation rendue à la file". Before, the second click was answered 409
    "Cette conversation n'est pas avec toi." after her own hand-back had succeeded (a review of the console's actions
    sent twice or cut, 2027-02)."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    async def answer_lost(route: Route) -> None:
        await route.fetch()  # made by the server
        await route.abort("connectionreset")  # its answer never reaches the page

    async def unreadable(route: Route) -> None:
        if route.request.method == "GET":
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await listener.route("**/api/conversations/*", unreadable)  # the page cannot read where it stands either
    await listener.route("**/hand-back", answer_lost)
    await listener.get_by_role("button", name="Rendre à la file").click()
    await expect(listener.locator("#toast")).to_contain_text(NO_ANSWER)
    await listener.unroute("**/hand-back", answer_lost)
    await listener.unroute("**/api/conversations/*", unreadable)
    await listener.get_by_role("button", name="Rendre à la file").click()
    await expect(listener.locator("#toast")).to_contain_text("Conversation rendue à la file")
    await expect(listener.locator("#toast")).not_to_have_class("toast error-toast")
    assert [c.listener for c in await server.app[STORE].conversations_by_status(Status.QUEUED)] == [None]


async def test_a_page_admins_answer_is_shown_as_the_pages_not_the_young_persons(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """An entry of the page sent from outside the gateway (Messenger: tests/e2e/test_messenger_echoes.py) is drawn,
    live and when the conversation is opened again, on the listener's side, never as the young person's words: a
    known person's (author ``page_human``, its app in MESSENGER_HUMAN_ECHO_APPS) labelled "Répondu depuis la boîte de
    réception Meta", any other (author ``page``: maybe one of Meta's automated responses, and every entry written
    before 2026-12-06) "Message de la page (réponse automatique ou boîte Meta)". Until 2026-12-06 both were labelled
    as an admin's answer: a listener took Meta's Instant Reply for a colleague's words."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    [held] = await server.app[STORE].conversations_by_status(Status.WITH_LISTENER)
    automated = TranscriptEntry(id="page-1", conversation_id=held.id, at=datetime.now(UTC), author=Author.PAGE,
                                text="Merci pour ton message, nous répondons en général sous une heure.")  # fmt: skip
    human = TranscriptEntry(id="page-2", conversation_id=held.id, at=datetime.now(UTC), author=Author.PAGE_HUMAN,
                            text="Bonjour, ici l'équipe de la page.")  # fmt: skip
    for entry in (automated, human):
        await server.app[STORE].append_transcript(entry)
        await server.app[STORE].publish(EntryAdded(held.id, entry))
    await labelled(listener)  # live
    await listener.reload()
    await listener.locator("#mine .card").first.click()
    await labelled(listener)  # opened again
    await listener.get_by_role("button", name="EN", exact=True).click()
    await expect(listener.locator(".msg.page", has_text="sous une heure")).to_contain_text(
        "Page message (automated response or Meta inbox)"
    )
    await expect(listener.locator(".msg.page", has_text="l'équipe de la page")).to_contain_text(
        "Answered from Meta's inbox"
    )
    assert await listener.locator(".msg.user", has_text="l'équipe de la page").count() == 0
    assert await listener.locator(".msg.user", has_text="sous une heure").count() == 0


async def labelled(listener: Page) -> None:
    """The page's automated-or-inbox entry and the known person's, each labelled as what it is (in French)."""
    page = listener.locator(".msg.page", has_text="sous une heure")
    await expect(page).to_contain_text("Message de la page (réponse automatique ou boîte Meta)")
    await expect(page).not_to_contain_text("Répondu depuis")
    person = listener.locator(".msg.page", has_text="l'équipe de la page")
    await expect(person).to_contain_text("Répondu depuis la boîte de réception Meta")


async def test_a_waiting_card_says_when_the_page_answered_the_young_person(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """A listener choosing whom to take sees the card only: it says "Répondu depuis la boîte de réception Meta" when
    a human of the line answered them from outside the gateway (``Conversation.page_answered_at``); never on others."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    card = listener.locator("#waiting .card")
    await expect(card).to_have_count(1)
    await expect(card.locator(".pill.page")).to_have_count(0)
    [waiting] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    waiting.page_answered_at = datetime.now(UTC)  # as Dispatcher.handle_echo marks it (a Messenger echo)
    await server.app[STORE].save_conversation(waiting)
    await listener.reload()
    await expect(card.locator(".pill.page")).to_have_text("Répondu depuis la boîte de réception Meta")


async def test_a_typing_notice_refused_or_unanswered_writes_no_error_and_the_reply_box_goes_on(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """The "écoutant·e écrit…" notice is best-effort: Anne's first one answered 503 (Redis restarting), the next with
    no answer (the connection dropped) leave nothing in the page's console, her reply still reaches the young person
    and a later notice still leaves. Before, the dropped one was an "Uncaught (in promise) TypeError: Failed to
    fetch" (no rejection handler on the typing POST; a review of the console, 2026-12-06)."""
    await server.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3))
    listener = await log_in(desk, server, "anne")
    errors: list[str] = []
    listener.on("pageerror", lambda error: errors.append(str(error)))
    listener.on(
        "console",  # the browser's own line for a refused or failed request is not the page's script
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    async def refused(route: Route) -> None:
        await route.fulfill(status=503, json={"error": "unavailable", "message": "store unavailable"})

    async def cut(route: Route) -> None:
        await route.abort("connectionrefused")

    await listener.route("**/typing", refused)
    async with listener.expect_response("**/typing") as answered:
        await listener.locator("#reply").press_sequentially("Je")
    assert (await answered.value).status == 503
    await listener.unroute("**/typing", refused)
    await listener.route("**/typing", cut)
    await listener.clock.set_fixed_time(datetime.now(UTC) + timedelta(hours=1))  # past the notices' 3 s apart
    async with listener.expect_event("requestfailed", lambda r: r.url.endswith("/typing")):
        await listener.locator("#reply").press_sequentially(" suis là.")
    await listener.locator("#reply").press("Enter")
    await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text(["Je suis là."])
    await listener.unroute("**/typing", cut)
    await listener.clock.set_fixed_time(datetime.now(UTC) + timedelta(hours=2))
    async with listener.expect_response("**/typing") as answered:
        await listener.locator("#reply").press_sequentially("Tu")
    assert (await answered.value).ok
    assert errors == []
