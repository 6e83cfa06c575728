"""The flood notice on a provider channel (Telegram, the fake Bot API; the real app) is written in the language of
the sender's conversation when it has one: a young person who chose English is not told in the Telegram app's
French only (nor a French speaker in their app's English only)."""

from __future__ import annotations

import json

import pytest

from gateway.settings import Settings
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_callback, telegram_headers, telegram_update
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline

__all__ = ["gateway", "offline"]
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
SECRET = "webhook_secret-123"
CHAT = 626262
LANGUAGE = [("Français", "fr"), ("English", "en")]


@pytest.mark.parametrize(
    ("app_language", "chosen", "notice", "not_in_it"),
    [
        ("fr", "en", "Many messages are arriving right now", "Beaucoup de messages"),
        ("en", "fr", "Beaucoup de messages arrivent", "Many messages"),
    ],
)
async def test_the_flood_notice_is_in_the_language_the_young_person_chose(
    gateway: GatewayFactory, settings: Settings, telegram: FakeTelegramAPI, app_language: str, chosen: str,
    notice: str, not_in_it: str,
) -> None:  # fmt: skip
    client: Client = await gateway(settings.replace(
        telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url,
        limit_messages_per_conversation="3/minute",
    ))  # fmt: skip
    updates = [
        telegram_update(700000001, CHAT, "bonjour", language_code=app_language),
        telegram_callback(700000002, CHAT, "no", [("Non", "no")], query_id="q-urgency"),
        telegram_callback(700000003, CHAT, chosen, LANGUAGE, query_id="q-language"),
        telegram_update(700000004, CHAT, "15", language_code=app_language),  # past the limit: refused
    ]
    for update in updates:
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
        assert response.status == 200

    async def told() -> str | None:
        texts = [r.body.get("text", "") for r in telegram.accepted("sendMessage")]
        return next((t for t in texts if "3114" in t and ("Many messages" in t or "Beaucoup" in t)), None)

    text = await eventually(told)
    assert notice in text and not_in_it not in text
