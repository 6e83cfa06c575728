"""Telegram: secret-token webhooks, updates and button taps, the Bot API calls PTB makes, error mapping."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.channels.base import SEND_TIMEOUT_SECONDS, Channel, Lifecycle, MediaFetcher, ReplyWindow, TypingIndicator
from gateway.channels.telegram import TelegramChannel
from gateway.errors import ConfigError, CredentialsRefused, PermanentDelivery, RecipientGone, RetryableDelivery
from gateway.messages import Attachment, ChannelName, Choice, Outbound
from gateway.settings import Settings
from gateway.testing import (
    BOT_TOKEN,
    Failure,
    FakeTelegramAPI,
    telegram_callback,
    telegram_headers,
    telegram_member_update,
    telegram_update,
)
from tests.hostile_json import json_values
from tests.hostile_json import shaped as shaped_by

from .conftest import webhook_app

SECRET = "s3cret-Token_1"
CHAT = 424242
PATH = "/webhooks/telegram"

ClientFactory = Any

# PTB 22 itself warns when it builds a RetryAfter (its retry_after becomes a timedelta in v23); the adapter reads
# both forms.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


def make_settings(api_url: str, token: str = BOT_TOKEN, secret: str = SECRET) -> Settings:
    return Settings(
        public_url="https://helpline.example.org/",
        telegram_bot_token=token,
        telegram_webhook_secret=secret,
        telegram_api_url=api_url,
        max_body_bytes=20_000,
    )


@pytest.fixture
async def channel(telegram: FakeTelegramAPI, session: aiohttp.ClientSession) -> AsyncIterator[TelegramChannel]:
    adapter = TelegramChannel(make_settings(telegram.url), session)
    await adapter.start()
    yield adapter
    await adapter.stop()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, channel: TelegramChannel) -> TestClient[Any, Any]:
    return await aiohttp_client(webhook_app({PATH: channel.parse}))  # type: ignore[no-any-return]


async def post(client: TestClient[Any, Any], document: Any) -> tuple[int, Any]:
    response = await client.post(PATH, data=json.dumps(document), headers=telegram_headers(SECRET))
    return response.status, await response.json()


def outbound(text: str = "Salut", choices: tuple[Choice, ...] = ()) -> Outbound:
    return Outbound("o1", "c1", ChannelName.TELEGRAM, str(CHAT), text, choices)


def sent(telegram: FakeTelegramAPI, method: str = "sendMessage") -> list[dict[str, Any]]:
    return [request.body for request in telegram.requests_to(method)]


# Webhooks.


async def test_a_message_is_normalised(client: TestClient[Any, Any]) -> None:
    status, batch = await post(client, telegram_update(900000001, CHAT, "Bonjour ça va ?", language_code="fr"))
    assert status == 200
    [message] = batch["inbound"]
    assert message["channel"] == "telegram"
    assert (message["sender"], message["message_id"], message["text"]) == (str(CHAT), "900000001", "Bonjour ça va ?")
    assert (message["language_hint"], message["payload"]) == ("fr", None)


@pytest.mark.parametrize("secret", [None, "wrong", "s3cret-Token_", "sécret"])
async def test_missing_or_wrong_secret_is_403(client: TestClient[Any, Any], secret: str | None) -> None:
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    response = await client.post(PATH, data=json.dumps(telegram_update(1, CHAT)), headers=headers)
    assert response.status == 403


async def test_no_configured_secret_refuses_everything(
    aiohttp_client: ClientFactory, telegram: FakeTelegramAPI, session: aiohttp.ClientSession
) -> None:
    adapter = TelegramChannel(make_settings(telegram.url, secret=""), session)
    client = await aiohttp_client(webhook_app({PATH: adapter.parse}))
    response = await client.post(PATH, data=json.dumps(telegram_update(1, CHAT)), headers=telegram_headers(""))
    assert response.status == 403


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"message": {}},
        {"update_id": True},
        {"update_id": "1"},
        {"update_id": 1, "message": {"message_id": 1, "date": "hier", "chat": {"id": CHAT, "type": "private"}}},
        {"update_id": 1, "message": {"message_id": 1, "date": 10**20, "chat": {"id": CHAT, "type": "private"}}},
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": "x", "type": "private"}}},
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": CHAT, "type": "private"}, "text": 5}},
        {
            "update_id": 1,
            "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "\ud800"},
        },
        {"update_id": 1, "message": "bonjour"},
        # Fields PTB leaves as None when the body lacks them (before: 500, an AttributeError on the chat).
        {"update_id": 0, "message": {"message_id": None, "date": None}},
        {"update_id": 1, "edited_message": {"message_id": 1, "date": 0, "text": "je veux mourir"}},
        {
            "update_id": 1,
            "callback_query": {
                "id": "q",
                "chat_instance": "c",
                "data": "oui",
                "message": {"message_id": 1, "date": 0, "chat": {"id": CHAT, "type": "private"}},
            },
        },
        {
            "update_id": 1,
            "callback_query": {
                "id": "q",
                "chat_instance": "c",
                "data": "oui",
                "from": {"id": CHAT, "is_bot": False, "first_name": "A"},
                "message": {"message_id": 1, "date": 0},
            },
        },
        {"update_id": 1, "my_chat_member": {"date": 0, "from": {"id": CHAT, "is_bot": False, "first_name": "A"}}},
    ],
)
async def test_malformed_updates_are_400(client: TestClient[Any, Any], document: Any) -> None:
    status, answer = await post(client, document)
    assert status == 400
    assert str(CHAT) not in answer["error"]


async def test_a_body_that_is_not_json_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post(PATH, data=b"\x00{", headers=telegram_headers(SECRET))
    assert response.status == 400


async def test_an_oversized_body_is_413(client: TestClient[Any, Any]) -> None:
    response = await client.post(PATH, data=b" " * 30_000)
    assert response.status == 413


async def test_group_chats_and_other_updates_are_ignored(client: TestClient[Any, Any]) -> None:
    group = telegram_update(5, -100123, "salut le groupe")
    group["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "Classe"}
    edited = {"update_id": 6, "edited_message": {**group["message"], "edit_date": 1773150000}}
    for document in (group, edited):
        nothing = {"inbound": [], "receipts": [], "departures": [], "echoes": [], "too_old": 0}
        assert await post(client, document) == (200, nothing)


async def test_an_edited_message_is_its_new_words_under_the_updates_own_id(client: TestClient[Any, Any]) -> None:
    """Read for a risk by the dispatcher (tests/e2e/test_edited_messages.py); a live location's moves are edits
    without words: nothing."""
    original = telegram_update(7, CHAT, "ça va", photo_file_id="photo-1")
    edit = {"update_id": 8, "edited_message": {**original["message"], "caption": "je vais me tuer", "edit_date": 1}}
    status, parsed = await post(client, edit)
    assert status == 200
    assert [(i["message_id"], i["text"], i["edited"], i["attachments"]) for i in parsed["inbound"]] == [
        ("8", "je vais me tuer", True, [])
    ]
    live = telegram_update(9, CHAT, None)
    live["message"]["location"] = {"latitude": 48.85, "longitude": 2.35, "live_period": 900}
    assert (await post(client, {"update_id": 10, "edited_message": {**live["message"], "edit_date": 2}}))[1][
        "inbound"
    ] == []


async def test_blocking_and_unblocking_the_bot_are_departures(client: TestClient[Any, Any]) -> None:
    kicked, member = telegram_member_update(20, CHAT, "kicked"), telegram_member_update(21, CHAT, "member")
    _, blocked = await post(client, kicked)
    _, back = await post(client, member)
    at = [str(datetime.fromtimestamp(u["my_chat_member"]["date"], UTC)) for u in (kicked, member)]  # Telegram's date
    said = {"channel": "telegram", "sender": str(CHAT), "about": None}
    assert blocked["departures"] == [{**said, "left": True, "at": at[0]}]
    assert back["departures"] == [{**said, "left": False, "at": at[1]}]
    assert blocked["inbound"] == back["inbound"] == []


async def test_photos_and_documents_become_attachments(client: TestClient[Any, Any]) -> None:
    _, photo = await post(client, telegram_update(7, CHAT, "regarde", photo_file_id="AgADphoto"))
    document = {"file_id": "BQADdoc", "file_name": "note.pdf", "mime_type": "application/pdf"}
    _, doc = await post(client, telegram_update(8, CHAT, None, document=document))
    assert photo["inbound"][0]["text"] == "regarde"
    assert photo["inbound"][0]["attachments"] == [
        {"kind": "image", "url": "tg-file:AgADphoto", "content_type": "image/jpeg", "name": None}
    ]
    assert doc["inbound"][0]["attachments"] == [
        {"kind": "file", "url": "tg-file:BQADdoc", "content_type": "application/pdf", "name": "note.pdf"}
    ]


SHARED = {  # what a young person may send that has no words and no file: its kind, never its content
    "location": ({"location": {"latitude": 48.8566, "longitude": 2.3522}}, "location"),
    "venue": (
        {"venue": {"location": {"latitude": 48.8566, "longitude": 2.3522}, "title": "Collège", "address": "1 rue X"},
         "location": {"latitude": 48.8566, "longitude": 2.3522}},
        "location",
    ),
    "contact": ({"contact": {"phone_number": "+33612345678", "first_name": "Maman"}}, "other"),
    # a contact card sent as a file (Android's "share contact" as .vcf): a phone number, never a listener's download
    "vcard file": (
        {"document": {"file_id": "BQADcard", "file_unique_id": "c", "file_name": "Maman.vcf",
                      "mime_type": "text/x-vcard"}},
        "other",
    ),
    # the same file whose type the sender's app did not set (the Bot API's mime_type is optional) or set to the
    # catch-all: its name says what it is; before 2026-12-05 it was a file any listener could download
    "vcard file without its type": (
        {"document": {"file_id": "BQADcard", "file_unique_id": "c", "file_name": "Maman.VCF"}},
        "other",
    ),
    "vcard file of any type": (
        {"document": {"file_id": "BQADcard", "file_unique_id": "c", "file_name": "Maman.vcard",
                      "mime_type": "application/octet-stream"}},
        "other",
    ),
    "sticker": (
        {"sticker": {"file_id": "CAADsticker", "file_unique_id": "s", "width": 512, "height": 512,
                     "is_animated": False, "is_video": False, "type": "regular"}},
        "other",
    ),
}  # fmt: skip


@pytest.mark.parametrize("shared", sorted(SHARED))
async def test_a_location_a_contact_or_a_sticker_is_not_an_empty_message(
    client: TestClient[Any, Any], shared: str
) -> None:
    """Found reading the adapter (2026-12-02): a shared location, a contact card or a sticker came as a message with
    no text and nothing attached: the bot answered "je n'ai pas bien compris", a listener saw an empty message. It
    comes as an attachment of its kind (a listener sees "position" or "autre"; the bot says it cannot read it),
    without its content: no coordinates, no phone number, no name."""
    extra, kind = SHARED[shared]
    update = telegram_update(9, CHAT, None)
    update["message"].update(extra)
    status, batch = await post(client, update)
    assert status == 200
    [message] = batch["inbound"]
    assert message["text"] == ""
    assert message["attachments"] == [{"kind": kind, "url": None, "content_type": None, "name": None}]
    assert not any(secret in json.dumps(batch) for secret in ("48.85", "2.35", "612345678", "Maman", "Collège"))


async def test_a_button_tap_is_answered_and_carries_its_value(
    client: TestClient[Any, Any], telegram: FakeTelegramAPI
) -> None:
    update = telegram_callback(9, CHAT, "yes", buttons=[("Oui", "yes"), ("Non", "no")], query_id="q-77")
    status, batch = await post(client, update)
    assert status == 200
    [message] = batch["inbound"]
    assert (message["sender"], message["message_id"]) == (str(CHAT), "9")
    assert (message["text"], message["payload"], message["language_hint"]) == ("Oui", "yes", "fr")
    [answer] = await telegram.wait_for("answerCallbackQuery")
    assert answer.body == {"callback_query_id": "q-77"}


async def test_an_index_button_is_read_as_its_number(client: TestClient[Any, Any], telegram: FakeTelegramAPI) -> None:
    _, batch = await post(client, telegram_callback(10, CHAT, "c:2"))
    assert (batch["inbound"][0]["text"], batch["inbound"][0]["payload"]) == ("2", None)
    await telegram.wait_for("answerCallbackQuery")


async def test_a_failed_answer_does_not_fail_the_webhook(
    client: TestClient[Any, Any], telegram: FakeTelegramAPI
) -> None:
    telegram.fail_next(Failure(400, description="Bad Request: query is too old"), endpoint="answerCallbackQuery")
    status, batch = await post(client, telegram_callback(11, CHAT, "yes"))
    assert (status, len(batch["inbound"])) == (200, 1)
    await telegram.wait_for("answerCallbackQuery")


async def test_a_call_beside_a_webhook_failing_unexpectedly_is_logged_and_stop_still_closes(
    channel: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """A tap's answer or a group's leave runs beside its webhook; an error it does not handle (a bug) is one ERROR line
    by class and place, and ``stop`` still closes the bot's clients (it raised that error before)."""
    caplog.set_level(logging.ERROR, logger="gateway.channels.telegram")

    async def bug() -> None:
        raise RuntimeError("chat 424242")  # words that must not reach the log

    channel._in_background(bug())
    await channel.stop()
    [line] = [r.getMessage() for r in caplog.records if "beside a webhook" in r.getMessage()]
    assert "RuntimeError" in line and "424242" not in line


async def test_answers_failing_in_an_outage_are_told_once_then_once_when_they_answer_again(
    client: TestClient[Any, Any], telegram: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A Bot API outage during taps: one WARNING line for the first failed answer, none for the next ones, one INFO
    line with how many were folded once an answer goes through; no chat id in any line."""
    caplog.set_level(logging.INFO, logger="gateway.channels.telegram")
    telegram.down()
    for update_id in range(20, 24):
        status, _ = await post(client, telegram_callback(update_id, CHAT, "yes"))
        assert status == 200
    await telegram.wait_for("answerCallbackQuery", count=4)
    telegram.up()
    await post(client, telegram_callback(24, CHAT, "yes"))
    await telegram.wait_for("answerCallbackQuery", count=5)

    def told() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "answerCallbackQuery" in r.getMessage()]

    async with asyncio.timeout(10):
        while len(told()) < 2:
            await asyncio.sleep(0.01)  # a condition waited on: the fifth answer's task logs after the fake answered
    [failed, again] = told()
    assert failed.levelno == logging.WARNING and "failed" in failed.getMessage()
    assert again.levelno == logging.INFO and "3 more failures folded" in again.getMessage()
    assert not any(str(CHAT) in r.getMessage() for r in caplog.records)


def test_acknowledge_and_abilities(channel: TelegramChannel) -> None:
    response = channel.acknowledge()
    assert (response.status, response.text) == (200, "ok")
    assert isinstance(channel, Channel)
    assert isinstance(channel, Lifecycle)
    assert isinstance(channel, TypingIndicator)
    assert isinstance(channel, MediaFetcher)
    assert not isinstance(channel, ReplyWindow)


# Sending.


async def test_a_message_is_sent_as_telegram_expects(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    message_id = await channel.send(outbound("Salut 👋 é"))
    [request] = telegram.requests_to("sendMessage")
    assert request.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert request.body == {"chat_id": str(CHAT), "text": "Salut 👋 é"}
    assert message_id is not None and message_id.isdigit()


async def test_choices_become_an_inline_keyboard(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    choices = (
        Choice("yes", "Oui"),
        Choice("x" * 65, "Trop long"),
        Choice("é" * 33, "66 octets"),
        Choice("c:1", "Ressemble à un index"),
        Choice("ok", "  "),
    )
    await channel.send(outbound("Choisis :", choices))
    [body] = sent(telegram)
    assert body["text"] == "Choisis :"
    assert json.loads(body["reply_markup"]) == {
        "inline_keyboard": [
            [{"text": "Oui", "callback_data": "yes"}],
            [{"text": "Trop long", "callback_data": "c:2"}],
            [{"text": "66 octets", "callback_data": "c:3"}],
            [{"text": "Ressemble à un index", "callback_data": "c:4"}],
            [{"text": "5", "callback_data": "ok"}],
        ]
    }


async def test_over_a_hundred_choices_become_a_numbered_list(
    channel: TelegramChannel, telegram: FakeTelegramAPI
) -> None:
    choices = tuple(Choice(str(n), f"Choix {n}") for n in range(1, 102))
    await channel.send(outbound("Choisis :", choices))
    [body] = sent(telegram)
    assert "reply_markup" not in body
    assert body["text"].startswith("Choisis :\n\n1. Choix 1\n2. Choix 2\n")
    assert body["text"].endswith("\n101. Choix 101")


async def test_long_text_is_split_in_utf16_units(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    text = " ".join(["🙂🙂"] * 2000)  # 2000 words of 4 UTF-16 units: about 10 000 units
    await channel.send(outbound(text, (Choice("ok", "OK"),)))
    bodies = sent(telegram)
    assert len(bodies) == 3
    assert all(len(body["text"].encode("utf-16-le")) // 2 <= 4096 for body in bodies)
    assert " ".join(body["text"] for body in bodies) == text
    assert ["reply_markup" in body for body in bodies] == [False, False, True]


async def test_typing_is_a_chat_action(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    await channel.typing(str(CHAT))
    assert sent(telegram, "sendChatAction") == [{"chat_id": str(CHAT), "action": "typing"}]


async def test_set_webhook_registers_the_public_url(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    await channel.set_webhook()
    [body] = sent(telegram, "setWebhook")
    assert body["url"] == "https://helpline.example.org/webhooks/telegram"
    assert body["secret_token"] == SECRET
    assert json.loads(body["allowed_updates"]) == ["message", "edited_message", "callback_query", "my_chat_member"]


# Errors.


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [(Failure(429, retry_after=7, description="Too Many Requests: retry after 7"), 7.0), (Failure(500), None)],
)
async def test_retryable_failures(
    channel: TelegramChannel, telegram: FakeTelegramAPI, failure: Failure, retry_after: float | None
) -> None:
    telegram.fail_next(failure)
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.retry_after == retry_after
    assert BOT_TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [Failure(429, description="Too Many Requests: retry after"), Failure(429, description="")],
    ids=["described", "bare"],
)
async def test_a_429_without_retry_after_is_a_rate_limit_all_the_same(
    channel: TelegramChannel, telegram: FakeTelegramAPI, failure: Failure
) -> None:
    """A 429 whose answer has no ``parameters.retry_after`` (PTB raises its NetworkError, not RetryAfter) is
    Telegram's flood control all the same: rate limited, so that the outbox pauses the channel for the reply's
    backoff. Until 2026-12-07 it was a network error: every chat's reply asked the Bot API during the limit, each
    refused and spending a try (bench/chaos.py ``provider-429``: 129 sends refused in a 29 s limit, none held back)."""
    telegram.fail_next(failure)
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.rate_limited and caught.value.retry_after is None
    assert BOT_TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "told", ["1e300", "100000000000000000000", "NaN", "-5", '"garbage"', '"Wed, 21 Oct 2015 07:28:00 GMT"', "[30]"]
)
async def test_a_429_whose_retry_after_is_no_usable_wait_is_a_rate_limit_telling_none(
    channel: TelegramChannel, telegram: FakeTelegramAPI, told: str
) -> None:
    """A 429 whose ``parameters.retry_after`` is no wait (beyond any a timedelta holds, NaN, negative, a date, a word,
    a list: a proxy's, a local Bot API server's) is flood control telling none: rate limited, the channel paused for
    the reply's backoff (doubling at each refused probe). Until 2026-12-08 PTB built its RetryAfter of it: the huge
    ones raised OverflowError out of the adapter (the outbox's "unexpected" ERROR line, no pause), NaN and the words
    were a proxy's answer (not rate limited: every chat's reply asked during the limit), a negative was a wait told
    (-5.0: the probe once a second, never doubling)."""
    body = '{"ok": false, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": %s}}'
    telegram.fail_next(Failure(429, page=body % told))
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert caught.value.rate_limited and caught.value.retry_after is None


async def test_another_network_error_is_no_rate_limit(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    telegram.fail_next(Failure(502, description="Bad Gateway"), Failure(503, description="Too Many Requests"))
    for _ in range(2):  # a 503's words are not a 429
        with pytest.raises(RetryableDelivery) as caught:
            await channel.send(outbound())
        assert not caught.value.rate_limited


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure(400, description="Bad Request: chat not found"), "Chat not found"),
        (Failure(403, description="Forbidden: bot was blocked by the user"), "blocked"),
    ],
)
async def test_permanent_failures(
    channel: TelegramChannel, telegram: FakeTelegramAPI, failure: Failure, reason: str
) -> None:
    telegram.fail_next(failure)
    with pytest.raises(PermanentDelivery, match=reason) as caught:
        await channel.send(outbound())
    assert str(CHAT) not in str(caught.value) and caught.value.__cause__ is None


@pytest.mark.parametrize(
    "refusal", [Failure(401, description="Unauthorized"), Failure(404, description="Not Found")], ids=["401", "404"]
)
async def test_a_refused_bot_token_is_the_lines_credentials_kept_for_later(
    channel: TelegramChannel, telegram: FakeTelegramAPI, refusal: Failure
) -> None:
    """PTB's InvalidToken (the Bot API's 401 for a token revoked, its 404 for one malformed) refuses every chat's
    sends alike: the line's credentials, asked again in a minute, never this reply failed for good."""
    telegram.fail_next(refusal)
    with pytest.raises(CredentialsRefused, match="TELEGRAM_BOT_TOKEN") as caught:
        await channel.send(outbound())
    assert caught.value.retry_after == 60.0 and not caught.value.rate_limited
    assert BOT_TOKEN not in str(caught.value) and str(CHAT) not in str(caught.value)


async def test_a_bot_blocked_by_the_young_person_stays_their_refusal(
    channel: TelegramChannel, telegram: FakeTelegramAPI
) -> None:
    telegram.fail_next(Failure(403, description="Forbidden: bot was blocked by the user"))
    with pytest.raises(RecipientGone) as caught:
        await channel.send(outbound())
    assert not isinstance(caught.value, RetryableDelivery)


@pytest.mark.parametrize("status", [403, 404, 502])
async def test_a_page_that_is_not_the_bot_apis_answer_is_retried_and_never_quoted(
    channel: TelegramChannel, telegram: FakeTelegramAPI, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy or a firewall at the Bot API's address answering with its own page (quoting the URL, so the token):
    retried (a 403 page is not the young person blocking the bot), told without the page; PTB's own log line that
    quotes it is not ours (``gateway serve`` silences the library: tests/test_serve.py)."""
    page = (
        f"<html><body><h1>{status}</h1><p>The requested URL /bot{BOT_TOKEN}/sendMessage was refused.</p></body></html>"
    )
    telegram.fail_next(Failure(status, page=page))
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert BOT_TOKEN not in str(caught.value) and "html" not in str(caught.value)
    assert "not the Bot API's" in str(caught.value)
    assert not any(BOT_TOKEN in r.getMessage() for r in caplog.records if r.name.startswith("gateway"))


@pytest.mark.parametrize("page", ["<html><body><p>Bienvenue sur le réseau de l'établissement</p></body></html>", ""])
async def test_a_success_status_whose_body_is_not_the_bot_apis_answer_is_retried(
    channel: TelegramChannel, telegram: FakeTelegramAPI, page: str
) -> None:
    """A proxy, a captive portal or a cache at the Bot API's address answering 200 with its own page (or nothing):
    the Bot API did not say the message was sent, nor that it was refused. Retried, as the same page with a 403 or
    a 502 is; until 2026-12-04 it failed the reply for good ("telegram: TelegramError"): never sent again."""
    telegram.fail_next(Failure(200, page=page))
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert "not the Bot API's" in str(caught.value) and "html" not in str(caught.value)
    telegram.fail_next(None)
    assert await channel.send(outbound())  # the next try goes out


@pytest.mark.parametrize(
    "answer",
    [
        '{"ok": true}',
        "[]",
        '"ok"',
        '{"ok": true, "result": {}}',
        '{"ok": true, "result": 1}',
        '{"ok": true, "result": null}',
    ],
)
async def test_a_success_whose_json_is_not_a_sent_message_is_retried_as_such(
    channel: TelegramChannel, telegram: FakeTelegramAPI, caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    """The same with JSON that is not the Bot API's answer to a send (no ``result``, not an object, a result that
    is not a message): until 2026-12-05 PTB's KeyError or TypeError escaped the adapter, the outbox logged an
    "unexpected" ERROR for what is an answer from something else at the Bot API's address, and retried it."""
    telegram.fail_next(Failure(200, page=answer))
    with pytest.raises(RetryableDelivery) as caught:
        await channel.send(outbound())
    assert "not the Bot API's" in str(caught.value)
    telegram.fail_next(None)
    assert await channel.send(outbound())


async def test_a_description_with_digits_or_parameters_is_told_by_its_class_only(
    channel: TelegramChannel, telegram: FakeTelegramAPI
) -> None:
    telegram.fail_next(Failure(400, description=f"Bad Request: chat {CHAT} not found"))
    with pytest.raises(PermanentDelivery) as caught:
        await channel.send(outbound())
    assert str(caught.value) == "telegram: BadRequest"


@pytest.mark.parametrize(
    "failure",
    [
        Failure(400, description="Bad Request: can't write to the chat of user zoe_dupont"),
        Failure(403, description="Forbidden: user zoe_dupont has restricted who can message them"),
        # until 2026-12-08 any description beginning "bad webhook" was told, whatever followed, at any call
        Failure(400, description="Bad Request: bad webhook: chat of user zoe_dupont"),
    ],
    ids=["400", "403", "bad-webhook-prefix"],
)
async def test_a_description_of_words_the_adapter_does_not_know_is_told_by_its_class_only(
    channel: TelegramChannel, telegram: FakeTelegramAPI, failure: Failure
) -> None:
    """A username is words only: until 2026-12-08 such a description was told as Telegram wrote it (the outbox logs a
    failure's text, the listener sees it). Now only the descriptions the adapter knows are told."""
    telegram.fail_next(failure)
    with pytest.raises(PermanentDelivery) as caught:
        await channel.send(outbound())
    assert str(caught.value) == f"telegram: {'BadRequest' if failure.status == 400 else 'Forbidden'}"


async def test_setwebhooks_known_refusals_are_told_as_telegram_wrote_them(
    channel: TelegramChannel, telegram: FakeTelegramAPI
) -> None:
    telegram.fail_next(
        Failure(400, description="Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"),
        endpoint="setWebhook",
    )
    with pytest.raises(PermanentDelivery) as caught:
        await channel.set_webhook()
    said = "telegram: BadRequest: Bad webhook: webhook can be set up only on ports 80, 88, 443 or 8443"  # PTB's case
    assert str(caught.value) == said


async def test_an_unreachable_api_is_retryable(telegram: FakeTelegramAPI, session: aiohttp.ClientSession) -> None:
    adapter = TelegramChannel(make_settings(telegram.url), session)
    await adapter.start()
    await telegram.close()
    try:
        with pytest.raises(RetryableDelivery, match="network error"):
            await adapter.send(outbound())
    finally:
        await adapter.stop()


async def test_start_names_a_refused_token(telegram: FakeTelegramAPI, session: aiohttp.ClientSession) -> None:
    """For a command that only talks to the Bot API (``gateway telegram set-webhook``); ``gateway serve`` serves on
    (tests/test_serve.py::test_serve_started_with_a_bot_token_refused_serves_the_other_channels_and_says_so_at_once)."""
    adapter = TelegramChannel(make_settings(telegram.url, token="987:wrong"), session)
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN") as caught:
        await adapter.start(reachable=True)
    assert "987:wrong" not in str(caught.value)
    await adapter.stop()


# Media.


async def test_media_is_fetched_through_get_file(channel: TelegramChannel, telegram: FakeTelegramAPI) -> None:
    telegram.add_file("AgADphoto", b"\xff\xd8jpeg", "image/jpeg")
    data = await channel.fetch_media(Attachment("image", "tg-file:AgADphoto", "image/jpeg"))
    assert data == (b"\xff\xd8jpeg", "image/jpeg")
    assert sent(telegram, "getFile") == [{"file_id": "AgADphoto"}]


async def test_an_unknown_file_is_permanent(channel: TelegramChannel) -> None:
    with pytest.raises(PermanentDelivery, match="Invalid file_id"):
        await channel.fetch_media(Attachment("image", "tg-file:nope"))


@pytest.mark.parametrize("url", ["https://evil.example.com/photo.jpg", None, "tg-file"])
async def test_media_that_is_not_a_telegram_file_is_refused(channel: TelegramChannel, url: str | None) -> None:
    with pytest.raises(PermanentDelivery, match="not a Telegram file"):
        await channel.fetch_media(Attachment("image", url))


# Hostile input.

NO_DEADLINE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KNOWN_FIELDS = (
    "update_id message callback_query edited_message message_id date chat id type from text caption data photo"
    " document file_id file_unique_id width height language_code reply_markup inline_keyboard callback_data"
    " voice is_bot first_name"
)
field_names = st.sampled_from(KNOWN_FIELDS.split())
shaped = shaped_by(KNOWN_FIELDS, max_size=6)


@NO_DEADLINE
@given(update_id=st.integers(min_value=0, max_value=2**40), fields=st.dictionaries(field_names, shaped, max_size=4))
async def test_any_update_gives_a_batch_or_400(
    client: TestClient[Any, Any], update_id: int, fields: dict[str, Any]
) -> None:
    response = await client.post(
        PATH, data=json.dumps({**fields, "update_id": update_id}), headers=telegram_headers(SECRET)
    )
    assert response.status in (200, 400)


@NO_DEADLINE
@given(
    message=st.fixed_dictionaries(
        {
            "message_id": st.integers(),
            "date": st.integers(),
            "chat": st.fixed_dictionaries({"id": json_values, "type": json_values}),
        },
        optional={"text": json_values, "from": shaped, "photo": shaped, "document": shaped, "caption": json_values},
    )
)
async def test_any_message_gives_a_batch_or_400(client: TestClient[Any, Any], message: dict[str, Any]) -> None:
    response = await client.post(
        PATH, data=json.dumps({"update_id": 1, "message": message}), headers=telegram_headers(SECRET)
    )
    assert response.status in (200, 400)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=80)


@NO_DEADLINE
@given(secret=header_text, raw=st.binary(max_size=200))
async def test_any_secret_header_is_refused_cleanly(client: TestClient[Any, Any], secret: str, raw: bytes) -> None:
    response = await client.post(PATH, data=raw, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
    assert response.status == 403


async def test_a_bot_api_that_never_answers_times_out_at_the_send_timeout(
    telegram: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    """PTB's read and write timeouts are off since 2026-12-08 (the send's deadline is the gateway's own,
    ``timeout_unheld``): a Bot API that takes a reply and never answers still fails it, retryably, at
    ``SEND_TIMEOUT_SECONDS`` (not later, never hung), and the start's getMe likewise."""
    telegram.stall()
    started = time.monotonic()
    try:
        with pytest.raises(RetryableDelivery, match="TimedOut"):
            await channel.send(outbound("Bonjour"))
        took = time.monotonic() - started
        assert SEND_TIMEOUT_SECONDS <= took < SEND_TIMEOUT_SECONDS + 5, took
    finally:
        telegram.resume()
