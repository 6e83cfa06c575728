"""WhatsApp's catch-up in the situations ``test_whatsapp_catchup.py`` does not try: a young person who wrote many
messages while the gateway answered 503, the real app on SQLite, the fake Twilio keeping what they sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.settings import Settings
from gateway.testing import FakeTwilioAPI
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline
from tests.e2e.test_whatsapp import PHONE, whatsapp_settings
from tests.e2e.test_whatsapp_catchup import BOUND, catching_up, counted, said

__all__ = ["catching_up", "gateway", "offline", "whatsapp_settings"]  # fixtures used below


def passed(client: Client) -> asyncio.Future[float]:
    """The catch-up's good passes (awaitable, for ``eventually``)."""
    return asyncio.sleep(0, counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok"))


async def test_a_young_persons_many_messages_of_an_outage_are_all_caught_up_none_refused_as_a_flood(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """Five messages written a minute apart while the gateway was down: the young person never flooded, but the
    catch-up processes them within a second. Before: the flood limit (3 a minute here, 20 by default) refused the
    last two, never looked at again (the next pass reads from shortly before this one), and told the young person
    they wrote too much."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    words = ["Bonjour", "on m'a piraté mon compte", "il publie mes photos", "je sais pas quoi faire", "aidez moi"]
    for minute, text in enumerate(words):
        twilio.receive(PHONE, text, at=start + timedelta(minutes=minute))
    client = await gateway(catching_up.replace(limit_messages_per_conversation="3/minute"))

    await eventually(lambda: passed(client), BOUND)
    assert await said(client, PHONE) == words
    assert counted(client, "gateway_whatsapp_caught_up_total") == len(words)
    assert counted(client, "gateway_refused_total") == 0
