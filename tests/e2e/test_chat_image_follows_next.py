"""A young person's image crossing a listener's close, in a real Chromium: the listener writes her last words and
closes while the image waits for the conversation's lock (``EndedMeanwhile``); the image is taken in a NEW
conversation (``Uploads._deliver``: the bot greets it, the image in it), answered 201. The page must be shown the
ended one's last words and end, then follow that new conversation, the image shown once in it, as for a message
crossing the close (``tests/e2e/test_chat_follows_next.py``).

Until 2026-12-07 the 201 named nothing and chat.js removed the image's bubble on it: the page showed the end, the
image gone without a word, and the new conversation holding it (greeted by the bot) was never shown until the young
person pressed "Nouvelle conversation". The real app on SQLite, the console's real take, message and close through
its HTTP API; the store wrapped (the real one, nothing of the gateway patched) only to run the close at the image's
``locked_active``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import Clock
from tests.e2e.test_chat import bot_messages
from tests.e2e.test_chat_follows_next import FIRST_WORDS, GOODBYE, closing_as_it_crosses, console, crossing
from tests.test_uploads import photo

pytestmark = pytest.mark.browser


async def test_an_image_crossing_a_close_is_shown_in_the_conversation_it_opened_after_the_end(
    context: BrowserContext, aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, clock: Clock
) -> None:
    real, closing, server, page = await crossing(context, aiohttp_server, settings, clock)
    [ended] = await real.conversations_by_status(Status.QUEUED)
    async with console(server) as desk:
        await closing_as_it_crosses(desk, server, page, closing, ended.id)
        picture = [{"name": "IMG_2041.jpg", "mimeType": "image/jpeg", "buffer": photo((64, 48))}]
        await page.locator("#image-input").set_input_files(files=picture)  # crosses the close: a new conversation
        listener = page.locator('.msg[data-author="listener"] .text')
        await expect(listener).to_have_text([FIRST_WORDS])  # the ended one's last words and goodbye shown
        await expect(bot_messages(page).filter(has_text=GOODBYE)).to_have_count(1)
        assert closing.first is None
        sent = page.locator('.msg[data-author="user"]').filter(has_text="📎 Image envoyée")
        await expect(sent).to_have_count(1)  # the image shown once, in the conversation it went to
        await expect(page.locator("#composer")).to_be_visible()  # the page goes on in the new conversation
        following = await real.find_active_conversation(ChannelName.WEBCHAT, closing.sender)
        assert following is not None and following.id != ended.id
        assert [e for e in await real.transcript(following.id) if e.attachments], "the image is in the new one"
        await expect(page.locator(".msg.pending")).to_have_count(0)
        with contextlib.suppress(PlaywrightTimeout):  # the session naming it may come just after the 201
            await page.wait_for_function(
                '(id) => localStorage.getItem("hg-chat-conversation") === id', arg=following.id, timeout=10_000
            )
        followed = await page.evaluate('() => localStorage.getItem("hg-chat-conversation")')
        assert followed == following.id, f"the page follows {'nothing' if followed is None else 'another'}"
        await page.reload()  # a reload goes on in it too, the image in its history
        await expect(page.locator("#composer")).to_be_visible()
        await expect(page.locator("#ended")).to_be_hidden()
        await expect(sent).to_have_count(1)
