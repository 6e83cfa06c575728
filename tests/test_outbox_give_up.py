"""How long a reply failing for now is tried (docs/configuration.md, ``GATEWAY_OUTBOX_RETRY_HOURS``): the outbox's
time budget, read on a clock the test moves, the SQLite store and the real Messenger adapter against the fake Graph
API on 127.0.0.1, down throughout.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, OutboxStatus, Store
from gateway.store.codec import encode_outbound
from gateway.testing import FakeGraphAPI


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


async def test_a_reply_is_tried_for_its_time_then_failed_whatever_its_count(store: Store) -> None:
    """No cap by count: a reply written at 12:00 with a budget of 30 minutes is tried again at 12:29 (its third try,
    pending still) and failed by the try after 12:30, its reason saying so; the listener then sees it failed."""
    now = [datetime(2026, 12, 5, 12, 0, tzinfo=UTC)]
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        settings = Settings(messenger_api_url=graph.url, messenger_page_access_token="page-token")
        channels = {ChannelName.MESSENGER: MessengerChannel(settings, session)}
        sending = Outbox(store, channels, clock=lambda: now[0], base_delay=0.0, max_attempts=None,
                         retry_for=timedelta(minutes=30))  # fmt: skip
        message = Outbound("r1", "c1", ChannelName.MESSENGER, "psid-1", "Je suis là.")
        await store.outbox_put(OutboxItem("r1", "c1", encode_outbound(message), now[0]))
        graph.down()
        for minutes, tries in ((0, 1), (10, 2), (29, 3)):
            now[0] = datetime(2026, 12, 5, 12, minutes, tzinfo=UTC)
            assert await sending.deliver_due() == 1
            item = await store.outbox_get("c1", "r1")
            assert item is not None and item.status is OutboxStatus.PENDING and item.attempts == tries
        now[0] = datetime(2026, 12, 5, 12, 31, tzinfo=UTC)
        assert await sending.deliver_due() == 1
    item = await store.outbox_get("c1", "r1")
    assert item is not None and item.status is OutboxStatus.FAILED
    assert "gave up after 4 attempts in 0.5 h" in (item.last_error or "")
    assert len(graph.requests_to("messages")) == 4  # each try asked once


def test_by_default_a_reply_is_tried_for_a_day_with_no_cap_by_count() -> None:
    """The defaults the app reads (gateway/app.py): a provider down for hours loses nothing written meanwhile."""
    settings = Settings()
    assert settings.outbox_max_attempts == 0 and settings.outbox_retry_hours == 24.0
