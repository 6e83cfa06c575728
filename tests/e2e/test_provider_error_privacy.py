"""A provider's error answer that quotes the young person (Twilio's "The 'To' number whatsapp:+336… is not a valid
WhatsApp user", Graph's error naming the PSID, a Telegram description naming the username) leaves nothing of them in
any log record: not in its message, its arguments or its traceback. The real app (SQLite, and the session's Redis),
the fake providers on 127.0.0.1 answering those errors to its replies (a 5xx first, retried; then a refusal), every
logger at DEBUG but those ``gateway serve`` quiets (``gateway/cli.py``: httpx, twilio, PIL at WARNING, telegram)."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator

import pytest

from gateway.access_log import QUIETED, private_logging
from gateway.settings import Settings
from gateway.testing import (
    ACCOUNT_SID,
    WHATSAPP_FROM,
    Failure,
    FakeGraphAPI,
    FakeTelegramAPI,
    FakeTwilioAPI,
    telegram_callback,
    telegram_headers,
    telegram_update,
    twilio_form,
)
from tests.conftest import TWILIO_TOKEN, outbox_drained
from tests.e2e.channel_support import GatewayFactory, eventually, gateway, offline
from tests.e2e.test_messenger import PSID, SECRET, message
from tests.e2e.test_messenger import deliver as deliver_messenger
from tests.e2e.test_whatsapp import PUBLIC
from tests.e2e.test_whatsapp import deliver as deliver_whatsapp
from tests.store.conftest import emptied, redis_url

__all__ = ["gateway", "offline", "redis_url"]  # fixtures used below

NUMBER = "+33612345678"
PHONE = f"whatsapp:{NUMBER}"
CHAT = 515151
USERNAME = "zoe_dupont"  # a Telegram username: letters and an underscore, no digit


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    return settings.store if request.param == "sqlite" else emptied(request.getfixturevalue("redis_url"))


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, but those ``gateway serve`` sets higher (their own lines quote requests whole)."""
    caplog.set_level(logging.DEBUG)
    before = {name: logging.getLogger(name).level for name in QUIETED}
    private_logging()  # as ``gateway serve`` does
    yield caplog
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def naming(records: list[logging.LogRecord], *secrets: str) -> list[str]:
    """The records whose message, arguments or traceback (the exception's and its chain's) hold one of ``secrets``."""
    found = []
    for record in records:
        told = [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            told.append("".join(traceback.format_exception(record.exc_info[1])))
        if any(secret in part for part in told for secret in secrets):
            found.append(f"{record.name} {record.levelname}: {record.getMessage()}")
    return found


async def test_twilio_errors_quoting_the_number_leave_it_in_no_log_record(
    gateway: GatewayFactory, settings: Settings, store_url: str, twilio: FakeTwilioAPI,
    logged: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    client = await gateway(settings.replace(
        store=store_url, public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM, twilio_api_url=twilio.url,
    ))  # fmt: skip
    twilio.fail_next(
        Failure(503, code=20500, description=f"Service unavailable for the 'To' number {PHONE}"),
        Failure(400, code=63003, description=f"Channel could not find To address {PHONE}: not a valid WhatsApp user"),
    )
    assert await deliver_whatsapp(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "7" * 32)) == 200
    await twilio.wait_for("Messages.json", 2)
    await outbox_drained(client)
    assert [r.status for r in twilio.requests_to("Messages.json")][:2] == [503, 400]
    assert naming(logged.records, NUMBER, NUMBER.removeprefix("+"), NUMBER[-9:]) == []


async def test_graph_errors_quoting_the_psid_leave_it_in_no_log_record(
    gateway: GatewayFactory, settings: Settings, store_url: str, graph: FakeGraphAPI,
    logged: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    client = await gateway(settings.replace(
        store=store_url, messenger_app_secret=SECRET, messenger_verify_token="verify-me",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
    ))  # fmt: skip
    graph.fail_next(
        Failure(500, code=2, description=f"An unexpected error occurred sending to {PSID}"),
        Failure(400, code=100, subcode=2018001, description=f"No matching user found for recipient id {PSID}"),
    )
    assert await deliver_messenger(client, message("Bonjour", mid="m_privacy_1")) == 200
    await graph.wait_for("messages", 2)
    await outbox_drained(client)
    assert [r.status for r in graph.requests_to("messages")][:2] == [500, 400]
    assert naming(logged.records, PSID) == []


async def test_telegram_descriptions_quoting_the_username_leave_it_in_no_log_record(
    gateway: GatewayFactory, settings: Settings, store_url: str, telegram: FakeTelegramAPI,
    logged: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Until 2026-12-08 a description made of words only (no digit) was told as Telegram wrote it: the username went
    to the outbox's WARNING line of the failed reply, to the folded WARNING of a failed button answer, and to the
    reply's failure kept for the listener."""
    secret = "webhook_secret-123"
    client = await gateway(settings.replace(telegram_bot_token=telegram.token, telegram_webhook_secret=secret,
                                            telegram_api_url=telegram.url, store=store_url))  # fmt: skip

    async def deliver(update: dict[str, object]) -> int:
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(secret))
        return response.status

    telegram.fail_next(
        Failure(500, description=f"Internal Server Error: the chat of {USERNAME} is unavailable"),
        Failure(400, description=f"Bad Request: can't write to the chat of user {USERNAME}"),
    )
    telegram.fail_next(
        Failure(400, description=f"Bad Request: query of {USERNAME} is too old and response timeout expired"),
        endpoint="answerCallbackQuery",
    )
    update = telegram_update(900000101, CHAT, "bonjour")
    update["message"]["from"]["username"] = USERNAME  # type: ignore[index]
    assert await deliver(update) == 200
    await telegram.wait_for("sendMessage", 2)
    await outbox_drained(client)
    tap = telegram_callback(900000102, CHAT, "no", [("Non", "no")], query_id="q-privacy")
    tap["callback_query"]["from"]["username"] = USERNAME  # type: ignore[index]
    assert await deliver(tap) == 200
    await telegram.wait_for("answerCallbackQuery", 1)
    await outbox_drained(client)

    async def told() -> bool:  # the refused button answer's line (the call runs beside the webhook)
        return any("answerCallbackQuery failed" in r.getMessage() for r in logged.records)

    await eventually(told)
    assert [r.status for r in telegram.requests_to("sendMessage")][:2] == [500, 400]
    assert naming(logged.records, USERNAME) == []
