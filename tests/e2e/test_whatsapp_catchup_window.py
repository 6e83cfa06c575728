"""WhatsApp's catch-up at its limits: a gap longer than its window, two instances passing at once, a message Twilio
kept without what made it (its media gone, a shared location). The real app on SQLite or a real Redis, the fake
Twilio API keeping what a young person sent (``gateway/channels/whatsapp_catchup.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import CATCH_UP, GATE, STORE, create_app
from gateway.channels.whatsapp_catchup import MARK
from gateway.crypto import DataKeys
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Block, open_store
from gateway.testing import FakeTwilioAPI, twilio_form
from tests.e2e.channel_support import Client, GatewayFactory, RunningClock, eventually, gateway, offline
from tests.e2e.test_whatsapp import PHONE, deliver, whatsapp_settings
from tests.e2e.test_whatsapp_catchup import BOUND, OTHER, catching_up, counted, said
from tests.e2e.test_whatsapp_store_hold import own_redis

__all__ = ["catching_up", "gateway", "offline", "own_redis", "whatsapp_settings"]  # fixtures used below


def passes(client: Client, outcome: str | None = None) -> asyncio.Future[float]:
    """The catch-up's passes (of this outcome), awaitable for ``eventually``."""
    labels = {} if outcome is None else {"outcome": outcome}
    return asyncio.sleep(0, counted(client, "gateway_whatsapp_catchup_passes_total", **labels))


async def marked(settings: Settings, at: datetime) -> None:
    """The end of the catch-up's last good pass, as the store keeps it (the gateway stopped then)."""
    store = await open_store(settings.store, keys=DataKeys.from_settings(settings))
    try:
        await store.mark_present({MARK: at})
    finally:
        await store.close()


def gap_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "whatsapp catch-up" in r.getMessage() and "window" in r.getMessage()]


async def test_a_gateway_away_longer_than_the_window_says_what_it_could_not_catch_up(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway down 8 hours (a weekend's failed deploy), its window 6 hours: what Twilio received in the first
    two is not caught up. Before: not a word (the pass counted "ok", nothing logged), ops never knew to look at
    Twilio's console for the young people who wrote then."""
    now = datetime.now(UTC)
    await marked(catching_up, now - timedelta(hours=8))
    twilio.receive(OTHER, "Bonjour", at=now - timedelta(hours=7))  # before the window: not caught up
    twilio.receive(PHONE, "aidez moi", at=now - timedelta(hours=1))
    caplog.set_level(logging.INFO)
    client = await gateway(catching_up)

    await eventually(lambda: passes(client), BOUND)
    assert await said(client) == ["aidez moi"]
    assert counted(client, "gateway_whatsapp_catchup_passes_total", outcome="beyond_window") == 1
    [told] = gap_lines(caplog)
    assert told.levelno == logging.WARNING and "not caught up" in told.getMessage()
    assert "2h" in told.getMessage() or "1h5" in told.getMessage()  # the gap's length: about 2 hours
    assert PHONE.removeprefix("whatsapp:+") not in told.getMessage()

    caplog.clear()
    assert await client.app[CATCH_UP].catch_up() == 0  # the next pass reads from this one's end: said once
    assert not gap_lines(caplog)


async def test_a_restart_within_the_window_and_a_fresh_install_say_nothing(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A first pass with no mark (a fresh install: nothing was ever read, nothing missed) and one after a short
    stop read the window as before, without a WARNING."""
    caplog.set_level(logging.INFO)
    twilio.receive(PHONE, "Bonjour", at=datetime.now(UTC) - timedelta(hours=1))
    client = await gateway(catching_up)
    await eventually(lambda: passes(client), BOUND)
    assert counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok") == 1
    assert await said(client) == ["Bonjour"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "window" in r.getMessage()]


async def test_a_message_refused_for_a_block_is_not_counted_as_caught_up(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: counted in ``gateway_whatsapp_caught_up_total`` and the "processed" line, though the gate refused it."""
    client = await gateway(catching_up)
    await eventually(lambda: passes(client), BOUND)
    gate = client.app[GATE]
    key = gate.sender_key(ChannelName.WHATSAPP, PHONE)
    await client.app[STORE].put_block(Block(key, ChannelName.WHATSAPP, None, "abuse", "anne", datetime.now(UTC)))
    twilio.receive(PHONE, "encore moi")
    caplog.set_level(logging.INFO)

    assert await client.app[CATCH_UP].catch_up() == 0
    assert await said(client) == []
    assert counted(client, "gateway_whatsapp_caught_up_total") == 0
    assert not [r for r in caplog.records if "processed" in r.getMessage()]


async def test_a_message_the_flood_limit_refused_at_its_webhook_is_not_caught_up_after_its_notice(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """A young person's burst past the flood limit (3 a minute here, 20 by default): the webhook refuses the last
    two (not recorded, the calm notice sent) and answers 200. Found by ``bench/chaos.py --floods``. Before: the
    next catch-up pass (every few minutes, or after any 503) found them in Twilio's list, unprocessed, and
    processed them, held to no limit: refused and recorded both, a WhatsApp flood let in whole a pass later."""
    await refused_stays_refused(await gateway(catching_up.replace(limit_messages_per_conversation="3/minute")), twilio)


@pytest.mark.redis
async def test_a_message_the_flood_limit_refused_is_not_caught_up_with_the_counters_in_redis(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, own_redis: str
) -> None:
    """The same with the store and the counters in Redis (several instances: the catch-up's pass on another one)."""
    settings = catching_up.replace(store=own_redis, limit_messages_per_conversation="3/minute")
    await refused_stays_refused(await gateway(settings), twilio)


async def refused_stays_refused(client: Client, twilio: FakeTwilioAPI) -> None:
    await eventually(lambda: passes(client), BOUND)
    words = ["Bonjour", "ok", "d'accord", "merci", "attends"]
    for number, text in enumerate(words):
        form = twilio_form(PHONE, text, message_sid=f"SM{number:032d}")
        twilio.receive(PHONE, text, message_sid=form["MessageSid"])
        assert await deliver(client, form) == 200
    assert await said(client, PHONE) == words[:3]

    async def noticed() -> bool:
        return any("Beaucoup de messages" in r.body["Body"] for r in twilio.accepted() if r.body["To"] == PHONE)

    await eventually(noticed, BOUND)  # the young person is told their last messages did not reach the line

    assert await client.app[CATCH_UP].catch_up() == 0  # a pass, as after a 503 or the period's
    assert await said(client, PHONE) == words[:3]
    assert counted(client, "gateway_whatsapp_caught_up_total") == 0


@pytest.mark.redis
async def test_two_instances_passing_at_once_count_each_message_once(
    gateway: GatewayFactory,
    catching_up: Settings,
    twilio: FakeTwilioAPI,
    own_redis: str,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """Two instances' passes at once (the claim over while one still passes): each message processed once, and
    counted once across them. Before: both counted the messages they both found unprocessed."""
    shared = catching_up.replace(store=own_redis)
    first = await gateway(shared)
    second = await aiohttp_client(await create_app(shared, clock=RunningClock(), worker_poll_seconds=0.05))
    await eventually(lambda: passes(first), BOUND)
    await eventually(lambda: passes(second), BOUND)
    senders = [f"whatsapp:+3361234560{n}" for n in range(8)]
    for sender in senders:
        twilio.receive(sender, "Bonjour")

    caught = await asyncio.gather(first.app[CATCH_UP].catch_up(), second.app[CATCH_UP].catch_up())
    assert len(await said(first)) == len(senders)  # each processed once
    assert sum(caught) == len(senders)
    total = counted(first, "gateway_whatsapp_caught_up_total") + counted(second, "gateway_whatsapp_caught_up_total")
    assert total == len(senders)


async def entry_of(client: Client, sender: str) -> tuple[str, list[str]]:
    store = client.app[STORE]
    everything = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    [conversation] = [c for c in everything if c.sender == sender]
    [entry] = [e for e in await store.transcript(conversation.id) if e.author == Author.USER]
    return entry.text, [a.kind for a in entry.attachments]


@pytest.mark.parametrize("gone", ["list_404", "deleted"])
async def test_a_caught_up_photo_whose_media_twilio_no_longer_has_is_shown_as_something_sent(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI, gone: str
) -> None:
    """Before: the Media list's 404 failed every pass at that message (the messages after it never caught up); its
    media deleted, it came as an empty message, the listener seeing no sign a photo was sent."""
    client = await gateway(catching_up)
    await eventually(lambda: passes(client), BOUND)
    sid = twilio.receive(PHONE, "", media=[("ME" + "3" * 32, "image/jpeg")])
    twilio.receive(OTHER, "Bonjour")
    if gone == "list_404":
        twilio.fail_next(404, endpoint="Media.json")
    else:
        twilio.delete_media(sid)

    assert await client.app[CATCH_UP].catch_up() == 2
    assert await entry_of(client, PHONE) == ("", ["other"])
    assert await said(client, OTHER) == ["Bonjour"]


async def test_a_caught_up_shared_location_is_shown_as_something_sent(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """Twilio's list keeps a shared location without words, media or coordinates. Before: an empty message, taken
    as an answer the bot did not understand."""
    client = await gateway(catching_up)
    await eventually(lambda: passes(client), BOUND)
    assert await deliver(client, twilio_form(PHONE, "Bonjour")) == 200  # the welcome and the first question
    await twilio.wait_accepted(2, timeout=BOUND)
    twilio.receive(PHONE, "")

    assert await client.app[CATCH_UP].catch_up() == 1
    store = client.app[STORE]
    [conversation] = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    entries = [e for e in await store.transcript(conversation.id) if e.author == Author.USER]
    assert [(e.text, [a.kind for a in e.attachments]) for e in entries] == [("Bonjour", []), ("", ["other"])]
    replies = await twilio.wait_accepted(3, timeout=BOUND)
    assert "Je ne peux pas écouter" in replies[2].body["Body"]  # the bot's media_unread, as for a photo
