"""A provider that rate-limits pauses its whole channel, not one conversation (docs/architecture.md, "A provider's
rate limit"): the real outbox worker (`Outbox.run`), the SQLite store, each channel's real adapter against its fake
API on 127.0.0.1 answering as the platform does when it rate-limits (Telegram's 429 with ``retry_after``, Graph's
code 613, Twilio's 20429), and another channel beside it that keeps flowing.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.channels.telegram import TelegramChannel
from gateway.channels.whatsapp import WhatsAppChannel
from gateway.dispatcher import URGENT_AHEAD
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, Store
from gateway.store.codec import encode_outbound
from gateway.testing import (
    ACCOUNT_SID,
    BOT_TOKEN,
    WHATSAPP_FROM,
    Failure,
    FakeAPI,
    FakeGraphAPI,
    FakeTelegramAPI,
    FakeTwilioAPI,
)
from tests.conftest import Clock
from tests.e2e.channel_support import eventually
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_outbox import any_store, clock

__all__ = ["any_store", "clock", "redis_cluster_url", "redis_url", "store_url"]  # fixtures

# PTB 22 warns when it builds a RetryAfter (its retry_after becomes a timedelta in v23)
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")

LIMITS = {  # how each platform says "too many requests"
    ChannelName.TELEGRAM: Failure(429, retry_after=0, description="Too Many Requests: retry after"),
    ChannelName.MESSENGER: Failure(400, code=613, description="Calls to this api have exceeded the rate limit"),
    ChannelName.WHATSAPP: Failure(429, code=20429, description="Too Many Requests"),
}
RECIPIENTS = {ChannelName.TELEGRAM: "10{n:03d}", ChannelName.MESSENGER: "psid-{n}",
              ChannelName.WHATSAPP: "whatsapp:+33600000{n:03d}"}  # fmt: skip
OTHERS = 10


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


def texts(fake: FakeAPI, channel: ChannelName) -> list[str]:
    key = {ChannelName.TELEGRAM: "text", ChannelName.WHATSAPP: "Body"}.get(channel)
    return [r.body[key] if key else r.body["message"]["text"] for r in fake.accepted()]


@pytest.mark.parametrize("limited", list(LIMITS))
async def test_a_rate_limit_pauses_its_channel_without_asking_again_nor_spending_tries(
    store: Store, limited: ChannelName
) -> None:
    """One reply is refused by the provider's rate limit; the ten replies of other conversations of that channel
    written meanwhile are not sent before the pause ends (the provider is asked nothing during it: until 2026-12-04
    each was sent and refused, each spending one of its tries, so a rate limit outlasting them failed every waiting
    reply for good), then go once each; no try spent on them; another channel's reply flows during the pause."""
    async with (
        FakeTelegramAPI() as telegram, FakeGraphAPI() as graph, FakeTwilioAPI() as twilio,
        aiohttp.ClientSession() as session,
    ):  # fmt: skip
        settings = Settings(
            telegram_api_url=telegram.url, telegram_bot_token=BOT_TOKEN, messenger_api_url=graph.url,
            messenger_page_access_token="page-token", twilio_api_url=twilio.url, twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token="twilio-auth-token", twilio_whatsapp_from=WHATSAPP_FROM,
        )  # fmt: skip
        whatsapp = WhatsAppChannel(settings, session)
        await whatsapp.start()
        channels = {
            ChannelName.TELEGRAM: TelegramChannel(settings, session),
            ChannelName.MESSENGER: MessengerChannel(settings, session),
            ChannelName.WHATSAPP: whatsapp,
        }
        fakes: dict[ChannelName, FakeAPI] = {
            ChannelName.TELEGRAM: telegram, ChannelName.MESSENGER: graph, ChannelName.WHATSAPP: twilio
        }  # fmt: skip
        fake = fakes[limited]
        # Graph and Twilio tell no retry_after: the pause is the refused reply's backoff, made long enough here to
        # outlast the writing of the other replies on a busy machine
        sending = Outbox(store, channels, base_delay=6.0, max_attempts=3, poll_seconds=60)  # kicks and retries only

        async def reply(item_id: str, channel: ChannelName, n: int) -> None:
            message = Outbound(item_id, f"c-{item_id}", channel, RECIPIENTS[channel].format(n=n), f"texte {item_id}")
            await store.outbox_put(OutboxItem(item_id, f"c-{item_id}", encode_outbound(message), sending.clock()))
            sending.kick()

        fake.rate_limit(6, LIMITS[limited])
        worker = asyncio.create_task(sending.run())
        try:
            await reply("first", limited, 0)
            await eventually(lambda: _attempted(store, "first"), timeout=10)  # refused, rescheduled: the pause begun
            for n in range(1, OTHERS + 1):
                await reply(f"other-{n}", limited, n)
            other = next(channel for channel in LIMITS if channel != limited)
            await reply("elsewhere", other, 99)
            await fakes[other].wait_accepted(1, timeout=10)  # the other channel is not paused
            accepted = await fake.wait_accepted(OTHERS + 1, timeout=30)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await whatsapp.stop()
        assert fake.limited == 1  # the provider was asked nothing more during its rate limit
        sent = texts(fake, limited)
        assert sorted(sent) == sorted(["texte first", *(f"texte other-{n}" for n in range(1, OTHERS + 1))])
        assert len(accepted) == OTHERS + 1  # each once

        def counted(result: str) -> float | None:
            labels = {"channel": limited.value, "result": result}
            return sending.metrics.registry.get_sample_value("gateway_outbox_deliveries_total", labels)

        assert counted("retry") == 1 and counted("paused") == OTHERS  # the others spent no try: paused, told apart


async def _attempted(store: Store, item_id: str) -> bool:
    item = await store.outbox_get(f"c-{item_id}", item_id)
    return item is not None and item.attempts >= 1


async def test_once_a_rate_limit_ends_a_risky_turns_replies_go_before_the_backlog(
    any_store: Store, clock: Clock
) -> None:
    """Messenger rate-limits (code 613) at a peak: every claimed reply of the channel is given back due at the pause's
    end, all at the same time. A risky turn's replies (due a day early when written: ``outbox_item(urgent=True)``) and
    its conversation's earlier reply stay urgent: once the pause ends they are the first handed out, before the
    backlog of ordinary replies, in order, once each; never during the pause, and nothing claimed again and again
    meanwhile. Until 2026-12-05 the pause's reschedule dropped their urgency: they waited behind the backlog (its
    conversations sorting first on Redis, the ties of one time going by name). Passes with the clock under the test's
    control: orders are compared, never durations."""
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        settings = Settings(messenger_api_url=graph.url, messenger_page_access_token="page-token")
        sending = Outbox(any_store, {ChannelName.MESSENGER: MessengerChannel(settings, session)}, clock=clock,
                         base_delay=6.0, max_attempts=5)  # fmt: skip

        async def reply(conversation: str, n: int, *, urgent: bool = False) -> None:
            message = Outbound(f"{conversation}-r{n}", conversation, ChannelName.MESSENGER, f"psid-{conversation}",
                               f"{conversation} reply {n}")  # fmt: skip
            ahead = clock() - URGENT_AHEAD if urgent else None
            await any_store.outbox_put(OutboxItem(message.id, conversation, encode_outbound(message), clock(), ahead))

        graph.fail_next(LIMITS[ChannelName.MESSENGER])
        await reply("first", 1)
        assert await sending.deliver_due() == 1 and graph.accepted() == []  # refused: the channel paused 6 s
        await reply("z", 1)  # said "Bonjour" in the backlog, then the words of danger
        for n in range(6):
            await reply(f"o{n}", 1)
        await reply("z", 2, urgent=True)  # the interrupt: 3114
        await reply("z", 3, urgent=True)
        assert await sending.deliver_due() == 9  # every one claimed, none sent: deferred to the pause's end
        assert graph.accepted() == [] and graph.limited == 0
        clock.advance(seconds=5)
        assert await sending.deliver_due() == 0  # nothing handed out again during the pause
        clock.advance(seconds=2)
        assert await sending.deliver_due(limit=1) == 3  # the pause over: the risky conversation's line first
        assert [r.body["message"]["text"] for r in graph.accepted()] == ["z reply 1", "z reply 2", "z reply 3"]
        assert await sending.deliver_due() == 7  # then the backlog
        assert sorted(r.body["recipient"]["id"] for r in graph.accepted()) == sorted(
            ["psid-first", *(["psid-z"] * 3), *(f"psid-o{n}" for n in range(6))]
        )  # each once
