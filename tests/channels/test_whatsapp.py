"""WhatsApp through Twilio: signed forms behind a proxy, status callbacks, the REST calls Twilio receives."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from gateway.channels.base import Channel, Lifecycle, MediaFetcher, ReplyWindow, TypingIndicator
from gateway.channels.whatsapp import WhatsAppChannel
from gateway.errors import CredentialsRefused, PermanentDelivery, RetryableDelivery
from gateway.messages import Attachment, ChannelName, Choice, Outbound
from gateway.settings import Settings
from gateway.testing import (
    ACCOUNT_SID,
    WHATSAPP_FROM,
    Failure,
    FakeTwilioAPI,
    sign_twilio,
    twilio_form,
    twilio_status_form,
)
from tests.conftest import TWILIO_TOKEN

from .conftest import webhook_app

TOKEN = TWILIO_TOKEN
PUBLIC = "https://helpline.example.org/"  # the gateway sits behind a proxy: Twilio signs the public URL
PHONE = "whatsapp:+33612345678"
PATH = "/webhooks/whatsapp"
STATUS_PATH = "/webhooks/whatsapp/status"

ClientFactory = Any


def make_settings(api_url: str) -> Settings:
    return Settings(
        public_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM,
        twilio_api_url=api_url,
        max_body_bytes=20_000,
    )


@pytest.fixture
async def channel(twilio: FakeTwilioAPI, session: aiohttp.ClientSession) -> AsyncIterator[WhatsAppChannel]:
    adapter = WhatsAppChannel(make_settings(twilio.url), session)
    await adapter.start()
    yield adapter
    await adapter.stop()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, channel: WhatsAppChannel) -> TestClient[Any, Any]:
    return await aiohttp_client(webhook_app({PATH: channel.parse, STATUS_PATH: channel.parse_status}))  # type: ignore[no-any-return]


async def post(
    client: TestClient[Any, Any], form: dict[str, str], path: str = PATH, signed_path: str | None = None
) -> tuple[int, Any]:
    signature = sign_twilio(TOKEN, PUBLIC.rstrip("/") + (signed_path or path), form)
    response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return response.status, await response.json()


def outbound(text: str = "Salut", choices: tuple[Choice, ...] = (), author: str = "bot") -> Outbound:
    return Outbound("o1", "c1", ChannelName.WHATSAPP, PHONE, text, choices, author)


# Webhooks.


async def test_a_message_is_normalised(client: TestClient[Any, Any]) -> None:
    status, batch = await post(client, twilio_form(PHONE, "Bonjour ça va ?", message_sid="SM" + "a" * 32))
    assert status == 200
    [message] = batch["inbound"]
    assert message["channel"] == "whatsapp"
    assert (message["sender"], message["message_id"], message["text"]) == (PHONE, "SM" + "a" * 32, "Bonjour ça va ?")
    assert (message["payload"], message["attachments"]) == (None, [])


async def test_a_button_tap_carries_its_payload(client: TestClient[Any, Any]) -> None:
    _, batch = await post(client, twilio_form(PHONE, "Oui", button_payload="yes"))
    assert (batch["inbound"][0]["text"], batch["inbound"][0]["payload"]) == ("Oui", "yes")


async def test_media_become_attachments(client: TestClient[Any, Any]) -> None:
    media = [("https://api.twilio.com/m/ME1", "image/jpeg"), ("https://api.twilio.com/m/ME2", "application/pdf")]
    _, batch = await post(client, twilio_form(PHONE, media=media))
    assert batch["inbound"][0]["attachments"] == [
        {"kind": "image", "url": "https://api.twilio.com/m/ME1", "content_type": "image/jpeg", "name": None},
        {"kind": "file", "url": "https://api.twilio.com/m/ME2", "content_type": "application/pdf", "name": None},
    ]


async def test_the_query_string_is_part_of_the_signed_url(client: TestClient[Any, Any]) -> None:
    form = twilio_form(PHONE, "x")
    status, _ = await post(client, form, path=PATH + "?line=paris", signed_path=PATH + "?line=paris")
    assert status == 200
    status, _ = await post(client, form, path=PATH + "?line=paris", signed_path=PATH)
    assert status == 403


@pytest.mark.parametrize(
    "signature",
    ["", "bm90IGEgc2lnbmF0dXJl", "é", sign_twilio("other-token", PUBLIC.rstrip("/") + PATH, {"Body": "x"})],
)
async def test_missing_or_wrong_signature_is_403(client: TestClient[Any, Any], signature: str) -> None:
    headers = {"X-Twilio-Signature": signature} if signature else {}
    response = await client.post(PATH, data=twilio_form(PHONE, "x"), headers=headers)
    assert response.status == 403


async def test_a_signature_for_the_local_url_is_refused(client: TestClient[Any, Any]) -> None:
    form = twilio_form(PHONE, "x")
    signature = sign_twilio(TOKEN, str(client.make_url(PATH)), form)
    response = await client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 403


async def test_a_public_url_unlike_the_one_twilio_calls_is_told_not_403_silently(
    twilio: FakeTwilioAPI,
    session: aiohttp.ClientSession,
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GATEWAY_PUBLIC_URL left at its default (or http for https, another host) behind the TLS proxy Twilio calls:
    every message was refused 403 with one INFO line like an attacker's, and nothing said which setting was wrong.
    The request's own address (the proxy's X-Forwarded-Proto and -Host) is tried: a signature made for it says the
    setting is wrong, in a WARNING line naming the address to set, at most once a minute. Still 403."""
    settings = make_settings(twilio.url).replace(public_url="http://127.0.0.1:8080")
    adapter = WhatsAppChannel(settings, session)
    client = await aiohttp_client(webhook_app({PATH: adapter.parse}))
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "helpline.example.org"}
    for number in range(2):
        form = twilio_form(PHONE, "Bonjour", message_sid=f"SM{number:032d}")
        signature = sign_twilio(TOKEN, "https://helpline.example.org" + PATH, form)
        response = await client.post(PATH, data=form, headers={**proxy, "X-Twilio-Signature": signature})
        assert response.status == 403
    told = [r for r in caplog.records if r.levelname == "WARNING" and "GATEWAY_PUBLIC_URL" in r.getMessage()]
    assert len(told) == 1 and "https://helpline.example.org" in told[0].getMessage(), told
    assert not any("33612345678" in r.getMessage() or "SM0" in r.getMessage() for r in caplog.records)

    caplog.clear()  # a signature made with another token proves nothing: no line, whatever the headers say
    adapter = WhatsAppChannel(settings, session)
    client = await aiohttp_client(webhook_app({PATH: adapter.parse}))
    form = twilio_form(PHONE, "Bonjour")
    signature = sign_twilio("other-token", "https://helpline.example.org" + PATH, form)
    response = await client.post(PATH, data=form, headers={**proxy, "X-Twilio-Signature": signature})
    assert response.status == 403
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


async def test_a_changed_field_is_403(client: TestClient[Any, Any]) -> None:
    form = twilio_form(PHONE, "un")
    signature = sign_twilio(TOKEN, PUBLIC.rstrip("/") + PATH, form)
    response = await client.post(PATH, data={**form, "Body": "deux"}, headers={"X-Twilio-Signature": signature})
    assert response.status == 403


@pytest.mark.parametrize(
    "form",
    [
        {"Body": "sans identifiant", "From": PHONE},
        {"MessageSid": "SM1", "Body": "sans expéditeur"},
        {**twilio_form(PHONE, "x"), "NumMedia": "many"},
        {**twilio_form(PHONE, "x"), "NumMedia": "²"},
        {**twilio_form(PHONE, "x"), "NumMedia": "1"},  # announces a file and gives no MediaUrl0
        {**twilio_form(PHONE, "x"), "NumMedia": "1" * 5000},  # past int()'s 4300 digits: a 500 before
    ],
)
async def test_incomplete_forms_are_400(client: TestClient[Any, Any], form: dict[str, str]) -> None:
    status, answer = await post(client, form)
    assert status == 400
    assert PHONE not in answer["error"]


async def test_a_body_that_is_not_utf8_is_400(client: TestClient[Any, Any]) -> None:
    raw = b"Body=%FF%FE&From=x"
    headers = {"X-Twilio-Signature": "c2lnbmF0dXJl", "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 400


async def test_an_oversized_form_is_413(client: TestClient[Any, Any]) -> None:
    response = await client.post(PATH, data={"Body": "x" * 30_000})
    assert response.status == 413


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [("queued", "sent"), ("sent", "sent"), ("delivered", "delivered"), ("read", "read"), ("undelivered", "failed")],
)
async def test_status_callbacks_become_receipts(client: TestClient[Any, Any], twilio_status: str, status: str) -> None:
    code, batch = await post(client, twilio_status_form("SM42", twilio_status, PHONE), path=STATUS_PATH)
    assert code == 200
    assert batch["receipts"] == [
        {
            "channel": "whatsapp",
            "sender": PHONE,
            "status": status,
            "provider_message_id": "SM42",
            "watermark": None,
            "error": None,
            "transient": False,
            "rate_limited": False,
        }
    ]


async def test_a_failed_status_keeps_its_error_code(client: TestClient[Any, Any]) -> None:
    _, batch = await post(client, twilio_status_form("SM42", "failed", PHONE, error_code="63016"), path=STATUS_PATH)
    assert (batch["receipts"][0]["status"], batch["receipts"][0]["error"]) == ("failed", "63016")


@pytest.mark.parametrize(("code", "transient"), [("30003", True), ("30008", True), ("30005", False), ("63016", False)])
async def test_a_failure_a_resend_may_get_through_is_transient(
    client: TestClient[Any, Any], code: str, transient: bool
) -> None:
    _, batch = await post(client, twilio_status_form("SM42", "undelivered", PHONE, error_code=code), path=STATUS_PATH)
    assert (batch["receipts"][0]["status"], batch["receipts"][0]["transient"]) == ("failed", transient)


@pytest.mark.parametrize("code", ["²", "3⁰", "3" * 5000])  # digits to str.isdigit, not to int(): a 500 before
async def test_a_failure_whose_error_code_is_no_ascii_number_is_a_receipt_not_transient(
    client: TestClient[Any, Any], code: str
) -> None:
    status, batch = await post(client, twilio_status_form("SM42", "failed", PHONE, error_code=code), path=STATUS_PATH)
    assert status == 200, batch
    [receipt] = batch["receipts"]
    assert (receipt["status"], receipt["error"], receipt["transient"]) == ("failed", code, False)


async def test_an_unknown_status_is_no_receipt(client: TestClient[Any, Any]) -> None:
    code, batch = await post(client, twilio_status_form("SM42", "teleported", PHONE), path=STATUS_PATH)
    assert (code, batch) == (200, {"inbound": [], "receipts": [], "departures": [], "echoes": [], "too_old": 0})


async def test_a_status_callback_is_signed_too(client: TestClient[Any, Any]) -> None:
    response = await client.post(STATUS_PATH, data=twilio_status_form("SM42", "read", PHONE))
    assert response.status == 403


def test_acknowledge_is_empty_twiml(channel: WhatsAppChannel) -> None:
    response = channel.acknowledge()
    assert (response.status, response.content_type, response.text) == (200, "text/xml", "<Response/>")


def test_the_adapter_has_the_abilities_it_claims(channel: WhatsAppChannel) -> None:
    assert isinstance(channel, Channel)
    assert isinstance(channel, Lifecycle)
    assert isinstance(channel, MediaFetcher)
    assert isinstance(channel, ReplyWindow)
    assert not isinstance(channel, TypingIndicator)
    assert channel.reply_window("bot") == channel.reply_window("listener") == datetime.timedelta(hours=24)


# Sending.


async def test_a_message_is_created_as_twilio_expects(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    sid = await channel.send(outbound("Salut 👋 é"))
    [request] = twilio.requests
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert twilio.authorised(request)
    assert request.body == {
        "From": WHATSAPP_FROM,
        "To": PHONE,
        "Body": "Salut 👋 é",
        "StatusCallback": "https://helpline.example.org/webhooks/whatsapp/status",
    }
    assert sid is not None and sid.startswith("SM")


async def test_choices_are_a_numbered_list(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    await channel.send(outbound("Tu es d'accord ?", (Choice("yes", "Oui"), Choice("no", "Non"))))
    assert twilio.requests[0].body["Body"] == "Tu es d'accord ?\n\n1. Oui\n2. Non"


async def test_long_text_is_split_at_1600(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    text = "\n".join(f"Ligne {n} : " + "x" * 40 for n in range(100))
    await channel.send(outbound(text))
    bodies = [request.body["Body"] for request in twilio.requests]
    assert len(bodies) == 4
    assert all(len(body) <= 1600 for body in bodies)
    assert "\n".join(bodies) == text


async def test_edge_and_region_in_the_environment_are_ignored(
    twilio: FakeTwilioAPI, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    adapter = WhatsAppChannel(make_settings(twilio.url), session)
    await adapter.start()
    try:
        assert await adapter.send(outbound()) is not None
    finally:
        await adapter.stop()


async def test_send_before_start_is_a_programming_error(twilio: FakeTwilioAPI, session: aiohttp.ClientSession) -> None:
    with pytest.raises(RuntimeError, match="start"):
        await WhatsAppChannel(make_settings(twilio.url), session).send(outbound())


# Errors.


@pytest.mark.parametrize("failure", [Failure(500), Failure(503), Failure(429)])
async def test_retryable_failures(channel: WhatsAppChannel, twilio: FakeTwilioAPI, failure: Failure) -> None:
    twilio.fail_next(failure)
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert "20429" in str(caught.value) or failure.status >= 500


@pytest.mark.parametrize("status", [400, 429])
async def test_twilios_rate_limit_for_the_channel_is_retried(
    channel: WhatsAppChannel, twilio: FakeTwilioAPI, status: int
) -> None:
    """63018, "Rate limit exceeded for Channel" (the sandbox's 1 a second, too many messages to one recipient: a
    split reply's parts): a rate limit, whatever the HTTP status it comes with. Until 2026-12-05 a 400 with it failed
    the message for good ("refused"): the listener saw "échec", a bot's message never reached the young person."""
    twilio.fail_next(Failure(status, code=63018, description="Account exceeded the 1 rps rate limit"))
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.rate_limited and "63018" in str(caught.value)


@pytest.mark.parametrize("failure", [Failure(429, code=20429, retry_after=30), Failure(503, retry_after=30)])
async def test_twilios_retry_after_is_read(channel: WhatsAppChannel, twilio: FakeTwilioAPI, failure: Failure) -> None:
    """Twilio's ``Retry-After`` header on a 429 (or a 503) is the wait it asks for, as Telegram's ``retry_after`` and
    Graph's header are: until 2026-12-08 it was never read (``retry_after`` None), the channel paused for the refused
    reply's backoff (1 s doubling) and asked again before Twilio's limit ended."""
    twilio.fail_next(failure)
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.retry_after == 30.0
    twilio.fail_next(Failure(429, code=20429))  # none told: none read, nor one left from the answer before
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.retry_after is None and caught.value.rate_limited


@pytest.mark.parametrize(
    "failure",
    [
        Failure(200, page="<html><body>Portail captif du lycée</body></html>"),
        Failure(200, page=""),
        Failure(200, code=20429, description="Too Many Requests"),
    ],
)
async def test_a_success_status_that_is_not_a_created_message_is_retried(
    channel: WhatsAppChannel, twilio: FakeTwilioAPI, failure: Failure
) -> None:
    """A 200 whose body is not Twilio's created message (a captive portal's page, nothing, an error object): the
    message was not created. Until 2026-12-04 the error object and the empty body were taken for a send without a
    sid (the listener saw "envoyé", the young person got nothing) and the page raised JSONDecodeError (an
    "unexpected" error line); now each is retried, as an outage is."""
    twilio.fail_next(failure)
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert "+33612345678" not in str(caught.value) and caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure(400, code=63016, description="Failed to send freeform message to whatsapp:+33612345678"), "window"),
        (Failure(400, code=21211, description="The 'To' number whatsapp:+33612345678 is not valid"), "not a valid"),
        (Failure(400, code=12345), "refused"),
    ],
)
async def test_permanent_failures(
    channel: WhatsAppChannel, twilio: FakeTwilioAPI, failure: Failure, reason: str
) -> None:
    twilio.fail_next(failure)
    with pytest.raises(PermanentDelivery, match=reason) as caught:
        await channel.send(outbound())
    assert "+33612345678" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_wrong_credentials_are_the_lines_kept_for_later(
    twilio: FakeTwilioAPI, session: aiohttp.ClientSession
) -> None:
    """Twilio's 401, code 20003, refuses every conversation's sends alike: the line's credentials, asked again in a
    minute (CredentialsRefused), never this reply failed for good; until 2026-12-05 a PermanentDelivery."""
    adapter = WhatsAppChannel(make_settings(twilio.url).replace(twilio_auth_token="wrong-auth-token"), session)
    await adapter.start()
    try:
        with pytest.raises(CredentialsRefused, match="auth token") as caught:
            await adapter.send(outbound())
        assert caught.value.retry_after == 60.0 and not caught.value.rate_limited
        assert "wrong-auth-token" not in str(caught.value) and "+33612345678" not in str(caught.value)
        with pytest.raises(CredentialsRefused):  # Twilio's list too (the catch-up's)
            await adapter.received_since(datetime.datetime.now(datetime.UTC))
    finally:
        await adapter.stop()


@pytest.mark.parametrize(
    "failure",
    [
        Failure(400, code=21606, description="The From phone number whatsapp:+14155238886 is not a valid, SMS-capable"
                " inbound phone number or short code for your account."),
        Failure(400, code=63007, description="Twilio could not find a Channel with the specified From address"),
    ],
    ids=["21606", "63007"],
)  # fmt: skip
async def test_a_from_address_twilio_does_not_know_is_the_lines_kept_for_later(
    channel: WhatsAppChannel, twilio: FakeTwilioAPI, failure: Failure
) -> None:
    """Twilio's 21606 and 63007 name the line's own sender (TWILIO_WHATSAPP_FROM not this account's, its WhatsApp
    sender removed or pending approval): every conversation's sends alike, as 20003. Until 2026-12-05 each reply
    failed for good (PermanentDelivery), one by one; now they wait, Twilio asked again in a minute."""
    twilio.fail_next(failure)
    with pytest.raises(CredentialsRefused, match="TWILIO_WHATSAPP_FROM") as caught:
        await channel.send(outbound())
    assert caught.value.retry_after == 60.0 and not caught.value.rate_limited
    assert str(failure.code) in str(caught.value) and "+14155238886" not in str(caught.value)
    assert "+33612345678" not in str(caught.value) and caught.value.__cause__ is None


async def test_an_unreachable_twilio_is_retryable(session: aiohttp.ClientSession) -> None:
    async with FakeTwilioAPI() as gone:
        url = gone.url
    adapter = WhatsAppChannel(make_settings(url), session)
    await adapter.start()
    try:
        with pytest.raises(RetryableDelivery, match="network error"):
            await adapter.send(outbound())
    finally:
        await adapter.stop()


# Media.


async def test_media_is_fetched_with_basic_auth(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    url = twilio.serve_media(twilio.media_path(), b"%PDF-1.7", "application/pdf")
    assert await channel.fetch_media(Attachment("file", url, "application/pdf")) == (b"%PDF-1.7", "application/pdf")
    assert twilio.authorised(twilio.requests[-1])


async def test_media_redirects_are_followed_on_allowed_hosts(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    final = twilio.serve_media("cdn/ME1", b"jpeg", "image/jpeg")
    url = twilio.serve_media(twilio.media_path(), b"", "image/jpeg", redirect_to=final)
    assert await channel.fetch_media(Attachment("image", url)) == (b"jpeg", "image/jpeg")


async def test_missing_media_is_permanent(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    with pytest.raises(PermanentDelivery, match="HTTP 404"):
        await channel.fetch_media(Attachment("image", twilio.url + "/2010-04-01/nothing"))


@pytest.mark.parametrize(
    "url", ["https://evil.example.com/ME1", "https://api.twilio.com.evil.example/ME1", "https://twiliocdn.com.evil/x"]
)
async def test_media_from_a_foreign_host_is_refused(channel: WhatsAppChannel, url: str) -> None:
    with pytest.raises(PermanentDelivery, match="not one of the platform's own"):
        await channel.fetch_media(Attachment("image", url))


async def test_a_redirect_to_a_foreign_host_is_refused(channel: WhatsAppChannel, twilio: FakeTwilioAPI) -> None:
    url = twilio.serve_media(twilio.media_path(), b"", "image/jpeg", redirect_to="https://evil.example.com/x")
    with pytest.raises(PermanentDelivery, match="not one of the platform's own"):
        await channel.fetch_media(Attachment("image", url))


# Hostile input.

NO_DEADLINE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KNOWN_FIELDS = "MessageSid From To Body NumMedia MediaUrl0 MediaContentType0 MediaUrl1 ButtonPayload MessageStatus"
field_names = st.sampled_from([*KNOWN_FIELDS.split(), "ErrorCode"]) | st.text(max_size=10)
forms = st.lists(st.tuples(field_names, st.text(max_size=30)), max_size=8)


@NO_DEADLINE
@given(pairs=forms, path=st.sampled_from([PATH, STATUS_PATH]))
async def test_any_signed_form_gives_a_batch_or_400(
    client: TestClient[Any, Any], pairs: list[tuple[str, str]], path: str
) -> None:
    raw = urlencode(pairs).encode()
    signature = sign_twilio(TOKEN, PUBLIC.rstrip("/") + path, MultiDict(pairs))  # type: ignore[arg-type]
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(path, data=raw, headers=headers)
    assert response.status in (200, 400)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=80)


@NO_DEADLINE
@given(signature=header_text, content_type=header_text, raw=st.binary(max_size=200))
async def test_any_headers_and_bytes_are_refused_cleanly(
    client: TestClient[Any, Any], signature: str, content_type: str, raw: bytes
) -> None:
    headers = {"X-Twilio-Signature": signature, "Content-Type": content_type}
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status in (400, 403)
