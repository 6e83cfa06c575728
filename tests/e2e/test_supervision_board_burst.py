"""Queue events closer together than the supervision board's 200 ms (a busy line: every arrival, take and close is
one) still reload its live figures: a reload is due 200 ms after the first event of a burst (the period's figures
800 ms after it), never pushed back by the next ones. Until 2026-12-07 each event restarted both timers: under a
steady stream of events the board's "en attente" stayed as it was until a lull (the console's same defect:
tests/e2e/test_console_queue_burst.py)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.store import Store
from tests.e2e.queue_burst import queue_events_streaming
from tests.e2e.test_console import add_listeners, log_in
from tests.e2e.test_console_queue_page import waiting

pytestmark = pytest.mark.browser


async def test_a_steady_stream_of_queue_events_still_reloads_the_board(
    desk: BrowserContext, server: TestServer
) -> None:
    store: Store = server.app[STORE]
    await waiting(store, 0)
    await add_listeners(server, supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#live-waiting")).to_have_text("1")

    async with queue_events_streaming(store):  # a queue event every 50 ms for as long as the test looks
        await waiting(store, 1)  # an arrival in the middle of the stream
        await expect(board.locator("#live-waiting")).to_have_text("2", timeout=10_000)
