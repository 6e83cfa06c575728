"""The dispatcher's guarantees (docs/architecture.md, "Nothing lost, nothing twice (inbound)"), on the real
dispatcher, flows.yaml and SQLite store. The only fault is a store that refuses the final save once, standing for
a processing that failed (the store itself is real).

The whole app under the same faults, and real processes killed: tests/e2e/test_exactly_once.py, test_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.conversation import Conversation
from gateway.dispatcher import DEDUPE_TTL_SECONDS, Dispatcher
from gateway.errors import InboundBusy, StoreError
from gateway.flowset import FlowSet
from gateway.ids import inbound_entry_id, inbound_key
from gateway.messages import ChannelName, Inbound, Receipt
from gateway.metrics import Metrics
from gateway.store import Author, ClaimState, DoneMark, Store, open_store
from tests.conftest import ROOT, Clock

SENDER = "psid-31337"


class SaveRefused:
    """The real store, except that saving the state with ``key``'s processed mark fails ``times`` times."""

    def __init__(self, store: Store, key: str, times: int = 1) -> None:
        self._store, self._key, self.left = store, key, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        if done is not None and done.key == self._key and self.left:
            self.left -= 1
            raise StoreError("the store failed while saving")
        await self._store.save_conversation(conversation, done=done)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


def dispatcher(store: Store, clock: Clock, claim_seconds: float = 10.0) -> Dispatcher:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    return Dispatcher(store, flows, clock=clock, claim_seconds=claim_seconds)


def message(mid: str, text: str = "Bonjour") -> Inbound:
    return Inbound(ChannelName.MESSENGER, SENDER, mid, text=text)


async def user_entries(store: Store) -> list[str]:
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
    assert conversation is not None
    return [e.id for e in await store.transcript(conversation.id) if e.author is Author.USER]


async def test_a_message_is_processed_once_and_a_redelivery_is_a_duplicate(store: Store, clock: Clock) -> None:
    running = dispatcher(store, clock)
    assert await running.handle_inbound(message("m1")) is True
    assert await running.handle_inbound(message("m1")) is False
    assert await user_entries(store) == [inbound_entry_id(message("m1"))]
    assert await store.claim(inbound_key(message("m1")), "later", 10) is ClaimState.DONE


class _LabelsCounted(Counter):
    """A counter counting how often its children are looked up (``labels``)."""

    asked = 0

    def labels(self, *values: Any, **named: Any) -> Any:
        self.asked += 1
        return super().labels(*values, **named)


async def test_a_message_counted_looks_its_channels_counter_up_once(store: Store, clock: Clock) -> None:
    """The messages processed and the duplicates are counted by channel, each channel's child looked up once
    (``Metrics.child``: until 2026-12-08, ``labels`` was asked again for every message, 1.45 µs each)."""
    metrics = Metrics()
    registry = CollectorRegistry()
    metrics.inbound = _LabelsCounted("gateway_inbound_messages", "processed", ["channel"], registry=registry)
    metrics.duplicates = _LabelsCounted("gateway_inbound_duplicates", "duplicates", ["channel"], registry=registry)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    running = Dispatcher(store, flows, clock=clock, metrics=metrics)
    for mid in ("m1", "m2", "m3", "m1", "m2"):
        await running.handle_inbound(message(mid))
    assert registry.get_sample_value("gateway_inbound_messages_total", {"channel": "messenger"}) == 3
    assert registry.get_sample_value("gateway_inbound_duplicates_total", {"channel": "messenger"}) == 2
    assert (metrics.inbound.asked, metrics.duplicates.asked) == (1, 1)  # (3, 2) before


async def test_a_failed_processing_releases_its_claim_at_once(store: Store, clock: Clock) -> None:
    key = inbound_key(message("m1"))
    failing = SaveRefused(store, key)
    running = dispatcher(cast(Store, failing), clock, claim_seconds=60)  # a lease that would hold a minute
    with pytest.raises(StoreError):
        await running.handle_inbound(message("m1"))
    # Released, not left to lapse: the provider's redelivery (another instance, or this one) goes through now.
    assert await store.claim(key, "the-redelivery", 60) is ClaimState.CLAIMED
    await store.release(key, "the-redelivery")
    assert await running.handle_inbound(message("m1")) is True
    assert await user_entries(store) == [inbound_entry_id(message("m1"))]  # the same entry, rewritten once


async def test_a_failed_processing_writes_nothing(store: Store, clock: Clock) -> None:
    """Its transcript entries, outbox items, timers and state land together, at the end, or not at all."""
    running = dispatcher(store, clock)
    assert await running.handle_inbound(message("m0")) is True
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
    assert conversation is not None
    before = (await store.transcript(conversation.id), await store.get_conversation(conversation.id))
    failing = dispatcher(cast(Store, SaveRefused(store, inbound_key(message("m1", "Non")))), clock)
    with pytest.raises(StoreError):
        await failing.handle_inbound(message("m1", "Non"))
    assert (await store.transcript(conversation.id), await store.get_conversation(conversation.id)) == before


async def test_a_redelivery_while_the_owner_lives_is_refused_not_acknowledged(store: Store, clock: Clock) -> None:
    key = inbound_key(message("m1"))
    assert await store.claim(key, "live-owner", 60) is ClaimState.CLAIMED  # another instance, still processing
    with pytest.raises(InboundBusy):
        await dispatcher(store, clock, claim_seconds=0.2).handle_inbound(message("m1"))
    assert await store.find_active_conversation(ChannelName.MESSENGER, SENDER) is None  # nothing processed


async def test_the_claim_is_checked_again_under_the_lock(store: Store, clock: Clock) -> None:
    """While this owner waited for the conversation's lock, another finished the same message: nothing twice."""
    key = inbound_key(message("m1"))
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, SENDER, clock())
    running = dispatcher(store, clock)
    async with store.lock(conversation.id):
        handling = asyncio.create_task(running.handle_inbound(message("m1")))
        async with asyncio.timeout(10):  # until it claimed the message (and waits for the lock)
            while (probed := await store.claim(key, "probe", 10)) is not ClaimState.BUSY:
                if probed is ClaimState.CLAIMED:
                    await store.release(key, "probe")  # not yet: let it in (it retries a refused claim)
                await asyncio.sleep(0.01)
        await store.save_conversation(conversation, done=DoneMark(key, DEDUPE_TTL_SECONDS))  # the other owner
    assert await handling is False
    assert await user_entries(store) == []


async def test_a_claim_is_renewed_while_its_message_waits_longer_than_its_lease(store: Store, clock: Clock) -> None:
    """The claim is renewed every third of its lease while the message is processed (``Dispatcher._renew``, a
    timer until the first renewal is due): a message held up (here waiting for its conversation's lock) for three
    leases is never let through to another owner meanwhile, then processed once. The lease is 1.5 s (production's
    is 10 s): a renewal may come up to a second late, as on a loaded machine (a 0.3 s lease, 0.2 s of slack, failed
    one run in four beside two busy processes); three leases stay well under the lock's 10 s wait."""
    lease = 1.5
    running = dispatcher(store, clock, claim_seconds=lease)
    assert await running.handle_inbound(message("m0")) is True
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
    assert conversation is not None
    key, loop = inbound_key(message("m1", "Non")), asyncio.get_running_loop()

    async def busy_for_another() -> bool:
        """Another owner's try: BUSY while the message is claimed (one that got it gives it back at once)."""
        state = await store.claim(key, "another", lease)
        if state is ClaimState.CLAIMED:
            await store.release(key, "another")
        return state is ClaimState.BUSY

    async with store.lock(conversation.id):  # the message waits for its conversation, for longer than its lease
        waiting = asyncio.create_task(running.handle_inbound(message("m1", "Non")))
        deadline = loop.time() + 10
        while not await busy_for_another():  # the dispatcher's claim taken
            assert loop.time() < deadline and not waiting.done()
            await asyncio.sleep(0.01)
        held_until = loop.time() + 3 * lease
        while loop.time() < held_until:  # three leases: renewed all along, never another owner's
            assert await busy_for_another()
            await asyncio.sleep(lease / 10)
    assert await waiting is True
    assert await user_entries(store) == [inbound_entry_id(message("m0")), inbound_entry_id(message("m1", "Non"))]


@pytest.mark.parametrize("error", ["١٢٣", "²", "63016"], ids=["arabic-indic", "superscript", "twilios"])
async def test_a_failed_receipts_code_is_logged_only_in_ascii_digits(
    store: Store, clock: Clock, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    """A provider's failure code is logged as it came only when ASCII digits (6 at most): ``isdigit()`` alone took
    "١٢٣" and "²" for one until 2026-12-08 (``Dispatcher._bot_failed``); "none" for anything else."""
    running = dispatcher(store, clock)
    assert await running.handle_inbound(message("m1")) is True
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
    assert conversation is not None
    reply = next(e for e in await store.transcript(conversation.id) if e.author is Author.BOT)
    assert await store.outbox_mark_sent(conversation.id, reply.id, "mid.reply-1")
    with caplog.at_level(logging.WARNING, logger="gateway.dispatcher"):
        await running.handle_receipt(
            Receipt(ChannelName.MESSENGER, SENDER, "failed", provider_message_id="mid.reply-1", error=error)
        )
    [line] = [r.getMessage() for r in caplog.records if "reported failed" in r.getMessage()]
    assert f"code {error if error.isascii() else 'none'} " in line, line
