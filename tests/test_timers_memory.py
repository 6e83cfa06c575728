"""What an instance's timers remember of a failed handling (its failures in a row, the firing a retry completes) is
forgotten once the timer is no longer armed as the failure left it: handled by another instance, or cancelled.
Found by the memory review (2026-12-05): both were kept for the process's life, one entry for each such timer.
The real dispatcher, timers, flows.yaml and SQLite store; the fault is conversations the store cannot read."""

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
from gateway.store import Store, open_store
from gateway.timers import BASE_DELAY, Timers
from tests.conftest import ROOT, Clock


class Unreadable:
    """The real store, except that some conversations cannot be read (a bug in their stored form, say)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.broken: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        if conversation_id in self.broken:
            raise ValueError("cannot decode this conversation")
        return await self._store.get_conversation(conversation_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


def remembered(timers: Timers) -> int:
    return len(timers._failures) + len(timers._firings)


async def test_a_failed_timer_handled_elsewhere_or_cancelled_is_forgotten(store: Store, clock: Clock) -> None:
    wrapped = Unreadable(store)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(cast(Store, wrapped), flows, clock=clock)
    ids = []
    for sender in ("zoe", "sam", "lou"):  # each gets the first question, and a reminder timer
        await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, sender, f"{sender}-0", "Bonjour"))
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, sender)
        assert conversation is not None
        ids.append(conversation.id)
    wrapped.broken = set(ids[:2])
    clock.advance(minutes=11)  # past the 10-minute reminder
    here = Timers(dispatcher, cast(Store, wrapped), flows, Metrics(), clock=clock)
    assert await here.fire_due() == 1  # lou's; zoe's and sam's failed
    assert remembered(here) == 4
    wrapped.broken = set()
    clock.advance(seconds=BASE_DELAY)
    elsewhere = Timers(dispatcher, cast(Store, wrapped), flows, Metrics(), clock=clock)
    await store.cancel_timers(ids[1])  # sam's conversation: its timers cancelled (it ended, say)
    assert await elsewhere.fire_due() == 1  # zoe's, retried by another instance
    clock.advance(seconds=1)
    assert await here.fire_due() == 0
    assert remembered(here) == 0
