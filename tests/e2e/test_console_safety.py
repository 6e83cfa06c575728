"""Blocking from the console and lifting from the supervision page, in a real Chromium: the young person gets
the neutral notice with the emergency numbers, the supervisor sees the block, the flood and the audit log. A flood's
bulk close keeps the conversations flagged at risk; a second button, after a confirmation, closes them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Dialog, Route, expect

from gateway.app import STORE
from gateway.store import Block
from tests.conftest import PASSWORD
from tests.e2e.conftest import HeldAnswer
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.test_security import DANGER
from tests.test_security import open_chat as hello
from tests.test_webchat import WALK_TO_QUEUE, say

pytestmark = pytest.mark.browser
UNAVAILABLE = {"error": "unavailable", "message": "try again shortly"}  # the app's answer while the store is away
OTHER_UNANSWERED = "Pas de réponse du serveur (connexion coupée ?) : réessaie dans un instant."  # refused.network.other


async def test_a_listener_blocks_a_sender_and_a_supervisor_lifts_the_block(
    context: BrowserContext, desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne", supervisor="sam")
    young = await open_chat(context, server)
    await walk_to_queue(young)

    anne = await log_in(desk, server, "anne")
    await anne.locator("#waiting .card .take").click()
    await anne.get_by_role("button", name="Bloquer").click()
    await anne.get_by_label("Durée").select_option("30d")
    await anne.get_by_label("Raison (pour les superviseur·es)").fill("insultes répétées")
    await anne.locator("#block-send").click()
    await expect(anne.locator("#toast")).to_have_text("Expéditeur bloqué")

    await type_answer(young, "encore moi")
    notice = young.locator('.msg[data-author="bot"] .text').last
    await expect(notice).to_contain_text("ne peut pas recevoir tes messages")
    await expect(notice).to_contain_text("3114")
    await expect(notice).to_contain_text("112")

    supervisor = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    board = await log_in(supervisor, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    row = board.locator("#blocks tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("insultes répétées")
    await expect(row).to_contain_text("anne")
    await expect(board.locator("#audit")).to_contain_text("blocage")
    await row.get_by_role("button", name="Lever").click()
    await expect(board.locator("#blocks tbody")).to_contain_text("Rien pour l'instant.")
    await expect(board.locator("#audit li").first).to_contain_text("blocage levé")
    await supervisor.close()


async def test_a_bulk_close_keeps_the_flagged_ones_and_a_second_button_closes_them_after_a_confirmation(
    desk: BrowserContext, server: TestServer
) -> None:
    """Three web chats from one address (a flood): one still with the bot, two that wrote words of danger (flagged,
    waiting). The supervision page badges the two "Signalée à risque · Suicide". "Clôturer la sélection" of all three
    closes one and keeps the two, and says so; the second button ("Clôturer aussi les 2 signalée(s) à risque") asks
    first: dismissed, nothing closed; accepted, the two are closed and the audit log counts them."""
    await add_listeners(server, supervisor="sam")
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        for text in (WALK_TO_QUEUE[0], DANGER, DANGER):
            ws = await stack.enter_async_context(session.ws_connect(server.make_url("/chat/ws")))
            await hello(ws)
            await say(ws, "m0", text)
        assert len(await server.app[STORE].waiting()) == 2

        board = await log_in(desk, server, "sam")
        await board.get_by_role("link", name="Supervision").click()
        rows = board.locator("#floods tbody tr")
        await expect(rows).to_have_count(3)
        await expect(board.locator("#floods .badge.risk")).to_have_count(2)
        await expect(board.locator("#floods .badge.risk").first).to_have_text("Signalée à risque · Suicide")
        close_flagged = board.locator("#floods-close-flagged")
        await expect(close_flagged).to_be_hidden()

        await board.get_by_label("Tout sélectionner").check()
        await board.get_by_role("button", name="Clôturer la sélection").click()
        result = board.locator("#floods-result")
        await expect(result).to_have_text(
            "1 conversation(s) clôturée(s) · 2 conversation(s) signalée(s) à risque gardée(s)"
        )
        await expect(rows).to_have_count(2)
        await expect(board.locator("#floods .badge.risk")).to_have_count(2)
        await expect(close_flagged).to_have_text("Clôturer aussi les 2 signalée(s) à risque")

        asked: list[str] = []

        async def dismiss(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.dismiss()

        board.once("dialog", dismiss)
        await close_flagged.click()
        await expect(close_flagged).to_be_visible()  # dismissed: nothing sent
        assert len(asked) == 1 and asked[0].startswith("Clôturer aussi 2 conversation(s) signalée(s) à risque ?")
        assert len(await server.app[STORE].waiting()) == 2

        async def accept(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        board.once("dialog", accept)
        await close_flagged.click()
        await expect(result).to_have_text("2 conversation(s) clôturée(s)")
        await expect(close_flagged).to_be_hidden()
        await expect(board.locator("#floods tbody")).to_contain_text("Rien pour l'instant.")
        await expect(board.locator("#audit li").first).to_contain_text("2 flagged at risk among them")
        assert len(asked) == 2 and await server.app[STORE].waiting() == []


async def test_a_periodic_reload_answered_after_the_close_does_not_bring_back_what_was_closed(
    desk: BrowserContext, server: TestServer
) -> None:
    """The page reloads every ten seconds. One asked before a bulk close and answered after the close's own reload
    (a busy gateway answers out of order) carries the list from before the close: it is dropped, the page keeps
    showing what the close left. The answer is held at the network (Playwright's route), the ten seconds are the
    page's fake clock. (Seen failing without ``HG.newest``: the old answer drew the two conversations again.)"""
    await add_listeners(server, supervisor="sam")
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        for text in (WALK_TO_QUEUE[0], WALK_TO_QUEUE[0]):
            ws = await stack.enter_async_context(session.ws_connect(server.make_url("/chat/ws")))
            await hello(ws)
            await say(ws, "m0", text)

        await desk.clock.install()
        board = await log_in(desk, server, "sam")
        await board.get_by_role("link", name="Supervision").click()
        rows = board.locator("#floods tbody tr")
        await expect(rows).to_have_count(2)

        held = await HeldAnswer.next_of(desk, board, "/api/floods")
        await board.clock.fast_forward(10_000)  # the periodic reload: its answer held
        await held.asked()

        await board.get_by_label("Tout sélectionner").check()
        await board.get_by_role("button", name="Clôturer la sélection").click()
        await expect(board.locator("#floods-result")).to_have_text("2 conversation(s) clôturée(s)")
        await expect(board.locator("#floods tbody")).to_contain_text("Rien pour l'instant.")  # the close's own reload

        await held.release()  # the old answer arrives last
        assert await rows.count() == 1
        await expect(board.locator("#floods tbody")).to_contain_text("Rien pour l'instant.")


async def test_a_sextortion_without_a_flag_is_badged_with_its_interrupt(
    desk: BrowserContext, server: TestServer
) -> None:
    """A web chat whose first message is a blackmail going on (the ``sextortion`` interrupt: "high", Pharos, no risk
    class, no flag): at risk all the same since 2026-12-05, badged "Signalée à risque · Sextorsion" (never a word)."""
    await add_listeners(server, supervisor="sam")
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/chat/ws")) as ws:
        await hello(ws)
        await say(ws, "m0", "il me demande 200€ sinon il envoie mes photos à tous")
        assert len(await server.app[STORE].waiting()) == 1

        board = await log_in(desk, server, "sam")
        await board.get_by_role("link", name="Supervision").click()
        await expect(board.locator("#floods tbody tr")).to_have_count(1)
        await expect(board.locator("#floods .badge.risk")).to_have_text("Signalée à risque · Sextorsion")


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """What a test keeps open to its end (a young person's web chat socket)."""
    async with contextlib.AsyncExitStack() as stack:
        yield stack


async def test_the_login_page_says_a_braked_login_and_an_unavailable_store_in_words(
    desk: BrowserContext, server: TestServer
) -> None:
    """A login braked after wrong passwords (429 ``too_many_attempts``, its Retry-After) and one met by the store
    away (503 ``unavailable``, the app's answer, tests/console/test_unavailable.py) are said in the console's words,
    the wait in minutes; before 2026-12-06 both read "Connexion impossible, réessaie.", and trying again at once was
    braked again."""
    await add_listeners(server, supervisor="sam")
    page = await desk.new_page()
    await page.goto(str(server.make_url("/console/login")))
    await page.get_by_label("Nom").fill("sam")
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    braked = {"error": "too_many_attempts", "message": "too many wrong passwords: try again in 900 s"}
    await page.route("**/api/session", lambda route: route.fulfill(status=429, json=braked,
                                                                    headers={"Retry-After": "900"}))  # fmt: skip
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.locator("#login-error")).to_have_text("Trop de mots de passe erronés : réessaie dans 15 min.")
    await page.unroute("**/api/session")
    await page.route("**/api/session", lambda route: route.fulfill(status=503, json=UNAVAILABLE))
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.locator("#login-error")).to_have_text(re.compile(r"^Le serveur est momentanément indisponible"))
    await page.unroute("**/api/session")
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.locator("#me")).to_have_text("sam")


async def test_the_safety_actions_say_a_refusal_in_the_consoles_words(
    desk: BrowserContext, server: TestServer, stack: contextlib.AsyncExitStack
) -> None:
    """A supervisor's "Déconnecter partout" for an account removed meanwhile, "Lever" on a block lifted meanwhile
    (each removed by the route just before the real server answers), a lift answered 503 ``unavailable`` (the store
    away) and a bulk close whose connection drops are said in the console's words and language; until 2026-12-06
    "Action impossible (404)." for the account, nothing at all for a lift, and "Action impossible (…)" or nothing
    for the bulk close."""
    store = server.app[STORE]
    await add_listeners(server, "anne", supervisor="sam")
    now = datetime.now(UTC)
    block = Block(key="b" * 32, channel="webchat", until=None, reason="insultes", by="anne", at=now, pseudonym="Lynx")
    await store.put_block(block)
    chat = await stack.enter_async_context(aiohttp.ClientSession())
    await hello(await stack.enter_async_context(chat.ws_connect(server.make_url("/chat/ws"))))  # one with the bot

    page = await log_in(desk, server, "sam")
    await page.get_by_role("link", name="Supervision").click()
    await expect(page.locator("#blocks tbody tr")).to_contain_text("insultes")

    async def gone_meanwhile(route: Route) -> None:  # a colleague was quicker: the real server finds nothing
        await (store.remove_listener("anne") if route.request.method == "POST" else store.remove_block(block.key))
        await route.continue_()

    await page.route("**/api/listeners/anne/logout", gone_meanwhile)
    await page.get_by_role("button", name="Déconnecter partout : anne").click()
    await expect(page.locator("#accounts-result")).to_have_text("Ce compte n'existe plus (supprimé entre-temps ?).")

    await page.route("**/api/blocks/*", lambda route: route.fulfill(status=503, json=UNAVAILABLE))
    await page.get_by_role("button", name="Lever").click()
    blocks = page.locator("#blocks-result")
    await expect(blocks).to_have_text(re.compile(r"^Le serveur est momentanément indisponible"))
    await page.unroute("**/api/blocks/*")
    await page.route("**/api/blocks/*", gone_meanwhile)
    await page.get_by_role("button", name="Lever").click()
    await expect(blocks).to_have_text(re.compile(r"^Ce blocage n'est plus en vigueur"))

    await expect(page.locator("#floods tbody input")).to_have_count(1)
    await page.get_by_label("Tout sélectionner").check()
    await page.route("**/api/floods/close", lambda route: route.abort())  # the connection drops
    await page.get_by_role("button", name="Clôturer la sélection").click()
    await expect(page.locator("#floods-result")).to_have_text(OTHER_UNANSWERED)  # no conversation to look at


async def test_the_safety_lists_read_refused_or_unanswered_say_so_once_and_are_read_again(
    desk: BrowserContext, server: TestServer
) -> None:
    """The safety lists (floods, blocks, accounts, audit) read every 10 s: a list whose read is refused (503
    ``unavailable``, the store away) or unanswered (the connection dropped) is said possibly out of date on its own
    line (#floods-stale…) and keeps what it showed; the others, read fine, are drawn afresh and say nothing; the next
    read that answers hides the line. Until 2026-12-06 nothing was said (the lists simply stopped changing) and a
    read with no answer left an unhandled promise rejection; then, until the same day's later change, one list
    refused kept all four as they were and said all four possibly out of date (a block lifted meanwhile stayed
    shown)."""
    store = server.app[STORE]
    await add_listeners(server, "anne", supervisor="sam")
    block = Block(key="c" * 32, channel="webchat", until=None, reason="insultes", by="anne", at=datetime.now(UTC))
    await store.put_block(block)
    page = await log_in(desk, server, "sam")
    errors: list[Exception] = []
    page.on("pageerror", lambda error: errors.append(error))
    await page.get_by_role("link", name="Supervision").click()
    await expect(page.locator("#blocks tbody tr")).to_contain_text("insultes")
    lines = {name: page.locator(f"#{name}-stale") for name in ("floods", "blocks", "accounts", "audit")}
    for line in lines.values():
        await expect(line).to_be_hidden()

    await page.route("**/api/floods", lambda route: route.fulfill(status=503, json=UNAVAILABLE))
    await page.get_by_role("button", name="Lever").click()  # the lists read again at once, the floods' refused
    await expect(page.locator("#blocks tbody tr")).to_contain_text("Rien pour l'instant.")  # read fine: drawn
    await expect(page.locator("#audit")).to_contain_text("blocage levé")
    floods = lines.pop("floods")
    await expect(floods).to_have_text(re.compile(r"^Le serveur est momentanément indisponible : cette liste"))
    for line in lines.values():  # read fine: not out of date
        await expect(line).to_be_hidden()

    await page.unroute("**/api/floods")
    await page.route("**/api/floods", lambda route: route.abort())  # the next period's read gets no answer
    await expect(floods).to_have_text(re.compile(r"^Pas de réponse du serveur \(connexion coupée \?\) : cette liste"))
    for line in lines.values():
        await expect(line).to_be_hidden()
    assert not errors, errors

    await page.unroute("**/api/floods")
    await page.get_by_role("button", name="Déconnecter partout : anne").click()  # its lists read again at once
    await expect(floods).to_be_hidden()
    await expect(page.locator("#accounts-result")).to_contain_text("anne")


async def test_the_password_dialog_says_a_dropped_connection_and_too_many_wrong_passwords_in_words(
    desk: BrowserContext, server: TestServer
) -> None:
    """ "Mot de passe" with no answer says the neutral dropped-connection text (there is no conversation to look at:
    ``refused.network.other``); wrong current passwords, sent again and again, reach the server's brake (429
    ``too_many_attempts``, the real one: 3 free failures, then a growing wait, a lock at 10) and the dialog says it in
    French with the real wait (the 429's Retry-After, as the login page does), never the server's English message.
    Until 2026-12-06 the 429 had no Retry-After and the dialog said "attends quelques minutes" for a wait of 1-4 s."""
    await add_listeners(server, "anne")
    page = await log_in(desk, server, "anne")
    await page.get_by_role("button", name="Mot de passe").click()
    await page.get_by_label("Nouveau mot de passe", exact=True).fill("une phrase assez longue pour 2027")
    await page.get_by_label("Nouveau mot de passe, encore").fill("une phrase assez longue pour 2027")
    error = page.locator("#password-error")
    await page.get_by_label("Mot de passe actuel").fill(PASSWORD)
    await page.route("**/api/me/password", lambda route: route.abort())  # the connection drops
    await page.get_by_role("button", name="Changer").click()
    await expect(error).to_have_text(OTHER_UNANSWERED)
    await page.unroute("**/api/me/password")

    await page.get_by_label("Mot de passe actuel").fill("not the password!")
    braked = re.compile(r"^Trop de mots de passe erronés : réessaie dans (\d+) (s|min)\.$")
    for _ in range(10):  # the 10th wrong one locks: braked by then at the latest, whatever the machine's pace
        async with page.expect_response("**/api/me/password") as answered:
            await page.get_by_role("button", name="Changer").click()
        await expect(error).to_have_text(re.compile(r"^(Le mot de passe actuel est incorrect\.|Trop de mots de passe)"))
        if (await answered.value).status == 429:
            break
    told = braked.match(await error.text_content() or "")
    assert told, await error.text_content()  # the wait in words, the 429's own
    wait = int((await answered.value).headers["retry-after"])
    assert told.groups() == ((str(wait), "s") if wait < 60 else (str(wait // 60), "min"))
