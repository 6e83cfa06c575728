"""A send never starts on a lease with less than a third of it ahead (``Outbox._holds``): another worker may claim
the item any moment, and send it too.

Found by ``tests/test_redis_silent.py``'s silent path longer than the lease (a reply sent three times, one more than
its bound, about one run in four under load): a claim sent during the silence went out on an idle connection that
the silence had made dead; its health check's PING waited the socket timeout (4 s there, more than the 3 s lease),
then a fresh connection carried the claim to Redis with the time and lease end it was made with. Redis handed out
the items leased to a time already past; the worker sent them, and its next claim, a poll later with the time of
then, found them due and sent them again. A pool waiting for a free connection, or a path that thaws (a frozen Redis
host), delays a claim the same way. The same holds for a run's next item whose renewals failed while the run's
earlier send was out: its lease is over, and the run would send it from what it claimed long ago.

Each test holds what the delay holds (the claim on its way to the store; the renewals failing) with the store
wrapped, on SQLite, Redis and Cluster, and a second worker on the same clock claims in between, as the worker's own
next claim did. The stores, the outbox and the clock's reading are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from gateway.errors import StoreError
from gateway.messages import Outbound
from gateway.metrics import Metrics
from gateway.outbox import Outbox, OutboxRoles
from gateway.store import OutboxItem, OutboxStatus, Store
from gateway.store.codec import encode_outbound
from tests.conftest import Clock
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_outbox import TG, any_store, clock

__all__ = ["any_store", "clock", "redis_cluster_url", "redis_url", "store_url"]  # fixtures

LEASE = 3  # seconds: the first renewal comes a second (real time) after a claim; the leases end by the test's clock


class Sends:
    """A worker's channel: what it sent goes into ``sent`` (shared by the workers); a send of an id in ``waits``
    enters (``entered[id]`` set) then waits for ``go[id]``."""

    def __init__(self, sent: list[str], *waits: str) -> None:
        self.sent = sent
        self.entered = {i: asyncio.Event() for i in waits}
        self.go = {i: asyncio.Event() for i in waits}

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        self.sent.append(message.id)
        if message.id in self.entered:
            self.entered[message.id].set()
            await self.go[message.id].wait()
        return f"provider-{message.id}-{len(self.sent)}"


class Slow:
    """The real store, except that every lease renewal fails (it would land too late: the store answers nothing of
    the outbox in time), and with ``hold_claim`` a claim waits on its way to the store (``held`` set) until ``go``:
    the time and lease end it carries are those of when it was made."""

    def __init__(self, store: Store, *, hold_claim: bool = False) -> None:
        self._store, self.hold_claim = store, hold_claim
        self.held, self.go = asyncio.Event(), asyncio.Event()
        self.renewals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_due(self, *args: Any, **kwargs: Any) -> list[OutboxItem]:
        if self.hold_claim:
            self.held.set()
            await self.go.wait()
        return cast(list[OutboxItem], await self._store.outbox_due(*args, **kwargs))

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        self.renewals += 1
        raise StoreError("the store is unreachable")


async def put(store: Store, clock: Clock, *ids: str) -> None:
    """A message's replies in conversation ``c1``: one run."""
    for item_id in ids:
        message = Outbound(item_id, "c1", TG, "424242", f"texte {item_id}")
        await store.outbox_put(OutboxItem(item_id, "c1", encode_outbound(message), created_at=clock()))


def worker(store: Any, channel: Sends, clock: Callable[[], datetime], metrics: Metrics | None = None) -> Outbox:
    return Outbox(cast(OutboxRoles, store), {TG: channel}, clock=clock, lease_seconds=LEASE, metrics=metrics)


async def until_done_or(task: asyncio.Task[int], entered: asyncio.Event) -> None:
    """Until ``task`` ended or a send of it entered the provider."""
    waiting = asyncio.create_task(entered.wait())
    await asyncio.wait([task, waiting], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    assert task.done() or entered.is_set(), "the first worker neither sent nor ended within 10 s"


async def test_a_claim_answered_after_its_lease_ended_sends_nothing_and_the_next_claim_sends_it_once(
    any_store: Store, clock: Clock
) -> None:
    """The claim reaches the store a lease and a second after it was made: the store hands out the reply under a
    lease that ended already (its renewal, tried at once, lands too late). The worker sends nothing of it; another
    worker's claim (the same worker's next, in the silent-path test) sends it, once. Before: sent by both,
    ``['r1', 'r1']``."""
    sent: list[str] = []
    late = Slow(any_store, hold_claim=True)
    metrics = Metrics()
    first_channel = Sends(sent, "r1")  # the first worker's send would wait there while the second claims
    first = worker(late, first_channel, clock, metrics)
    second = worker(any_store, Sends(sent), clock)
    await put(any_store, clock, "r1")

    claiming = asyncio.create_task(first.deliver_due())
    await asyncio.wait_for(late.held.wait(), 10)
    clock.advance(seconds=LEASE + 1)
    late.go.set()  # the claim runs with its time of then: the lease it gives ended a second ago
    await until_done_or(claiming, first_channel.entered["r1"])
    assert await second.deliver_due() == 1
    first_channel.go["r1"].set()
    await claiming
    assert sent == ["r1"]
    found = await any_store.outbox_get("c1", "r1")
    assert found is None or found.status is OutboxStatus.SENT
    assert metrics.registry.get_sample_value("gateway_outbox_lease_short_total") == 1


async def test_a_runs_next_reply_whose_lease_ran_out_meanwhile_is_left_to_the_next_claim(
    any_store: Store, clock: Clock
) -> None:
    """A run of two: the first send outlasts the lease while every renewal fails (tried again and again); once it
    is accepted (and recorded: nobody claimed it meanwhile), the run's second reply is left to the next claim
    instead of sent from the claim of a lease ago while another worker may claim it too. Before: sent by both,
    ``['r1', 'r2', 'r2']``."""
    sent: list[str] = []
    failing = Slow(any_store)
    first_channel = Sends(sent, "r1", "r2")
    first = worker(failing, first_channel, clock)
    second = worker(any_store, Sends(sent), clock)
    await put(any_store, clock, "r1", "r2")

    delivering = asyncio.create_task(first.deliver_due())
    await asyncio.wait_for(first_channel.entered["r1"].wait(), 10)
    async with asyncio.timeout(10):  # the first renewal, a third of the lease after the claim (real time), fails
        while not failing.renewals:
            await asyncio.sleep(0.02)
    clock.advance(seconds=LEASE + 1)
    first_channel.go["r1"].set()  # accepted: recorded under the claim's lease, which nobody took over
    await until_done_or(delivering, first_channel.entered["r2"])
    assert await second.deliver_due() == 1  # the second reply, its lease over
    first_channel.go["r2"].set()
    await delivering
    assert sent == ["r1", "r2"]
    for item_id in ("r1", "r2"):
        found = await any_store.outbox_get("c1", item_id)
        assert found is None or found.status is OutboxStatus.SENT
