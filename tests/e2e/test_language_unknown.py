"""A young person whose channel does not tell their language (WhatsApp through Twilio, Messenger) and who writes in
English before the language question: the bot answers in English, never leaving them with French only where the
flow has an English text (the numbers to call now above all). The real app and a fake Twilio REST API."""

from __future__ import annotations

import pytest

from gateway.testing import FakeTwilioAPI, twilio_form
from tests.e2e.channel_support import Client, ListenerDesk, gateway, offline
from tests.e2e.test_whatsapp import PHONE, bodies, client, deliver, whatsapp_settings

__all__ = ["client", "gateway", "offline", "whatsapp_settings"]


async def said(client: Client, twilio: FakeTwilioAPI, texts: list[str]) -> tuple[dict[str, object], list[str]]:
    """The messages delivered one by one; the waiting card and every text the bot sent, once all are out."""
    for number, text in enumerate(texts):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    sent = await desk.all_sent(card["id"])
    return card, bodies(await twilio.wait_accepted(len(sent)))


@pytest.mark.parametrize(
    ("texts", "english"),
    [
        (["Hi, I want to kill myself"], "If you are thinking about suicide"),
        (["hello", "yes"], "If you are in danger right now, call 17"),
    ],
)
async def test_an_english_speaker_on_whatsapp_is_told_where_to_turn_in_english(
    client: Client, twilio: FakeTwilioAPI, texts: list[str], english: str
) -> None:
    card, sent = await said(client, twilio, texts)
    assert any(english in body for body in sent), sent
    assert not any("appelle le" in body for body in sent), sent  # nothing in French only
    assert card["language"] == "en"  # the listener sees it
