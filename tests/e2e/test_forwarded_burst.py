"""A young person shows the line what they receive: they select the harasser's messages and forward them at once
(Telegram's ``forward_origin``, Twilio's ``Forwarded``), the real app on SQLite and on a real Redis, the fake
providers on 127.0.0.1.

Until 2026-12-05 a forward counted against the flood limit (20 a minute per conversation) as a typed message: of 60
forwarded at once, 20 reached the transcript and the listener, the other 40 were never recorded, the young person
was told once "on n'a pas pu prendre le tien" and their own words right after the burst were refused too. Forwards
the platform marks are now counted under their own bound (``GATEWAY_LIMIT_FORWARDED_PER_CONVERSATION``, 100 per
10 minutes: one selection of Telegram's 100), never against the typed messages', answered by nothing; past it the
calm notice as for any flood, and words of danger still escalate.
"""

from __future__ import annotations

import json

import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.testing import FakeTelegramAPI, FakeTwilioAPI, telegram_update, twilio_form
from tests.conftest import outbox_drained
from tests.e2e.channel_support import GatewayFactory, ListenerDesk, gateway, offline
from tests.e2e.test_telegram import CHAT, deliver, forwarded, handed_to_listener, telegram_settings
from tests.e2e.test_whatsapp import PHONE, bodies, whatsapp_settings
from tests.e2e.test_whatsapp import deliver as deliver_whatsapp
from tests.e2e.test_whatsapp import forwarded as forwarded_whatsapp
from tests.e2e.test_whatsapp import handed_to_listener as handed_to_listener_whatsapp
from tests.store.conftest import STORES, on_store, redis_url

__all__ = ["gateway", "offline", "redis_url", "telegram_settings", "whatsapp_settings"]  # fixtures used below

TYPED = "12/hour"  # the flood limit of typed messages, per hour so that no window ends during a slow test
NOTICE = "Beaucoup de messages arrivent"  # flows.yaml's rate_limited notice


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings.replace(limit_messages_per_conversation=TYPED))


def evidence(count: int) -> list[str]:
    return [f"t'es qu'une merde, tout le monde va voir ta photo ({n})" for n in range(count)]


async def test_sixty_forwarded_messages_all_reach_the_listener_and_the_young_persons_words_after_them_too(
    gateway: GatewayFactory, store_settings: Settings, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """With a listener already: 60 forwards at once (typed messages limited to 12 an hour here, of which the walk to
    the listener took 7), then "voilà ce qu'il m'envoie". Every forward is in the transcript, marked, in order,
    answered by nothing, no notice; the young person's own message after them is theirs and kept."""
    client = await gateway(telegram_settings.replace(store=store_settings.store, limit_messages_per_conversation=TYPED))
    desk, conversation_id = await handed_to_listener(client, telegram)
    sent_before = len(telegram.accepted())
    texts = evidence(60)
    for number, text in enumerate(texts):
        assert await deliver(client, forwarded(900001000 + number, CHAT, text)) == 200
    assert await deliver(client, telegram_update(900001100, CHAT, "voilà ce qu'il m'envoie")) == 200
    await outbox_drained(client)
    said = [r.body["text"] for r in telegram.accepted()[sent_before:]]
    assert not any(NOTICE in text for text in said), said  # nothing refused, nothing to say
    words = await desk.young_persons_words(conversation_id)
    assert words[-61:] == [(text, ["forwarded"]) for text in texts] + [("voilà ce qu'il m'envoie", [])]


async def test_a_troll_forwarding_in_a_loop_is_still_cut_and_told_once_and_danger_still_escalates(
    gateway: GatewayFactory, store_settings: Settings, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """The forwards' own bound holds (10 here): the 11th to 25th are not recorded, the young person gets the calm
    notice once (not "sent" for what was dropped); typed messages keep their own limit; a forward past the bound
    whose words read a danger still goes on and escalates."""
    client = await gateway(
        telegram_settings.replace(
            store=store_settings.store, limit_messages_per_conversation=TYPED,
            limit_forwarded_per_conversation="10/hour",
        )
    )  # fmt: skip
    assert await deliver(client, telegram_update(900002000, CHAT, "bonjour")) == 200
    await telegram.wait_accepted(2)
    texts = evidence(25)
    for number, text in enumerate(texts):
        assert await deliver(client, forwarded(900002001 + number, CHAT, text)) == 200
    for number in range(14):  # typed: 1 + 14 = 15, past the 12 of the typed messages' own limit
        assert await deliver(client, telegram_update(900002100 + number, CHAT, f"allô ? {number}")) == 200
    await outbox_drained(client)
    said = [r.body["text"] for r in telegram.accepted()[2:]]
    assert sum(NOTICE in text for text in said) == 1, said
    conversation = await client.app[STORE].find_active_conversation(ChannelName.TELEGRAM, str(CHAT))
    assert conversation is not None
    user = [e for e in await client.app[STORE].transcript(conversation.id) if e.author == "user"]
    assert [e.text for e in user if e.attachments] == texts[:10]
    assert [e.text for e in user if not e.attachments] == ["bonjour"] + [f"allô ? {n}" for n in range(11)]
    assert await deliver(client, forwarded(900002200, CHAT, "je vais me tuer ce soir")) == 200
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["priority"] == "urgent", card


async def test_forty_forwarded_whatsapp_messages_all_reach_the_listener(
    gateway: GatewayFactory, store_settings: Settings, whatsapp_settings: Settings, twilio: FakeTwilioAPI
) -> None:
    client = await gateway(whatsapp_settings.replace(store=store_settings.store, limit_messages_per_conversation=TYPED))
    desk, conversation_id = await handed_to_listener_whatsapp(client, twilio)
    sent_before = len(twilio.accepted())
    texts = evidence(40)
    for number, text in enumerate(texts):
        form = forwarded_whatsapp(text, 1000 + number, frequently=number % 2 == 1)
        assert await deliver_whatsapp(client, form) == 200
    await outbox_drained(client)
    said = bodies(twilio.accepted()[sent_before:])
    assert not any(NOTICE in text for text in said), said
    words = await desk.young_persons_words(conversation_id)
    assert words[-40:] == [(text, ["forwarded"]) for text in texts]
    assert "+336" not in json.dumps(words)


async def test_thirty_screenshots_sent_on_whatsapp_all_reach_the_listener(
    gateway: GatewayFactory, store_settings: Settings, whatsapp_settings: Settings, twilio: FakeTwilioAPI
) -> None:
    """The same proof as photos: the young person selects 30 screenshots of the harasser's messages in their gallery
    and sends them; WhatsApp posts one message each (no ``Forwarded``: they are the young person's own pictures).
    Until 2026-12-05 they counted as typed messages: with the walk to the listener, the flood limit kept a few and
    the rest were never recorded. A picture, a video or a file is evidence, counted under the forwards' bound."""
    client = await gateway(whatsapp_settings.replace(store=store_settings.store, limit_messages_per_conversation=TYPED))
    desk, conversation_id = await handed_to_listener_whatsapp(client, twilio)
    sent_before = len(twilio.accepted())
    for number in range(30):
        url = twilio.serve_media(twilio.media_path(f"MM{number:032d}"), b"\xff\xd8 a screenshot", "image/png")
        assert await deliver_whatsapp(client, twilio_form(PHONE, "", f"SM{5000 + number:032d}", [(url, "image/png")]))
    assert await deliver_whatsapp(client, twilio_form(PHONE, "voilà tout ce qu'il m'a envoyé", f"SM{5100:032d}"))
    await outbox_drained(client)
    said = bodies(twilio.accepted()[sent_before:])
    assert not any(NOTICE in text for text in said), said  # nothing refused, nothing to say
    words = await desk.young_persons_words(conversation_id)
    assert words[-31:] == [("", ["image"])] * 30 + [("voilà tout ce qu'il m'a envoyé", [])]


async def test_a_telegram_album_of_screenshots_reaches_the_listener_whole(
    gateway: GatewayFactory, store_settings: Settings, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """Three albums of ten screenshots (Telegram posts one update a photo) to a listener: all 30 kept, no notice."""
    client = await gateway(telegram_settings.replace(store=store_settings.store, limit_messages_per_conversation=TYPED))
    desk, conversation_id = await handed_to_listener(client, telegram)
    sent_before = len(telegram.accepted())
    for number in range(30):
        telegram.add_file(f"shot-{number}", b"\xff\xd8 a screenshot")
        update = telegram_update(900003000 + number, CHAT, None, photo_file_id=f"shot-{number}")
        assert await deliver(client, update) == 200
    await outbox_drained(client)
    said = [r.body["text"] for r in telegram.accepted()[sent_before:]]
    assert not any(NOTICE in text for text in said), said
    words = await desk.young_persons_words(conversation_id)
    assert words[-30:] == [("", ["image"])] * 30
