"""A reply sent in parts (longer than its provider's limit: ``channels.base.send_parts``) keeps every part's
provider id on its entry, on SQLite, Redis and Cluster: a receipt naming any part finds it, the entry shows the worst
part's status (failed if one failed, read once every part is, never backwards), a part's receipt that came before
the send's record is applied after it, and an erasure takes every part's id. Until 2026-12-05 only the last part's id
was recorded: a first part lost while the last was read showed "read". The dispatcher and the outbox are the real
ones; the channel is a small recording sender that answers three ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.messages import Outbound
from gateway.outbox import Outbox
from gateway.store import Delivery, Store
from tests.store.test_contract_early_receipts import T0, WA, delivery_of, dispatcher_of, receipt, reply


class ThreeParts:
    """Answers every send with its three parts' ids, as ``send_parts`` joins them."""

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        return " ".join(f"SM{message.id}p{n}" for n in range(first_part, 3))


async def send_due(store: Store) -> None:
    await Outbox(store, {WA: ThreeParts()}, clock=lambda: T0 + timedelta(minutes=1)).deliver_due()


async def test_a_receipt_of_any_part_finds_the_reply(store: Store) -> None:
    conversation_id = await reply(store)
    await send_due(store)
    for n in range(3):
        found = await store.find_by_provider_id(f"SMr1p{n}")
        assert found is not None and (found.conversation_id, found.id) == (conversation_id, "r1")
    assert await store.find_by_provider_id("SMr1p") is None  # a part of an id is no id


async def test_a_part_failed_shows_the_reply_failed_whatever_the_others_say(store: Store) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await send_due(store)
    await dispatcher.handle_receipt(receipt("failed", "SMr1p0"))
    assert await delivery_of(store, conversation_id) == Delivery.FAILED
    for n in (1, 2):
        await dispatcher.handle_receipt(receipt("read", f"SMr1p{n}"))
    assert await delivery_of(store, conversation_id) == Delivery.FAILED


async def test_the_reply_shows_its_least_far_part_and_never_goes_back(store: Store) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await send_due(store)
    await dispatcher.handle_receipt(receipt("read", "SMr1p2"))
    await dispatcher.handle_receipt(receipt("delivered", "SMr1p1"))
    assert await delivery_of(store, conversation_id) == Delivery.SENT  # part 0: no word yet
    await dispatcher.handle_receipt(receipt("read", "SMr1p0"))
    assert await delivery_of(store, conversation_id) == Delivery.DELIVERED
    await dispatcher.handle_receipt(receipt("read", "SMr1p1"))
    assert await delivery_of(store, conversation_id) == Delivery.READ
    await dispatcher.handle_receipt(receipt("delivered", "SMr1p0"))  # late, out of order
    assert await delivery_of(store, conversation_id) == Delivery.READ
    assert await store.advance_part(conversation_id, "r1", "SMother", Delivery.FAILED) is None  # not one of its parts
    assert await delivery_of(store, conversation_id) == Delivery.READ


async def test_a_parts_receipt_before_the_record_is_applied_after_it(store: Store) -> None:
    dispatcher = dispatcher_of(store)
    conversation_id = await reply(store)
    await dispatcher.handle_receipt(receipt("failed", "SMr1p1"))  # the callback beat the record
    await dispatcher.handle_receipt(receipt("read", "SMr1p2"))
    await send_due(store)
    assert await delivery_of(store, conversation_id) == Delivery.FAILED
    assert await store.kept_receipts_waiting(datetime.now(UTC) + timedelta(minutes=1), 10) == []  # taken


async def test_an_erasure_takes_every_parts_id(store: Store) -> None:
    erased = await reply(store)
    await send_due(store)
    await store.keep_receipt("SMr1p0", Delivery.READ)  # a take still to come
    await store.erase_conversation(erased)
    for n in range(3):
        assert await store.find_by_provider_id(f"SMr1p{n}") is None
    assert await store.kept_receipt("SMr1p0") is None
