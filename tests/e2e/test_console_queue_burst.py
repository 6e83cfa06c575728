"""Queue events closer together than the console's 150 ms (a busy line: every arrival, take and close is one, on
every console) still reload its queue: a reload is due 150 ms after the first event of a burst, never pushed back by
the next ones. Until 2026-12-07 each event restarted the 150 ms: under a steady stream of events the queue shown
stayed as it was until a lull, a young person arrived meanwhile unseen."""

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


async def test_a_steady_stream_of_queue_events_still_reloads_the_queue(
    desk: BrowserContext, server: TestServer
) -> None:
    store: Store = server.app[STORE]
    await waiting(store, 0)
    await add_listeners(server, "anne")
    anne = await log_in(desk, server, "anne")
    await expect(anne.locator("#waiting .card")).to_have_count(1)

    async with queue_events_streaming(store):  # a queue event every 50 ms for as long as the test looks
        await waiting(store, 1)  # an arrival in the middle of the stream
        await expect(anne.locator("#waiting .card")).to_have_count(2, timeout=10_000)
