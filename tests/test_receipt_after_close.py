"""A Messenger read (or delivery) watermark that comes after the conversation ended: applied to the replies of the
sender's latest conversations still awaiting a receipt, never another young person's, each change told once.

Messenger's ``read`` names no message: every reply sent to that person up to its time was read, whichever of their
conversations it belonged to. Found by the console soak on 2026-12-07 (bench/README.md): a listener closed the
conversation just before the young person read the goodbye (where to turn), and the read, looked up on the sender's
active conversation only, found none: the goodbye showed "delivered" (here "sent") in the console and the
supervision for good (13 in one run). The real app on SQLite and on the session's Redis, signed webhooks from the
fake Graph API's page, a listener's take and close through the console's API.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.app import STORE
from gateway.events import DeliveryChanged, Event, Typing
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Delivery, Store, TranscriptEntry
from gateway.testing import FakeGraphAPI, messenger_body, messenger_read, signed_messenger
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, gateway, offline, running_clock
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url
from tests.store.test_contract_read_receipts import events_until
from tests.test_thanks_after_end import PSID, SECRET, closed_by_a_listener, messenger, new_conversation_after

__all__ = ["gateway", "messenger_on_redis", "offline", "redis_url"]  # fixtures used below

OTHER = "7012345678901300"  # another young person of the same page


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def line(request: pytest.FixtureRequest, settings: Settings, graph: FakeGraphAPI) -> Settings:
    """The Messenger channel on SQLite, or on the session's Redis (emptied first)."""
    if request.param == "redis":
        return messenger(request.getfixturevalue("messenger_on_redis"), graph)
    return messenger(settings, graph)


async def read(client: Client, sender: str) -> None:
    """A signed read watermark from ``sender``, a second after the app's now: processed when the webhook answers."""
    watermark = int(running_clock(client)().timestamp() * 1000) + 1000
    raw, headers = signed_messenger(SECRET, messenger_body([messenger_read(sender, watermark)]))
    response = await client.post("/webhooks/messenger", data=raw, headers=headers)
    assert response.status == 200, await response.text()


async def outgoing(store: Store, conversation_id: str) -> list[TranscriptEntry]:
    return [e for e in await store.transcript(conversation_id) if e.author in (Author.BOT, Author.LISTENER)]


async def told(store: Store, subscription: Any) -> list[Event]:
    """What the console was told until now (a sentinel published last)."""
    sentinel = Typing("sentinel", "listener")
    await store.publish(sentinel)
    return await events_until(subscription, sentinel)


async def test_a_read_after_a_listeners_close_marks_the_goodbye_read_once(
    gateway: GatewayFactory, line: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await gateway(line)
    store = client.app[STORE]
    desk, ended = await closed_by_a_listener(client)
    assert await store.find_active_conversation(ChannelName.MESSENGER, PSID) is None
    replies = await outgoing(store, ended)
    assert replies and all(e.delivery is Delivery.SENT for e in replies), [e.delivery for e in replies]

    events = await store.subscribe()
    try:
        await read(client, OTHER)  # another young person's read: never theirs
        assert await told(store, events) == []
        for _ in range(2):  # Messenger sends it again: nothing changes twice
            await read(client, PSID)
        published = await told(store, events)
    finally:
        await events.aclose()
    # before 2026-12-07: nothing (the read looked for an active conversation), every reply, the goodbye with where
    # to turn among them, left "sent" for good
    assert [e.delivery for e in await outgoing(store, ended)] == [Delivery.READ] * len(replies)
    assert published == [DeliveryChanged(ended, e.id, Delivery.READ) for e in replies]
    shown = (await desk.conversation(ended))["transcript"]
    assert {e["delivery"] for e in shown if e["author"] in ("bot", "listener")} == {"read"}
    assert PSID not in caplog.text and OTHER not in caplog.text


async def test_a_read_after_the_next_conversation_opened_marks_both(gateway: GatewayFactory, line: Settings) -> None:
    """The young person read the goodbye, then wrote again: their new message may come before the read (two
    webhooks, in any order). The read covers the replies of both conversations."""
    client = await gateway(line)
    store = client.app[STORE]
    _, ended = await closed_by_a_listener(client)
    following = await new_conversation_after(client, 30, "il recommence ce soir", "m_again")
    assert following != ended
    await outbox_drained(client)
    await read(client, PSID)
    for conversation_id in (ended, following):  # before 2026-12-07: the ended one's left "sent"
        assert {e.delivery for e in await outgoing(store, conversation_id)} == {Delivery.READ}, conversation_id
