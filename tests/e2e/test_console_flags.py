"""Risk flags in the listener console, in a real Chromium: the queue card and the conversation show the class
and why (the model's score, or the words that matched); a risk read while the listener holds the conversation
appears at once, highlighted, one read late (a long message's windows) too and still after a reload, and the young
person's page never shows a flag."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import READER
from tests.e2e.channel_support import eventually
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.understanding.test_reader import LONG

pytestmark = pytest.mark.browser


async def loaded(server: TestServer) -> bool:
    return server.app[READER].status == "ok"


async def test_flags_on_the_card_in_the_conversation_and_live(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await eventually(lambda: loaded(server))
    await add_listeners(server, "anne")
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await type_answer(young, "je pense au pont tous les soirs")  # read by the model only

    card = listener.locator("#waiting .card")
    await expect(card.locator(".badge.risk")).to_contain_text("Suicide · modèle")
    await expect(card.locator(".badge.urgent")).to_be_visible()  # raised in the queue
    await card.get_by_role("button", name="Prendre").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("Suicide · modèle")
    flagged = listener.locator("#transcript .msg.flagged")
    await expect(flagged).to_have_count(1)
    await expect(flagged.locator(".flag")).to_contain_text("Suicide · modèle")

    await type_answer(young, "il a un couteau il arrive")  # keywords, while anne holds the conversation
    last = listener.locator('#transcript .msg[data-author="user"]').last
    await expect(last).to_have_class("msg user flagged flash")
    await expect(last.locator(".flag")).to_contain_text("Danger immédiat · mots :")
    assert "modèle" not in await young.locator("#messages").inner_text()
    assert await young.locator(".flag").count() == 0


async def test_a_message_flagged_by_a_late_reading_stays_highlighted_after_a_reload(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await eventually(lambda: loaded(server))
    await add_listeners(server, "anne")
    listener = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card").get_by_role("button", name="Prendre").click()
    await expect(listener.locator("#conv-actions")).to_be_visible()

    await type_answer(young, LONG)  # its start says nothing of a risk; its windows, read late, do
    long = listener.locator('#transcript .msg[data-author="user"]').filter(has_text="je pense au pont")
    await expect(long).to_have_class(re.compile(r"\bflagged\b.*\bflash\b"))  # live, when the late reading lands
    await expect(long.locator(".flag")).to_contain_text("Suicide · modèle")

    await listener.reload()  # what the store kept on the entry, not the live event
    long = listener.locator('#transcript .msg[data-author="user"]').filter(has_text="je pense au pont")
    await expect(long).to_have_class("msg user flagged")
    await expect(long.locator(".flag")).to_contain_text("Suicide · modèle")
    assert await young.locator(".flag").count() == 0
