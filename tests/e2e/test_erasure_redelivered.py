"""A message already processed, redelivered by Meta or Telegram after its young person was erased (its
acknowledgement lost: a timeout, a cut), is a duplicate: no new conversation with the erased words, no reply (the
real app on SQLite or a real Redis, the fake Graph and Bot APIs, the same signed webhook posted again).

Until 2026-12-06 the erasure forgot the processed marks of their messages on every channel but WhatsApp
(``erasure.LISTED_AGAIN``): the redelivery opened a new conversation and the bot greeted the erased person again.
Now the marks of a provider channel's messages outlive the erasure (``erasure.DELIVERED_AGAIN``; their 8 days,
unlinked, a digest of the key)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import STORE
from gateway.erasure import EPOCH, FAR
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI, FakeTelegramAPI, telegram_update
from tests.conftest import login, outbox_drained
from tests.e2e import test_messenger as messenger
from tests.e2e import test_telegram as telegram_
from tests.e2e.channel_support import Client, GatewayFactory, gateway, offline
from tests.e2e.test_messenger import messenger_settings
from tests.e2e.test_telegram import telegram_settings
from tests.store.conftest import STORES, on_store, redis_url

__all__ = ["gateway", "messenger_settings", "offline", "redis_url", "telegram_settings"]  # fixtures used below


@pytest.fixture(params=STORES)
def on_messenger(request: pytest.FixtureRequest, messenger_settings: Settings) -> Settings:
    return on_store(request, messenger_settings)


@pytest.fixture(params=STORES)
def on_telegram(request: pytest.FixtureRequest, telegram_settings: Settings) -> Settings:
    return on_store(request, telegram_settings)


async def supervisor_erases(client: Client, channel: ChannelName, sender: str) -> None:
    [conversation] = await client.app[STORE].conversations_of(channel, sender, EPOCH, FAR, 10)
    await login(client, "anne")  # a supervisor
    erased = await client.post(f"/api/conversations/{conversation.id}/erase", json={"confirm": True})
    assert erased.status == 200, await erased.text()


async def nobody(client: Client) -> list[Any]:
    return await client.app[STORE].list_conversations(EPOCH, FAR)


async def test_a_messenger_message_redelivered_after_the_erasure_is_a_duplicate(
    gateway: GatewayFactory, on_messenger: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(on_messenger)
    document = messenger.message("je n'en peux plus", mid="m_erased_once")
    assert await messenger.deliver(client, document) == 200
    await graph.wait_accepted(1)
    await outbox_drained(client)
    await supervisor_erases(client, ChannelName.MESSENGER, messenger.PSID)
    told = len(graph.accepted())

    assert await messenger.deliver(client, document) == 200  # Meta's redelivery: the acknowledgement was lost
    await outbox_drained(client)
    assert await nobody(client) == []  # before: a new conversation holding "je n'en peux plus"
    assert graph.accepted()[told:] == []  # before: the greeting again


async def test_a_telegram_message_redelivered_after_the_erasure_is_a_duplicate(
    gateway: GatewayFactory, on_telegram: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await gateway(on_telegram)
    update = telegram_update(900000601, telegram_.CHAT, "je n'en peux plus")
    assert await telegram_.deliver(client, update) == 200
    await telegram.wait_accepted(1)
    await outbox_drained(client)
    await supervisor_erases(client, ChannelName.TELEGRAM, str(telegram_.CHAT))
    told = len(telegram.accepted())

    assert await telegram_.deliver(client, update) == 200  # Telegram's redelivery: the acknowledgement was lost
    await outbox_drained(client)
    assert await nobody(client) == []  # before: a new conversation holding "je n'en peux plus"
    assert telegram.accepted()[told:] == []  # before: the greeting again
