"""Nothing lost, nothing twice, inside one process: the claim of a dead owner lapses, a live owner's claim makes a
concurrent redelivery wait (then 503, never 200 unprocessed), and a processing cut short before the state was
saved repeats nothing when the provider redelivers (the real app on SQLite, a fake Graph API).

The crash is a store that refuses the final save once (what a process killed at that instant leaves behind:
transcript entries and outbox items written, the conversation's state not). The real multi-process faults
(``kill -9``) are in tests/test_faults.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from gateway.app import OUTBOX, STORE, create_app
from gateway.conversation import Conversation, Status
from gateway.errors import StoreError
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import ClaimState, DoneMark, Listener, Store, open_store
from gateway.testing import FakeGraphAPI
from tests.conftest import outbox_drained, password_hash
from tests.e2e.channel_support import Client, GatewayFactory, ListenerDesk, RunningClock, gateway, offline
from tests.e2e.test_messenger import PSID, deliver, message, messenger_settings, texts

__all__ = ["gateway", "messenger_settings", "offline"]  # fixtures used by the tests below


def key_of(mid: str) -> str:
    return inbound_key(Inbound(ChannelName.MESSENGER, PSID, mid))


async def settled_once(client: Client, graph: FakeGraphAPI) -> list[dict[str, Any]]:
    """Wait until every outgoing entry left; check Graph got each exactly once, in order. The transcript."""
    conversation = (await client.app[STORE].conversations_by_status(Status.BOT))[0]
    desk = ListenerDesk(client)
    await desk.login()
    outgoing = await desk.all_sent(conversation.id)
    await graph.wait_accepted(len(outgoing))
    await outbox_drained(client)  # a stray duplicate would be sent by now (there must be none)
    assert texts(graph.accepted()) == [e["text"] for e in outgoing]
    transcript: list[dict[str, Any]] = (await desk.conversation(conversation.id))["transcript"]
    return transcript


async def test_the_claim_of_an_instance_that_died_lapses_and_the_redelivery_is_processed(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger_settings.replace(inbound_claim_seconds=0.5))
    store = client.app[STORE]
    assert await store.claim(key_of("m_dead"), "instance-that-died", 0.5) is ClaimState.CLAIMED  # then killed

    # waited for the lease to lapse: 200 once it has; a 503 (the wait, bounded by a lease, ended on a busy machine
    # just before the lapse was seen) is redelivered, as Meta does, and never answered 200 unprocessed
    for _ in range(100):  # a bound, not a wait: each try waits for the lease itself
        status = await deliver(client, message("Bonjour", mid="m_dead"))
        if status != 503:
            break
    assert status == 200
    transcript = await settled_once(client, graph)
    assert [e["author"] for e in transcript].count("user") == 1
    assert any(e["author"] == "bot" for e in transcript)
    assert await store.claim(key_of("m_dead"), "later", 10) is ClaimState.DONE


async def test_a_redelivery_while_the_owner_is_processing_is_retried_not_acknowledged(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger_settings.replace(inbound_claim_seconds=0.5))
    store = client.app[STORE]

    async def live_owner() -> None:  # another instance, alive and still processing: it renews its claim
        while True:
            await asyncio.sleep(0.1)
            assert await store.claim(key_of("m_busy"), "live-owner", 0.5) is ClaimState.CLAIMED

    assert await store.claim(key_of("m_busy"), "live-owner", 0.5) is ClaimState.CLAIMED  # before the redelivery
    owner = asyncio.create_task(live_owner())
    try:
        assert await deliver(client, message("Bonjour", mid="m_busy")) == 503  # Meta will redeliver
        assert await store.conversations_by_status(Status.BOT) == []  # nothing processed meanwhile
    finally:
        owner.cancel()
    await store.release(key_of("m_busy"), "live-owner")  # the owner failed and gave it up
    assert await deliver(client, message("Bonjour", mid="m_busy")) == 200
    transcript = await settled_once(client, graph)
    assert [e["author"] for e in transcript].count("user") == 1


class SaveRefusedOnce:
    """The real store, except that the first save marking ``key`` processed fails: the process died there."""

    def __init__(self, store: Store, key: str) -> None:
        self._store, self._key = store, key
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        if done is not None and done.key == self._key and not self.refused:
            self.refused += 1
            raise StoreError("the instance died before saving the state")
        await self._store.save_conversation(conversation, done=done)


async def test_a_processing_cut_short_before_the_save_repeats_nothing_when_redelivered(
    aiohttp_client: Callable[..., Awaitable[Client]], messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    store = SaveRefusedOnce(await open_store(messenger_settings.store), key_of("m_1"))
    app = await create_app(messenger_settings, clock=RunningClock(), store=cast(Store, store), worker_poll_seconds=0.05)
    client = await aiohttp_client(app)
    # a supervisor: the test reads a conversation still in the bot (a listener may not)
    await store.add_listener(Listener("anne", password_hash(), capacity=3, supervisor=True))
    assert await deliver(client, message("Bonjour", mid="m_0")) == 200
    assert await deliver(client, message("Non", "no", mid="m_1")) == 503  # written, sent maybe, state not saved
    assert store.refused == 1
    desk = ListenerDesk(client)
    await desk.login()
    conversation = (await store.conversations_by_status(Status.BOT))[0]
    sent = await desk.all_sent(conversation.id)  # the replies written before the "crash" went out
    await graph.wait_accepted(len(sent))
    assert await deliver(client, message("Non", "no", mid="m_1")) == 200  # Meta's redelivery

    transcript = await settled_once(client, graph)  # each reply reached Graph once
    assert [e["author"] for e in transcript].count("user") == 2
    sent = texts(graph.accepted())
    assert len(sent) == len(set(sent)), sent  # no step of the flow was answered twice
    ids = [e["id"] for e in transcript]
    assert len(ids) == len(set(ids))
    conversation = (await store.conversations_by_status(Status.BOT))[0]
    assert conversation.engine  # the state was saved by the redelivery


async def test_a_processed_message_stays_a_duplicate_for_a_week(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger_settings)
    assert await deliver(client, message("Bonjour", mid="m_kept")) == 200
    later = datetime.now(UTC) + timedelta(days=7)  # Meta redelivers for days: still a duplicate
    assert await client.app[STORE].claim(key_of("m_kept"), "late", 10, now=later) is ClaimState.DONE


class MarkSentFailsOnce:
    """The real store, except that recording the first send fails once (redis-py out of connections, say)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_mark_sent(self, conversation_id: str, item_id: str, *args: Any, **kwargs: Any) -> bool:
        if not self.refused:
            self.refused += 1
            raise StoreError("redis: MaxConnectionsError: Too many connections")
        return await self._store.outbox_mark_sent(conversation_id, item_id, *args, **kwargs)


async def test_a_send_whose_record_failed_once_is_not_sent_again(
    aiohttp_client: Callable[..., Awaitable[Client]], messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    settings = messenger_settings.replace(outbox_lease_seconds=1)  # a resend would come at once
    store = MarkSentFailsOnce(await open_store(settings.store))
    clock = RunningClock()
    app = await create_app(settings, clock=clock, store=cast(Store, store), worker_poll_seconds=0.05)
    client = await aiohttp_client(app)
    # a supervisor: the test reads a conversation still in the bot (a listener may not)
    await store.add_listener(Listener("anne", password_hash(), capacity=3, supervisor=True))
    assert await deliver(client, message("Bonjour", mid="m_record")) == 200
    await settled_once(client, graph)
    clock.advance(seconds=2)  # past the lease: an item left unrecorded would be handed out again now
    assert await client.app[OUTBOX].deliver_due() == 0
    assert store.refused == 1
