"""A Messenger read (or delivery) watermark that comes after the conversation ended: applied to the replies of the
sender's latest conversations still awaiting a receipt, never another young person's, each change told once.

Messenger's ``read`` names no message: every reply sent to that person up to its time was read, whichever of their
conversations it belonged to. Found by the console soak on 2026-12-07 (bench/README.md): a listener closed the
conversation just before the young person read the goodbye (where to turn), and the read, looked up on the sender's
active conversation only, found none: the goodbye showed "delivered" (here "sent") in the console and the
supervision for good (13 in one run). The real app on SQLite, on the session's Redis and on its one-node Cluster
(since 2026-12-07), signed webhooks from the fake Graph API's page, a listener's take and close through the console's
API. A watermark's cost on Redis is pinned: every command one receipt sends, read on the wire.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.app import FLOWS, STORE
from gateway.dispatcher import Dispatcher
from gateway.events import DeliveryChanged, Event, Typing
from gateway.messages import ChannelName, Receipt
from gateway.settings import Settings
from gateway.store import Author, Delivery, Store, TranscriptEntry, open_store
from gateway.testing import (
    FakeGraphAPI,
    messenger_body,
    messenger_message,
    messenger_read,
    signed_messenger,
    store_keys,
)
from tests.conftest import outbox_drained
from tests.cutting_proxy import cutting_proxy
from tests.e2e.channel_support import Client, GatewayFactory, ListenerDesk, gateway, offline, running_clock
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.store.test_contract_read_receipts import events_until
from tests.test_thanks_after_end import PSID, SECRET, WALK, closed_by_a_listener, messenger, new_conversation_after

__all__ = ["gateway", "offline", "redis_cluster_url", "redis_url", "store_url"]  # fixtures used below

OTHER = "7012345678901300"  # another young person of the same page


@pytest.fixture
def line(store_url: str, settings: Settings, graph: FakeGraphAPI) -> Settings:
    """The Messenger channel on SQLite, on the session's Redis or on its one-node Cluster (emptied first: the
    store's contract fixture, ``store_url``; until 2026-12-07 the Cluster was left out)."""
    return messenger(settings.replace(store=store_url), graph)


async def read(client: Client, sender: str) -> None:
    """A signed read watermark from ``sender``, a second after the app's now: processed when the webhook answers."""
    watermark = int(running_clock(client)().timestamp() * 1000) + 1000
    raw, headers = signed_messenger(SECRET, messenger_body([messenger_read(sender, watermark)]))
    response = await client.post("/webhooks/messenger", data=raw, headers=headers)
    assert response.status == 200, await response.text()


async def closed_for(client: Client, sender: str) -> str:
    """``sender``'s own Messenger walk by day, taken then closed by a listener: the ended conversation's id."""
    for number, (text, payload) in enumerate(WALK):
        raw, headers = signed_messenger(
            SECRET, messenger_body([messenger_message(sender, text, f"m_{sender}_{number}", payload)])
        )
        response = await client.post("/webhooks/messenger", data=raw, headers=headers)
        assert response.status == 200, await response.text()
    desk = ListenerDesk(client)
    await desk.login()
    waiting = await desk.first_waiting()
    await desk.take(waiting["id"])
    await outbox_drained(client)
    response = await client.post(f"/api/conversations/{waiting['id']}/close", json={"outcome": "cyberbullying"})
    assert response.status == 200, await response.text()
    await outbox_drained(client)
    return str(waiting["id"])


async def outgoing(store: Store, conversation_id: str) -> list[TranscriptEntry]:
    return [e for e in await store.transcript(conversation_id) if e.author in (Author.BOT, Author.LISTENER)]


async def told(store: Store, subscription: Any) -> list[Event]:
    """The delivery changes the console was told until now (a sentinel published last). Until 2026-12-07 every event:
    the presence's own (``ListenersOnline``, on its period) came in between on a busy machine and failed the test."""
    sentinel = Typing("sentinel", "listener")
    await store.publish(sentinel)
    return [e for e in await events_until(subscription, sentinel) if isinstance(e, DeliveryChanged)]


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


async def test_a_second_young_persons_read_marks_only_their_own_ended_conversation(
    gateway: GatewayFactory, line: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Two young people of the same page, each with a conversation a listener closed: each one's read marks their
    own replies only (added 2026-12-07: the check above had the other person without any conversation, so it held
    whatever the lookup returned)."""
    caplog.set_level(logging.DEBUG)
    client = await gateway(line)
    store = client.app[STORE]
    _, first = await closed_by_a_listener(client)
    second = await closed_for(client, OTHER)
    assert first != second
    for conversation_id in (first, second):
        assert {e.delivery for e in await outgoing(store, conversation_id)} == {Delivery.SENT}, conversation_id
    await read(client, OTHER)
    assert {e.delivery for e in await outgoing(store, second)} == {Delivery.READ}
    assert {e.delivery for e in await outgoing(store, first)} == {Delivery.SENT}  # never the first's
    await read(client, PSID)
    assert {e.delivery for e in await outgoing(store, first)} == {Delivery.READ}
    assert PSID not in caplog.text and OTHER not in caplog.text


@pytest.mark.redis
@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_a_watermarks_commands_on_redis_are_a_fixed_few(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, url: str, request: pytest.FixtureRequest
) -> None:
    """One read watermark after the close, the dispatcher on its own store behind a proxy that names every command
    it sends (the app's own background work on its own connections, not counted): a fixed few, whatever the
    transcript's length. Pinned 2026-12-07 so that a change which reads transcripts or scans is seen here."""
    from tests.store.conftest import emptied

    redis: str = emptied(request.getfixturevalue(url))
    client = await gateway(messenger(settings.replace(store=redis), graph))
    _, ended = await closed_by_a_listener(client)
    clock = running_clock(client)
    async with cutting_proxy(redis) as proxy:
        store = await open_store(proxy.url, keys=store_keys(redis))
        try:
            dispatcher = Dispatcher(store, client.app[FLOWS], clock=clock)

            async def counted(status: str) -> list[str]:
                watermark = int(clock().timestamp() * 1000) + 1000
                before = len(proxy.commands)
                await dispatcher.handle_receipt(Receipt(ChannelName.MESSENGER, PSID, status, watermark=watermark))
                return [c for c in proxy.commands[before:] if c != "SCRIPT"]  # a script's first load, once

            await counted("delivered")  # the scripts loaded, the replies delivered
            read_commands = await counted("read")
            replayed = await counted("read")
        finally:
            await store.close()
    replies = await outgoing(client.app[STORE], ended)
    assert {e.delivery for e in replies} == {Delivery.READ}
    # the active address, the person's index (one page), its one record, one script of the conversation's slot
    # (``mark_until``: the replies awaiting a receipt alone), then one event per reply changed; a replay: no event
    lookup = ["GET", "ZREVRANGEBYSCORE", "GET", "EVALSHA"]
    assert read_commands == lookup + ["PUBLISH"] * len(replies), read_commands
    assert replayed == lookup, replayed
