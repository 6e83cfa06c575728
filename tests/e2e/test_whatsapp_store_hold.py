"""WhatsApp through Twilio while the store is away for a few seconds (a Redis restart, a failover): the webhook waits
for it instead of answering 503 at once (the real app on a real Redis behind a proxy, the fake Twilio API).

Twilio does not send a webhook again after a 5xx (by default it retries once, on a failed connection only, within
its 15 s read timeout): until 2026-12-05 a young person's WhatsApp message that met a store outage of a second was
answered 503 and lost for good (the other providers redeliver). Now the store is tried again while Twilio waits
(``STORE_HOLD_SECONDS``, 10 s): an outage shorter than that loses nothing; a longer one still gets its 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.app import METRICS, STORE
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeTwilioAPI, twilio_form
from tests.e2e.channel_support import GatewayFactory, gateway, offline
from tests.e2e.test_whatsapp import PHONE, deliver, whatsapp_settings
from tests.losing_proxy import LosingProxy, losing_proxy, script_text
from tests.test_faults import redis_server

__all__ = ["gateway", "offline", "whatsapp_settings"]  # fixtures used below

pytestmark = pytest.mark.redis

# Each test asks for its own Redis first: pytest tears fixtures down in the reverse order, so the app stops while its
# Redis still answers (asked for after the app, Redis was stopped first and the app's stop waited its 10 s grace for
# the outbox's send cut by it: 10 s of every such test's teardown).

NOWHERE = "redis://127.0.0.1:9"  # the discard port: nothing listens, every connection refused
BOUND = 60.0  # seconds for a wait on a condition: a safety net on a busy machine


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture
async def proxy(own_redis: str) -> AsyncIterator[LosingProxy]:
    async with losing_proxy(own_redis) as moving:
        yield moving


def http_failures(client: object) -> float:
    total = 0.0
    for metric in client.app[METRICS].registry.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name == "gateway_store_failures_total" and sample.labels.get("part") == "http":
                total += sample.value
    return total


async def test_a_whatsapp_message_during_a_short_store_outage_is_acknowledged_once_the_store_is_back(
    own_redis: str, proxy: LosingProxy, gateway: GatewayFactory, whatsapp_settings: Settings, twilio: FakeTwilioAPI
) -> None:
    client = await gateway(whatsapp_settings.replace(store=proxy.url, understanding="off"))
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "1" * 32)) == 200
    await twilio.wait_accepted(2)  # the welcome and the danger question

    proxy.point_at(NOWHERE)  # Redis gone: the connections open cut, new ones refused
    proxy.reset_all()
    sent = asyncio.create_task(deliver(client, twilio_form(PHONE, "je vais me tuer", message_sid="SM" + "2" * 32)))
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not http_failures(client) and not sent.done():  # the webhook met the outage (or was answered)
        assert loop.time() - start < BOUND, "the webhook never met the outage"
        await asyncio.sleep(0.02)
    proxy.point_at(own_redis)  # back (a restart, a failover's new primary)
    assert await sent == 200  # before: 503, and Twilio sends nothing again: the message lost

    store = client.app[STORE]
    everything = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    texts = [e.text for c in everything for e in await store.transcript(c.id) if e.author == Author.USER]
    assert texts == ["Bonjour", "je vais me tuer"]  # processed once


async def test_a_message_cut_in_its_processing_is_processed_once_by_the_held_webhooks_next_try(
    own_redis: str, proxy: LosingProxy, gateway: GatewayFactory, whatsapp_settings: Settings, twilio: FakeTwilioAPI
) -> None:
    """The store cut while the message is processed, after its claim (its writes lost, its claim not let go: the
    store away). The webhook held for the store tries it again once the store is back: the claim left by the cut
    try is settled by the conversation it names (free: Redis's ``claim``), so it is processed at once and once, and
    the webhook gets 200, even with a claim's lease (60 s here) far longer than the hold."""
    settings = whatsapp_settings.replace(store=proxy.url, understanding="off", inbound_claim_seconds=60.0)
    client = await gateway(settings)
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "3" * 32)) == 200
    await twilio.wait_accepted(2)

    proxy.hold(script_text("put_conversation"))  # the message's writes, after its claim
    sent = asyncio.create_task(deliver(client, twilio_form(PHONE, "je vais me tuer", message_sid="SM" + "4" * 32)))
    await asyncio.wait_for(proxy.held.wait(), BOUND)
    proxy.point_at(NOWHERE)
    proxy.reset_all()  # the writes lost; the release refused
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not http_failures(client):
        assert loop.time() - start < BOUND, "the webhook never met the outage"
        await asyncio.sleep(0.02)
    proxy.point_at(own_redis)
    proxy.release()
    assert await sent == 200

    store = client.app[STORE]
    everything = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    texts = [e.text for c in everything for e in await store.transcript(c.id) if e.author == Author.USER]
    assert texts == ["Bonjour", "je vais me tuer"]
