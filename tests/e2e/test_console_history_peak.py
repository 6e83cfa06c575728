"""At a peak, arrivals reload every console's queue, never its history ("Terminées", 30 days): the history request
reads every conversation created in the last 30 days (``ListenerAPI.history``), so one listener's reload cost grew
with the helpline's month, at each arrival, on each of the twenty consoles (0.1 s of the event loop each at 5,000
conversations in the month, measured on Redis and SQLite). The history is read again when it can have changed: the
page opening or reconnecting, a conversation this listener holds changing status (closed, given back, transferred,
taken away by a supervisor), one of its conversations erased."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Request, expect

from gateway.app import DISPATCHER, STORE
from gateway.messages import ChannelName, Inbound
from tests.conftest import PASSWORD
from tests.e2e.test_console import add_listeners, log_in
from tests.test_webchat import WALK_TO_QUEUE

pytestmark = pytest.mark.browser


async def walk_to_queue(server: TestServer, n: int) -> None:
    """Young person ``n`` on the web chat, walked through the bot to the queue (the dispatcher's own path: its queue
    and status events reach every console)."""
    dispatcher = server.app[DISPATCHER]
    for number, text in enumerate(WALK_TO_QUEUE):
        inbound = Inbound(ChannelName.WEBCHAT, f"page-token-{n:04d}-0123456789abcdef", f"y{n}-{number}", text)
        assert await dispatcher.handle_inbound(inbound)


async def test_arrivals_reload_the_queue_and_not_the_history_which_still_follows_what_ends(
    desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne", supervisor="sam")
    anne = await log_in(desk, server, "anne")
    await expect(anne.locator("#history-empty")).to_be_visible()
    histories: list[str] = []

    def asked(request: Request) -> None:
        if "/api/history" in request.url:
            histories.append(request.url)

    anne.on("request", asked)
    for n in range(4):
        await walk_to_queue(server, n)
        await expect(anne.locator("#waiting .card")).to_have_count(n + 1)  # each arrival's reload drawn
    assert histories == [], f"{len(histories)} history reads for 4 arrivals"

    # what ends of hers is still listed at once, and what is erased goes
    await anne.locator("#waiting .card .take").first.click()
    await expect(anne.locator("#conv-meta")).to_contain_text("avec anne")
    await anne.get_by_role("button", name="Clôturer").click()
    await anne.get_by_label("Catégorie").select_option(label="Cyberharcèlement")
    await anne.locator("#close-send").click()
    ended = anne.locator("#history .card")
    await expect(ended).to_have_count(1)
    closed = await ended.get_attribute("data-id")
    assert closed is not None
    jar = aiohttp.CookieJar(unsafe=True)  # the session's cookie on 127.0.0.1
    async with aiohttp.ClientSession(base_url=str(server.make_url("/")), cookie_jar=jar) as sam:
        assert (await sam.post("/api/session", json={"name": "sam", "password": PASSWORD})).status == 200
        erased = await sam.post(f"/api/conversations/{closed}/erase", json={"confirm": True})
        assert erased.status == 200, await erased.text()
    assert await server.app[STORE].get_conversation(closed) is None
    await expect(ended).to_have_count(0)
    await expect(anne.locator("#history-empty")).to_be_visible()
