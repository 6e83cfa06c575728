"""The supervision board's live figures (``stats.live_board``) at a peak: the counts from the queue's order and the
held status's index, the longest wait from the earliest arrivals' records. Until 2026-12-07 each reload of each board
(at a peak, at each queue event) read every waiting entry and every held record: 60 entries and 30 records here."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from gateway.console.stats import BOARD_EARLIEST, live_board
from gateway.conversation import Priority, Status
from gateway.messages import ChannelName
from gateway.store import Store
from tests.conftest import Clock
from tests.console.test_handback_crash import redis_store
from tests.console.test_take_crash import commands_during
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures


async def _queued(store: Store, clock: Clock, n: int, *, back_minutes: float | None = None) -> str:
    """A young person waiting since ``100 - n`` minutes; ``back_minutes``: handed back that long ago."""
    at = clock() - timedelta(minutes=100 - n)
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, f"sender-{n}", at)
    since = at if back_minutes is None else clock() - timedelta(minutes=back_minutes)
    await store.enqueue(conversation.id, "listeners", Priority.URGENT if n % 7 == 0 else Priority.NORMAL, at)
    await store.save_conversation(replace(conversation, status=Status.QUEUED, queue="listeners", waiting_since=since))
    return conversation.id


async def _held(store: Store, clock: Clock, n: int) -> str:
    conversation_id = await _queued(store, clock, 1000 + n)
    await store.take(conversation_id, "anne", clock())
    record = await store.get_conversation(conversation_id)
    assert record is not None
    await store.save_conversation(replace(record, status=Status.WITH_LISTENER, listener="anne"))
    return conversation_id


@pytest.mark.redis
async def test_the_boards_figures_read_neither_every_waiting_entry_nor_every_held_record(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    waiting = [await _queued(redis_store, clock, n) for n in range(60)]
    held = [await _held(redis_store, clock, n) for n in range(30)]
    named_waiting: set[str] = set()
    named_held: set[str] = set()
    board: dict[str, object] = {}

    async def read() -> None:
        board.update(await live_board(redis_store, 3, clock()))

    for command in await commands_during(redis_url, read()):
        words = " ".join(command.replace("{", " ").replace("}", " ").replace(":", " ").split()).split()
        named_waiting |= set(waiting) & set(words)
        named_held |= set(held) & set(words)
    assert board == {"waiting": 60, "urgent": 9, "in_progress": 30, "listeners_online": 3,
                     "longest_wait_seconds": 100 * 60}  # fmt: skip
    assert named_held == set(), len(named_held)  # until 2026-12-07: 30 (every held record)
    assert len(named_waiting) <= 2 * BOARD_EARLIEST + 1, len(named_waiting)  # the first, the earliest, the latest;
    # until 2026-12-07: 60


async def test_the_longest_wait_is_found_past_the_earliest_arrivals_handed_back(
    sqlite_store: Store, clock: Clock
) -> None:
    """The earliest arrivals were all handed back a minute ago: the longest wait is the next one's, read past them."""
    for n in range(BOARD_EARLIEST + 2):
        await _queued(sqlite_store, clock, n, back_minutes=1)
    await _queued(sqlite_store, clock, BOARD_EARLIEST + 2)
    await _queued(sqlite_store, clock, BOARD_EARLIEST + 3)
    board = await live_board(sqlite_store, 0, clock())
    assert board["longest_wait_seconds"] == (100 - BOARD_EARLIEST - 2) * 60
    assert board["waiting"] == BOARD_EARLIEST + 4
