"""A late reading applied after its conversation was erased by another instance (gateway/understanding/late.py):
the erasing instance drops the texts waiting in its own memory at once, another only at its next renewal (~10 s),
so a reading already under way there may still be handed to ``Dispatcher.apply_late``. It must write nothing (no
flag, no entry, no queue change, no record, no late record), publish no event and log nothing that identifies the
conversation, its message or its words; on SQLite, Redis and Redis Cluster, proved by difference (every row, key,
member and field: ``test_erasure_snapshot.snapshot``)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.conversation import Priority
from gateway.dispatcher import Dispatcher
from gateway.erasure import Eraser
from gateway.events import Event, Typing
from gateway.flows.reading import RISKS, Reading, Risk
from gateway.messages import ChannelName
from gateway.store import Author, PendingLate, Store, TranscriptEntry
from gateway.understanding.late import Late
from tests.store.test_erasure_snapshot import T0, Helpline, snapshot

RISKY = "je pense au pont tous les soirs, personne ne le sait"
SENDER = "7012345678901234"
SUICIDE = Reading(tuple((risk, 0.97 if risk is Risk.SUICIDE else 0.0) for risk in RISKS))  # what the model read


async def events_until(subscription: object, sentinel: Event) -> list[Event]:
    """The events published before ``sentinel`` (published last by the test)."""
    seen: list[Event] = []
    async with asyncio.timeout(10):
        async for event in subscription:  # type: ignore[attr-defined]
            if event == sentinel:
                return seen
            seen.append(event)
    raise AssertionError("the subscription ended")


async def test_a_late_reading_applied_after_an_erasure_elsewhere_writes_nothing(
    store: Store, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    helpline = Helpline(store)
    here = helpline.dispatcher  # the instance whose reading worker is reading the message
    conversation = await here.start_conversation(ChannelName.MESSENGER, SENDER, "fr")
    async with store.lock(conversation.id):
        await here.enqueue(conversation, helpline.flows.engine(), "listeners", Priority.NORMAL, T0)
        await store.save_conversation(conversation)
    said = TranscriptEntry("m-late", conversation.id, T0, Author.USER, RISKY)
    await store.append_transcript(said)
    await store.late_put(PendingLate(conversation.id, said.id, windows=False, queued_at=T0), "here", T0)
    # the reading is under way here; meanwhile another instance (which does not know this one's memory) erases
    elsewhere = Eraser(store, Dispatcher(store, helpline.flows), helpline.flows, helpline.sender_key,
                       clock=lambda: T0)  # fmt: skip
    assert await elsewhere.erase_conversation(conversation.id, "supervisor", "console") is not None
    before = snapshot(store_url)
    events = await store.subscribe()
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    try:
        flagged = await here.apply_late(Late(conversation.id, said.id, RISKY), SUICIDE)
        await store.late_done(conversation.id, said.id)  # what the reading worker does next, flagged or not
        sentinel = Typing("sentinel", "listener")
        await store.publish(sentinel)
        published = await events_until(events, sentinel)
    finally:
        await events.aclose()

    assert not flagged
    after = snapshot(store_url)
    assert after.items == before.items, sorted(after.items ^ before.items)[:10]
    assert published == []
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not [s for s in (conversation.id, said.id, SENDER, RISKY, "pont") if s in logged], logged
    assert await store.waiting() == [] and await store.get_conversation(conversation.id) is None
