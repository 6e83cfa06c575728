"""All providers down, then back: every reply written meanwhile is delivered once, in order (the real app,
Messenger and WhatsApp at once, fake Graph and Twilio APIs answering 503 for the whole outage).

The outage lasts ``outage_seconds`` (a parameter): 30 s is what issue 8 asks the gateway to ride out with its
production backoff (1 s doubling: tries at 1, 3, 7, 15, 31 s); the suite runs a shorter one with a fast backoff
(``GATEWAY_OUTBOX_BASE_DELAY`` 0.05 s, enough tries), which exercises the same path: retries, each conversation's
replies held behind its first, then the catch-up.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Delivery
from gateway.testing import FakeGraphAPI, FakeTwilioAPI, messenger_body, messenger_message
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline
from tests.e2e.test_messenger import deliver as deliver_messenger
from tests.e2e.test_messenger import messenger_settings
from tests.e2e.test_whatsapp import TOKEN, twilio_form
from tests.e2e.test_whatsapp import deliver as deliver_whatsapp

__all__ = ["gateway", "messenger_settings", "offline"]  # fixtures used below

PEOPLE = 4  # on each channel
MESSENGER_WALK = [("Bonjour", None), ("Non", "no"), ("Français", "fr")]
WHATSAPP_WALK = ["Bonjour", "2", "Français"]


def psid(n: int) -> str:
    return f"74{n:014d}"


def phone(n: int) -> str:
    return f"whatsapp:+3361000{n:04d}"


async def outgoing(client: Client, channel: ChannelName, sender: str) -> list[str]:
    """The bot's replies to ``sender`` in the transcript, once none is pending any more (else [])."""
    store = client.app[STORE]
    conversation = await store.find_active_conversation(channel, sender)
    assert conversation is not None
    entries = [e for e in await store.transcript(conversation.id) if e.author is Author.BOT]
    if any(e.delivery is Delivery.PENDING for e in entries):
        return []
    assert all(e.delivery is Delivery.SENT for e in entries), [e.delivery for e in entries]
    return [e.text for e in entries]


def at_graph(graph: FakeGraphAPI, recipient: str) -> list[str]:
    return [r.body["message"]["text"] for r in graph.accepted() if r.body["recipient"]["id"] == recipient]


def at_twilio(twilio: FakeTwilioAPI, recipient: str) -> list[str]:
    return [r.body["Body"] for r in twilio.accepted() if r.body["To"] == recipient]


@pytest.mark.parametrize("outage_seconds", [3.0])
async def test_all_providers_down_then_back_deliver_every_reply_once_in_order(
    gateway: GatewayFactory,
    messenger_settings: Settings,
    graph: FakeGraphAPI,
    twilio: FakeTwilioAPI,
    outage_seconds: float,
) -> None:
    whatsapp = {"twilio_account_sid": twilio.account_sid, "twilio_auth_token": TOKEN,
                "twilio_whatsapp_from": "whatsapp:+14155238886", "twilio_api_url": twilio.url,
                "public_url": "http://helpline.example.org:8080"}  # fmt: skip
    settings = messenger_settings.replace(outbox_base_delay=0.05, outbox_max_attempts=30, **whatsapp)
    client = await gateway(settings)
    graph.down()
    twilio.down()

    async def messenger_person(n: int) -> None:
        for step, (text, payload) in enumerate(MESSENGER_WALK):
            item = messenger_message(psid(n), text, f"m_out_{n}_{step}", quick_reply=payload)
            assert await deliver_messenger(client, messenger_body([item])) == 200

    async def whatsapp_person(n: int) -> None:
        for step, text in enumerate(WHATSAPP_WALK):
            form = twilio_form(phone(n), text, message_sid=f"SM{n:016d}{step:016d}")
            assert await deliver_whatsapp(client, form) == 200

    await asyncio.gather(*(messenger_person(n) for n in range(PEOPLE)), *(whatsapp_person(n) for n in range(PEOPLE)))
    await asyncio.sleep(outage_seconds)  # the outage goes on; the outbox keeps retrying
    assert graph.requests_to("messages") and not graph.accepted() and not twilio.accepted()
    graph.up()
    twilio.up()

    expected = {}
    for n in range(PEOPLE):
        expected[psid(n)] = await eventually(lambda n=n: outgoing(client, ChannelName.MESSENGER, psid(n)), timeout=60)
        expected[phone(n)] = await eventually(lambda n=n: outgoing(client, ChannelName.WHATSAPP, phone(n)), timeout=60)
    await outbox_drained(client)  # a stray resend would be sent by now
    for n in range(PEOPLE):
        assert at_graph(graph, psid(n)) == expected[psid(n)]  # every reply once, in order
        bodies = at_twilio(twilio, phone(n))  # WhatsApp adds the choices as a numbered list under the text
        assert len(bodies) == len(expected[phone(n)])
        assert all(body.startswith(text) for body, text in zip(bodies, expected[phone(n)], strict=True))
