"""WhatsApp's catch-up in the situations ``test_whatsapp_catchup.py`` does not try: a young person who wrote many
messages while the gateway answered 503, the real app on SQLite, the fake Twilio keeping what they sent."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from gateway.channels import whatsapp
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


async def test_a_list_longer_than_a_pass_reads_is_told_never_cut_silently(
    gateway: GatewayFactory,
    catching_up: Settings,
    twilio: FakeTwilioAPI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pass reads at most ``LIST_MAX_PAGES`` pages of Twilio's list, the newest first (100 of 100 messages: a long
    outage at a busy line; 2 of 1 here). Before: the oldest messages, the outage's first, were dropped without a
    word (the pass counted "ok", its log said every message was processed) and never read again."""
    monkeypatch.setattr(whatsapp, "LIST_PAGE_SIZE", 1)
    monkeypatch.setattr(whatsapp, "LIST_MAX_PAGES", 2)
    start = datetime.now(UTC) - timedelta(minutes=10)
    for minute, text in enumerate(["Bonjour", "je vais me tuer", "ce soir", "aidez moi"]):
        twilio.receive(PHONE, text, at=start + timedelta(minutes=minute))
    caplog.set_level(logging.INFO)
    client = await gateway(catching_up)

    await eventually(lambda: asyncio.sleep(0, counted(client, "gateway_whatsapp_catchup_passes_total")), BOUND)
    assert await said(client, PHONE) == ["ce soir", "aidez moi"]  # what one pass reads: the newest
    assert counted(client, "gateway_whatsapp_catchup_passes_total", outcome="cut") == 1
    [told] = [r for r in caplog.records if "older ones are not caught up" in r.getMessage()]
    assert told.levelno == logging.WARNING and PHONE.removeprefix("whatsapp:+") not in told.getMessage()
