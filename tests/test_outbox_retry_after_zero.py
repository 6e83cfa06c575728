"""A provider's ``retry_after`` of 0 (Graph's ``Retry-After: 0`` on a rate limit or a 503, a proxy's) is no licence to
ask again at once: the real outbox (``Outbox.deliver_due``), the SQLite store and Redis, the Messenger adapter against
its fake Graph API on 127.0.0.1, the clock under the test's control (orders and counts compared, never durations).
"""

from __future__ import annotations

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, Store
from gateway.store.codec import encode_outbound
from gateway.testing import Failure, FakeGraphAPI
from tests.conftest import Clock
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_outbox import any_store, clock

__all__ = ["any_store", "clock", "redis_cluster_url", "redis_url", "store_url"]  # fixtures

ANSWERS = {  # Graph's answers carrying ``Retry-After: 0``
    "rate limit": Failure(400, code=613, retry_after=0, description="Calls to this api have exceeded the rate limit"),
    "503": Failure(503, code=2, retry_after=0, description="Service temporarily unavailable"),
}


@pytest.mark.parametrize("answer", list(ANSWERS))
async def test_a_retry_after_of_zero_is_not_a_retry_at_once(any_store: Store, clock: Clock, answer: str) -> None:
    """Graph refuses a reply, its ``Retry-After`` 0, five times: the reply waits its backoff (1 s, doubling) before
    each new try, and the provider is not asked again before, nor the item handed out again. Until 2026-12-07 a told
    0 was a wait of 0: the reply due again at once, claimed and sent again at every claim (``CLAIM_GAP``, 10 ms), the
    provider asked a hundred times a second for as long as it refused (5 tries in 5 claims here, no time passing),
    its channel not paused either."""
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        settings = Settings(messenger_api_url=graph.url, messenger_page_access_token="page-token")
        sending = Outbox(any_store, {ChannelName.MESSENGER: MessengerChannel(settings, session)}, clock=clock,
                         base_delay=1.0, max_attempts=20)  # fmt: skip
        message = Outbound("r1", "c1", ChannelName.MESSENGER, "psid-1", "bonjour")
        await any_store.outbox_put(OutboxItem(message.id, "c1", encode_outbound(message), clock()))
        graph.fail_next(*[ANSWERS[answer]] * 5)
        assert await sending.deliver_due() == 1  # refused once
        for _ in range(4):
            await sending.deliver_due()
        assert len(graph.requests_to("messages")) == 1  # asked once: no time passed
        for waited in (1.0, 2.0, 4.0, 8.0):
            clock.advance(seconds=waited - 0.1)
            assert await sending.deliver_due() == 0  # not due yet
            clock.advance(seconds=0.1)
            assert await sending.deliver_due() == 1
        assert len(graph.requests_to("messages")) == 5 and graph.accepted() == []
        clock.advance(seconds=16)
        assert await sending.deliver_due() == 1
        assert [r.body["message"]["text"] for r in graph.accepted()] == ["bonjour"]
