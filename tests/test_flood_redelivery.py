"""A provider's redelivery is never counted by the flood limit as a message more: the real app (Telegram, the fake
Bot API on 127.0.0.1) on SQLite and on a real Redis.

Telegram and Meta redeliver an update they did not see acknowledged in time, Twilio one whose connection failed,
and a webhook that met a store outage is answered 503 so that it is redelivered. Until 2026-12-05 the gate counted
every attempt against the per-conversation flood limit before the de-duplication knew it as a message it had
already: a burst delivered then redelivered pushed the count past the limit and the young person was told "on n'a
pas pu prendre le tien" although every message was kept; and a message whose first attempt failed (503) was
counted a second time when it came again, so that right at the limit the redelivery was refused as a flood,
acknowledged 200, and the message was never recorded. The gate now counts a message once under its own id: each
attempt of it gets the decision of its first, and a message past the limit whose words read a risk uses its own
bound once too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.app import METRICS, STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeTelegramAPI, telegram_update
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, gateway, offline
from tests.e2e.test_telegram import CHAT, deliver, telegram_settings
from tests.losing_proxy import LosingProxy, losing_proxy, script_text
from tests.store.conftest import STORES, emptied, on_store, redis_url

__all__ = ["gateway", "offline", "redis_url", "telegram_settings"]  # fixtures used below

TYPED = "3/hour"  # the flood limit, per hour so that no window ends during a slow test
NOTICE = "Beaucoup de messages arrivent"  # flows.yaml's rate_limited notice
DANGER = "je veux mourir"


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    emptied(redis_url)
    async with losing_proxy(redis_url) as losing:
        yield losing


async def said(telegram: FakeTelegramAPI) -> list[str]:
    return [str(r.body.get("text", "")) for r in telegram.accepted()]


async def words(client: Client) -> list[str]:
    """The young person's messages in the transcript of their conversation, in order."""
    store = client.app[STORE]
    conversation = await store.find_active_conversation(ChannelName.TELEGRAM, str(CHAT))
    assert conversation is not None
    return [e.text for e in await store.transcript(conversation.id) if e.author is Author.USER]


def refused(client: Client, limit: str = "messages_per_conversation") -> float:
    return float(client.app[METRICS].rate_limited.labels(limit)._value.get())


async def test_a_burst_redelivered_is_not_a_flood_and_the_young_person_is_told_nothing_false(
    gateway: GatewayFactory, store_settings: Settings, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """Three messages (the limit), each redelivered (Telegram saw no answer in time): nothing refused, no notice,
    each kept once. A fourth, new message is still past the limit: refused and told once."""
    client = await gateway(telegram_settings.replace(store=store_settings.store, limit_messages_per_conversation=TYPED))
    burst = [telegram_update(900003001 + n, CHAT, text) for n, text in enumerate(["bonjour", "aide", "svp"])]
    for update in burst:
        assert await deliver(client, update) == 200
    for update in burst:  # redelivered: the same updates again
        assert await deliver(client, update) == 200
    await outbox_drained(client)
    assert not any(NOTICE in text for text in await said(telegram)), await said(telegram)
    assert refused(client) == 0
    assert await words(client) == ["bonjour", "aide", "svp"]

    assert await deliver(client, telegram_update(900003004, CHAT, "encore")) == 200  # a fourth: a flood
    assert await deliver(client, telegram_update(900003004, CHAT, "encore")) == 200  # and its redelivery
    await outbox_drained(client)
    assert sum(NOTICE in text for text in await said(telegram)) == 1
    assert await words(client) == ["bonjour", "aide", "svp"]


@pytest.mark.redis
@pytest.mark.parametrize("last", ["svp", DANGER])
async def test_a_message_whose_first_attempt_failed_is_kept_when_redelivered_at_the_limit(
    gateway: GatewayFactory, telegram_settings: Settings, telegram: FakeTelegramAPI, proxy: LosingProxy, last: str
) -> None:
    """The limit's last message (or, past it, words of danger within their own bound of one): its first attempt meets
    the store's outage (its claim never reaches Redis: 503), Telegram sends it again: it is recorded once, nobody
    told it was refused."""
    client = await gateway(
        telegram_settings.replace(
            store=proxy.url, limit_messages_per_conversation=TYPED, limit_risky_messages_per_conversation="1/hour"
        )
    )  # fmt: skip
    before = ["bonjour", "aide"] + (["merci"] if last == DANGER else [])
    for n, text in enumerate(before):
        assert await deliver(client, telegram_update(900004001 + n, CHAT, text)) == 200
    await outbox_drained(client)
    update = telegram_update(900004009, CHAT, last)
    proxy.lose(script_text("claim"), b"in:telegram:900004009", run=False)
    assert await deliver(client, update) == 503  # the store failed: Telegram redelivers
    assert proxy.lost == 1
    assert await deliver(client, update) == 200
    await outbox_drained(client)
    assert await words(client) == [*before, last]
    assert not any(NOTICE in text for text in await said(telegram)), await said(telegram)
    assert refused(client, "risky_messages_per_conversation") == 0
