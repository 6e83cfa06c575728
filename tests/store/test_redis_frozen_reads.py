"""A process frozen (SIGSTOP, a VM paused) with Redis's answer to a call waiting in its socket, past the socket
timeout: once resumed, the read's deadline and the answer are both due, and the answer must win on the paths that do
not go through the batcher (``redis_batch.py`` reads its own): redis-py's own reads, a transaction's, every command
of a Cluster client. Here the event loop is held rather than the process stopped (the same to the loop: nothing of it
runs meanwhile, both clocks move on); Redis is stopped for the milliseconds it takes to hold the call at its end."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.store.conftest import emptied
from tests.test_freeze import unread, until_true

SOCKET_TIMEOUT = 1.0


@pytest.fixture(params=["redis", "redis-cluster"])
async def frozen_store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, str]]:
    url = emptied(request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url"))
    store = await open_store(url, keys=store_keys(url), socket_timeout=SOCKET_TIMEOUT,
                             cluster=request.param == "redis-cluster")  # fmt: skip
    try:
        yield store, url
    finally:
        await store.close()


async def frozen_with_the_answer_waiting(url: str, making: Callable[[], Awaitable[None]]) -> None:
    """A call sent while Redis is stopped, then the loop held (Redis resumed: its answer waiting in the socket) past
    the socket timeout by two seconds, as a process frozen between its write and its read."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    async with Redis.from_url(url) as client:
        pid = int((await client.info("server"))["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        call = asyncio.ensure_future(making())
        await until_true(lambda: unread(port, at_redis=True) > 0, "the call never left")
    finally:
        os.kill(pid, signal.SIGCONT)
    held_until = time.monotonic() + 10.0
    while not unread(port, at_redis=False) and time.monotonic() < held_until:  # the loop held: nothing of it runs
        time.sleep(0.001)
    assert unread(port, at_redis=False), "Redis never answered"
    time.sleep(SOCKET_TIMEOUT + 2.0)  # the freeze itself, past the read's deadline
    await call


@pytest.mark.redis
async def test_a_transaction_redis_ran_while_the_process_was_frozen_is_not_taken_for_failed(
    frozen_store: tuple[Store, str],
) -> None:
    """A transaction (``pipeline(transaction=True)``: ``note_read_late``; on a Cluster, every call) whose answer came
    during the freeze is read on resume, not taken for a StoreError (its connection dropped) although it ran."""
    store, url = frozen_store
    at = datetime.now(UTC)
    await store.note_read_late("c-warm", at)  # the connections made and checked: only the call is held
    await frozen_with_the_answer_waiting(
        url, lambda: store.note_read_late("c-frozen", at)
    )  # before 2026-12-08: StoreError (Timeout reading from ...)
