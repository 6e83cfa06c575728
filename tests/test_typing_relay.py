"""The typing relay (gateway/channels_wiring.py): a listener's keystrokes show "typing…" in the young person's app
at most once per conversation every few seconds. The real relay and SQLite store (its events); the channel is a
small recording adapter. Deterministic: events reach the relay in order, so once a later conversation's
indicator is shown, every earlier keystroke has been dealt with.

The whole path through the console API and a fake provider: tests/e2e/test_messenger.py, test_telegram.py; two
instances on one Redis, one indicator: tests/test_typing_instances.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage

from gateway.channels_wiring import TypingRelay
from gateway.conversation import Conversation, Status
from gateway.events import Typing
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Outbound
from gateway.metrics import Metrics
from gateway.ratelimit import RateLimits
from gateway.store import Store, open_store
from gateway.testing import SECRET_KEY


class Recording:
    """A channel that shows a typing indicator, and records to whom."""

    name = ChannelName.MESSENGER

    def __init__(self) -> None:
        self.shown: list[str] = []

    async def typing(self, recipient: str) -> None:
        self.shown.append(recipient)

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        raise AssertionError("the relay never sends messages")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


async def with_listener(store: Store, sender: str) -> str:
    conversation = Conversation.start(ChannelName.MESSENGER, sender, datetime(2026, 3, 10, 13, tzinfo=UTC))
    conversation.status, conversation.listener = Status.WITH_LISTENER, "anne"
    await store.save_conversation(conversation)
    return conversation.id


async def until(condition: object) -> None:
    async with asyncio.timeout(10):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_keystrokes_in_quick_succession_show_one_indicator(store: Store) -> None:
    zoe, sam = await with_listener(store, "psid-zoe"), await with_listener(store, "psid-sam")
    channel, metrics = Recording(), Metrics()
    claims = RateLimits(MemoryStorage(), {}, KeyedHash(SECRET_KEY), metrics)  # one instance: its claims in memory
    adapters = {ChannelName.MESSENGER: channel}
    relay = asyncio.create_task(TypingRelay(store, adapters, claims, metrics).run())  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):  # the relay subscribes as it starts: type until it shows
            while not channel.shown:
                await store.publish(Typing(zoe, "listener"))
                await asyncio.sleep(0.02)
        for _ in range(3):
            await store.publish(Typing(zoe, "listener"))
        await store.publish(Typing(sam, "user"))  # the young person typing: nothing to relay
        await store.publish(Typing(sam, "listener"))
        await until(lambda: "psid-sam" in channel.shown)
    finally:
        relay.cancel()
    assert channel.shown == ["psid-zoe", "psid-sam"]
