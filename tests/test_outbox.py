"""The outbox's guarantees (docs/architecture.md, "Replies: none twice without a fault", "No part of a split
message twice", "An outbox item this version cannot read"), driven pass by pass with ``deliver_due()`` on the real
SQLite store and a clock under the test's control. The channel is a small recording ``Sender``; the lease test at
the end runs on both stores against the fake Graph API, stalled.

The whole app with the fake provider APIs: tests/e2e/test_outage.py, test_exactly_once.py, test_outbox_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.errors import PermanentDelivery, RetryableDelivery, StoreError
from gateway.messages import ChannelName, Outbound
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, OutboxStatus, Store, open_store
from gateway.store.codec import encode_outbound
from gateway.testing import FakeGraphAPI, store_keys
from tests.conftest import Clock
from tests.e2e.channel_support import RunningClock, eventually
from tests.store.conftest import redis_cluster_url, redis_url, store_url

__all__ = ["redis_cluster_url", "redis_url", "store_url"]  # fixtures used by the lease test

T0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
TG = ChannelName.TELEGRAM


class Channel:
    """Records what it was asked to send; raises the errors queued for a message id first."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # (message id, first part)
        self.errors: dict[str, list[Exception]] = {}

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        self.calls.append((message.id, first_part))
        queued = self.errors.get(message.id)
        if queued:
            raise queued.pop(0)
        return f"provider-{message.id}"

    def sent(self) -> list[str]:
        return [message_id for message_id, _ in self.calls]


class MarkSentFails:
    """The real store, except that recording a send fails ``times`` times first (a brief store outage)."""

    def __init__(self, store: Store, times: int, clock: Clock | None = None, step: timedelta | None = None) -> None:
        """With ``clock`` and ``step``: each failure also moves the clock on by ``step`` (an outage that lasts)."""
        self._store, self.left, self.clock, self.step = store, times, clock, step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_mark_sent(self, conversation_id: str, item_id: str, *args: Any, **kwargs: Any) -> bool:
        if self.left:
            self.left -= 1
            if self.clock is not None and self.step is not None:
                self.clock.advance(seconds=self.step.total_seconds())
            raise StoreError("the store is briefly unreachable")
        return await self._store.outbox_mark_sent(conversation_id, item_id, *args, **kwargs)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(minutes=1))


@pytest.fixture
def channel() -> Channel:
    return Channel()


def outbox(store: Store, channel: Channel, clock: Clock, **options: Any) -> Outbox:
    return Outbox(store, {TG: channel}, clock=clock, base_delay=1.0, max_attempts=4, **options)


async def put(store: Store, item_id: str, conversation: str = "c1", seconds: int = 0) -> None:
    message = Outbound(item_id, conversation, TG, "424242", f"texte {item_id}")
    item = OutboxItem(item_id, conversation, encode_outbound(message), created_at=T0 + timedelta(seconds=seconds))
    await store.outbox_put(item)


async def item(store: Store, item_id: str, conversation: str = "c1") -> OutboxItem:
    found = await store.outbox_get(conversation, item_id)
    assert found is not None
    return found


async def test_a_conversations_due_items_go_out_in_one_pass_in_order(
    store: Store, channel: Channel, clock: Clock
) -> None:
    for n, (item_id, conversation) in enumerate([("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")]):
        await put(store, item_id, conversation, seconds=n)
    sending = outbox(store, channel, clock)
    assert await sending.deliver_due() == 4  # A's run of three, B's one
    assert [sent for sent in channel.sent() if sent.startswith("a")] == ["a1", "a2", "a3"]
    assert await sending.deliver_due() == 0
    assert {(await item(store, i, c)).status for i, c in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B")]} == {
        OutboxStatus.SENT
    }


async def test_runs_of_one_send_one_item_per_conversation_at_a_time(
    store: Store, channel: Channel, clock: Clock
) -> None:
    for n, (item_id, conversation) in enumerate([("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")]):
        await put(store, item_id, conversation, seconds=n)
    sending = outbox(store, channel, clock, run_length=1)
    assert await sending.deliver_due() == 2
    assert sorted(channel.sent()) == ["a1", "b1"]
    assert await sending.deliver_due() == 1
    assert await sending.deliver_due() == 1
    assert await sending.deliver_due() == 0
    assert channel.sent()[2:] == ["a2", "a3"]


async def test_an_item_recorded_as_sent_is_never_handed_out_again(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "m1")
    sending = outbox(store, channel, clock, lease_seconds=1)
    assert await sending.deliver_due() == 1
    clock.advance(minutes=10)  # far past the lease
    assert await sending.deliver_due() == 0
    assert channel.sent() == ["m1"]
    sent = await item(store, "m1")
    assert (sent.status, sent.provider_message_id) == (OutboxStatus.SENT, "provider-m1")


async def test_the_send_is_recorded_through_a_brief_store_failure(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "m1")
    flaky = MarkSentFails(store, times=3)
    sending = outbox(cast(Store, flaky), channel, clock, lease_seconds=1)
    assert await sending.deliver_due() == 1
    assert flaky.left == 0 and (await item(store, "m1")).status is OutboxStatus.SENT
    clock.advance(minutes=10)
    assert await sending.deliver_due() == 0
    assert channel.sent() == ["m1"]  # once


async def test_the_send_is_recorded_through_a_long_store_outage_while_its_lease_holds(
    store: Store, channel: Channel, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis restart longer than a few seconds while a send was in flight (bench/chaos.py): the record is tried
    again for as long as the item's lease holds, so the reply is not sent a second time (until 2026-12-01 the
    record gave up after 8 tries, about 6 s, and the reply went out again when its lease ended)."""
    await put(store, "m1")
    flaky = MarkSentFails(store, times=40)  # far more than the 8 tries of before; the test's clock stands still
    metrics = Metrics()
    sending = outbox(cast(Store, flaky), channel, clock, lease_seconds=60, record_pause=(0.001, 0.002), metrics=metrics)
    with caplog.at_level("INFO", logger="gateway"):
        assert await sending.deliver_due() == 1
    assert flaky.left == 0 and (await item(store, "m1")).status is OutboxStatus.SENT
    said = [r.getMessage() for r in caplog.records if r.name == "gateway.outbox"]
    named = sending.keyed.logged_id("m1")  # the item by its keyed form (since 2026-12-07)
    assert said == [f"outbox: {named}: sent, recorded after 41 tries"]  # not a line a try: the outage told once
    counted = metrics.registry.get_sample_value(
        "gateway_store_failures_total", {"part": "outbox", "error": "StoreError"}
    )
    assert counted == 40
    clock.advance(minutes=10)
    assert await sending.deliver_due() == 0
    assert channel.sent() == ["m1"]  # once


async def test_a_send_whose_record_fails_past_its_lease_is_given_up_to_the_next_worker(
    store: Store, channel: Channel, clock: Clock
) -> None:
    """The tries stop at the lease's end (another worker may hold the item then): the store error is raised, the
    item is not recorded, and it is handed out again: the documented bound (a send in flight at a fault)."""
    await put(store, "m1")
    flaky = MarkSentFails(store, times=1000, clock=clock, step=timedelta(seconds=7))  # each try 7 s later
    sending = outbox(cast(Store, flaky), channel, clock, lease_seconds=60, record_pause=(0.001, 0.002))
    with pytest.raises(StoreError):
        await sending.deliver_due()
    assert 1000 - flaky.left <= 10  # about 60 s of tries at 7 s each, not a thousand
    flaky.left = 0  # the store is back
    clock.advance(minutes=10)
    assert await sending.deliver_due() == 1
    assert channel.sent() == ["m1", "m1"] and (await item(store, "m1")).status is OutboxStatus.SENT


async def test_a_leased_item_waits_for_its_lease(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "m1")
    [claimed] = await store.outbox_due(clock(), 10, lease_seconds=60)  # another instance is sending it
    assert claimed.id == "m1"
    sending = outbox(store, channel, clock)
    assert await sending.deliver_due() == 0
    clock.advance(seconds=61)  # that instance died: its lease lapsed
    assert await sending.deliver_due() == 1
    assert channel.sent() == ["m1"]


async def test_a_retry_waits_doubling_or_as_the_provider_asks(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "m1")
    channel.errors["m1"] = [RetryableDelivery("503"), RetryableDelivery("503"), RetryableDelivery("429", 30)]
    sending = outbox(store, channel, clock)
    for expected in (1, 2, 30):  # base 1 s, then 2 s, then the provider's retry_after
        await sending.deliver_due()
        retried = await item(store, "m1")
        assert retried.next_attempt_at == clock() + timedelta(seconds=expected)
        clock.advance(seconds=expected)
    assert await sending.deliver_due() == 1
    assert (await item(store, "m1")).status is OutboxStatus.SENT


async def test_a_split_message_resumes_at_its_first_unsent_part(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "m1")
    channel.errors["m1"] = [RetryableDelivery("part 3 failed", parts_sent=2), RetryableDelivery("network")]
    sending = outbox(store, channel, clock)
    for _ in range(3):
        await sending.deliver_due()
        clock.advance(minutes=5)
    assert channel.calls == [("m1", 0), ("m1", 2), ("m1", 2)]  # an error without progress never lowers it


async def test_a_permanent_refusal_or_the_last_try_fails_the_item(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "refused", "A")
    await put(store, "flaky", "B")
    channel.errors["refused"] = [PermanentDelivery("reply window closed")]
    channel.errors["flaky"] = [RetryableDelivery("503") for _ in range(4)]
    sending = outbox(store, channel, clock)
    for _ in range(4):
        await sending.deliver_due()
        clock.advance(minutes=10)
    refused, flaky = await item(store, "refused", "A"), await item(store, "flaky", "B")
    assert (refused.status, refused.last_error) == (OutboxStatus.FAILED, "reply window closed")
    assert flaky.status is OutboxStatus.FAILED and "gave up after 4 attempts" in (flaky.last_error or "")
    assert channel.sent().count("flaky") == 4


class RescheduleBroken:
    """The real store, except that rescheduling ``item_id`` fails once with an unexpected error (a bug)."""

    def __init__(self, store: Store, item_id: str) -> None:
        self._store, self._item_id, self.broken = store, item_id, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_reschedule(self, conversation_id: str, item_id: str, *args: Any, **kwargs: Any) -> bool:
        if item_id == self._item_id and not self.broken:
            self.broken = True
            raise RuntimeError("a bug")
        return await self._store.outbox_reschedule(conversation_id, item_id, *args, **kwargs)


async def test_one_items_failure_never_fails_the_others(store: Store, channel: Channel, clock: Clock) -> None:
    await put(store, "adapter-bug", "A")
    await put(store, "record-bug", "B")
    await put(store, "fine", "C")
    await store.outbox_put(OutboxItem("unreadable", "D", {"written by": "a newer version"}, created_at=T0))
    channel.errors["adapter-bug"] = [ValueError("a bug in the adapter")]
    channel.errors["record-bug"] = [RetryableDelivery("503")]
    sending = outbox(cast(Store, RescheduleBroken(store, "record-bug")), channel, clock, lease_seconds=60)
    assert await sending.deliver_due() == 4  # the pass itself never fails
    assert (await item(store, "fine", "C")).status is OutboxStatus.SENT
    assert (await item(store, "adapter-bug", "A")).status is OutboxStatus.PENDING  # retried soon
    unreadable = await item(store, "unreadable", "D")
    assert unreadable.status is OutboxStatus.FAILED and "set aside" in (unreadable.last_error or "")
    clock.advance(seconds=61)  # the unrecorded retry: handed out again once its lease ended
    assert await sending.deliver_due() == 2
    recorded = [await item(store, "adapter-bug", "A"), await item(store, "record-bug", "B")]
    assert {i.status for i in recorded} == {OutboxStatus.SENT}


class PassFails:
    """The real store, except that the first passes fail: once on a bug, once on the store itself."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failures: list[Exception] = [RuntimeError("a bug"), StoreError("redis: ConnectionError")]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_due(self, now: datetime, limit: int, **kwargs: Any) -> list[OutboxItem]:
        if self.failures:
            raise self.failures.pop(0)
        return await self._store.outbox_due(now, limit, **kwargs)


async def test_the_worker_goes_on_after_a_failed_pass(
    store: Store, channel: Channel, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    await put(store, "m1")
    failing = PassFails(store)
    sending = outbox(cast(Store, failing), channel, clock, poll_seconds=0.01)
    worker = asyncio.create_task(sending.run())
    try:
        async with asyncio.timeout(10):
            while channel.sent() != ["m1"]:
                await asyncio.sleep(0.01)
    finally:
        worker.cancel()
    assert "outbox: unexpected RuntimeError at" in caplog.text  # a bug: by class and place
    failed = {"part": "outbox", "error": "StoreError"}  # the store's: counted, told once an outage (outage_log.py)
    assert sending.metrics.registry.get_sample_value("gateway_store_failures_total", failed) == 1


# A send slower than its lease, on both stores: the lease is renewed while it runs, so a second worker (another
# instance) never claims and sends it again.


@pytest.fixture
async def any_store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url, keys=store_keys(store_url))
    yield opened
    await opened.close()


LEASE = 1  # seconds: renewed every third of it while a send runs


async def test_a_send_slower_than_its_lease_is_never_sent_by_a_second_worker(
    any_store: Store, settings: Settings, clock: Clock
) -> None:
    store = any_store
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        messenger = MessengerChannel(settings.replace(messenger_api_url=graph.url,
                                                      messenger_page_access_token="token"), session)  # fmt: skip
        channels = {ChannelName.MESSENGER: messenger}
        first, second = (Outbox(store, channels, clock=clock, lease_seconds=LEASE) for _ in range(2))
        reply = Outbound("r1", "c1", ChannelName.MESSENGER, "psid-1", "Bonjour")
        await store.outbox_put(OutboxItem("r1", "c1", encode_outbound(reply), clock()))

        graph.stall()  # the provider takes its time: the send outlasts the lease many times over
        sending = asyncio.create_task(first.deliver_due())
        await graph.wait_held(1)
        clock.advance(seconds=10 * LEASE)

        async def renewed() -> bool:
            item = await store.outbox_get("c1", "r1")
            return item is not None and item.next_attempt_at is not None and item.next_attempt_at > clock()

        await eventually(renewed)  # the first worker still holds it
        assert await second.deliver_due() == 0  # so the second one finds nothing due

        graph.resume()
        assert await sending == 1
        assert [r.body["message"]["text"] for r in graph.accepted()] == ["Bonjour"]
        item = await store.outbox_get("c1", "r1")
        assert item is not None and item.status == OutboxStatus.SENT


class RenewalsHeld:
    """The real store, except that a lease renewal's answer is held on its way back: the store has moved the
    lease's end (the fencing token) while the worker still holds the old one (``held`` set, then ``answer``)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held, self.answer = asyncio.Event(), asyncio.Event()
        self.renewals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        renewed = await self._store.outbox_renew(conversation_id, item_id, lease, until)
        self.renewals += 1
        if self.renewals == 1:
            self.held.set()
            await self.answer.wait()
        return renewed


class SendWaits:
    """A channel whose send is accepted by the provider once the test says so (``go``); ``returned`` then."""

    def __init__(self) -> None:
        self.entered, self.go, self.returned = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.sent: list[str] = []

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        self.sent.append(message.id)
        self.entered.set()
        if len(self.sent) == 1:
            await self.go.wait()
        self.returned.set()
        return f"provider-{message.id}"


async def test_a_renewal_on_its_way_when_the_send_ends_neither_loses_the_record_nor_resends(
    any_store: Store, clock: Clock
) -> None:
    """The renewal and the final record take turns: the record waits for the renewal's answer and carries the
    new lease's end. Recorded with the old one, it was refused (the store had moved the token), the item stayed
    pending although sent, and was sent again once the lease lapsed (seen once in tests/test_faults.py). A renewal
    landing after the record (one started before the renewal task is cancelled) is refused: it resurrects nothing."""
    store, channel = RenewalsHeld(any_store), SendWaits()
    reply = Outbound("r1", "c1", TG, "424242", "Bonjour")
    await any_store.outbox_put(OutboxItem("r1", "c1", encode_outbound(reply), clock()))
    first = Outbox(cast(Store, store), {TG: channel}, clock=clock, lease_seconds=LEASE)
    sending = asyncio.create_task(first.deliver_due())
    await asyncio.wait_for(channel.entered.wait(), 20)
    clock.advance(seconds=LEASE / 2)  # the renewal moves the lease's end (the token) on
    await asyncio.wait_for(store.held.wait(), 20)  # the store renewed the lease; its answer is on its way
    channel.go.set()  # the provider accepts the message meanwhile
    await asyncio.wait_for(channel.returned.wait(), 20)
    store.answer.set()
    assert await asyncio.wait_for(sending, 20) == 1
    item = await any_store.outbox_get("c1", "r1")
    assert item is not None and item.status == OutboxStatus.SENT
    assert not await any_store.outbox_renew("c1", "r1", item.next_attempt_at or clock(), clock() + timedelta(minutes=5))
    clock.advance(minutes=10)  # every lease long over: a second worker finds nothing to send
    second = Outbox(any_store, {TG: channel}, clock=clock, lease_seconds=LEASE)
    assert await second.deliver_due() == 0
    assert channel.sent == ["r1"]
    after = await any_store.outbox_get("c1", "r1")  # the late renewal resurrected nothing
    assert after is not None and after.status == OutboxStatus.SENT


class RenewalsSlowThenFailing:
    """The real store, except that the first ``failures`` lease renewals wait ``slow`` seconds, then fail (a store
    call that times out: a busy Redis, a connection lost); the next ones reach the store."""

    def __init__(self, store: Store, failures: int = 2, slow: float = 0.5) -> None:
        self._store, self.failures, self.slow = store, failures, slow
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            await asyncio.sleep(self.slow)  # the store's slowness, not a wait of the test's
            raise StoreError("the store did not answer in time")
        return await self._store.outbox_renew(conversation_id, item_id, lease, until)


class ClaimsNoted:
    """The real store, noting the time of each outbox claim (what a second instance looked at)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.at: list[datetime] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_due(self, now: datetime, *args: Any, **kwargs: Any) -> list[OutboxItem]:
        self.at.append(now)
        return await self._store.outbox_due(now, *args, **kwargs)


class SendsHeld:
    """A provider that holds every send until the test lets them all go (``go``)."""

    def __init__(self) -> None:
        self.entered, self.go = asyncio.Event(), asyncio.Event()
        self.sent: list[str] = []

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        self.sent.append(message.id)
        self.entered.set()
        await self.go.wait()
        return f"provider-{message.id}-{len(self.sent)}"


async def test_a_renewal_that_fails_slowly_is_tried_again_before_the_lease_ends(any_store: Store) -> None:
    """The first two renewals of a send held by its provider take 0.5 s each, then fail; a second worker (another
    instance) looks for due replies every 50 ms meanwhile, on the same clock as the first (real time). A failed
    renewal is tried again at once, 0.05 s doubling, so the lease never lapses and the second worker never takes
    the reply. Until 2026-12-02 the next try came a third of the lease (2 s) after the failed one ended: tries at
    2, 4.5 and 7 s after the claim, the last past the lease's end at 6 s, and the second worker sent it again."""
    lease = 6
    clock, channel, store = RunningClock(), SendsHeld(), RenewalsSlowThenFailing(any_store)
    reply = Outbound("r1", "c1", TG, "424242", "Bonjour")
    await any_store.outbox_put(OutboxItem("r1", "c1", encode_outbound(reply), clock()))
    first = Outbox(cast(Store, store), {TG: channel}, clock=clock, lease_seconds=lease)
    looking = ClaimsNoted(any_store)
    second = Outbox(cast(Store, looking), {TG: channel}, clock=clock, lease_seconds=lease, poll_seconds=0.05)
    sending = asyncio.create_task(first.deliver_due())
    await asyncio.wait_for(channel.entered.wait(), 20)
    claimed = await any_store.outbox_get("c1", "r1")
    assert claimed is not None and claimed.next_attempt_at is not None
    end = claimed.next_attempt_at  # the claim's lease end, before any renewal

    async def looked_past_the_end() -> bool:  # 1.5 s past it: the late renewal before came 1 s after it
        return any(at > end + timedelta(seconds=1.5) for at in looking.at)

    other = asyncio.create_task(second.run())
    try:
        await eventually(looked_past_the_end, timeout=60)
    finally:
        other.cancel()
        await asyncio.gather(other, return_exceptions=True)
    assert store.calls > 2  # tried again after both failures
    assert channel.sent == ["r1"]  # only the first worker sent it
    channel.go.set()
    assert await asyncio.wait_for(sending, 20) == 1
    item = await any_store.outbox_get("c1", "r1")
    assert item is not None and item.status == OutboxStatus.SENT


async def test_a_killed_workers_claimed_reply_goes_out_15_s_later_by_default(
    store: Store, settings: Settings, clock: Clock, channel: Channel
) -> None:
    """The crash bound at the default settings: a worker killed while its provider holds a send (its delivery
    cancelled: no record, no renewal) leaves the reply to another worker once its lease ends, 15 s after the claim
    (60 s until 2026-12-02), not before (docs/architecture.md, "Replies: none twice without a fault")."""
    held = SendsHeld()
    await put(store, "r1")
    first = Outbox(store, {TG: held}, clock=clock, lease_seconds=settings.outbox_lease_seconds)
    killed = asyncio.create_task(first.deliver_due())
    await asyncio.wait_for(held.entered.wait(), 20)
    killed.cancel()  # kill -9: nothing recorded, nothing renewed
    await asyncio.gather(killed, return_exceptions=True)
    second = outbox(store, channel, clock, lease_seconds=settings.outbox_lease_seconds)
    clock.advance(seconds=14.5)
    assert await second.deliver_due() == 0  # still leased to the dead worker
    clock.advance(seconds=0.5)
    assert await second.deliver_due() == 1 and channel.sent() == ["r1"]


# No pass barrier: one conversation's slow send holds its own line only. Replies put for other conversations
# while it waits go out at once; the slow conversation's next reply waits for it, in order.


async def test_a_slow_send_never_delays_other_conversations_replies(any_store: Store, settings: Settings) -> None:
    store = any_store
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        messenger = MessengerChannel(settings.replace(messenger_api_url=graph.url,
                                                      messenger_page_access_token="token"), session)  # fmt: skip
        sending = Outbox(store, {ChannelName.MESSENGER: messenger}, poll_seconds=60)  # kicks only, no poll

        async def reply(item_id: str, conversation: str, recipient: str) -> None:
            message = Outbound(item_id, conversation, ChannelName.MESSENGER, recipient, f"texte {item_id}")
            await store.outbox_put(OutboxItem(item_id, conversation, encode_outbound(message), sending.clock()))
            sending.kick()

        graph.stall(only="psid-slow")  # this young person's provider holds the request; the others answer
        worker = asyncio.create_task(sending.run())
        try:
            await reply("slow-1", "c-slow", "psid-slow")
            await graph.wait_held(1)
            await reply("slow-2", "c-slow", "psid-slow")  # behind slow-1 in its conversation
            for n in range(5):
                await reply(f"other-{n}", f"c-{n}", f"psid-other-{n}")
            others = await graph.wait_accepted(5, timeout=10)
            assert sorted(r.body["recipient"]["id"] for r in others) == [f"psid-other-{n}" for n in range(5)]

            graph.resume()
            accepted = await graph.wait_accepted(7)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        slow = [r.body["message"]["text"] for r in accepted if r.body["recipient"]["id"] == "psid-slow"]
        assert slow == ["texte slow-1", "texte slow-2"]
        assert len(accepted) == 7  # nothing twice
