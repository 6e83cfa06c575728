"""Many conversations held at a peak: a supervisor's "Chez d'autres écoutant·es" draws the first ``OTHERS_PAGE`` of
them (those whose listener left their console first), counts them all in its heading and says the others below the
cards. Since 2026-12-07 ``GET /api/queue`` sends a supervisor that page and ``others_total``
(``tests/console/test_queue_page.py``); until then every held card, at each reload."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.console.api import OTHERS_PAGE
from gateway.conversation import Status
from gateway.store import Store
from tests.e2e.test_console import add_listeners, log_in
from tests.e2e.test_console_queue_page import waiting

pytestmark = pytest.mark.browser


async def test_a_supervisor_sees_a_page_of_the_conversations_others_hold_and_how_many_in_all(
    desk: BrowserContext, server: TestServer
) -> None:
    store: Store = server.app[STORE]
    for n in range(OTHERS_PAGE + 5):
        await waiting(store, n)
        record = await store.get_conversation(f"c{n:04d}")
        assert record is not None and record.created_at is not None
        await store.take(record.id, f"holder{n % 4}", record.created_at)
        await store.save_conversation(replace(record, status=Status.WITH_LISTENER, listener=f"holder{n % 4}"))
    await add_listeners(server, supervisor="sam")
    sam = await log_in(desk, server, "sam")
    await expect(sam.locator("#others .card")).to_have_count(OTHERS_PAGE)
    await expect(sam.locator("#others-count")).to_have_text(str(OTHERS_PAGE + 5))
    await expect(sam.locator("#others-more")).to_contain_text("Et 5 autres chez d'autres écoutant·es")
    await sam.get_by_role("button", name="EN", exact=True).click()
    await expect(sam.locator("#others-more")).to_contain_text("And 5 more with other listeners")
