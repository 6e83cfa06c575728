"""A listener typing while their conversation's channel is rate-limited: the typing hint waits with the replies (the
outbox's pause, gateway/outbox.py ``Outbox.paused``), it does not ask the provider during its limit. The real relay
(gateway/channels_wiring.py), outbox and SQLite store, the Messenger adapter against its fake Graph API on 127.0.0.1
(a real refusal pauses the channel), a recording Telegram adapter beside it (not paused).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
from limits.aio.storage import MemoryStorage

from gateway.channels.messenger import MessengerChannel
from gateway.channels_wiring import TypingRelay
from gateway.conversation import Conversation, Status
from gateway.events import Typing
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Outbound
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.ratelimit import RateLimits
from gateway.settings import Settings
from gateway.store import OutboxItem, Store
from gateway.store.codec import encode_outbound
from gateway.testing import SECRET_KEY, Failure, FakeGraphAPI
from tests.test_typing_relay import Recording, store

__all__ = ["store"]  # fixture used below


class RecordingTelegram(Recording):
    """The relay's recording channel (``tests/test_typing_relay.py``), on Telegram."""

    name = ChannelName.TELEGRAM


async def with_listener(store: Store, channel: ChannelName, sender: str) -> str:
    conversation = Conversation.start(channel, sender, datetime(2026, 3, 10, 13, tzinfo=UTC))
    conversation.status, conversation.listener = Status.WITH_LISTENER, "anne"
    await store.save_conversation(conversation)
    return conversation.id


async def test_a_listener_typing_on_a_rate_limited_channel_asks_the_provider_nothing(store: Store) -> None:
    """Graph refuses a reply (code 613, ``Retry-After`` 30): the Messenger channel is paused 30 s. A listener typing
    in a Messenger conversation then is not relayed (counted ``paused``), the provider asked nothing more; one typing
    in a Telegram conversation is shown. Until 2026-12-08 the hint went to Graph all the same, once every 4 s per
    conversation a listener typed in, each refused during the limit (and counted against the app's quota)."""
    zoe = await with_listener(store, ChannelName.MESSENGER, "psid-zoe")
    sam = await with_listener(store, ChannelName.TELEGRAM, "4242")
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        settings = Settings(messenger_api_url=graph.url, messenger_page_access_token="page-token")
        messenger, telegram = MessengerChannel(settings, session), RecordingTelegram()
        outbox = Outbox(store, {ChannelName.MESSENGER: messenger}, max_attempts=5)
        message = Outbound("r1", zoe, ChannelName.MESSENGER, "psid-zoe", "bonjour")
        await store.outbox_put(OutboxItem(message.id, zoe, encode_outbound(message), outbox.clock()))
        graph.fail_next(Failure(400, code=613, retry_after=30, description="Calls to this api have exceeded"))
        assert await outbox.deliver_due() == 1 and graph.accepted() == []  # refused: the channel paused
        assert outbox.paused(ChannelName.MESSENGER) and not outbox.paused(ChannelName.TELEGRAM)
        metrics = Metrics()
        claims = RateLimits(MemoryStorage(), {}, KeyedHash(SECRET_KEY), metrics)
        adapters = {ChannelName.MESSENGER: messenger, ChannelName.TELEGRAM: telegram}
        relay = TypingRelay(store, adapters, claims, metrics, paused=outbox.paused)  # type: ignore[arg-type]
        running = asyncio.create_task(relay.run())

        def counted(outcome: str) -> float:
            return metrics.registry.get_sample_value("gateway_typing_indicators_total", {"outcome": outcome}) or 0.0

        try:
            async with asyncio.timeout(10):  # the relay subscribes as it starts: type until it shows
                while not telegram.shown:
                    await store.publish(Typing(sam, "listener"))
                    await asyncio.sleep(0.02)
                await store.publish(Typing(zoe, "listener"))
                while counted("paused") + counted("failed") + counted("shown") < 2:  # zoe's dealt with
                    await asyncio.sleep(0.01)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        assert len(graph.requests_to("messages")) == 1  # the refused reply alone: no typing_on during the limit
        assert counted("paused") == 1 and counted("failed") == 0
