""" "Risques lus après la fin" on the supervision page, in a real Chromium: a conversation a listener closed, in
which a risk was then read late (``Dispatcher._late_after_end`` lists it: ``note_read_late``), is on the
supervisor's board by pseudonym with its flagged message (never its text), opens in the console as an ended
conversation does, and leaves the board once marked seen; French, then English."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from tests.e2e.channel_support import eventually
from tests.e2e.conftest import ServerFactory, french_window
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.e2e.test_console_flags import loaded
from tests.e2e.test_supervision_flags import take_the_waiting_one

pytestmark = pytest.mark.browser


async def ended_with_a_late_risk(server: TestServer, anne: Page, context: BrowserContext) -> str:
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await take_the_waiting_one(anne, 1)
    await type_answer(young, "il a un couteau il arrive")
    store = server.app[STORE]
    [held] = await store.conversations_by_status(Status.WITH_LISTENER)
    await eventually(lambda: _flagged(server, held.id))
    closed = await anne.evaluate(
        """id => fetch('/api/conversations/' + id + '/close', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({outcome: 'cyberbullying'})})
        .then(r => r.status)""",
        held.id,
    )
    assert closed == 200
    after = await store.get_conversation(held.id)
    assert after is not None and after.closed_at is not None
    await store.note_read_late(held.id, after.closed_at)  # as the dispatcher does for a risk read after the end
    return held.id


async def _flagged(server: TestServer, conversation_id: str) -> bool:
    found = await server.app[STORE].get_conversation(conversation_id)
    return found is not None and found.flag is not None


async def test_a_supervisor_sees_a_risk_read_after_the_end_opens_it_and_marks_it_seen(
    context: BrowserContext, desk: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    server = await make_server(settings)
    await eventually(lambda: loaded(server))
    await add_listeners(server, "anne", supervisor="sam")
    async with french_window(browser, 1280, 820) as helper:
        anne = await log_in(helper, server, "anne")
        conversation_id = await ended_with_a_late_risk(server, anne, context)
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    section = board.locator("#read-late")
    await expect(board.get_by_role("region", name="Risques lus après la fin")).to_be_visible()
    card = section.locator(".read-late")
    await expect(card).to_have_count(1)
    await expect(board.locator("#read-late-none")).to_be_hidden()
    found = await server.app[STORE].get_conversation(conversation_id)
    assert found is not None
    await expect(card.locator(".pseudonym")).to_have_text(found.pseudonym)
    await expect(card.locator(".badge.risk")).to_contain_text("Danger immédiat · mots :")
    await expect(card.locator(".status")).to_contain_text("terminée à")
    await expect(card.locator('.msg[data-author="user"]')).to_have_count(1)
    assert "couteau il arrive" not in await section.inner_html()  # the text: in the console, audited

    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(board.get_by_role("heading", name="Risks read after the end")).to_be_visible()
    await expect(card.locator(".status")).to_contain_text("ended at")
    await board.get_by_role("button", name="FR", exact=True).click()

    await card.get_by_role("link", name="Ouvrir").click()  # the console, the ended conversation read-only
    await expect(board).to_have_url(str(server.make_url("/console")) + "#c=" + conversation_id)
    await expect(board.get_by_text("couteau il arrive").first).to_be_visible()
    await board.go_back()
    await expect(section.locator(".read-late")).to_have_count(1)
    await section.get_by_role("button", name=f"Marquer la conversation de {found.pseudonym} comme vue").click()
    await expect(section.locator(".read-late")).to_have_count(0)
    await expect(board.locator("#read-late-none")).to_be_visible()
    assert await server.app[STORE].read_late(found.created_at, 50) == []


async def test_marking_seen_refused_or_unanswered_says_why(desk: BrowserContext, server: TestServer) -> None:
    """ "Marquer comme vue" answered 503 ``unavailable`` (the store away) or with no answer says why on the card, in
    the console's words; until 2026-12-06 the button read "Échec : réessayez." whatever happened. The listed
    conversation comes from the page's route (the list's shape as the server gives it): only the wording is tested."""
    await add_listeners(server, supervisor="sam")
    listed = {"id": "c" * 16, "pseudonym": "Lynx 12", "priority": "normal", "flag": None, "channel": "webchat",
              "language": "fr", "status": "closed", "closed_at": "2026-12-06T07:00:00+00:00",
              "messages": []}  # fmt: skip
    board = await log_in(desk, server, "sam")
    await board.route("**/api/supervision/read-late", lambda route: route.fulfill(json={"read_late": [listed]}))
    await board.get_by_role("link", name="Supervision").click()
    card = board.locator("#read-late .read-late")
    seen = card.get_by_role("button", name="Marquer la conversation de Lynx 12 comme vue")
    unavailable = {"error": "unavailable", "message": "try again shortly"}
    await board.route("**/seen", lambda route: route.fulfill(status=503, json=unavailable))
    await seen.click()
    said = card.get_by_role("alert")
    await expect(said).to_have_text(re.compile(r"^Le serveur est momentanément indisponible"))
    await board.unroute("**/seen")
    await board.route("**/seen", lambda route: route.abort())
    await seen.click()
    await expect(said).to_have_text(re.compile(r"^Pas de réponse du serveur"))
