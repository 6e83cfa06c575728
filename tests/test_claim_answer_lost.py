"""A message's claim whose answer is lost (Redis ran it, the connection was cut before its answer: a failover, a
network blip) is let go at once by its owner, so the provider's redelivery is processed at once, not refused until
the claim's lease lapses.

The webhook that met the failure is answered 503 and the provider redelivers it. Before, the claim it had taken
without knowing stayed for its lease (``GATEWAY_INBOUND_CLAIM_SECONDS``, 10 s by default): the redelivery waited
that long for the claim's owner, which was no one (a provider's request timeout is often shorter: refused
again). Perhaps what one failover run of six showed (``tests/test_sentinel_failover.py``: every message
processed 9.8 s after the kill, 3.3–5.8 s in the others; not traced to this).

The real app, store and redis-py; the answer lost by a proxy (``tests/losing_proxy.py``); the claim's lease made
long (30 s), and the redelivery must be processed within half of it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.app import STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeGraphAPI
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, RunningClock
from tests.losing_proxy import LosingProxy, losing_proxy, script_text
from tests.redis_messenger import SECRET, post_message
from tests.store.conftest import emptied, redis_url

__all__ = ["redis_url"]  # the fixture used below
pytestmark = pytest.mark.redis

PSID = "7555000000000041"
CLAIM_SECONDS = 30.0


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    emptied(redis_url)
    async with losing_proxy(redis_url) as losing:
        yield losing


async def test_a_claim_whose_answer_is_lost_is_let_go_and_the_redelivery_is_processed_at_once(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI, proxy: LosingProxy
) -> None:
    settings = settings.replace(
        store=proxy.url, messenger_app_secret=SECRET, messenger_verify_token="verify",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
        inbound_claim_seconds=CLAIM_SECONDS, understanding="off",
    )  # fmt: skip
    client = await aiohttp_client(await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05))
    proxy.lose(script_text("claim"), b"m_lost_1")  # the claim of this message runs, its answer is lost
    assert await post_message(client, PSID, "Bonjour", "m_lost_1") == 503
    assert proxy.lost == 1

    started = time.monotonic()
    assert await post_message(client, PSID, "Bonjour", "m_lost_1") == 200  # the provider's redelivery
    waited = time.monotonic() - started
    assert waited < CLAIM_SECONDS / 2, waited  # before: 30.2 s, the claim's lease waited out

    await outbox_drained(client)
    conversation = await client.app[STORE].find_active_conversation(ChannelName.MESSENGER, PSID)
    assert conversation is not None
    entries = await client.app[STORE].transcript(conversation.id)
    assert [e.text for e in entries if e.author is Author.USER] == ["Bonjour"]  # recorded once
