"""Messenger: the handshake, signed batches, the Send API as Graph receives it, and error mapping."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.channels.base import Channel, Lifecycle, MediaFetcher, ReplyWindow, TypingIndicator
from gateway.channels.messenger import MessengerChannel, parse_events
from gateway.errors import CredentialsRefused, PermanentDelivery, RetryableDelivery
from gateway.messages import Attachment, ChannelName, Choice, Outbound
from gateway.settings import Settings
from gateway.testing import (
    Failure,
    FakeGraphAPI,
    messenger_body,
    messenger_delivery,
    messenger_echo,
    messenger_message,
    messenger_postback,
    messenger_read,
    messenger_text_event,
    sign_messenger,
    signed_messenger,
)
from tests.hostile_json import shaped as shaped_by

from .conftest import webhook_app

SECRET = "app-secret"
PSID = "7012345678901234"
PATH = "/webhooks/messenger"

ClientFactory = Any


@pytest.fixture
def channel(graph: FakeGraphAPI, session: aiohttp.ClientSession) -> MessengerChannel:
    settings = Settings(
        messenger_app_secret=SECRET,
        messenger_verify_token="verify-me",
        messenger_page_access_token="page-token",
        messenger_api_url=graph.url + "/v23.0",
        max_body_bytes=20_000,
    )
    return MessengerChannel(settings, session)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, channel: MessengerChannel) -> TestClient[Any, Any]:
    app = webhook_app({PATH: channel.parse})
    app.router.add_get(PATH, channel.verify)
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def post(client: TestClient[Any, Any], document: Any) -> tuple[int, Any]:
    raw, headers = signed_messenger(SECRET, document)
    response = await client.post(PATH, data=raw, headers=headers)
    return response.status, await response.json()


def outbound(text: str = "Salut", choices: tuple[Choice, ...] = (), author: str = "bot") -> Outbound:
    return Outbound("o1", "c1", ChannelName.MESSENGER, PSID, text, choices, author)


# The handshake.


async def test_verification_echoes_the_challenge(client: TestClient[Any, Any]) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    response = await client.get(PATH, params=query)
    assert (response.status, await response.text()) == (200, "1158201444")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "x"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "verify-me", "hub.challenge": "x"},
        {"hub.mode": "subscribe", "hub.verify_token": "vérifié", "hub.challenge": "x"},
        {},
    ],
)
async def test_verification_refuses(client: TestClient[Any, Any], query: dict[str, str]) -> None:
    assert (await client.get(PATH, params=query)).status == 403


# Signature, size and shape.


async def test_a_text_message_is_normalised(client: TestClient[Any, Any]) -> None:
    status, batch = await post(client, messenger_text_event(PSID, "Bonjour, ça va ?", mid="m_AbC"))
    assert status == 200
    [message] = batch["inbound"]
    assert message["channel"] == "messenger"
    assert (message["sender"], message["message_id"], message["text"]) == (PSID, "m_AbC", "Bonjour, ça va ?")
    assert message["payload"] is None
    assert batch["receipts"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign_messenger("other-secret", b"{}")},
        {"X-Hub-Signature-256": "sha256=é"},
    ],
)
async def test_missing_or_wrong_signature_is_403(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    response = await client.post(PATH, data=b"{}", headers=headers)
    assert response.status == 403


async def test_a_tampered_body_is_403(client: TestClient[Any, Any]) -> None:
    raw, headers = signed_messenger(SECRET, messenger_text_event(PSID, "un"))
    response = await client.post(PATH, data=raw.replace(b"un", b"deux"), headers=headers)
    assert response.status == 403


async def test_no_app_secret_refuses_everything(aiohttp_client: ClientFactory, session: aiohttp.ClientSession) -> None:
    channel = MessengerChannel(Settings(messenger_app_secret=""), session)
    client = await aiohttp_client(webhook_app({PATH: channel.parse}))
    raw = b"{}"
    response = await client.post(PATH, data=raw, headers={"X-Hub-Signature-256": sign_messenger("", raw)})
    assert response.status == 403


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"\xff\xfe", b"[" * 5000, b"[]", b'{"entry": {}}', b'{"entry": [{"messaging": [42]}]}'],
)
async def test_malformed_bodies_are_400(client: TestClient[Any, Any], raw: bytes) -> None:
    response = await client.post(PATH, data=raw, headers={"X-Hub-Signature-256": sign_messenger(SECRET, raw)})
    assert response.status == 400
    assert PSID not in await response.text()


@pytest.mark.parametrize(
    "item",
    [
        {"sender": {"id": True}, "message": {"mid": "m"}},
        {"sender": {"id": PSID}, "message": {"mid": 5, "text": "x"}},
        {"sender": {"id": PSID}, "message": {"text": "\ud800"}, "timestamp": 1},
        {"sender": {"id": PSID}, "message": {"text": "x"}, "timestamp": 10**30},
        {"sender": {"id": PSID}, "delivery": {"watermark": "soon"}},
        {"sender": {"id": ""}, "message": {"mid": "m"}},
        {"sender": {"id": PSID}, "delivery": {"watermark": 1, "mids": None}},
        {"sender": {"id": PSID}, "message": {"mid": "m", "quick_reply": {"payload": ["x"]}}},
        {"sender": {"id": PSID}, "message": {"text": "no mid, no time"}},
        {"message": {"mid": "m", "text": "no sender"}},
    ],
)
async def test_wrong_field_types_are_400(client: TestClient[Any, Any], item: dict[str, Any]) -> None:
    status, answer = await post(client, messenger_body([item]))
    assert status == 400
    assert PSID not in answer["error"]


async def test_a_400_names_the_field_never_its_value(client: TestClient[Any, Any]) -> None:
    item = {"sender": {"id": PSID}, "timestamp": 1, "message": {"mid": "m", "text": ["secret-words"]}}
    status, answer = await post(client, messenger_body([item]))
    assert status == 400
    assert "entry.0.messaging.0.message.text" in answer["error"] and "secret-words" not in answer["error"]


async def test_a_400_names_the_field_never_the_validators_own_steps(client: TestClient[Any, Any]) -> None:
    """An empty sender id: the answer named pydantic's steps on the way, with a validator's repr and its address
    ("sender.id.function-after[functools.partial(<function min_length_validator at 0x7f…>…"); the field only now."""
    item = {"sender": {"id": ""}, "timestamp": 1, "message": {"mid": "m", "text": "a"}}
    status, answer = await post(client, messenger_body([item]))
    assert status == 400
    assert answer["error"].startswith("messenger: entry.0.messaging.0.sender.id: "), answer
    assert "function" not in answer["error"] and "0x" not in answer["error"]


async def test_an_attachment_without_url_is_kept_without_one(client: TestClient[Any, Any]) -> None:
    location = {"type": "location", "payload": {"coordinates": {"lat": 48.85, "long": 2.35}}}
    item = {**messenger_message(PSID, "", mid="m.loc"), "message": {"mid": "m.loc", "attachments": [location]}}
    status, batch = await post(client, messenger_body([item]))
    assert status == 200
    assert [(a["kind"], a["url"]) for a in batch["inbound"][0]["attachments"]] == [("location", None)]


async def test_signed_events_older_than_the_accepted_age_are_acknowledged_and_ignored(
    client: TestClient[Any, Any],
) -> None:
    in_2001 = 978_307_200_000
    old = {"sender": {"id": PSID}, "timestamp": in_2001, "message": {"mid": "m.old", "text": "a"}}
    recent = messenger_message(PSID, "b", mid="m.new")
    almost_an_hour = int(time.time() * 1000) - 3_590_000
    an_hour_ago = {**recent, "message": {"mid": "m.hour", "text": "c"}, "timestamp": almost_an_hour}
    status, batch = await post(client, messenger_body([old, recent, an_hour_ago]))
    assert status == 200
    assert [i["message_id"] for i in batch["inbound"]] == ["m.hour", "m.new"]  # oldest first
    assert batch["too_old"] == 1


def test_the_age_limit_is_the_setting() -> None:
    item = {"sender": {"id": PSID}, "timestamp": 1_000_000, "message": {"mid": "m", "text": "a"}}
    body = messenger_body([item])
    assert parse_events(body, max_age_ms=60_000, now_ms=1_060_001).too_old == 1
    assert parse_events(body, max_age_ms=60_000, now_ms=1_059_999).inbound[0].message_id == "m"
    assert parse_events(body).too_old == 0  # no age given: nothing is judged old


async def test_an_oversized_body_is_413_before_the_signature(client: TestClient[Any, Any]) -> None:
    response = await client.post(PATH, data=b"{" + b" " * 20_000 + b"}")
    assert response.status == 413


async def test_an_oversized_chunked_body_is_413(client: TestClient[Any, Any]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b" " * 1000

    response = await client.post(PATH, data=chunks())
    assert response.status == 413


# Batches.


async def test_every_entry_and_every_item_is_read(client: TestClient[Any, Any]) -> None:
    document = messenger_body(
        [
            messenger_message(PSID, "un", mid="m_1"),
            messenger_echo(PSID, "copie de notre réponse", mid="m_echo"),
            messenger_message(PSID, "Oui", mid="m_2", quick_reply="yes"),
        ],
        [
            messenger_postback("8000000000000001", "GET_STARTED", "Commencer", mid="m_3"),
            messenger_delivery(PSID, ["m_out_1", "m_out_2"], watermark=1718000000999),
            messenger_read(PSID, watermark=1718000001000),
            {"sender": {"id": PSID}, "recipient": {"id": "1"}, "reaction": {"reaction": "love"}},
        ],
    )
    status, batch = await post(client, document)
    assert status == 200
    assert [(m["message_id"], m["text"], m["payload"]) for m in batch["inbound"]] == [
        ("m_1", "un", None),
        ("m_2", "Oui", "yes"),
        ("m_3", "", None),  # Get Started: Meta's button, not the young person's words (``restart``)
    ]
    assert [(m["restart"], m["menu"]) for m in batch["inbound"]] == [(False, False), (False, False), (True, False)]
    assert [(r["status"], r["provider_message_id"], r["watermark"]) for r in batch["receipts"]] == [
        ("delivered", "m_out_1", 1718000000999),
        ("delivered", "m_out_2", 1718000000999),
        ("read", None, 1718000001000),
    ]
    assert {r["sender"] for r in batch["receipts"]} == {PSID}


async def test_a_delivery_without_mids_is_one_watermark_receipt(client: TestClient[Any, Any]) -> None:
    _, batch = await post(client, messenger_body([messenger_delivery(PSID, None, watermark=42)]))
    assert [(r["status"], r["provider_message_id"], r["watermark"]) for r in batch["receipts"]] == [
        ("delivered", None, 42)
    ]


async def test_attachments_keep_their_kind_and_url(client: TestClient[Any, Any]) -> None:
    attachments = [
        ("image", "https://scontent.xx.fbcdn.net/v/photo.jpg"),
        ("audio", "https://cdn.fbsbx.com/v/voice.mp4"),
        ("fallback", "https://example.org"),
    ]
    _, batch = await post(client, messenger_body([messenger_message(PSID, attachments=attachments)]))
    assert [(a["kind"], a["url"]) for a in batch["inbound"][0]["attachments"]] == [
        ("image", "https://scontent.xx.fbcdn.net/v/photo.jpg"),
        ("audio", "https://cdn.fbsbx.com/v/voice.mp4"),
        ("other", "https://example.org"),
    ]


async def test_without_mid_the_id_is_stable_and_hides_the_sender(client: TestClient[Any, Any]) -> None:
    stamp = int(time.time() * 1000)
    item = {"sender": {"id": PSID}, "recipient": {"id": "1"}, "timestamp": stamp, "message": {"text": "a"}}
    _, first = await post(client, messenger_body([item]))
    _, again = await post(client, messenger_body([item]))
    other = {**item, "timestamp": stamp + 1}
    _, later = await post(client, messenger_body([other]))
    first_id = first["inbound"][0]["message_id"]
    assert first_id == again["inbound"][0]["message_id"] != later["inbound"][0]["message_id"]
    assert PSID not in first_id


def test_acknowledge_is_200_ok(channel: MessengerChannel) -> None:
    response = channel.acknowledge()
    assert (response.status, response.text) == (200, "ok")


def test_the_adapter_has_the_abilities_it_claims(channel: MessengerChannel) -> None:
    assert isinstance(channel, Channel)
    assert isinstance(channel, TypingIndicator)
    assert isinstance(channel, MediaFetcher)
    assert isinstance(channel, ReplyWindow)
    assert not isinstance(channel, Lifecycle)
    assert channel.reply_window("bot") == datetime.timedelta(hours=24)
    assert channel.reply_window("listener") == datetime.timedelta(days=7)


# Sending.


async def test_a_bot_message_is_a_response(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    message_id = await channel.send(outbound("Salut 👋"))
    [request] = graph.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        "/v23.0/me/messages",
        {"access_token": "page-token"},
    )
    assert request.body == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Salut 👋"}}
    assert message_id is not None and message_id.startswith("m_fake_")


async def test_a_listener_message_carries_the_human_agent_tag(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    await channel.send(outbound("Je suis là.", author="listener"))
    body = graph.requests[0].body
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_choices_become_quick_replies(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    choices = (Choice("yes", "Oui"), Choice("no", "Non"), Choice("long", "Je préfère ne pas répondre"))
    await channel.send(outbound("Tu as quel âge ?", choices))
    assert graph.requests[0].body["message"] == {
        "text": "Tu as quel âge ?",
        "quick_replies": [
            {"content_type": "text", "title": "Oui", "payload": "yes"},
            {"content_type": "text", "title": "Non", "payload": "no"},
            {"content_type": "text", "title": "Je préfère ne pas r…", "payload": "long"},
        ],
    }


@pytest.mark.parametrize(
    "choices",
    [
        tuple(Choice(str(n), f"Choix {n}") for n in range(1, 15)),  # 14: more than Messenger's 13
        (Choice("a", "Je suis au collège en 4e"), Choice("b", "Je suis au collège en 3e")),  # same once cut
        (Choice("a", "Oui"), Choice("b", "  ")),
        (Choice("x" * 1001, "Oui"), Choice("b", "Non")),
    ],
)
async def test_choices_that_do_not_fit_become_a_numbered_list(
    channel: MessengerChannel, graph: FakeGraphAPI, choices: tuple[Choice, ...]
) -> None:
    await channel.send(outbound("Choisis :", choices))
    message = graph.requests[0].body["message"]
    assert "quick_replies" not in message
    expected = "\n".join(f"{n}. {choice.label}" for n, choice in enumerate(choices, start=1))
    assert message["text"] == "Choisis :\n\n" + expected


async def test_thirteen_choices_still_fit(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    choices = tuple(Choice(str(n), f"Choix {n}") for n in range(1, 14))
    await channel.send(outbound("Choisis :", choices))
    assert len(graph.requests[0].body["message"]["quick_replies"]) == 13


async def test_long_text_is_split_with_quick_replies_on_the_last_part(
    channel: MessengerChannel, graph: FakeGraphAPI
) -> None:
    text = " ".join(["mot"] * 1500)  # 5999 characters
    await channel.send(outbound(text, (Choice("ok", "OK"),)))
    messages = [request.body["message"] for request in graph.requests]
    assert len(messages) == 3
    assert all(len(m["text"]) <= 2000 for m in messages)
    assert " ".join(m["text"] for m in messages) == text
    assert ["quick_replies" in m for m in messages] == [False, False, True]


async def test_typing_is_a_sender_action(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    await channel.typing(PSID)
    assert graph.requests[0].body == {"recipient": {"id": PSID}, "sender_action": "typing_on"}


# Errors.


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [
        (Failure(500), None),
        (Failure(503, code=2), None),
        (Failure(429, retry_after=7), 7.0),
        (Failure(400, code=613, description="Calls to this api have exceeded the rate limit"), None),
    ],
)
async def test_retryable_failures(
    channel: MessengerChannel, graph: FakeGraphAPI, failure: Failure, retry_after: float | None
) -> None:
    graph.fail_next(failure)
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.retry_after == retry_after
    assert PSID not in str(caught.value) and "page-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure(400, code=10, subcode=2018278), "reply window closed"),
        (Failure(400, code=100, subcode=2018001), "no person matches"),
        (Failure(403, code=200), "refused"),
    ],
)
async def test_permanent_failures(
    channel: MessengerChannel, graph: FakeGraphAPI, failure: Failure, reason: str
) -> None:
    graph.fail_next(failure)
    with pytest.raises(PermanentDelivery, match=reason) as caught:
        await channel.send(outbound())
    assert PSID not in str(caught.value) and "page-token" not in str(caught.value)


async def test_a_page_token_refused_is_the_lines_credentials_kept_for_later(
    channel: MessengerChannel, graph: FakeGraphAPI
) -> None:
    """Code 190 is the page's token, not this person: every conversation's send waits for it to be renewed."""
    graph.fail_next(Failure(400, code=190, subcode=460))
    with pytest.raises(CredentialsRefused, match="access token") as caught:
        await channel.send(outbound())
    assert caught.value.retry_after == 60.0
    assert PSID not in str(caught.value) and "page-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (Failure(200, page="<html><body>Portail captif du lycée</body></html>"), RetryableDelivery),
        (Failure(200, page=""), RetryableDelivery),
        (Failure(200, page="[]"), RetryableDelivery),
        (Failure(200, code=613, description="Calls to this api have exceeded the rate limit"), RetryableDelivery),
        (Failure(200, code=551, subcode=1545041), PermanentDelivery),
    ],
)
async def test_a_success_status_that_is_not_a_send_is_never_taken_for_one(
    channel: MessengerChannel, graph: FakeGraphAPI, failure: Failure, error: type[Exception]
) -> None:
    """A 200 whose body is not Graph's answer (a captive portal's page, nothing, not an object) or is Graph's error
    object: the message was not sent. Until 2026-12-04 each was taken for a send without an id (the listener saw
    "envoyé", the young person got nothing); now the page is retried as an outage is, and the error read as with its
    error status."""
    graph.fail_next(failure)
    with pytest.raises(error) as caught:
        await channel.send(outbound())
    assert type(caught.value) is error and PSID not in str(caught.value) and "html" not in str(caught.value)


async def test_an_unreachable_graph_is_retryable(session: aiohttp.ClientSession) -> None:
    async with FakeGraphAPI() as gone:
        url = gone.url
    settings = Settings(
        messenger_api_url=url,
        messenger_app_secret=SECRET,
        messenger_verify_token="v",
        messenger_page_access_token="page-token",
    )
    channel = MessengerChannel(settings, session)
    with pytest.raises(RetryableDelivery, match="network error") as caught:
        await channel.send(outbound())
    assert caught.value.__cause__ is None and "page-token" not in str(caught.value)


async def test_a_failed_part_stops_the_split_message(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    graph.fail_next(Failure(400, code=10, subcode=2018278))
    with pytest.raises(PermanentDelivery):
        await channel.send(outbound("a" * 4000))
    assert len(graph.requests) == 1


# Media.


async def test_media_is_fetched_from_the_api_host(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    url = graph.serve_media("media/photo.jpg", b"\xff\xd8jpeg", "image/jpeg")
    assert await channel.fetch_media(Attachment("image", url)) == (b"\xff\xd8jpeg", "image/jpeg")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/photo.jpg",
        "https://fbcdn.net.evil.example/photo.jpg",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
        "not a url",
    ],
)
async def test_media_from_a_foreign_host_is_refused(channel: MessengerChannel, url: str) -> None:
    with pytest.raises(PermanentDelivery, match="not one of the platform's own"):
        await channel.fetch_media(Attachment("image", url))


async def test_a_redirect_to_a_foreign_host_is_refused(channel: MessengerChannel, graph: FakeGraphAPI) -> None:
    url = graph.serve_media("media/moved.jpg", b"", "image/jpeg", redirect_to="https://evil.example.com/x.jpg")
    with pytest.raises(PermanentDelivery, match="not one of the platform's own"):
        await channel.fetch_media(Attachment("image", url))


# Hostile input.

KNOWN_FIELDS = (
    "object entry messaging sender id message mid text quick_reply payload attachments type url postback delivery"
    " mids watermark read timestamp is_echo"
)
shaped = shaped_by(KNOWN_FIELDS)
NO_DEADLINE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@NO_DEADLINE
@given(document=shaped)
async def test_any_signed_json_gives_a_batch_or_400(client: TestClient[Any, Any], document: Any) -> None:
    raw = json.dumps(document).encode()
    response = await client.post(PATH, data=raw, headers={"X-Hub-Signature-256": sign_messenger(SECRET, raw)})
    assert response.status in (200, 400)


@NO_DEADLINE
@given(raw=st.binary(max_size=300))
async def test_any_signed_bytes_give_a_batch_or_400(client: TestClient[Any, Any], raw: bytes) -> None:
    response = await client.post(PATH, data=raw, headers={"X-Hub-Signature-256": sign_messenger(SECRET, raw)})
    assert response.status in (200, 400)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=80)


@NO_DEADLINE
@given(signature=header_text, content_type=header_text, raw=st.binary(max_size=100))
async def test_any_headers_are_refused_cleanly(
    client: TestClient[Any, Any], signature: str, content_type: str, raw: bytes
) -> None:
    headers = {"X-Hub-Signature-256": signature, "Content-Type": content_type}
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 403


@pytest.mark.parametrize("referral", [{"ref": None, "source": "SHORTLINK", "type": "OPEN_THREAD"}, {}, "m.me"])
async def test_a_get_started_from_a_link_is_a_restart_whatever_its_referral(
    client: TestClient[Any, Any], referral: object
) -> None:
    """A postback carrying a ``referral`` (Meta's shape of "Get Started" tapped from an m.me link, a QR code, an ad),
    its payload whatever the page set: the thread (re)opened, no words, never a 400 for the referral's content."""
    item = messenger_postback(PSID, "WHATEVER_THE_PAGE_SET", "Démarrer", mid="m_ref")
    item["postback"]["referral"] = referral
    status, batch = await post(client, messenger_body([item]))
    assert status == 200
    assert [(m["text"], m["payload"], m["restart"]) for m in batch["inbound"]] == [("", None, True)]


def test_an_echo_is_the_pages_from_outside_the_gateway_unless_it_names_the_gateways_app() -> None:
    """Meta's inbox (Business Suite) sends an admin's answer with no ``app_id`` (or another app's); the gateway's own
    replies come back naming its app. A malformed recipient or app id is no 400: the batch's other items are kept."""
    items = [
        messenger_echo(PSID, "une réponse de l'équipe", mid="m_admin", app_id=None),
        messenger_echo(PSID, "notre réponse", mid="m_ours", app_id=1517),
        messenger_echo(PSID, "une autre app", mid="m_other", app_id=263902037430900),
        {**messenger_echo(PSID, "à qui ?", mid="m_nobody", app_id=None), "recipient": "x"},
        {**messenger_echo(PSID, "bizarre", mid="m_odd"), "message": {"mid": "m_odd", "is_echo": True, "app_id": {}}},
        messenger_message(PSID, "un", mid="m_1"),
    ]
    unset = parse_events(messenger_body(items))
    assert [(e.message_id, e.recipient, e.text) for e in unset.echoes] == [("m_admin", PSID, "une réponse de l'équipe")]
    assert [m.message_id for m in unset.inbound] == ["m_1"]
    known = parse_events(messenger_body(items), app_id="1517")
    assert [e.message_id for e in known.echoes] == ["m_admin", "m_other"]  # the odd one says nothing: no text
    assert "une réponse" not in repr(known.echoes) and PSID not in repr(known.echoes)
    assert [e.human for e in known.echoes] == [False, False]  # either may be Meta's automated response


def test_an_echo_is_a_persons_answer_only_when_its_app_is_listed_as_one() -> None:
    """``MESSENGER_HUMAN_ECHO_APPS``: Meta's Page inbox app named, its echoes are an admin's answer, even with the
    gateway's own app unset (that app is never the gateway's); an echo of no app may be an automated response."""
    items = [
        messenger_echo(PSID, "réponse automatique", mid="m_auto", app_id=None),
        messenger_echo(PSID, "une admin", mid="m_admin", app_id=263902037430900),
        messenger_echo(PSID, "une autre app", mid="m_other", app_id=4242),
        messenger_echo(PSID, "notre réponse", mid="m_ours", app_id=1517),
    ]
    inbox = frozenset({"263902037430900"})
    known = parse_events(messenger_body(items), app_id="1517", human_apps=inbox)
    assert [(e.message_id, e.human) for e in known.echoes] == [("m_auto", False), ("m_admin", True), ("m_other", False)]
    unset = parse_events(messenger_body(items), human_apps=inbox)
    assert [(e.message_id, e.human) for e in unset.echoes] == [("m_auto", False), ("m_admin", True)]
    own = parse_events(messenger_body(items), app_id="1517", human_apps=frozenset({"1517"}))  # never its own
    assert [(e.message_id, e.human) for e in own.echoes] == [("m_auto", False), ("m_admin", False), ("m_other", False)]


# Conversation Routing's ``standby``: the young person's messages on a thread another app owns.


def test_standby_items_are_read_as_messaging_ones_marked_standby() -> None:
    """Until 2026-12-06 an entry's ``standby`` array was never read: the young person's messages on a thread a page
    admin (or another app) owned were acknowledged and dropped."""
    said = {**messenger_message(PSID, "je veux mourir", mid="m.sb"), "timestamp": 2}
    tapped = {"sender": {"id": PSID}, "timestamp": 3, "postback": {"title": "Commencer", "mid": "m.pb"}}
    linked = {"sender": {"id": PSID}, "timestamp": 4, "referral": {"ref": "site"}}
    ours = {**messenger_message(PSID, "bonjour", mid="m.ours"), "timestamp": 1}
    document = {"object": "page", "entry": [{"messaging": [ours], "standby": [said, tapped, linked]}]}
    batch = parse_events(document)
    assert [(m.message_id, m.text, m.standby) for m in batch.inbound] == [
        ("m.ours", "bonjour", False), ("m.sb", "je veux mourir", True),
    ]  # fmt: skip


async def test_a_malformed_standby_item_is_400_naming_its_field(client: TestClient[Any, Any]) -> None:
    item = {"sender": {"id": PSID}, "timestamp": 1, "message": {"mid": "m", "text": ["secret-words"]}}
    status, answer = await post(client, {"object": "page", "entry": [{"standby": [item]}]})
    assert status == 400
    assert "entry.0.standby.0.message.text" in answer["error"] and "secret-words" not in answer["error"]


def test_each_message_is_dated_by_its_own_event_and_an_echo_or_a_receipt_by_none() -> None:
    """Meta's reply windows count from when the young person wrote: each message, postback, referral, edit (when it
    was edited) and standby message carries its event's ``timestamp`` (``Inbound.sent_at``), which the windows read
    (``gateway.dispatcher.written_at``). Until 2026-12-06 none was dated: a message Meta redelivered hours late
    opened the windows from when the gateway took it."""
    ms = 1_796_000_000_000  # 2026-11-30

    def at(item: dict[str, Any], offset: int) -> dict[str, Any]:
        return {**item, "timestamp": ms + offset}

    said = at(messenger_message(PSID, "bonjour", mid="m.1"), 0)
    tapped = at(messenger_postback(PSID, "AIDE", "Aide", mid="m.2"), 1)
    linked = at({"sender": {"id": PSID}, "referral": {"ref": "site"}}, 2)
    edited = at({"sender": {"id": PSID}, "message_edit": {"mid": "m.1", "text": "bonsoir", "num_edit": 1}}, 3_600_000)
    echoed = at(messenger_echo(PSID, "un admin", mid="m.echo", app_id=None), 5)
    read = at(messenger_read(PSID, ms), 6)
    aside = at(messenger_message(PSID, "sur l'autre fil", mid="m.sb"), 7)
    batch = parse_events({"object": "page", "entry": [{"messaging": [said, tapped, linked, edited, echoed, read],
                                                        "standby": [aside]}]})  # fmt: skip
    dated = {m.message_id: m.sent_at for m in batch.inbound}

    def moment(offset: int) -> datetime.datetime:
        return datetime.datetime.fromtimestamp((ms + offset) / 1000, datetime.UTC)

    assert dated == {
        "m.1": moment(0), "m.2": moment(1), next(k for k in dated if k.startswith("sha256:")): moment(2),
        "m.1#edit1": moment(3_600_000), "m.sb": moment(7),
    }  # fmt: skip
    assert len(batch.echoes) == 1 and len(batch.receipts) == 1  # not the young person writing: no date to read
