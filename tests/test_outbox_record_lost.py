"""A send's record that fails after the store made it (Redis ran the script, its answer lost; or the line's step
and the event sent after it lost) holds its conversation's next replies seconds, not a lease (issue 8).

Before, the worker's next try was refused ("not pending": taken for a lost lease), or the failure ended the run:
the rest of the run stayed leased, and on Redis the conversation's line still named the sent reply as its head,
due at the lease's end. A young person's next replies then waited the whole lease (60 s) although the store
answered again at once. The store is the real one (SQLite, Redis, Cluster) behind a double that loses one answer;
the provider is the fake Graph API on 127.0.0.1; the worker is ``Outbox.run`` with its 60 s lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.clock import utcnow
from gateway.errors import StoreError
from gateway.events import DeliveryChanged, Event
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox, OutboxRoles
from gateway.store import Author, Delivery, OutboxItem, OutboxStatus, Store, TranscriptEntry
from gateway.store.codec import encode_outbound
from gateway.testing import Failure, FakeGraphAPI
from tests.conftest import Clock
from tests.e2e.channel_support import eventually
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_outbox import LEASE, any_store, clock
from tests.test_outbox_runs import channels, graph, statuses, texts

__all__ = ["any_store", "channels", "clock", "graph", "redis_cluster_url", "redis_url", "store_url"]  # fixtures
MESSENGER = ChannelName.MESSENGER
BOUND = 10.0  # seconds: well below the 60 s lease the replies waited for before


class AnswerLost:
    """The real store, except that the first record is made and then fails, as a Redis connection dropped before
    its answer came: ``where`` is "record" (a send's step ran), "failed" (a failure's step ran) or "event" (the
    line's step and the event held in the record's batch lost: the batch is left by an error, its held writes
    dropped)."""

    def __init__(self, store: Store, where: str) -> None:
        self._store, self.where, self.lost = store, where, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_mark_sent(self, *args: Any, **kwargs: Any) -> bool:
        return self._lost_if("record", await self._store.outbox_mark_sent(*args, **kwargs))

    async def outbox_mark_failed(self, *args: Any, **kwargs: Any) -> bool:
        return self._lost_if("failed", await self._store.outbox_mark_failed(*args, **kwargs))

    def _lost_if(self, where: str, answer: bool) -> bool:
        if self.where == where and not self.lost:
            self.lost += 1
            raise StoreError("redis: ConnectionError: Connection closed by server.")
        return answer

    async def publish(self, event: Event) -> None:
        if self.where == "event" and not self.lost and isinstance(event, DeliveryChanged):
            self.lost += 1
            raise StoreError("redis: ConnectionError: Connection closed by server.")
        await self._store.publish(event)


async def put_replies(store: Store, conversation: str, count: int, now: datetime | None = None) -> None:
    """A message's replies as the dispatcher writes them: each its transcript entry and its outbox item."""
    now = now or utcnow()
    async with store.batch():
        for n in range(1, count + 1):
            message = Outbound(f"{conversation}-r{n}", conversation, MESSENGER, f"psid-{conversation}", f"reply {n}")
            await store.append_transcript(TranscriptEntry(message.id, conversation, now, Author.BOT, message.text))
            await store.outbox_put(OutboxItem(message.id, conversation, encode_outbound(message), now))


@pytest.mark.parametrize("where", ["record", "event", "failed"])
async def test_a_record_lost_after_the_store_made_it_holds_the_next_replies_seconds_not_a_lease(
    any_store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel], where: str
) -> None:
    """``failed``: the provider refuses the first reply for good, and that failure's record is the one lost."""
    store = AnswerLost(any_store, where)
    refused = where == "failed"
    if refused:
        graph.fail_next(Failure(400, code=100))  # an invalid parameter: refused for good
    await put_replies(any_store, "c1", 3)  # one message's replies: one run
    sending = Outbox(cast(OutboxRoles, store), channels, poll_seconds=0.05, lease_seconds=60)  # far past BOUND
    worker = asyncio.create_task(sending.run())
    expected = [Delivery.FAILED if refused else Delivery.SENT, Delivery.SENT, Delivery.SENT]

    async def all_recorded() -> bool:
        shown = [(e.delivery, bool(e.provider_message_id)) for e in await any_store.transcript("c1")]
        return shown == [(delivery, delivery == Delivery.SENT) for delivery in expected]

    try:
        await graph.wait_accepted(2 if refused else 3, timeout=BOUND)  # before: the rest a lease (60 s) later
        await eventually(all_recorded, timeout=BOUND)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert store.lost == 1
    assert texts(graph, "c1") == ["reply 1", "reply 2", "reply 3"][1 if refused else 0 :]  # in order
    later = Outbox(any_store, channels, clock=lambda: utcnow() + timedelta(minutes=10))
    assert await later.deliver_due() == 0  # every lease long over: nothing sent again
    asked = [r.body["message"]["text"] for r in graph.requests_to(graph.send_endpoint)]
    assert asked == ["reply 1", "reply 2", "reply 3"]  # the first asked for once
    if not refused:
        assert await statuses(any_store, "c1", 3) in ([OutboxStatus.SENT] * 3, [])  # Redis drops a sent item


class Renewals(AnswerLost):
    """:class:`AnswerLost` ("record"), each renewal's answer noted by item (``renewed``)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, "record")
        self.renewed: list[tuple[str, bool]] = []

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        renewed = await self._store.outbox_renew(conversation_id, item_id, lease, until)
        self.renewed.append((item_id, renewed))
        return renewed


async def test_a_renewal_refused_for_a_reply_recorded_unknowingly_keeps_the_rest_of_the_run_leased(
    any_store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel], clock: Clock
) -> None:
    """The first reply's record is made but its answer is lost; a renewal before the record's next try is refused
    for it (it is not pending any more). Before, that refusal ended the renewals of the whole run: the second
    reply, slow at the provider, lost its lease and a second worker sent it again."""
    store = Renewals(any_store)
    await put_replies(any_store, "c1", 2, clock())
    pause = (2.0, 2.0)  # before the record is tried again: the renewals (every third of the 1 s lease) come first
    first, second = (Outbox(cast(OutboxRoles, store), channels, clock=clock, lease_seconds=LEASE, record_pause=pause)
                     for _ in range(2))  # fmt: skip
    graph.stall(only="reply 2")
    sending = asyncio.create_task(first.deliver_due())
    try:
        await eventually(lambda: _async(("c1-r1", False) in store.renewed), timeout=BOUND)  # refused: it is sent
        await graph.wait_held(1, timeout=BOUND)  # the record tried again, the second reply at the provider
        clock.advance(seconds=10 * LEASE)

        async def renewed() -> bool:
            item = await any_store.outbox_get("c1", "c1-r2")
            return item is not None and item.next_attempt_at is not None and item.next_attempt_at > clock()

        await eventually(renewed, timeout=BOUND)  # the first worker still holds it
        assert await second.deliver_due() == 0  # so the second one finds nothing due
        graph.resume()
        assert await sending == 2
    finally:
        graph.resume()
        sending.cancel()
    assert texts(graph, "c1") == ["reply 1", "reply 2"]  # each once


async def _async(value: bool) -> bool:
    return value
