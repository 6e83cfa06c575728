"""A timer whose handling fails is logged by conversation id and stays armed for a retry with backoff; the other
timers keep firing (docs/architecture.md, "Timers are never dropped"). The real dispatcher, timers, flows.yaml and
SQLite store; the fault is one conversation the store cannot read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.conversation import Conversation
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, Store, open_store
from gateway.timers import BASE_DELAY, Timers
from tests.conftest import ROOT, Clock


class Unreadable:
    """The real store, except that one conversation cannot be read (a bug in its stored form, say)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.broken: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        if conversation_id == self.broken:
            raise ValueError("cannot decode this conversation")
        return await self._store.get_conversation(conversation_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


async def test_a_failing_timer_is_logged_by_conversation_and_the_others_fire(
    store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    wrapped = Unreadable(store)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(cast(Store, wrapped), flows, clock=clock)
    ids = []
    for sender in ("zoe", "sam"):  # each gets the first question, and a reminder timer
        await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, sender, f"{sender}-0", "Bonjour"))
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, sender)
        assert conversation is not None
        ids.append(conversation.id)
    wrapped.broken = ids[0]
    before = [len(await store.transcript(i)) for i in ids]
    clock.advance(minutes=11)  # past the 10-minute reminder
    timers = Timers(dispatcher, cast(Store, wrapped), flows, Metrics(), clock=clock)
    assert await timers.fire_due() == 1
    assert f"timers: {ids[0]} bot_reminder failed (ValueError at" in caplog.text
    after = [len(await store.transcript(i)) for i in ids]
    assert after[0] == before[0] and after[1] > before[1]
    sam = await store.transcript(ids[1])
    assert sam[-1].author is Author.BOT
    wrapped.broken = None
    assert await timers.fire_due() == 0  # not before its backoff
    clock.advance(seconds=BASE_DELAY)
    assert await timers.fire_due() == 1  # retried, never dropped
    assert len(await store.transcript(ids[0])) > before[0]
