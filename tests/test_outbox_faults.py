"""An outbox item this version cannot read (written by a newer instance during a rolling deploy) is logged by
id, set aside in the store as failed, and every other message keeps flowing: its conversation's next ones too.

The real app with the Telegram channel against the fake Bot API; the item is put straight into the store, as a
newer gateway sharing it would."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from gateway.app import STORE
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import OutboxItem, OutboxStatus
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_callback, telegram_headers, telegram_update
from tests.conftest import SECRET_KEY
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline, running_clock

__all__ = ["gateway", "offline"]  # fixtures used by the tests below

SECRET = "webhook_secret-123"
ZOE, SAM = 424242, 515151


@pytest.fixture
async def client(gateway: GatewayFactory, settings: Settings, telegram: FakeTelegramAPI) -> Client:
    return await gateway(settings.replace(
        telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url
    ))  # fmt: skip


async def deliver(client: Client, update: dict[str, Any]) -> None:
    response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
    assert response.status == 200


def sent_to(telegram: FakeTelegramAPI, chat: int) -> int:
    return sum(1 for r in telegram.accepted("sendMessage") if r.body.get("chat_id") in (chat, str(chat)))


async def test_an_unreadable_outbox_item_is_set_aside_and_the_rest_flows(
    client: Client, telegram: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store, now = client.app[STORE], running_clock(client)
    await deliver(client, telegram_update(900000001, ZOE, "bonjour"))
    before = await eventually(lambda: _async(sent_to(telegram, ZOE)))
    conversation = await store.find_active_conversation(ChannelName.TELEGRAM, str(ZOE))
    assert conversation is not None
    newer = {"channel": "telegram", "recipient": str(ZOE), "format": 2, "blocks": [{"kind": "carousel"}]}
    await store.outbox_put(OutboxItem("from-a-newer-version", conversation.id, newer, now()))

    await deliver(client, telegram_callback(900000002, ZOE, "no", [("Non", "no")], query_id="q-1"))
    await deliver(client, telegram_update(900000003, SAM, "bonjour"))

    await eventually(lambda: _async(sent_to(telegram, ZOE) > before and sent_to(telegram, SAM) > 0))
    item = await store.outbox_get(conversation.id, "from-a-newer-version")
    assert item is not None and item.status == OutboxStatus.FAILED and item.payload == newer
    assert item.last_error is not None and item.last_error.startswith("set aside")
    named = KeyedHash(SECRET_KEY).logged_id("from-a-newer-version")  # an item named by its keyed form (2026-12-07)
    logged = [r.getMessage() for r in caplog.records if named in r.getMessage()]
    assert logged and "set aside" in logged[0] and "TypeError" in logged[0]
    metrics = await (await client.get("/metrics")).text()
    assert "gateway_outbox_set_aside_total 1.0" in metrics
    assert "gateway_worker_restarts_total{" not in metrics  # the outbox never stopped


async def _async(value: Any) -> Any:
    return value
