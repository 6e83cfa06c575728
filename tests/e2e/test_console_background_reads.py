"""The console's and the supervision page's background reads, refused (503 ``unavailable``: the store away) or
unanswered (the connection dropped), in a real Chromium: each says on its own line, in French, that its part could
not be read and may be out of date, keeps what it showed, and (where it is read again on its own) reads again until
it answers. Before 2026-12-06 each failed silently: the risk flags and the risks read after the end kept the lists of
before (or "Aucun risque") as current, the supervision page's names stayed in the flow's words, the flow's diagram
showed the server's error as its Mermaid text, a listener's ended conversations and a conversation's notices said
nothing. The refusals and drops come from the page's routes (Playwright), the rest from the real server."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, Route, expect

from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.test_webchat import WALK_TO_QUEUE, hello, say

pytestmark = pytest.mark.browser

UNAVAILABLE = {"error": "unavailable", "message": "try again shortly"}
STORE_AWAY = "Le serveur est momentanément indisponible : "
NO_ANSWER = "Pas de réponse du serveur (connexion coupée ?) : "


async def refuse(route: Route) -> None:
    await route.fulfill(status=503, json=UNAVAILABLE)


async def cut(route: Route) -> None:
    await route.abort("connectionreset")


def card(conversation_id: str, pseudonym: str) -> dict[str, object]:
    """A conversation as the flags and read-late lists give it (only the wording and the keeping are tested)."""
    flag = {"source": "keywords", "risk": "self_harm", "score": 0.9, "words": ["mot"]}
    return {"id": conversation_id, "pseudonym": pseudonym, "priority": "normal", "flag": flag, "channel": "webchat",
            "language": "fr", "status": "closed", "listener": None, "closed_at": "2026-12-06T07:00:00+00:00",
            "messages": [{"id": conversation_id + "-1", "at": "2026-12-06T06:59:00+00:00", "flag": flag}]}  # fmt: skip


async def young_person_reaches_the_queue(server: TestServer) -> None:
    """Live events (queue, status) on the supervision page: its lists are read again."""
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/chat/ws")) as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)


async def supervision(desk: BrowserContext, server: TestServer) -> Page:
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    return board


async def test_the_risk_lists_say_a_reload_refused_or_unanswered_keep_theirs_and_read_again(
    desk: BrowserContext, server: TestServer
) -> None:
    board = await supervision(desk, server)
    flags = {"flagged": [card("f" * 16, "Lynx 12")]}
    late = {"read_late": [card("l" * 16, "Héron 7")]}
    await board.route("**/api/supervision/flags", lambda route: route.fulfill(json=flags))
    await board.route("**/api/supervision/read-late", lambda route: route.fulfill(json=late))
    await board.get_by_role("link", name="Supervision").click()
    flagged, read_late = board.locator("#flagged .flagged-conversation"), board.locator("#read-late .read-late")
    await expect(flagged.locator(".pseudonym")).to_have_text("Lynx 12")
    await expect(read_late.locator(".pseudonym")).to_have_text("Héron 7")

    await board.unroute("**/api/supervision/flags")
    await board.unroute("**/api/supervision/read-late")
    await board.route("**/api/supervision/flags", refuse)
    await board.route("**/api/supervision/read-late", cut)
    await young_person_reaches_the_queue(server)  # its events: both lists read again, refused and unanswered
    flags_line, late_line = board.locator("#flagged-stale"), board.locator("#read-late-stale")
    await expect(flags_line).to_have_text(re.compile("^" + STORE_AWAY + "les risques signalés n'ont pas pu être relus"))
    await expect(late_line).to_have_text(re.compile("^" + re.escape(NO_ANSWER) + "les risques lus après la fin"))
    await expect(flagged.locator(".pseudonym")).to_have_text("Lynx 12")  # what was shown, kept
    await expect(read_late.locator(".pseudonym")).to_have_text("Héron 7")
    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(flags_line).to_have_text(re.compile("^The server is unavailable for a moment: the risk flags"))
    await board.get_by_role("button", name="FR", exact=True).click()

    await board.unroute("**/api/supervision/flags", refuse)
    await board.unroute("**/api/supervision/read-late", cut)  # read again on their own, within 5 s: the server's
    await expect(flags_line).to_be_hidden()
    await expect(late_line).to_be_hidden()
    await expect(flagged).to_have_count(0)
    await expect(read_late).to_have_count(0)
    await expect(board.locator("#flagged-none")).to_be_visible()
    await expect(board.locator("#read-late-none")).to_be_visible()


async def test_a_first_read_refused_never_says_there_is_no_risk(desk: BrowserContext, server: TestServer) -> None:
    """The lists never read: "Aucun risque signalé" is not claimed from a read that failed."""
    board = await supervision(desk, server)
    await board.route("**/api/supervision/flags", cut)
    await board.route("**/api/supervision/read-late", refuse)
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#flagged-stale")).to_contain_text(NO_ANSWER)
    await expect(board.locator("#read-late-stale")).to_contain_text(STORE_AWAY)
    await expect(board.locator("#flagged-none")).to_be_hidden()
    await expect(board.locator("#read-late-none")).to_be_hidden()


async def test_the_flows_names_and_diagram_refused_or_unanswered_are_said(
    desk: BrowserContext, server: TestServer
) -> None:
    """The supervision page's first read of the flow (the outcome, partner and queue names) cut: said under the
    period, read again until it comes; the diagram's SVG and Mermaid text refused: said above the box, never the
    refusal's body shown as the flow's text."""
    board = await supervision(desk, server)
    await board.route("**/api/flow", cut)
    await board.route("**/api/flow/diagram.svg", refuse)
    await board.route("**/api/flow/diagram.mmd", refuse)
    await board.get_by_role("link", name="Supervision").click()
    names = board.locator("#material-stale")
    await expect(names).to_have_text(re.compile("^" + re.escape(NO_ANSWER) + "les noms des issues"))
    diagram = board.locator("#diagram-stale")
    await expect(diagram).to_have_text(re.compile("^" + STORE_AWAY + "le schéma du parcours n'a pas pu être lu"))
    await expect(board.locator("#diagram pre")).to_have_count(0)
    assert "unavailable" not in await board.locator("#diagram").inner_text()
    await board.unroute("**/api/flow", cut)  # read again on its own, within 5 s
    await expect(names).to_be_hidden()


async def test_a_listeners_ended_list_and_a_conversations_notices_refused_or_unanswered_are_said(
    desk: BrowserContext, context: BrowserContext, server: TestServer
) -> None:
    """Anne's console opens with her ended conversations refused: said above the list (never "Aucune conversation
    terminée" from a failed read), read again until it answers. She takes a young person whose notices' read gets no
    answer: said in the panel, read again until it answers."""
    await add_listeners(server, "anne")
    await desk.route("**/api/history", refuse)
    listener = await log_in(desk, server, "anne")
    ended = listener.locator("#history-stale")
    await expect(ended).to_have_text(re.compile("^" + STORE_AWAY + "la liste des conversations terminées"))
    await expect(listener.locator("#history-empty")).to_be_hidden()
    await desk.unroute("**/api/history", refuse)  # read again on its own, within 5 s
    await expect(ended).to_be_hidden()
    await expect(listener.locator("#history-empty")).to_be_visible()

    async def cut_reads(route: Route) -> None:
        await (cut(route) if route.request.method == "GET" else route.continue_())

    await listener.route("**/notices", cut_reads)
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")
    notices = listener.locator("#casework-stale")
    await expect(notices).to_have_text(re.compile("^" + re.escape(NO_ANSWER) + "les signalements et orientations"))
    await listener.unroute("**/notices", cut_reads)  # read again on its own, within 5 s
    await expect(notices).to_be_hidden()
    await expect(listener.locator("#casework-list")).to_have_text("Aucun signalement ni orientation.")
