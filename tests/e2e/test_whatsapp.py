"""WhatsApp through Twilio end to end: the real app and a fake Twilio REST API.

The gateway is told it is reached at GATEWAY_PUBLIC_URL (as behind a proxy), which differs from the test
server's own address: webhooks are signed for the public URL, as Twilio signs them. Choices go out as numbered
lists; numbers, labels and synonyms are understood on return.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.app import DISPATCHER, STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author, Delivery
from gateway.testing import (
    ACCOUNT_SID,
    WHATSAPP_FROM,
    Failure,
    FakeTwilioAPI,
    sign_twilio,
    twilio_form,
    twilio_status_form,
)
from tests.conftest import TWILIO_TOKEN, outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, ListenerDesk, eventually, gateway, offline, running_clock

__all__ = ["gateway", "offline"]  # fixtures used by the tests below

TOKEN = TWILIO_TOKEN
PUBLIC = "http://helpline.example.org:8080"  # what Twilio calls; the test server listens elsewhere
PHONE = "whatsapp:+33612345678"
PATH = "/webhooks/whatsapp"
STATUS_PATH = "/webhooks/whatsapp/status"
# Answers typed as a young person would: a number, a label, a number, a label in lower case, a synonym.
WALK = ["Bonjour", "2", "Français", "j'ai 15 ans", "pour moi", "on me harcèle", "On se moque de moi sur un groupe."]


@pytest.fixture
def whatsapp_settings(settings: Settings, twilio: FakeTwilioAPI) -> Settings:
    return settings.replace(
        public_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM,
        twilio_api_url=twilio.url,
    )


@pytest.fixture
async def client(gateway: GatewayFactory, whatsapp_settings: Settings) -> Client:
    return await gateway(whatsapp_settings)


async def deliver(client: Client, form: dict[str, str], path: str = PATH) -> int:
    headers = {"X-Twilio-Signature": sign_twilio(TOKEN, PUBLIC + path, form)}
    response = await client.post(path, data=form, headers=headers)
    if response.status == 200:
        assert response.content_type == "text/xml" and await response.text() == "<Response/>"
    return response.status


async def walk_to_queue(client: Client) -> None:
    for number, text in enumerate(WALK):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200


async def handed_to_listener(client: Client, twilio: FakeTwilioAPI) -> tuple[ListenerDesk, str]:
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["channel"] == "whatsapp" and "+336" not in json.dumps(card)
    await desk.take(card["id"])
    await twilio.wait_accepted(len(await desk.all_sent(card["id"])))
    return desk, card["id"]


def bodies(requests: list[Any]) -> list[str]:
    return [r.body["Body"] for r in requests]


async def test_the_flow_reaches_a_listener_whose_reply_reaches_twilio(client: Client, twilio: FakeTwilioAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)

    detail = await desk.conversation(conversation_id)
    assert detail["status"] == "with_listener"
    assert dict(detail["summary"])["Âge"] == "15"
    bot_texts = [e["text"] for e in detail["transcript"] if e["author"] == "bot"]
    sent = bodies(twilio.accepted())
    assert len(sent) == len(bot_texts)  # every bot message once, in order; choices appended as a numbered list
    assert all(body.startswith(text) for body, text in zip(sent, bot_texts, strict=True))
    urgency = next(body for body in sent if "danger" in body)
    assert "\n\n1. Oui, maintenant\n2. Non\n3. Je ne sais pas\n4. " in urgency  # 4: prefer not to say

    entry = await desk.reply(conversation_id, "Bonjour, je suis Anne, je t'écoute.")
    request = (await twilio.wait_accepted(len(bot_texts) + 1))[-1]
    assert request.method == "POST" and request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {credentials}"
    assert request.body == {
        "To": PHONE,
        "From": WHATSAPP_FROM,
        "Body": "Bonjour, je suis Anne, je t'écoute.",
        "StatusCallback": PUBLIC + STATUS_PATH,
    }
    await desk.delivery_of(conversation_id, entry["id"], "sent")

    sid = request.answer["sid"]
    assert await deliver(client, twilio_status_form(sid, "delivered", PHONE), STATUS_PATH) == 200
    await desk.delivery_of(conversation_id, entry["id"], "delivered")
    assert await deliver(client, twilio_status_form(sid, "read", PHONE), STATUS_PATH) == 200
    await desk.delivery_of(conversation_id, entry["id"], "read")
    assert await deliver(client, twilio_status_form(sid, "sent", PHONE), STATUS_PATH) == 200  # late, out of order
    await desk.delivery_of(conversation_id, entry["id"], "read")


async def test_media_is_recorded_in_the_transcript(client: Client, twilio: FakeTwilioAPI) -> None:
    url = twilio.serve_media(twilio.media_path(), b"\xff\xd8 a photo", "image/jpeg")
    form = twilio_form(PHONE, "", media=[(url, "image/jpeg")])
    assert await deliver(client, form) == 200
    conversation = (await client.app[STORE].conversations_by_status(Status.BOT))[0]
    desk = ListenerDesk(client)
    await desk.login()
    user = [e for e in (await desk.conversation(conversation.id))["transcript"] if e["author"] == "user"]
    [attachment] = user[0]["attachments"]
    assert attachment["kind"] == "image" and attachment["fetchable"] and "url" not in attachment

    # The listener views it through the console, which fetches it from Twilio with the account's credentials.
    response = await client.get(f"/api/conversations/{conversation.id}/attachments/{attachment['number']}")
    assert response.status == 200 and await response.read() == b"\xff\xd8 a photo"
    [download] = [r for r in twilio.requests if r.method == "GET" and r.endpoint != "Messages.json"]  # not the list
    assert twilio.authorised(download)


async def test_the_same_webhook_three_times_gives_one_reply(client: Client, twilio: FakeTwilioAPI) -> None:
    form = twilio_form(PHONE, "Bonjour", message_sid="SM" + "7" * 32)
    assert await asyncio.gather(*(deliver(client, form) for _ in range(3))) == [200, 200, 200]

    conversations = await client.app[STORE].conversations_by_status(Status.BOT)
    assert len(conversations) == 1
    desk = ListenerDesk(client)
    await desk.login()
    outgoing = await desk.all_sent(conversations[0].id)
    await twilio.wait_accepted(len(outgoing))
    await outbox_drained(client)  # a stray duplicate would be sent by now (there must be none)
    assert len(twilio.accepted()) == len(outgoing)
    transcript = (await desk.conversation(conversations[0].id))["transcript"]
    assert [e["author"] for e in transcript].count("user") == 1


@pytest.mark.parametrize(
    "signature_for",
    ["missing", "wrong token", "local url", "other field"],
)
async def test_a_bad_signature_is_403_and_changes_nothing(
    client: Client, twilio: FakeTwilioAPI, signature_for: str
) -> None:
    form = twilio_form(PHONE, "Bonjour", message_sid="SM" + "8" * 32)
    headers = {
        "missing": {},
        "wrong token": {"X-Twilio-Signature": sign_twilio("not-the-token", PUBLIC + PATH, form)},
        "local url": {"X-Twilio-Signature": sign_twilio(TOKEN, str(client.make_url(PATH)), form)},
        "other field": {"X-Twilio-Signature": sign_twilio(TOKEN, PUBLIC + PATH, {**form, "Body": "Bonsoir"})},
    }[signature_for]
    response = await client.post(PATH, data=form, headers=headers)
    assert response.status == 403
    assert await client.app[STORE].conversations_by_status(Status.BOT) == []
    assert await deliver(client, form) == 200  # the refused request consumed nothing
    await twilio.wait_accepted(1)


async def test_a_bad_signature_on_a_status_callback_is_403(client: Client) -> None:
    form = twilio_status_form("SM" + "1" * 32, "read", PHONE)
    response = await client.post(STATUS_PATH, data=form, headers={"X-Twilio-Signature": "bm9wZQ=="})
    assert response.status == 403


async def test_a_provider_failing_500_then_429_still_gets_every_message_once_in_order(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    before = len(twilio.accepted())
    twilio.fail_next(500, Failure(429, code=20429))
    words = ["premier", "deuxième", "troisième"]
    for word in words:
        await desk.reply(conversation_id, word)

    accepted = await twilio.wait_accepted(before + 3)
    assert bodies(accepted[before:]) == words
    assert [r.status for r in twilio.requests_to("Messages.json")][-5:] == [500, 429, 201, 201, 201]
    outgoing = await desk.all_sent(conversation_id)
    assert [e["delivery"] for e in outgoing[-3:]] == ["sent", "sent", "sent"]


async def test_twilios_rate_limit_for_the_channel_is_waited_out_not_a_failure(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Twilio answers 63018 ("Rate limit exceeded for Channel", e.g. the sandbox's one a second) with a 400: the reply
    was failed for good, the listener saw "échec" and the young person got nothing. It is waited out and sent once."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    before = len(twilio.accepted())
    twilio.fail_next(Failure(400, code=63018))
    entry = await desk.reply(conversation_id, "Je suis là.")
    await desk.delivery_of(conversation_id, entry["id"], "sent")
    assert bodies(twilio.accepted()[before:]) == ["Je suis là."]


async def test_a_split_message_resumes_at_the_part_that_failed(client: Client, twilio: FakeTwilioAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    before, tried = len(twilio.accepted()), len(twilio.requests_to("Messages.json"))
    parts = ["A" * 1200, "B" * 1200, "C" * 1200]  # three parts of at most 1,600
    twilio.fail_next(None, 500, Failure(429, code=20429))  # part 1 passes; part 2 fails twice, then passes
    entry = await desk.reply(conversation_id, "\n".join(parts))

    await desk.delivery_of(conversation_id, entry["id"], "sent")
    assert bodies(twilio.accepted()[before:]) == parts  # each part once, in order
    statuses = [(r.status, r.body["Body"][0]) for r in twilio.requests_to("Messages.json")[tried:]]
    assert statuses == [(201, "A"), (500, "B"), (429, "B"), (201, "B"), (201, "C")]


async def test_a_closed_window_refused_by_twilio_is_failed_at_once(client: Client, twilio: FakeTwilioAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    twilio.fail_next(Failure(400, code=63016))
    entry = await desk.reply(conversation_id, "Tu es là ?")
    await desk.delivery_of(conversation_id, entry["id"], "failed")
    assert [r.status for r in twilio.requests_to("Messages.json")][-1] == 400  # not retried


async def test_the_console_refuses_a_reply_after_24_hours(client: Client, twilio: FakeTwilioAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    store = client.app[STORE]
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.last_inbound_at is not None
    conversation.last_inbound_at -= timedelta(hours=24, minutes=5)
    await store.save_conversation(conversation)
    window = (await desk.conversation(conversation_id))["window"]
    assert window["state"] == "closed"
    response = await client.post(f"/api/conversations/{conversation_id}/messages", json={"text": "Trop tard ?"})
    assert response.status == 409
    refusal = await response.json()
    assert refusal["error"] == "window_closed" and "24" in refusal["message"]


async def test_a_referral_after_24_hours_is_refused_like_a_reply(client: Client, twilio: FakeTwilioAPI) -> None:
    _, conversation_id = await handed_to_listener(client, twilio)
    store = client.app[STORE]
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.last_inbound_at is not None
    conversation.last_inbound_at -= timedelta(hours=24, minutes=5)
    await store.save_conversation(conversation)
    sent, entries = len(twilio.requests_to("Messages.json")), len(await store.transcript(conversation_id))

    response = await client.post(f"/api/conversations/{conversation_id}/refer", json={"partner": "pharos"})
    assert response.status == 409
    refusal = await response.json()
    assert refusal["error"] == "window_closed" and "24" in refusal["message"]
    assert len(await store.transcript(conversation_id)) == entries  # nothing recorded, nothing queued
    assert await store.outbox_due(client.app[DISPATCHER].clock() + timedelta(days=1), 10) == []
    assert len(twilio.requests_to("Messages.json")) == sent

    assert await deliver(client, twilio_form(PHONE, "toujours là", message_sid="SM" + "9" * 32)) == 200
    accepted = len(twilio.accepted())  # counted before the referral: it may reach Twilio before the 201 is read
    response = await client.post(f"/api/conversations/{conversation_id}/refer", json={"partner": "pharos"})
    assert response.status == 201  # the young person wrote again: the window is open
    assert "internet-signalement" in bodies(await twilio.wait_accepted(accepted + 1))[-1]


async def test_an_idle_close_after_the_window_closes_without_a_refused_message(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    await twilio.wait_accepted(len(await desk.all_sent(conversation_id)))
    await outbox_drained(client)  # every reply recorded before the count and the move (the lease is on this clock)
    tried = len(twilio.requests_to("Messages.json"))

    running_clock(client).advance(hours=24, minutes=1)  # idle_close_hours: 24, the same as WhatsApp's window

    async def abandoned() -> bool:
        return (await desk.conversation(conversation_id))["status"] == "abandoned"

    await eventually(abandoned)
    [not_sent] = await desk.system_entries(conversation_id, "Not sent")
    assert "whatsapp lets the bot write up to 24 h" in not_sent["text"] and "faute de nouvelles" in not_sent["text"]
    assert len(await desk.system_entries(conversation_id, "paused")) == 1  # the reassurance time came first
    assert len(twilio.requests_to("Messages.json")) == tried  # nothing attempted, nothing failed
    assert all(e["delivery"] != "failed" for e in await desk.all_sent(conversation_id))


# Property: whatever a signed form holds, the real server answers 200 or 400, never 5xx.

field_names = st.sampled_from(
    ["MessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaContentType0", "ButtonPayload", "MessageStatus"]
)
values = st.text(max_size=30)
forms = st.dictionaries(field_names | st.text(min_size=1, max_size=10), values, max_size=8)
PROPERTY = hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(form=forms, status_callback=st.booleans())
async def test_any_signed_form_gives_200_or_400_from_the_real_server(
    client: Client, form: dict[str, str], status_callback: bool
) -> None:
    path = STATUS_PATH if status_callback else PATH
    try:
        raw = urlencode(form).encode()
    except UnicodeEncodeError:
        return  # a lone surrogate cannot be posted at all
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign_twilio(TOKEN, PUBLIC + path, form),
    }
    response = await client.post(path, data=raw, headers=headers)
    assert response.status in (200, 400)


@PROPERTY
@given(raw=st.binary(max_size=200), signature=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
async def test_any_unsigned_body_gives_403_from_the_real_server(client: Client, raw: bytes, signature: str) -> None:
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(PATH, data=raw, headers=headers)
    try:
        raw.decode()
    except UnicodeDecodeError:  # not a form Twilio could have signed: refused as malformed
        assert response.status in (400, 403)
    else:
        assert response.status == 403


async def test_stop_marks_the_conversation_as_left_and_start_lifts_it(client: Client, twilio: FakeTwilioAPI) -> None:
    """Twilio's Advanced Opt-Out: the young person's STOP is a message the listener reads, and a departure."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    stop = {**twilio_form(PHONE, "STOP", message_sid="SM" + "5" * 32), "OptOutType": "STOP"}
    assert await deliver(client, stop) == 200
    detail = await desk.conversation(conversation_id)
    assert (detail["status"], detail["left_how"]) == ("with_listener", "blocked")
    assert [e["text"] for e in detail["transcript"] if e["author"] == "user"][-1] == "STOP"
    [entry] = await desk.system_entries(conversation_id)
    assert entry["system"] == {"code": "left.blocked", "params": {"channel": "whatsapp"}}
    assert "+336" not in json.dumps(detail)

    assert await deliver(client, twilio_form(PHONE, "allo ?", message_sid="SM" + "6" * 32)) == 200
    assert (await desk.conversation(conversation_id))["left_how"] == "blocked"  # writing is not START on WhatsApp
    start = {**twilio_form(PHONE, "START", message_sid="SM" + "7" * 32), "OptOutType": "START"}
    assert await deliver(client, start) == 200
    assert (await desk.conversation(conversation_id))["left_how"] is None
    codes = [e["system"]["code"] for e in await desk.system_entries(conversation_id)]
    assert codes == ["left.blocked", "left.unblocked"]


async def test_a_send_refused_with_21610_marks_the_conversation_as_left(client: Client, twilio: FakeTwilioAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    twilio.fail_next(Failure(400, code=21610))
    sent = await desk.reply(conversation_id, "Tu es toujours là ?")
    await desk.delivery_of(conversation_id, sent["id"], "failed")

    async def marked() -> dict[str, Any] | None:
        detail = await desk.conversation(conversation_id)
        return detail if detail["left_how"] == "blocked" else None

    await eventually(marked)


async def test_a_status_callback_with_21610_marks_the_conversation_as_left(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    sid = twilio.accepted()[-1].answer["sid"]
    form = twilio_status_form(sid, "undelivered", PHONE, error_code="21610")
    assert await deliver(client, form, STATUS_PATH) == 200
    detail = await desk.conversation(conversation_id)
    assert detail["left_how"] == "blocked"
    codes = [e["system"]["code"] for e in await desk.system_entries(conversation_id)]
    assert codes == ["bot_failed.final", "left.blocked"]  # the bot's last message did not reach them, and why


async def test_numbers_go_as_plain_text_the_app_links_never_split_or_broken(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, twilio)
    before = len(twilio.accepted())
    text = "x" * 1590 + " le 116 111 ou le 116\u202f006, https://www.e-enfance.org/aide"  # cut at 1,600: "116 1"
    await desk.reply(conversation_id, text)
    first, second = (await twilio.wait_accepted(before + 2))[before:]
    assert first.body["Body"] == "x" * 1590 + " le"
    assert second.body["Body"] == "116 111 ou le 116 006, https://www.e-enfance.org/aide"
    assert {first.body["To"], second.body["To"]} == {PHONE}


async def test_a_shared_location_is_told_as_a_location_never_as_an_empty_message(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """A young person shares their location at the danger question: Twilio posts no Body, no media, but
    Latitude/Longitude. It was an empty message: "Je n'ai pas bien compris", and a listener saw an empty bubble.
    It is an attachment of kind location (a listener sees "position"; the bot says it cannot read it), as on
    Telegram, and its coordinates, address and label are not kept."""
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "4" * 32)) == 200
    await twilio.wait_accepted(2)
    form = twilio_form(PHONE, "", message_sid="SM" + "5" * 32)
    form.update(MessageType="location", Latitude="48.8566", Longitude="2.3522", Address="1 rue X", Label="Chez moi")
    assert await deliver(client, form) == 200

    said = [r.body["Body"] for r in await twilio.wait_accepted(4)][2:]
    assert "pas bien compris" not in said[0] and "Je ne peux pas" in said[0], said
    [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
    transcript = await client.app[STORE].transcript(conversation.id)
    shared = [e for e in transcript if e.author == "user"][-1]
    assert [a.kind for a in shared.attachments] == ["location"]
    assert not any(secret in repr(transcript) for secret in ("48.85", "2.35", "rue X", "Chez moi"))


async def test_a_young_person_waiting_a_day_is_told_goodbye_before_the_window_closes(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Queued in the evening and never taken: the idle close (24 h) came as WhatsApp's 24-hour window closed, so its
    goodbye and the numbers to call (119, 3114, 17/112) were only a "not sent" entry: the young person left the queue
    without a word. It now comes a quarter of an hour before the window closes, and reaches them."""
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    await twilio.wait_accepted(len(await desk.all_sent(conversation_id)))
    await outbox_drained(client)  # every reply recorded before the move (the outbox's lease is counted on this clock)

    running_clock(client).advance(hours=23, minutes=50)  # the window still open for ten minutes

    async def abandoned() -> bool:
        return (await desk.conversation(conversation_id))["status"] == "abandoned"

    async def goodbye_accepted() -> str | None:
        # the goodbye by its words, not as the last copy accepted: on a loaded machine the queue's own message
        # ("Tu es en position 1") may reach the fake after the count above was read
        return next((body for body in bodies(twilio.accepted()) if "faute de nouvelles" in body), None)

    await eventually(abandoned)
    goodbye = await eventually(goodbye_accepted)
    assert "119" in goodbye and "3114" in goodbye
    assert await desk.system_entries(conversation_id, "Not sent") == []


async def test_a_shared_contact_card_never_gives_its_phone_number_to_the_listener(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """A young person shares a contact (the harasser's, a friend's) at the danger question: Twilio posts it as a
    vCard file (``text/vcard``), with the contact's phone number inside. It was a file the listener could
    download from the console, phone number and all. It is shared content of kind other, as a Telegram contact
    card is: the listener sees that a contact was shared, the bot says it cannot read it, and no URL to the card
    is kept."""
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "6" * 32)) == 200
    await twilio.wait_accepted(2)
    card = b"BEGIN:VCARD\nVERSION:3.0\nFN:Kevin\nTEL;type=CELL;waid=33698765432:+33 6 98 76 54 32\nEND:VCARD\n"
    url = twilio.serve_media(twilio.media_path("MM" + "7" * 32), card, "text/vcard")
    form = twilio_form(PHONE, "", message_sid="SM" + "7" * 32, media=[(url, "text/vcard")])
    assert await deliver(client, form) == 200

    said = [r.body["Body"] for r in await twilio.wait_accepted(4)][2:]
    assert "pas bien compris" not in said[0] and "Je ne peux pas" in said[0], said
    [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
    desk = ListenerDesk(client)
    await desk.login()
    user = [e for e in (await desk.conversation(conversation.id))["transcript"] if e["author"] == "user"]
    [attachment] = user[-1]["attachments"]
    assert attachment["kind"] == "other" and not attachment["fetchable"]
    response = await client.get(f"/api/conversations/{conversation.id}/attachments/{attachment['number']}")
    assert response.status == 404 and b"98 76" not in await response.read()
    assert not any(r.method == "GET" and r.endpoint != "Messages.json" for r in twilio.requests)  # never fetched
    assert url not in repr(await client.app[STORE].transcript(conversation.id))


def forwarded(text: str, number: int, frequently: bool = False) -> dict[str, str]:
    """A message the young person forwards, as Twilio posts it: ``Forwarded`` (and ``FrequentlyForwarded`` for one
    passed on many times, a chain message or a rumour), someone else's words."""
    form = {**twilio_form(PHONE, text, message_sid=f"SM{number:032d}"), "Forwarded": "true"}
    return {**form, "FrequentlyForwarded": "true"} if frequently else form


async def test_a_forwarded_message_is_someone_elses_words_never_an_answer(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """A young person forwards the messages they received (the harasser's "Non, t'as pas le choix" as proof): Twilio
    says so (``Forwarded``), the gateway did not read it, and took it as their own answer: "2" or "Non" to "are you in
    danger now?" moved the flow on, and a listener read it as their words. As on Telegram, it is kept, marked
    forwarded, read for a risk, and answers nothing; one that opens the chat starts the conversation."""
    assert await deliver(client, forwarded("Non", 900)) == 200
    said = bodies(await twilio.wait_accepted(2))
    assert said[1].startswith("D'abord, une question importante"), said
    assert await deliver(client, forwarded("Non, t'as pas le choix", 901, frequently=True)) == 200
    assert await deliver(client, twilio_form(PHONE, "2", message_sid=f"SM{902:032d}")) == 200
    said = bodies(await twilio.wait_accepted(3))
    assert said[2].startswith("Tu préfères continuer en français"), said  # the young person's own "2" answered
    await outbox_drained(client)
    assert len(twilio.accepted()) == 3, bodies(twilio.accepted())
    [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
    desk = ListenerDesk(client)
    await desk.login()
    assert await desk.young_persons_words(conversation.id) == [
        ("Non", ["forwarded"]),
        ("Non, t'as pas le choix", ["forwarded"]),
        ("2", []),
    ]


async def test_a_forwarded_message_of_danger_still_escalates(client: Client, twilio: FakeTwilioAPI) -> None:
    assert await deliver(client, twilio_form(PHONE, "bonjour", message_sid=f"SM{910:032d}")) == 200
    await twilio.wait_accepted(2)
    assert await deliver(client, forwarded("je vais me tuer ce soir", 911)) == 200
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["priority"] == "urgent", card


async def test_twilio_refusing_the_lines_credentials_keeps_every_reply_and_says_so_at_once(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Twilio answers 401, code 20003 ("Authenticate"), to every send once the account's auth token was changed in
    its console (or the account SID is wrong): the line's credentials, not the young person's refusal. Until
    2026-12-05 each reply failed for good, one WARNING line each, /readyz 200 saying nothing: hours of young people
    left without an answer, none of their replies sent once the token was set again. Now they wait (Twilio asked
    again once a minute) and it is shown at once, as a Messenger page token refused is."""
    caplog.set_level(logging.INFO)
    twilio.fail_next(Failure(401, code=20003, description="Authenticate"))
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "7" * 32)) == 200
    await twilio.wait_for("Messages.json", 1)

    async def shown() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" in ready else None

    ready = await eventually(shown)
    assert ready["ready"] is True  # the web chat and the other channels still serve
    said = ready["channels_refused"]["whatsapp"]
    assert "20003" in said and "TWILIO_AUTH_TOKEN" in said
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_channel_credentials_refused{channel="whatsapp"} 1.0' in metrics
    alerts = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(alerts) == 1 and "whatsapp" in alerts[0] and "credentials" in alerts[0]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]
    assert all("+33612345678" not in line and TOKEN not in line for line in ours)

    store = client.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    bot = [e for e in await store.transcript(conversation.id) if e.author == Author.BOT]
    assert bot and all(e.delivery == Delivery.PENDING for e in bot)  # kept, not failed

    running_clock(client).advance(seconds=61)  # Twilio asked again a minute later: the auth token was set again
    accepted = await twilio.wait_accepted(len(bot))
    assert all(body.startswith(e.text) for body, e in zip(bodies(accepted), bot, strict=True))  # each once, in order

    async def over() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" not in ready else None

    await eventually(over)
    assert any("alert over" in r.getMessage() for r in caplog.records)
    assert "+33612345678" not in json.dumps(ready)
    after = await store.get_conversation(conversation.id)
    assert after is not None and after.left_how is None  # the line's credentials, never the young person leaving


async def test_twilio_rate_limiting_the_line_is_shown_on_readyz_until_a_send_goes_again(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Twilio refuses a send with its rate limit (429, code 20429, ``Retry-After: 30``): the real app's ``/readyz``
    names the channel in ``channels_paused`` (still ready: a rate limit is not unreadiness) and
    ``gateway_channel_paused`` is 1, until the probe after the pause is accepted, then both say so. Until
    2026-12-08 only ``Outbox.paused_channels`` was tested (``tests/test_outbox_probe.py``), never the field itself."""
    twilio.fail_next(Failure(429, code=20429, retry_after=30, description="Too Many Requests"))
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "6" * 32)) == 200
    await twilio.wait_for("Messages.json", 1)

    async def shown() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_paused" in ready else None

    ready = await eventually(shown)
    assert ready["ready"] is True and ready["channels_paused"] == ["whatsapp"], ready
    assert (await client.get("/readyz")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_channel_paused{channel="whatsapp"} 1.0' in metrics
    assert "+33612345678" not in json.dumps(ready)

    running_clock(client).advance(seconds=31)  # the pause told over: one reply probes, accepted, the rest follow
    await twilio.wait_accepted(1)

    async def over() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_paused" not in ready else None

    await eventually(over)
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_channel_paused{channel="whatsapp"} 0.0' in metrics


@pytest.mark.parametrize("code", [21606, 63007])
async def test_twilio_not_knowing_the_lines_sender_keeps_every_reply_and_says_so_at_once(
    client: Client, twilio: FakeTwilioAPI, code: int
) -> None:
    """Twilio answers 21606 (the From number not a sender of this account) or 63007 (no WhatsApp channel for the
    From address: the sender removed, pending approval, or another account's) to every send when the line's
    TWILIO_WHATSAPP_FROM or its sender in Twilio's console is wrong: the line's configuration, never the young
    person's. Until 2026-12-05 each reply failed for good, one by one, /readyz saying nothing; now they wait (Twilio
    asked again once a minute), shown at once as the line's credentials refused (20003) are."""
    twilio.fail_next(Failure(400, code=code, description="The From address whatsapp:+14155238886 is not valid"))
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "8" * 32)) == 200
    await twilio.wait_for("Messages.json", 1)

    async def shown() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" in ready else None

    ready = await eventually(shown)
    said = ready["channels_refused"]["whatsapp"]
    assert str(code) in said and "TWILIO_WHATSAPP_FROM" in said and "+14155238886" not in said
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_channel_credentials_refused{channel="whatsapp"} 1.0' in metrics
    store = client.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    bot = [e for e in await store.transcript(conversation.id) if e.author == Author.BOT]
    assert bot and all(e.delivery == Delivery.PENDING for e in bot)  # kept, not failed

    running_clock(client).advance(seconds=61)  # the sender set right again; Twilio asked again a minute later
    accepted = await twilio.wait_accepted(len(bot))
    assert all(body.startswith(e.text) for body, e in zip(bodies(accepted), bot, strict=True))  # each once, in order
