"""A provider's receipt that comes before the gateway recorded the send it concerns (the provider id is recorded
after the provider's API answered: a fast status callback, or a store outage during which the record is retried,
lets the receipt win) is kept (``Store.keep_receipt``) and applied when the outbox records the send
(``Store.take_receipt``), on SQLite, Redis and Cluster. Found by the chaos soak's receipts (bench/chaos_receipts.py):
before, such a receipt was answered 200 and dropped, and the reply stayed ``sent`` forever (a ``failed`` never
shown to the listener). The dispatcher and the outbox are the real ones; the channel is a small recording sender."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.dispatcher import Dispatcher, outbox_item
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Outbound, Receipt
from gateway.outbox import KEPT_GRACE, Outbox, OutboxRoles
from gateway.store import Author, Delivery, Store, TranscriptEntry
from gateway.testing import kept_provider_id

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
WA = ChannelName.WHATSAPP
SENDER = "whatsapp:+33600000042"


class Provider:
    """Answers every send with the provider id ``SM<message id>`` (the receipts below name it)."""

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        return f"SM{message.id}"


def dispatcher_of(store: Store) -> Dispatcher:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    return Dispatcher(store, flows, clock=lambda: T0 + timedelta(minutes=1))


async def reply(store: Store, entry_id: str = "r1") -> str:
    """A reply waiting in the outbox, as the dispatcher writes it: its entry and its item in one batch."""
    conversation, _ = await store.active_conversation(WA, SENDER, T0)
    entry = TranscriptEntry(entry_id, conversation.id, T0, Author.BOT, "Bonjour, je suis là.")
    async with store.batch():
        await store.append_transcript(entry)
        await store.outbox_put(outbox_item(conversation, entry, T0))
    return conversation.id


async def send_due(store: Store) -> None:
    await Outbox(store, {WA: Provider()}, clock=lambda: T0 + timedelta(minutes=1)).deliver_due()


async def delivery_of(store: Store, conversation_id: str, entry_id: str = "r1") -> Delivery:
    return next(e.delivery for e in await store.transcript(conversation_id) if e.id == entry_id)


def receipt(status: str, provider_id: str = "SMr1") -> Receipt:
    return Receipt(WA, SENDER, status, provider_message_id=provider_id)


async def test_a_receipt_before_the_sends_record_is_applied_when_the_send_is_recorded(store: Store) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await dispatcher.handle_receipt(receipt("delivered"))  # the callback beat the record
    await dispatcher.handle_receipt(receipt("read"))
    assert await delivery_of(store, conversation_id) == Delivery.PENDING
    await send_due(store)
    assert await delivery_of(store, conversation_id) == Delivery.READ  # the furthest kept
    assert await store.take_receipt("SMr1") is None  # applied once, then forgotten
    await dispatcher.handle_receipt(receipt("delivered"))  # a late one never takes it back
    assert await delivery_of(store, conversation_id) == Delivery.READ


async def test_a_failure_before_the_record_is_shown_failed(store: Store) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await dispatcher.handle_receipt(receipt("delivered"))
    await dispatcher.handle_receipt(receipt("failed"))
    await send_due(store)
    assert await delivery_of(store, conversation_id) == Delivery.FAILED


async def test_a_receipt_after_the_record_is_applied_as_it_comes(store: Store) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await send_due(store)
    assert await delivery_of(store, conversation_id) == Delivery.SENT
    await dispatcher.handle_receipt(receipt("read"))
    assert await delivery_of(store, conversation_id) == Delivery.READ
    assert await store.take_receipt("SMr1") is None  # found at once: nothing kept
    await dispatcher.handle_receipt(receipt("delivered"))
    assert await delivery_of(store, conversation_id) == Delivery.READ


async def test_a_kept_receipt_never_takes_a_reply_backwards(store: Store) -> None:
    """A receipt kept, then found by its own second look (the record came between): applied by the dispatcher; the
    record's take then finds an older status, and the reply stays as far as it got."""
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await send_due(store)
    await dispatcher.handle_receipt(receipt("read"))
    await store.keep_receipt("SMr1", Delivery.DELIVERED)
    assert await store.take_receipt("SMr1") == Delivery.DELIVERED
    assert not await store.advance_delivery(conversation_id, "r1", Delivery.DELIVERED)
    assert await delivery_of(store, conversation_id) == Delivery.READ


async def test_kept_receipts_are_taken_furthest_first_and_expire(store: Store) -> None:
    await store.keep_receipt("SMa", Delivery.READ)
    await store.keep_receipt("SMa", Delivery.DELIVERED)
    await store.keep_receipt("SMb", Delivery.FAILED)
    await store.keep_receipt("SMb", Delivery.READ)
    assert await store.take_receipt("SMa") == Delivery.READ
    assert await store.take_receipt("SMa") is None
    assert await store.take_receipt("SMb") == Delivery.FAILED
    ttl = 0.05
    await store.keep_receipt("SMc", Delivery.READ, ttl_seconds=ttl)
    # Waited for as a condition: Redis compares whole milliseconds strictly, so the clock just past the TTL may still
    # read it as kept (failed once in a run: 0.05 s waited and the receipt there); it must go by itself, soon.
    deadline = time.monotonic() + 5.0
    while await store.kept_receipt("SMc") is not None:
        assert time.monotonic() < deadline, "a receipt kept for 50 ms was still there 5 s later"
        await asyncio.sleep(ttl / 5)
    assert await store.take_receipt("SMc") is None
    await store.keep_receipt("SMc", Delivery.DELIVERED)  # kept again with the default TTL: there
    assert await store.take_receipt("SMc") == Delivery.DELIVERED


async def test_a_kept_receipt_is_read_without_being_taken(store: Store) -> None:
    await store.keep_receipt("SMa", Delivery.DELIVERED)
    await store.keep_receipt("SMa", Delivery.READ)
    assert await store.kept_receipt("SMa") == Delivery.READ
    assert await store.kept_receipt("SMa") == Delivery.READ  # still kept
    assert await store.kept_receipt("SMb") is None
    assert await store.take_receipt("SMa") == Delivery.READ
    assert await store.kept_receipt("SMa") is None


async def test_a_send_recorded_with_its_kept_receipt_shows_it_in_the_same_step(store: Store) -> None:
    """``outbox_mark_sent(receipt=...)``: the entry shows the receipt when it goes further than sent (failed too),
    with the provider id, in the record's own step."""
    expected = {None: Delivery.SENT, Delivery.SENT: Delivery.SENT, Delivery.DELIVERED: Delivery.DELIVERED,
                Delivery.READ: Delivery.READ, Delivery.FAILED: Delivery.FAILED}  # fmt: skip
    for n, (kept, shown) in enumerate(expected.items()):
        conversation_id = await reply(store, f"r{n}")
        assert await store.outbox_mark_sent(conversation_id, f"r{n}", f"SMr{n}", receipt=kept)
        found = next(e for e in await store.transcript(conversation_id) if e.id == f"r{n}")
        assert (found.delivery, found.provider_message_id) == (shown, kept_provider_id(store, f"SMr{n}"))
        assert await store.find_by_provider_id(f"SMr{n}") is not None


class TakeFails:
    """The real store, except that taking a kept receipt after the record fails (``"error"``: a store failure)
    or never answers (``"hang"``: the instance is killed there)."""

    def __init__(self, store: Store, how: str) -> None:
        self._store, self.how, self.asked = store, how, asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def take_receipt(self, provider_message_id: str) -> Delivery | None:
        self.asked.set()
        if self.how == "error":
            raise StoreError("redis: ConnectionError: Connection closed by server.")
        await asyncio.Event().wait()  # killed here
        raise AssertionError("unreachable")


@pytest.mark.parametrize("how", ["error", "hang"])
async def test_a_receipt_kept_before_the_record_survives_a_take_that_fails_or_an_instance_killed_before_it(
    store: Store, how: str
) -> None:
    """Before, the kept receipt was applied only by the take after the record: a store failure there, or an
    instance dying between the two, left it to expire and the reply ``sent`` for ever (a ``failed`` never shown
    to the listener). It is now applied in the record's own step."""
    if store.takes_kept_receipts:
        pytest.skip("no take nor read around the record on this store: its record takes what was kept itself")
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await dispatcher.handle_receipt(receipt("failed"))  # the callback beat the record
    double = TakeFails(store, how)
    outbox = Outbox(cast(OutboxRoles, double), {WA: Provider()}, clock=lambda: T0 + timedelta(minutes=1))
    sending = asyncio.create_task(outbox.deliver_due())
    async with asyncio.timeout(10):
        await double.asked.wait()  # the send is recorded: the take comes after it
    if how == "hang":
        sending.cancel()  # the instance dies
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    assert await delivery_of(store, conversation_id) == Delivery.FAILED  # before: sent


async def test_a_record_that_takes_the_kept_receipt_itself_needs_no_take_after_it(store: Store) -> None:
    """Redis on one node (``takes_kept_receipts``): the record reads, applies and takes what was kept in its own
    script; the outbox neither reads before it nor takes after it (a take that would fail or hang is never asked),
    and nothing is left kept or listed. Elsewhere (SQLite, Cluster) the test above holds."""
    if not store.takes_kept_receipts:
        pytest.skip("the record's steps apart on this store")
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await dispatcher.handle_receipt(receipt("failed"))  # the callback beat the record
    double = TakeFails(store, "hang")
    reads = ReadFails(cast(Store, double))
    outbox = Outbox(cast(OutboxRoles, reads), {WA: Provider()}, clock=lambda: T0 + timedelta(minutes=1))
    async with asyncio.timeout(10):
        assert await outbox.deliver_due() == 1
    assert not double.asked.is_set() and reads.failed == 0  # neither taken after nor read before
    assert await delivery_of(store, conversation_id) == Delivery.FAILED
    assert await store.kept_receipt("SMr1") is None
    assert await store.kept_receipts_waiting(datetime.now(UTC) + timedelta(minutes=1), 10) == []


class ReadFails:
    """The real store, except that the first read of the receipts kept for a send, the record's, fails (their
    key's node was down a moment, say). Since 2026-12-02 the step after the record reads what was kept too (it
    applies it before taking it): that read answers."""

    def __init__(self, store: Store) -> None:
        self._store, self.failed = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def kept_receipt(self, provider_message_id: str) -> Delivery | None:
        if not self.failed:
            self.failed += 1
            raise StoreError("redis: ConnectionError: Connection refused.")
        return await self._store.kept_receipt(provider_message_id)


async def test_a_kept_receipt_that_cannot_be_read_never_holds_the_record(store: Store) -> None:
    """The read of what was kept is no part of the record: failing, the send is recorded all the same, and the
    receipt applied by the take after it."""
    if store.takes_kept_receipts:
        pytest.skip("no take nor read around the record on this store: its record takes what was kept itself")
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await dispatcher.handle_receipt(receipt("read"))
    double = ReadFails(store)
    outbox = Outbox(cast(OutboxRoles, double), {WA: Provider()}, clock=lambda: T0 + timedelta(minutes=1))
    async with asyncio.timeout(10):
        assert await outbox.deliver_due() == 1
    assert double.failed == 1
    assert await delivery_of(store, conversation_id) == Delivery.READ


async def test_the_receipts_kept_are_listed_until_taken_or_expired(store: Store) -> None:
    """What the outbox's sweep reads (``kept_receipts_waiting``): the ids kept before a time, newest first, until
    taken or expired; and the sweep itself applies one whose send was recorded without its take (an instance that
    died between the record and the take)."""
    before = datetime.now(UTC)
    await store.keep_receipt("SMa", Delivery.DELIVERED)
    await store.keep_receipt("SMb", Delivery.READ)
    await store.keep_receipt("SMa", Delivery.READ)  # kept again: still one listing
    assert await store.kept_receipts_waiting(before - timedelta(seconds=1), 10) == []  # none kept that early
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await store.kept_receipts_waiting(later, 10) == ["SMa", "SMb"]  # the newest first: SMa kept again
    assert await store.kept_receipts_waiting(later, 1) == ["SMa"]
    assert await store.take_receipt("SMb") == Delivery.READ
    assert await store.kept_receipts_waiting(later, 10) == ["SMa"]
    ttl = 0.05
    await store.keep_receipt("SMc", Delivery.READ, ttl_seconds=ttl)
    deadline = time.monotonic() + ttl
    while time.monotonic() <= deadline:  # the condition is the clock itself: past the TTL, the receipt is gone
        await asyncio.sleep(ttl / 5)
    assert await store.kept_receipts_waiting(later, 10) == ["SMa"]
    conversation_id = await reply(store)
    await send_due(store)  # recorded (sent as SMr1), as if its instance died before the take:
    await store.keep_receipt("SMr1", Delivery.FAILED)  # a receipt kept in the round trip before the record
    sweeper = Outbox(cast(OutboxRoles, store), {WA: Provider()}, sweep_seconds=0.01)
    sweeping = asyncio.create_task(sweeper.run())
    try:
        deadline = time.monotonic() + 10 + KEPT_GRACE.total_seconds()
        while (await delivery_of(store, conversation_id) != Delivery.FAILED
               or "SMr1" in await store.kept_receipts_waiting(later, 10)):  # fmt: skip
            assert time.monotonic() < deadline, "the sweep never applied and took the kept receipt"
            await asyncio.sleep(0.05)
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
    assert await store.kept_receipt("SMr1") is None  # taken once applied


async def test_an_erased_conversations_kept_receipts_are_erased_with_it(store: Store) -> None:
    """A receipt kept for one of its sends (its take still to come) goes with the conversation, not 10 minutes
    later; another conversation's stays (issue 8)."""
    erased = await reply(store, "r1")
    await send_due(store)  # recorded as SMr1
    await store.keep_receipt("SMr1", Delivery.READ)
    await store.keep_receipt("SMelse", Delivery.DELIVERED)  # no send of the conversation names it
    await store.erase_conversation(erased)
    assert await store.kept_receipt("SMr1") is None
    assert await store.kept_receipt("SMelse") == Delivery.DELIVERED
    assert await store.kept_receipts_waiting(datetime.now(UTC) + timedelta(minutes=1), 10) == ["SMelse"]
