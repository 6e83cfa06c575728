"""A slow or hung provider, through the real app on Redis: every channel gives a send 15 s (``SEND_TIMEOUT_SECONDS``),
no less and no more.

A provider slower than the send timeout takes a request the gateway has given up on: the send is ambiguous and is
sent again, so the young person may read it twice (docs/architecture.md, "Replies"). Below the timeout nothing may
repeat. Found by ``bench/chaos.py`` (2026-12-01): Telegram's sends timed out after python-telegram-bot's 5 s read
timeout, so a Bot API slow for 5–15 s got every reply it held twice; WhatsApp's had no timeout at all (Twilio's
async client drops the one it is given: aiohttp's 300 s), so a hung Twilio held a conversation's replies for five
minutes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from gateway.app import STORE
from gateway.channels.base import SEND_TIMEOUT_SECONDS
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import (
    ACCOUNT_SID,
    BOT_TOKEN,
    WHATSAPP_FROM,
    FakeAPI,
    FakeTelegramAPI,
    FakeTwilioAPI,
    sign_twilio,
    telegram_headers,
    telegram_update,
    twilio_form,
)
from tests.conftest import TWILIO_TOKEN, outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, gateway, offline
from tests.store.conftest import emptied, redis_url

__all__ = ["gateway", "offline", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

SECRET = "webhook_secret-123"
CHAT = 424242
PHONE = "whatsapp:+33612345678"
SLOWER_THAN_PTB = 7.0  # s the fake Bot API holds the first reply: past python-telegram-bot's 5 s, under 15 s


@pytest.fixture
def on_redis(settings: Settings, redis_url: str) -> Settings:
    emptied(redis_url)
    return settings.replace(store=redis_url)


async def bot_replies(client: Client) -> list[str]:
    """The texts of the bot's replies recorded in the one conversation."""
    store = client.app[STORE]
    (conversation,) = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    return [e.text for e in await store.transcript(conversation.id) if e.author is Author.BOT]


def sent_texts(fake: FakeAPI, field: str) -> list[str]:
    return [str(request.body[field]) for request in fake.accepted()]


async def test_a_telegram_reply_held_under_the_send_timeout_is_sent_once(
    gateway: GatewayFactory, on_redis: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await gateway(
        on_redis.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url)
    )
    telegram.stall()
    try:
        update = json.dumps(telegram_update(900000001, CHAT, "bonjour"))
        response = await client.post("/webhooks/telegram", data=update, headers=telegram_headers(SECRET))
        assert response.status == 200
        await telegram.wait_held(1)
        # The provider is slow, not gone: it answers after SLOWER_THAN_PTB seconds. Meanwhile the gateway must
        # still be waiting for that answer, not asking again.
        await asyncio.sleep(SLOWER_THAN_PTB)
        assert telegram.held == 1, "the gateway gave up on a send before its 15 s timeout and sent it again"
    finally:
        telegram.resume()
    await outbox_drained(client)
    replies = await bot_replies(client)
    assert replies and sent_texts(telegram, "text") == replies  # each once, in order


async def test_a_whatsapp_send_to_a_hung_twilio_gives_up_after_the_send_timeout_and_goes_again(
    gateway: GatewayFactory, on_redis: Settings, twilio: FakeTwilioAPI
) -> None:
    public = "http://helpline.example.org:8080"
    client = await gateway(
        on_redis.replace(public_url=public, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN,
                         twilio_whatsapp_from=WHATSAPP_FROM, twilio_api_url=twilio.url)
    )  # fmt: skip
    twilio.stall(only="Body=")  # the sends only: the WhatsApp catch-up's read of Twilio's list, at start, is no send
    try:
        form = twilio_form(PHONE, "Bonjour")
        signature = sign_twilio(TWILIO_TOKEN, public + "/webhooks/whatsapp", form)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        response = await client.post("/webhooks/whatsapp", data=urlencode(form), headers=headers)
        assert response.status == 200
        await twilio.wait_held(1)
        # The first send times out after SEND_TIMEOUT_SECONDS and goes again (an ambiguous send: the provider
        # may have taken it), instead of waiting as long as Twilio hangs.
        await twilio.wait_held(2, timeout=SEND_TIMEOUT_SECONDS + 30)
    finally:
        twilio.resume()
    await outbox_drained(client)
    replies = await bot_replies(client)
    sent = sent_texts(twilio, "Body")
    # the first reply twice (the request the provider held past the timeout, then the retry), the others once
    assert len(replies) > 1 and len(sent) == len(replies) + 1 and sent[0] == sent[1]
    assert all(body.startswith(reply) for body, reply in zip(sent[1:], replies, strict=True))
