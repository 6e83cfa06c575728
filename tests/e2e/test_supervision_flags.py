"""Risk flags on the supervision page, in a real Chromium: a supervisor's page is open, a listener holds a
conversation, the young person writes a risky message through the web chat (words of the keyword interrupt) and
through Telegram (fake Bot API; read by the model only); the page shows, without a reload, each conversation's flag
and each flagged message's class and why, highlighted, in French and in English, and never the sender's chat id."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.settings import Settings
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
from tests.e2e.channel_support import eventually
from tests.e2e.conftest import HeldAnswer, ServerFactory, french_window
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.e2e.test_console_flags import loaded
from tests.e2e.test_telegram import CHAT, PATH, SECRET, walk

pytestmark = pytest.mark.browser


async def supervision_page(context: BrowserContext, server: TestServer) -> Page:
    board = await log_in(context, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#connection")).to_have_text("En direct")
    await expect(board.locator("#flagged-none")).to_be_visible()
    await board.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads
    return board


async def take_the_waiting_one(listener: Page, held: int) -> None:
    await listener.locator("#waiting .card").get_by_role("button", name="Prendre").click()
    await expect(listener.locator("#mine .card")).to_have_count(held)


async def test_a_supervisor_sees_flags_raised_while_a_listener_holds_the_conversation_live(
    context: BrowserContext, desk: BrowserContext, browser: Browser, make_server: ServerFactory,
    settings: Settings, telegram: FakeTelegramAPI,
) -> None:  # fmt: skip
    server = await make_server(settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET,
                                                telegram_api_url=telegram.url))  # fmt: skip
    await eventually(lambda: loaded(server))
    await add_listeners(server, "anne", supervisor="sam")
    board = await supervision_page(desk, server)
    async with french_window(browser, 1280, 820) as helper:
        anne = await log_in(helper, server, "anne")

        young = await open_chat(context, server)  # the web chat
        await walk_to_queue(young)
        await take_the_waiting_one(anne, 1)
        await type_answer(young, "il a un couteau il arrive")  # the keyword interrupt's words
        webchat = board.locator("#flagged .flagged-conversation").filter(has_text="Chat web")
        await expect(webchat.locator(".badge.risk")).to_contain_text("Danger immédiat · mots :")
        await expect(webchat.locator(".status")).to_have_text("avec anne")
        flagged = webchat.locator('.msg[data-author="user"]')
        await expect(flagged).to_have_count(1)
        await expect(flagged).to_have_class(re.compile(r"\bflagged\b.*\bflash\b"))
        await expect(flagged.locator(".flag")).to_contain_text("Danger immédiat · mots : ")

        async with aiohttp.ClientSession() as session:  # Telegram
            for update in walk():
                async with session.post(server.make_url(PATH), data=json.dumps(update),
                                        headers=telegram_headers(SECRET)) as response:  # fmt: skip
                    assert response.status == 200
            await take_the_waiting_one(anne, 2)
            risky = telegram_update(900000050, CHAT, "papa m'a encore laissé des bleus partout")  # the model only
            async with session.post(server.make_url(PATH), data=json.dumps(risky),
                                    headers=telegram_headers(SECRET)) as response:  # fmt: skip
                assert response.status == 200
        tg = board.locator("#flagged .flagged-conversation").filter(has_text="Telegram")
        await expect(tg.locator(".badge.risk")).to_contain_text(re.compile(r"^Violences à la maison · modèle \d+ %$"))
        await expect(tg.locator(".status")).to_have_text("avec anne")
        flagged = tg.locator('.msg[data-author="user"]')
        await expect(flagged).to_have_count(1)
        await expect(flagged).to_have_class(re.compile(r"\bflagged\b.*\bflash\b"))
        await expect(flagged.locator(".flag")).to_contain_text(re.compile(r"^Violences à la maison · modèle \d+ %$"))
        await expect(board.locator("#flagged .flagged-conversation")).to_have_count(2)
        await expect(board.locator("#flagged-none")).to_be_hidden()

    assert await board.evaluate("() => window.sameDocument") is True  # live: the page was never reloaded
    shown = await board.content() + json.dumps(await board.evaluate(
        "() => fetch('/api/supervision/flags').then(r => r.json())"))  # fmt: skip
    assert str(CHAT) not in shown  # the Telegram chat and user id: never
    assert "couteau il arrive" not in shown and "bleus partout" not in shown  # the text: in the console, audited

    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(tg.locator(".flag")).to_contain_text(re.compile(r"^Harm at home · model \d+ %$"))
    webchat = board.locator("#flagged .flagged-conversation").filter(has_text="Web chat")
    await expect(webchat.locator(".badge.risk")).to_contain_text("Immediate danger · words: ")
    await expect(webchat.locator(".status")).to_have_text("with anne")


async def test_the_board_keeps_loading_while_events_never_stop(
    context: BrowserContext, desk: BrowserContext, make_server: ServerFactory, settings: Settings
) -> None:
    """At a peak, queue and status events never stop: the board's reloads are throttled, not debounced, so a
    conversation flagged meanwhile still shows (a debounce restarted by every event never loaded: this failed)."""
    server = await make_server(settings)
    await eventually(lambda: loaded(server))
    await add_listeners(server, "anne", supervisor="sam")
    board = await supervision_page(desk, server)
    await board.evaluate("""() => { window.busy = setInterval(() => document.dispatchEvent(
        new CustomEvent("hg:live", {detail: {type: "queue"}})), 40); }""")  # a queue event every 40 ms
    young = await open_chat(context, server)
    await type_answer(young, "il a un couteau il arrive")  # flagged in the bot phase, the first message
    webchat = board.locator("#flagged .flagged-conversation").filter(has_text="Chat web")
    await expect(webchat.locator(".badge.risk")).to_contain_text("Danger immédiat · mots :")
    assert await board.evaluate("() => { clearInterval(window.busy); return window.sameDocument; }") is True


async def test_a_periodic_board_reload_answered_after_a_take_does_not_show_the_queue_from_before(
    context: BrowserContext, desk: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """The board reloads every thirty seconds and on the queue's events. One asked before Anne's take and answered
    after the take's own reload (a busy gateway answers out of order) carries the queue from before: it is dropped
    (``HG.newest``), the board keeps "0 waiting, 1 in progress". The answer is held at the network (Playwright's
    route), the thirty seconds are the page's fake clock."""
    server = await make_server(settings)
    await add_listeners(server, "anne", supervisor="sam")
    await desk.clock.install()
    board = await supervision_page(desk, server)
    async with french_window(browser, 1280, 820) as helper:
        anne = await log_in(helper, server, "anne")
        young = await open_chat(context, server)
        await walk_to_queue(young)
        await expect(board.locator("#live-waiting")).to_have_text("1")

        held = await HeldAnswer.next_of(desk, board, "/api/supervision")
        await board.clock.fast_forward(30_000)  # the periodic reload: its answer held
        await held.asked()

        await take_the_waiting_one(anne, 1)
        await expect(board.locator("#live-progress")).to_have_text("1")  # the take's event: the board's own reload
        await expect(board.locator("#live-waiting")).to_have_text("0")

        await held.release()  # the old answer arrives last
        assert await board.locator("#live-waiting").inner_text() == "0"
        assert await board.locator("#live-progress").inner_text() == "1"
