"""A conversation's replies go out as a run (``Outbox``'s ``run_length``): its consecutive due items claimed
together, sent one after the other with no claim between, each recorded as sent; a provider failing mid-run leaves
the rest for later, in order. On SQLite, Redis and Redis Cluster, with the fake Graph API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.events import DeliveryChanged, Event
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import Delivery, OutboxItem, OutboxStatus, Store
from gateway.store.codec import encode_outbound
from gateway.testing import Failure, FakeGraphAPI
from tests.conftest import Clock
from tests.e2e.channel_support import eventually
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_outbox import T0, any_store, clock

__all__ = ["any_store", "clock", "redis_cluster_url", "redis_url", "store_url"]  # fixtures
MESSENGER = ChannelName.MESSENGER


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphAPI]:
    async with FakeGraphAPI() as fake:
        yield fake


@pytest.fixture
async def channels(settings: Settings, graph: FakeGraphAPI) -> AsyncIterator[dict[ChannelName, MessengerChannel]]:
    async with aiohttp.ClientSession() as session:
        configured = settings.replace(messenger_api_url=graph.url, messenger_page_access_token="token")
        yield {MESSENGER: MessengerChannel(configured, session)}


async def put_replies(store: Store, conversation: str, count: int, at: datetime) -> None:
    """A message's replies, as the dispatcher puts them: one after the other in its conversation's line."""
    for n in range(1, count + 1):
        message = Outbound(f"{conversation}-r{n}", conversation, MESSENGER, f"psid-{conversation}", f"reply {n}")
        await store.outbox_put(OutboxItem(message.id, conversation, encode_outbound(message), at))


def texts(graph: FakeGraphAPI, conversation: str) -> list[str]:
    """What the provider accepted for the conversation's young person, in the order it accepted it."""
    return [r.body["message"]["text"] for r in graph.accepted() if r.body["recipient"]["id"] == f"psid-{conversation}"]


async def statuses(store: Store, conversation: str, count: int) -> list[OutboxStatus]:
    found = [await store.outbox_get(conversation, f"{conversation}-r{n}") for n in range(1, count + 1)]
    return [item.status for item in found if item is not None]


async def test_a_messages_four_replies_arrive_in_order_once_from_one_claim(
    any_store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel], clock: Clock
) -> None:
    await put_replies(any_store, "c1", 4, T0)
    await put_replies(any_store, "c2", 1, T0)
    sending = Outbox(any_store, channels, clock=clock)
    graph.stall(only="reply 1")  # the provider holds each first reply: nothing behind it in its line may pass
    delivering = asyncio.create_task(sending.deliver_due())
    await graph.wait_held(2)
    assert texts(graph, "c1") == []
    graph.resume()
    assert await delivering == 5  # one pass: the four replies claimed together, and the other conversation's
    assert texts(graph, "c1") == ["reply 1", "reply 2", "reply 3", "reply 4"]
    assert texts(graph, "c2") == ["reply 1"]
    assert await statuses(any_store, "c1", 4) == [OutboxStatus.SENT] * 4
    clock.advance(minutes=10)  # every lease long over: nothing is sent again
    assert await sending.deliver_due() == 0
    assert len(graph.accepted()) == 5


async def test_a_provider_failing_mid_run_then_recovering_delivers_every_reply_once_in_order(
    any_store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel], clock: Clock
) -> None:
    await put_replies(any_store, "c1", 4, T0)
    sending = Outbox(any_store, channels, clock=clock, base_delay=1.0)
    graph.fail_next(None, 503)  # the first reply accepted, the second refused for now
    assert await sending.deliver_due() == 4  # the run handed out
    assert texts(graph, "c1") == ["reply 1"]
    assert len(graph.requests_to(graph.send_endpoint)) == 2  # the run stopped at the failure: 3 and 4 not tried
    second = await any_store.outbox_get("c1", "c1-r2")
    assert second is not None and (second.attempts, second.next_attempt_at) == (1, clock() + timedelta(seconds=1))
    for n in (3, 4):  # given back, not leased: they follow the second once it is sent, not a lease later
        rest = await any_store.outbox_get("c1", f"c1-r{n}")
        assert rest is not None and rest.attempts == 0 and rest.next_attempt_at is not None
        assert rest.next_attempt_at <= clock()
    assert await sending.deliver_due() == 0  # the second waits for its retry, the others behind it
    clock.advance(seconds=1)
    assert await sending.deliver_due() == 3
    assert texts(graph, "c1") == ["reply 1", "reply 2", "reply 3", "reply 4"]  # each once, in order
    assert await statuses(any_store, "c1", 4) == [OutboxStatus.SENT] * 4
    clock.advance(minutes=10)
    assert await sending.deliver_due() == 0
    assert len(graph.accepted()) == 4


async def test_the_worker_sends_runs_in_order_through_failures(
    any_store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel]
) -> None:
    """``Outbox.run`` (the real clock): three conversations' hand-off replies, the provider refusing
    some sends for now; every reply reaches the provider once, each conversation's in order."""
    sending = Outbox(any_store, channels, base_delay=0.05, poll_seconds=0.05)  # a retry is claimed at a poll
    graph.fail_next(None, 503, None, None, 503, None, 429)
    worker = asyncio.create_task(sending.run())
    try:
        for conversation in ("c1", "c2", "c3"):
            await put_replies(any_store, conversation, 4, sending.clock())
            sending.kick()
        await graph.wait_accepted(12)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    for conversation in ("c1", "c2", "c3"):
        assert texts(graph, conversation) == ["reply 1", "reply 2", "reply 3", "reply 4"]
    assert len(graph.accepted()) == 12


class HeldSends:
    """A channel whose sends wait until the test lets each message id through (``go[id]``)."""

    def __init__(self, *held: str) -> None:
        self.go = {message_id: asyncio.Event() for message_id in held}
        self.entered: dict[str, asyncio.Event] = {message_id: asyncio.Event() for message_id in held}
        self.sent: list[str] = []

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        self.sent.append(message.id)
        if message.id in self.go:
            self.entered[message.id].set()
            await self.go[message.id].wait()
        return f"provider-{message.id}"


async def test_every_item_of_a_run_stays_leased_while_an_earlier_send_outlasts_the_lease(
    any_store: Store, clock: Clock
) -> None:
    """The run's renewals cover its items not yet sent: once the first send, slower than many leases, is recorded,
    the second is still held, so a second worker (another instance) finds nothing to send while the first worker
    sends it. Renewing the first item alone, the second's lease had lapsed: handed out again, sent twice."""
    lease = 1
    await put_replies(any_store, "c1", 2, T0)
    channel = HeldSends("c1-r1", "c1-r2")
    first = Outbox(any_store, {MESSENGER: channel}, clock=clock, lease_seconds=lease)
    second = Outbox(any_store, {MESSENGER: channel}, clock=clock, lease_seconds=lease)
    sending = asyncio.create_task(first.deliver_due())
    await asyncio.wait_for(channel.entered["c1-r1"].wait(), 20)
    clock.advance(seconds=10 * lease)  # the first send outlasts its lease many times over

    async def renewed(item_id: str) -> bool:
        item = await any_store.outbox_get("c1", item_id)
        return item is not None and item.next_attempt_at is not None and item.next_attempt_at > clock()

    await eventually(lambda: renewed("c1-r2"))  # the second item's lease too, though its send has not begun
    channel.go["c1-r1"].set()
    await asyncio.wait_for(channel.entered["c1-r2"].wait(), 20)  # the first recorded (or on its way), the second out
    assert await second.deliver_due() == 0
    channel.go["c1-r2"].set()
    assert await asyncio.wait_for(sending, 20) == 2
    assert channel.sent == ["c1-r1", "c1-r2"]
    assert await statuses(any_store, "c1", 2) == [OutboxStatus.SENT] * 2


async def _all_sent(store: Store, conversation: str, count: int) -> bool:
    return await statuses(store, conversation, count) == [OutboxStatus.SENT] * count


async def test_a_retry_goes_out_at_its_time_not_at_the_next_poll(
    any_store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel]
) -> None:
    """``Outbox.run`` (the real clock), the provider refusing a reply for now (503), then recovering: the worker
    wakes when the retry is due (``gateway/wakeups.py``). Its poll is a minute away and the test waits half of it:
    only that wake can explain the delivery."""
    sending = Outbox(any_store, channels, base_delay=0.2, poll_seconds=60)
    graph.fail_next(503)  # the first try of the first reply
    worker = asyncio.create_task(sending.run())
    try:
        await put_replies(any_store, "c1", 2, sending.clock())
        sending.kick()
        await graph.wait_accepted(2, timeout=30)
        # the provider's acceptance comes before the worker records it: cancelling now could lose the record
        await eventually(lambda: _all_sent(any_store, "c1", 2), timeout=30)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert texts(graph, "c1") == ["reply 1", "reply 2"]
    assert len(graph.requests_to(graph.send_endpoint)) == 3  # the refused try, then each once
    assert await statuses(any_store, "c1", 2) == [OutboxStatus.SENT] * 2


async def test_a_recipient_gone_fails_the_rest_of_its_run_unsent_and_is_told_once(
    any_store: Store,
    graph: FakeGraphAPI,
    channels: dict[ChannelName, MessengerChannel],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Messenger refuses a send because the young person blocked the page (200, 2018108): the rest of the run
    would be refused the same way. One request, the conversation marked as left once, one log line for the rest;
    every reply shown failed once (one delivery event each), none sent later."""
    gone: list[str] = []

    async def recipient_gone(conversation_id: str) -> None:
        gone.append(conversation_id)

    await put_replies(any_store, "c1", 4, T0)
    sending = Outbox(any_store, channels, clock=clock, on_recipient_gone=recipient_gone)
    graph.fail_next(*[Failure(400, code=200, subcode=2018108)] * 4)
    events = await any_store.subscribe()
    try:
        with caplog.at_level(logging.INFO, logger="gateway.outbox"):
            assert await sending.deliver_due() == 4
        delivered = [await anext_delivery(events) for _ in range(4)]
    finally:
        await events.aclose()

    assert len(graph.requests_to(graph.send_endpoint)) == 1
    assert gone == ["c1"]
    assert [(e.id, e.delivery) for e in delivered] == [(f"c1-r{n}", Delivery.FAILED) for n in range(1, 5)]
    assert len([r for r in caplog.records if r.name == "gateway.outbox"]) == 2  # the refusal, then the rest
    assert await statuses(any_store, "c1", 4) == [OutboxStatus.FAILED] * 4
    clock.advance(minutes=10)
    assert await sending.deliver_due() == 0
    assert len(graph.requests_to(graph.send_endpoint)) == 1


async def anext_delivery(events: AsyncIterator[Event]) -> DeliveryChanged:
    async with asyncio.timeout(10):  # a safety net against a hang, not a timing assumption
        async for event in events:
            if isinstance(event, DeliveryChanged):
                return event
    raise AssertionError("no delivery event")
