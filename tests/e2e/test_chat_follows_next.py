"""A young person's message crossing a listener's close, in a real Chromium: the listener writes her last words and
closes while the message waits for the conversation's lock (``EndedMeanwhile``); the message is taken in a NEW
conversation, which the page is moved to (``ChatSession._deliver``) after being shown the ended one's last words and
end (``WebChatHub.show_ended``). The page must then follow that new conversation: if a listener takes it, writes and
closes it while the page is offline, the page back online must show that second end (the listener's last words and
the goodbye with where to turn), not a new conversation greeted by the bot.

Until 2026-12-07 chat.js ignored the ``resync`` frame naming the new conversation (``followConversation`` refused
any conversation once the page had shown an end): the next hello named none, a third conversation opened, and the
young person never saw the second end. The real app on SQLite, the console's real take, message and close through
its HTTP API; the store wrapped (the real one, nothing of the gateway patched) only to run the first close at the
message's ``locked_active``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from gateway.app import create_app
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Listener, Store, open_store
from tests.conftest import PASSWORD, Clock, model_loaded, password_hash, shared_understanding
from tests.e2e.test_chat import bot_messages, open_chat, type_answer, walk_to_queue
from tests.test_webchat_ended_meanwhile_words import ClosingFirst

pytestmark = pytest.mark.browser

FIRST_WORDS = "Si tu es en danger, appelle le 119 maintenant."
SECOND_WORDS = "Tu peux aussi appeler le 3114, à toute heure."
GOODBYE = "La conversation est terminée."  # flows.yaml's ended, in French


@contextlib.asynccontextmanager
async def console(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A listener logged in to the console's HTTP API."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        answer = await session.post(server.make_url("/api/session"), json={"name": "anne", "password": PASSWORD})
        assert answer.status == 200, await answer.text()
        yield session


async def take_write_close(desk: aiohttp.ClientSession, server: TestServer, conversation: str, words: str) -> None:
    url = f"/api/conversations/{conversation}"
    sent = await desk.post(server.make_url(f"{url}/messages"), json={"text": words})
    assert sent.status == 201, await sent.text()
    closed = await desk.post(server.make_url(f"{url}/close"), json={"outcome": "cyberbullying"})
    assert closed.status == 200, await closed.text()


async def take(desk: aiohttp.ClientSession, server: TestServer, conversation: str) -> None:
    taken = await desk.post(server.make_url(f"/api/conversations/{conversation}/take"), json={})
    assert taken.status == 200, await taken.text()


async def crossing(
    context: BrowserContext, aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, clock: Clock
) -> tuple[Store, ClosingFirst, TestServer, Page]:
    """The app on the real store seen through :class:`ClosingFirst`, Anne a listener, and a page walked to the queue."""
    real = await open_store(settings.store)
    closing = ClosingFirst(real)
    app = await create_app(
        settings, clock=clock, store=cast(Store, closing), worker_poll_seconds=0.05, **shared_understanding(settings)
    )
    server = await aiohttp_server(app)
    await model_loaded(server)
    await real.add_listener(Listener("anne", password_hash(), capacity=3))
    page = await open_chat(context, server)
    await walk_to_queue(page)
    return real, closing, server, page


async def closing_as_it_crosses(
    desk: aiohttp.ClientSession, server: TestServer, page: Page, closing: ClosingFirst, conversation: str
) -> None:
    """Anne takes ``conversation``; the page's next message or image, as it asks for the lock, finds her last words
    and her close made first."""
    await take(desk, server, conversation)
    await expect(page.locator("#status-line")).to_contain_text("écoutant·e est avec toi")

    async def listener_writes_and_closes() -> None:
        await take_write_close(desk, server, conversation, FIRST_WORDS)

    closing.sender = cast(str, await page.evaluate('() => localStorage.getItem("hg-chat-token")'))
    closing.first = listener_writes_and_closes


async def test_the_conversation_a_crossing_message_opened_is_followed_and_its_end_shown_after_an_outage(
    context: BrowserContext, aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, clock: Clock
) -> None:
    real, closing, server, page = await crossing(context, aiohttp_server, settings, clock)
    [ended] = await real.conversations_by_status(Status.QUEUED)
    async with console(server) as desk:
        await closing_as_it_crosses(desk, server, page, closing, ended.id)
        await type_answer(page, "tu es encore là ?")  # crosses the close: taken in a new conversation
        listener = page.locator('.msg[data-author="listener"] .text')
        await expect(listener).to_have_text([FIRST_WORDS])  # the ended one's last words and goodbye shown
        await expect(bot_messages(page).filter(has_text=GOODBYE)).to_have_count(1)
        assert closing.first is None
        await expect(page.locator("#composer")).to_be_visible()  # the page goes on in the new conversation
        await expect(page.locator("#message-input")).to_be_focused()  # not left on the hidden "Nouvelle conversation"
        await expect(page.locator(".msg.pending")).to_have_count(0)  # acknowledged: delivered in the new one
        following = await real.find_active_conversation(ChannelName.WEBCHAT, closing.sender)  # (not before the ack:
        assert following is not None and following.id != ended.id  # the crossing message may still be on its way)
        with contextlib.suppress(PlaywrightTimeout):  # the resync naming it may come just after the ack
            await page.wait_for_function(
                '(id) => localStorage.getItem("hg-chat-conversation") === id', arg=following.id, timeout=10_000
            )
        followed = await page.evaluate('() => localStorage.getItem("hg-chat-conversation")')
        assert followed == following.id, f"the page follows {'nothing' if followed is None else 'another'}"
        await page.reload()  # a reload goes on in it too (not the ended one's kept end, nothing connected)
        await expect(page.locator("#composer")).to_be_visible()
        await expect(page.locator("#ended")).to_be_hidden()
        await expect(page.locator("#choices button").first).to_be_visible()
        await walk_to_queue(page)
        await take(desk, server, following.id)
        await expect(page.locator("#status-line")).to_contain_text("écoutant·e est avec toi")

        await context.set_offline(True)  # the page away: the listener writes and closes meanwhile
        await expect(page.locator("#connection")).to_be_visible()
        await take_write_close(desk, server, following.id, SECOND_WORDS)
        await context.set_offline(False)

    await expect(page.locator("#connection")).to_be_hidden()  # back: its session frame
    opened = await real.find_active_conversation(ChannelName.WEBCHAT, closing.sender)
    assert opened is None, "a new conversation opened in place of the second end"
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator('.msg[data-author="listener"] .text').last).to_have_text(SECOND_WORDS)
    await expect(bot_messages(page).last).to_contain_text(GOODBYE)
