"""WhatsApp's catch-up: the messages Twilio received that the gateway never processed, read from Twilio's list
(the real app on SQLite or a real Redis, the fake Twilio API keeping what a young person sent).

Twilio does not send a webhook again after a 5xx: until 2026-12-05 a WhatsApp message that met a store outage
longer than the webhook's 10 s hold, or a gateway down or unreachable, was delivered on the young person's phone and
never reached the line. Now the gateway reads Twilio's list at start, after a 503 and every few minutes, and
processes what it had not, once, oldest first (``gateway/channels/whatsapp_catchup.py``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import CATCH_UP, METRICS, STORE
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import Failure, FakeTwilioAPI, twilio_form
from tests.conftest import TWILIO_TOKEN
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline
from tests.e2e.test_whatsapp import PHONE, deliver, whatsapp_settings
from tests.e2e.test_whatsapp_store_hold import NOWHERE, own_redis, proxy
from tests.losing_proxy import LosingProxy

__all__ = ["gateway", "offline", "own_redis", "proxy", "whatsapp_settings"]  # fixtures used below

OTHER = "whatsapp:+33698765432"
BOUND = 60.0


@pytest.fixture
def catching_up(whatsapp_settings: Settings) -> Settings:
    """A pass at start and after a 503 at once (nothing left to settle), the periodic one out of the way."""
    return whatsapp_settings.replace(
        understanding="off", whatsapp_catchup_settle_seconds=0.0, whatsapp_catchup_seconds=3600.0
    )


async def said(client: Client, sender: str | None = None) -> list[str]:
    """What the young people wrote, as the line's transcripts keep it, oldest conversation first."""
    store = client.app[STORE]
    everything = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return [
        e.text
        for c in sorted(everything, key=lambda c: c.created_at)
        if sender is None or c.sender == sender
        for e in await store.transcript(c.id)
        if e.author == Author.USER
    ]


def counted(client: Client, name: str, **labels: str) -> float:
    total = 0.0
    for metric in client.app[METRICS].registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_messages_sent_while_the_gateway_was_down_are_processed_once_at_start_in_order_with_replies(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    twilio.receive(PHONE, "Bonjour")  # the gateway down (a deploy gone wrong): Twilio keeps them, never posts again
    twilio.receive(OTHER, "Bonjour")
    twilio.receive(PHONE, "je vais me tuer")
    client = await gateway(catching_up)

    async def both() -> bool:
        return await said(client, PHONE) == ["Bonjour", "je vais me tuer"] and await said(client, OTHER) == ["Bonjour"]

    await eventually(both, BOUND)  # before: nothing, ever

    async def told_where_to_turn() -> bool:  # the young person at risk is told where to turn: the interrupt's numbers
        return any("3114" in r.body["Body"] for r in twilio.accepted() if r.body["To"] == PHONE)

    # waited for itself, not as one of the first 5 replies accepted (the welcomes may come first: fresh104 failed so)
    await eventually(told_where_to_turn, BOUND)
    assert counted(client, "gateway_whatsapp_caught_up_total") == 3
    assert len(twilio.requests_to("Messages.json")) == len(twilio.accepted())  # the sends, not the list's reads


async def test_a_message_processed_already_or_older_than_the_window_is_left_alone(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    twilio.receive(OTHER, "Bonjour", at=datetime.now(UTC) - timedelta(hours=7))  # before the 6 h window
    client = await gateway(catching_up)
    await eventually(lambda: asyncio.sleep(0, counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok")))
    form = twilio_form(PHONE, "Bonjour")
    twilio.receive(PHONE, "Bonjour", message_sid=form["MessageSid"])
    assert await deliver(client, form) == 200  # its webhook came: processed once
    await twilio.wait_accepted(2, timeout=BOUND)

    assert await client.app[CATCH_UP].catch_up() == 0  # a second pass, as after a 503
    assert await said(client) == ["Bonjour"]
    assert counted(client, "gateway_whatsapp_caught_up_total") == 0


async def test_a_failing_list_is_shown_and_tried_again(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    twilio.receive(PHONE, "je vais me tuer")
    twilio.fail_next(500, 503, endpoint="list")  # Twilio's API failing at start
    client = await gateway(catching_up)

    async def shown() -> dict[str, object] | None:
        body = await (await client.get("/readyz")).json()
        return body if "whatsapp_catchup" in body else None

    assert (await eventually(shown, BOUND))["whatsapp_catchup"] == "failing (RetryableDelivery)"
    await eventually(lambda: said(client), BOUND)  # tried again (1 s, 2 s later): caught up
    assert await said(client) == ["je vais me tuer"]
    assert counted(client, "gateway_whatsapp_catchup_passes_total", outcome="failed") == 2
    assert "whatsapp_catchup" not in await (await client.get("/readyz")).json()


async def test_twilio_refusing_the_lines_credentials_is_said_by_its_class_at_every_period(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Twilio's list answered 401, code 20003 (the auth token changed in Twilio's console): the pass says the line's
    credentials are refused, by their class (never the token, a number or a sid), and is tried again at the next
    period (the token is read at start: a minute changes nothing). Until 2026-12-05 it said "PermanentDelivery" and
    "again in 1s", while the next pass came a period later."""
    caplog.set_level(logging.INFO)
    twilio.receive(PHONE, "je vais me tuer")
    twilio.fail_next(Failure(401, code=20003, description="Authenticate"), endpoint="list")
    client = await gateway(catching_up)

    async def shown() -> dict[str, object] | None:
        body = await (await client.get("/readyz")).json()
        return body if "whatsapp_catchup" in body else None

    assert (await eventually(shown, BOUND))["whatsapp_catchup"] == "failing (CredentialsRefused)"
    [line] = [
        r.getMessage() for r in caplog.records if r.name.endswith("whatsapp_catchup") and "failed" in r.getMessage()
    ]
    assert "CredentialsRefused" in line and "again in 3600s" in line, line  # the period (catching_up's)
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))
    assert TWILIO_TOKEN not in ours and "+33612345678" not in ours

    client.app[CATCH_UP].missed()  # the token set again (a restart's pass at start does the same): caught up once
    await eventually(lambda: said(client), BOUND)
    assert await said(client) == ["je vais me tuer"]
    assert "whatsapp_catchup" not in await (await client.get("/readyz")).json()


@pytest.mark.redis
async def test_messages_answered_503_during_a_store_outage_longer_than_the_hold_are_processed_once_it_is_back(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, own_redis: str, proxy: LosingProxy
) -> None:
    client = await gateway(catching_up.replace(store=proxy.url))
    first = twilio_form(PHONE, "Bonjour")
    twilio.receive(PHONE, "Bonjour", message_sid=first["MessageSid"])
    assert await deliver(client, first) == 200
    await twilio.wait_accepted(2, timeout=BOUND)

    proxy.point_at(NOWHERE)  # Redis away for longer than the webhook's 10 s hold
    proxy.reset_all()
    lost = [twilio_form(PHONE, "je vais me tuer"), twilio_form(PHONE, "ce soir")]
    for form in lost:
        twilio.receive(PHONE, form["Body"], message_sid=form["MessageSid"])
    answers = await asyncio.gather(*(deliver(client, form) for form in lost))
    assert answers == [503, 503]  # Twilio sends them no more
    proxy.point_at(own_redis)

    async def caught() -> bool:
        return await said(client) == ["Bonjour", "je vais me tuer", "ce soir"]

    await eventually(caught, BOUND)  # before: ["Bonjour"], the two lost for good
    assert counted(client, "gateway_whatsapp_caught_up_total") == 2

    async def told_where_to_turn() -> bool:
        return any("3114" in r.body["Body"] for r in twilio.accepted())

    await eventually(told_where_to_turn, BOUND)  # the interrupt's numbers, to the young person at risk


async def test_only_a_caught_up_messages_media_are_asked_of_twilio(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """A photo its webhook brought is not asked of Twilio again at each pass (one request a message with media,
    every pass: at a national line's volume, hundreds); a photo sent while the gateway answered 503 is caught up
    with its media, as its webhook would have given them."""
    client = await gateway(catching_up)
    await eventually(lambda: asyncio.sleep(0, counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok")))
    form = twilio_form(PHONE, "voilà", media=[(twilio.url + twilio.media_path(), "image/jpeg")])
    twilio.receive(PHONE, "voilà", message_sid=form["MessageSid"], media=[("ME" + "1" * 32, "image/jpeg")])
    assert await deliver(client, form) == 200  # its webhook came
    twilio.receive(OTHER, "regarde", media=[("ME" + "2" * 32, "image/png")])  # its webhook answered 503

    assert await client.app[CATCH_UP].catch_up() == 1
    assert len(twilio.requests_to("Media.json")) == 1  # the caught-up one's only
    store = client.app[STORE]
    everything = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    [other] = [c for c in everything if c.sender == OTHER]
    [entry] = [e for e in await store.transcript(other.id) if e.author == Author.USER]
    assert entry.text == "regarde" and [(a.kind, a.content_type) for a in entry.attachments] == [("image", "image/png")]
