"""Late readings (docs/understanding.md, "Cost"): a message that went on without the model's reading because the
model was busy is read after the fact, and its reading may only escalate. The real Reader (its worker blocked on
a gate, as a slow model would be), the real dispatcher, flows.yaml and the SQLite store."""

from __future__ import annotations

import asyncio
import gc
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.console.actions import Actions
from gateway.console.api import card_flag
from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.dispatcher import Dispatcher
from gateway.erasure import Eraser
from gateway.events import FlagRaised
from gateway.flows.reading import Reading, Risk
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, Store, TranscriptEntry, open_store
from gateway.supervisor import Supervisor
from gateway.understanding import Model, Reader
from gateway.understanding.late import Late, LateReadings
from tests.conftest import ROOT, Clock
from tests.e2e.channel_support import eventually
from tests.store_holds import Holds
from tests.understanding.test_reader import LONG, SHIPPED, Recording

RISKY = "je pense au pont tous les soirs"  # suicide, read by the model only: no keyword finds it
HARMLESS = "c quoi les horaires"


@dataclass
class Rig:
    store: Store
    flows: FlowSet
    dispatcher: Dispatcher
    reader: Reader
    late: LateReadings
    gate: threading.Event
    embedder: Recording
    metrics: Metrics
    clock: Clock
    outcomes: list[str] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None

    async def busy(self) -> None:
        """The model's worker stuck on a call that timed out: every fresh message is told ``busy`` at once."""
        hung = asyncio.ensure_future(self.reader.read("un message qui occupe le modèle"))
        await asyncio.to_thread(self.embedder.started.wait, 30)
        assert await hung is None

    def release(self) -> None:
        """The model is free again, and the late readings' worker runs."""
        self.gate.set()
        self.worker = asyncio.create_task(self.late.run(self.dispatcher.apply_late))

    async def send(self, sender: str, number: int, text: str, payload: str | None = None) -> Conversation:
        assert await self.dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, sender, f"m{number}", text, payload))
        conversation = await self.store.find_active_conversation(ChannelName.WEBCHAT, sender)
        assert conversation is not None
        return conversation

    async def conversation(self, conversation_id: str) -> Conversation:
        found = await self.store.get_conversation(conversation_id)
        assert found is not None
        return found

    async def said(self, conversation_id: str) -> list[TranscriptEntry]:
        """What the young person wrote."""
        return [e for e in await self.store.transcript(conversation_id) if e.author is Author.USER]

    async def bot_said(self, conversation_id: str) -> list[str]:
        return [e.text for e in await self.store.transcript(conversation_id) if e.author is Author.BOT]

    def partner(self, name: str) -> str:
        engine = self.flows.engine()
        return engine.text(engine.flow.partners[name].message, "fr")


Card = tuple[str, Priority, RiskFlag | None]


class CardsRead:
    """The store, the queue's cards read after each of its writes (as the console shows them: ``card_flag``): what
    a listener could see between two writes of the dispatcher's."""

    WRITES = frozenset({"enqueue", "save_conversation", "flag_entry", "append_transcript", "outbox_put", "set_timer"})

    def __init__(self, store: Store, cards: list[Card]) -> None:
        self._store, self._cards = store, cards

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name not in self.WRITES:
            return found

        async def written(*args: Any, **kwargs: Any) -> Any:
            done = await found(*args, **kwargs)
            for entry in await self._store.waiting():
                conversation = await self._store.get_conversation(entry.conversation_id)
                assert conversation is not None
                self._cards.append((entry.conversation_id, entry.priority, card_flag(entry, conversation)))
            return done

        return written


@pytest.fixture
async def rig(tmp_path: Path, clock: Clock) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    made: list[Rig] = []

    async def make(
        size: int = 1000,
        timeout: float = 0.2,
        cards: list[Card] | None = None,
        loaded: threading.Event | None = None,
        holds: bool = False,
    ) -> Rig:
        store = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
        if cards is not None:
            store = cast(Store, CardsRead(store, cards))
        if holds:  # steps armed at the store's methods (tests/store_holds.py), its failures told as the app does
            store = cast(Store, Holds(store))
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        gate = threading.Event()
        embedder = Recording(gate)

        def load() -> Model:  # at once, or once the test lets the model load (``loaded``)
            assert loaded is None or loaded.wait(60)
            return Model(embedder, SHIPPED.classifier)

        reader = Reader(load, timeout=timeout)
        reader.start()
        if loaded is None:
            await reader.wait_loaded()
        metrics = Metrics()
        outcomes: list[str] = []

        def outcome(name: str) -> None:
            outcomes.append(name)
            metrics.understanding_late.labels(name).inc()

        late = LateReadings(reader, store, size=size, hold_seconds=0.3, clock=clock, on_outcome=outcome,
                            on_store_failure=lambda exc: metrics.outages.failed("late_readings", exc))  # fmt: skip
        dispatcher = Dispatcher(store, flows, clock=clock, metrics=metrics, reader=reader, late=late)
        made.append(Rig(store, flows, dispatcher, reader, late, gate, embedder, metrics, clock, outcomes))
        return made[-1]

    yield make
    for rig in made:
        rig.gate.set()
        if rig.worker is not None:
            rig.worker.cancel()
        rig.reader.close()
        await rig.store.close()


async def queued(rig: Rig, sender: str) -> Conversation:
    """A conversation waiting in the listeners' queue at normal priority."""
    conversation = await rig.dispatcher.start_conversation(ChannelName.WEBCHAT, sender, "fr")
    async with rig.store.lock(conversation.id):
        await rig.dispatcher.enqueue(conversation, rig.flows.engine(), "listeners", Priority.NORMAL, rig.clock())
        await rig.store.save_conversation(conversation)
    return conversation


async def flag_raised(events: AsyncIterator[object], conversation_id: str) -> FlagRaised:
    async with asyncio.timeout(30):
        async for event in events:
            if isinstance(event, FlagRaised) and event.conversation_id == conversation_id:
                return event
    raise AssertionError("no flag raised")


async def released_until_flagged(r: Rig, conversation_id: str) -> FlagRaised:
    """Let the held late reading go and wait for the flag it raises on ``conversation_id``."""
    events = await r.store.subscribe()
    try:
        r.release()
        return await flag_raised(events, conversation_id)
    finally:
        await events.aclose()


async def test_a_risky_message_that_went_on_unread_while_waiting_is_flagged_later(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    conversation = await queued(r, "zoe")
    await r.busy()
    await r.send("zoe", 1, RISKY)
    waiting = await r.conversation(conversation.id)
    assert waiting.priority is Priority.NORMAL and waiting.flag is None  # the keywords found nothing
    assert r.outcomes == ["queued"]
    event = await released_until_flagged(r, conversation.id)
    assert event.flag.risk == "suicide" and event.flag.source == "model" and event.flag.score > 0.5
    flagged = await r.conversation(conversation.id)
    assert flagged.priority is Priority.URGENT and flagged.status is Status.QUEUED
    assert flagged.flag is not None and flagged.flag.source == "model"
    assert flagged.flagged_at == flagged.updated_at  # when the late reading flagged it: the board's order
    assert [c.id for c in await r.store.flagged_conversations(50)] == [conversation.id]
    said = await r.bot_said(conversation.id)
    assert said.count(r.partner("3114")) == 1  # the risk's referral, once
    await eventually(lambda: asyncio.sleep(0, "flagged" in r.outcomes))
    assert r.metrics.registry.get_sample_value("gateway_understanding_late_total", {"outcome": "flagged"}) == 1


async def test_a_risky_message_that_came_while_the_model_was_loading_is_flagged_once_it_is_loaded(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The start-up's first second or so (the model loading: ONNX Runtime's ~1 s): the message goes on with the
    keywords at once, and is read after the fact once the model is there, as a message that found it busy."""
    loaded = threading.Event()
    r = await rig(loaded=loaded)
    r.gate.set()  # the model reads at once when it is there
    conversation = await queued(r, "yann")
    assert r.reader.status == "loading"
    await r.send("yann", 1, RISKY)
    waiting = await r.conversation(conversation.id)
    assert waiting.priority is Priority.NORMAL and waiting.flag is None  # the keywords found nothing
    assert r.outcomes == ["queued"]
    events = await r.store.subscribe()
    try:
        r.worker = asyncio.create_task(r.late.run(r.dispatcher.apply_late))
        await eventually(lambda: asyncio.sleep(0, r.late.waiting() == 0))  # taken: its reading waits for the model
        assert r.reader.status == "loading" and r.outcomes == ["queued"]
        loaded.set()
        event = await flag_raised(events, conversation.id)
    finally:
        await events.aclose()
    assert event.flag.risk == "suicide" and event.flag.source == "model"
    flagged = await r.conversation(conversation.id)
    assert flagged.priority is Priority.URGENT and flagged.flag is not None
    await eventually(lambda: asyncio.sleep(0, "flagged" in r.outcomes))


async def test_a_card_raised_to_urgent_by_a_late_reading_shows_its_flag_from_the_first_write(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The queue entry's priority and the flag it was raised for are one write: read after each of the late
    reading's writes, the card is never urgent without its risk."""
    cards: list[Card] = []
    r = await rig(cards=cards)
    conversation = await queued(r, "zoe")
    await r.busy()
    await r.send("zoe", 1, RISKY)
    cards.clear()
    await released_until_flagged(r, conversation.id)
    assert cards and cards[-1][:2] == (conversation.id, Priority.URGENT)
    urgent = [flag for _, priority, flag in cards if priority is Priority.URGENT]
    assert urgent and all(flag is not None and flag.risk == "suicide" for flag in urgent), cards


async def test_a_risky_first_message_read_late_hands_off_as_its_interrupt_would(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    await r.busy()
    conversation = await r.send("sam", 1, RISKY)
    assert conversation.status is Status.BOT  # on the keywords alone, the bot asked its first question
    r.release()
    handed = await eventually(lambda: _status(r, conversation.id, Status.QUEUED))
    assert handed.priority is Priority.URGENT and handed.queue == "listeners"
    assert handed.flag is not None and handed.flag.source == "model" and handed.flag.risk == "suicide"
    assert r.partner("3114") in await r.bot_said(conversation.id)


async def _status(r: Rig, conversation_id: str, status: Status) -> Conversation | None:
    found = await r.conversation(conversation_id)
    return found if found.status is status else None


async def test_a_harmless_message_read_late_changes_nothing(rig: Callable[..., Awaitable[Rig]]) -> None:
    r = await rig()
    conversation = await queued(r, "zoe")
    await r.busy()
    await r.send("zoe", 1, HARMLESS)
    before = await r.store.transcript(conversation.id)
    r.release()
    await eventually(lambda: asyncio.sleep(0, "read" in r.outcomes))
    after = await r.conversation(conversation.id)
    assert after.priority is Priority.NORMAL and after.flag is None and after.status is Status.QUEUED
    assert await r.store.transcript(conversation.id) == before
    assert [c[0] for c in r.embedder.calls[1:]] == [HARMLESS]  # it was read, late


async def test_a_button_pressed_is_never_queued_for_a_late_reading(rig: Callable[..., Awaitable[Rig]]) -> None:
    r = await rig()
    conversation = await r.dispatcher.start_conversation(ChannelName.WEBCHAT, "zoe", "fr")
    asked = [e for e in await r.store.transcript(conversation.id) if e.choices]
    choice = asked[-1].choices[0]
    await r.busy()
    await r.send("zoe", 1, choice.label, payload=choice.value)
    await r.send("zoe", 2, HARMLESS)  # typed words, busy: queued
    assert r.outcomes == ["queued"]


async def test_late_readings_beyond_the_bound_wait_in_the_store_and_are_read_once_claimed(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(size=1)
    await r.busy()
    await r.send("zoe", 1, HARMLESS)
    sam = await r.send("sam", 1, RISKY)
    assert r.outcomes == ["queued", "deferred"] and r.late.deferred == 1
    assert r.metrics.registry.get_sample_value("gateway_understanding_late_total", {"outcome": "deferred"}) == 1
    assert await r.store.late_waiting() == 2  # both recorded: the second was not dropped
    r.clock.advance(seconds=1)  # its hold lapsed: nobody keeps it in memory
    keeper = asyncio.create_task(r.late.keep())
    try:
        event = await released_until_flagged(r, sam.id)
    finally:
        keeper.cancel()
    assert event.flag.risk == "suicide" and event.flag.source == "model"
    await eventually(lambda: _none_waiting(r))  # both applied: forgotten
    assert {"read", "claimed", "flagged"} <= set(r.outcomes)


async def _none_waiting(r: Rig) -> bool:
    return await r.store.late_waiting() == 0


async def test_a_risky_message_read_late_while_a_listener_holds_it_is_flagged_only(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    conversation = await queued(r, "zoe")
    await Actions(r.dispatcher, r.store, r.flows, clock=r.clock).take(conversation.id, "alice", capacity=3)
    await r.busy()
    await r.send("zoe", 1, RISKY)
    said = await r.bot_said(conversation.id)
    event = await released_until_flagged(r, conversation.id)
    assert event.flag.source == "model" and event.flag.risk == "suicide"
    held = await r.conversation(conversation.id)
    assert held.status is Status.WITH_LISTENER and held.listener == "alice"
    assert held.priority is Priority.URGENT  # nothing said, but a hand-back waits first in line (test_held_risk.py)
    assert held.flag is not None and held.flag.source == "model"
    assert await r.bot_said(conversation.id) == said  # the listener speaks: nothing is sent
    assert [(e.id, e.flag) for e in await r.said(conversation.id)] == [(event.entry_id, event.flag)]  # after a reload


async def test_a_late_flag_is_kept_on_its_message_and_the_same_reading_applied_again_writes_the_same(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    conversation = await queued(r, "zoe")
    await r.busy()
    await r.send("zoe", 1, RISKY)
    assert [e.flag for e in await r.said(conversation.id)] == [None]  # the keywords found nothing
    event = await released_until_flagged(r, conversation.id)
    flagged = await r.said(conversation.id)
    assert [(e.id, e.flag) for e in flagged] == [(event.entry_id, event.flag)]  # as one read when it came
    transcript, record = await r.store.transcript(conversation.id), await r.conversation(conversation.id)
    reading = await r.reader.read_late(RISKY)
    assert reading is not None
    assert await r.dispatcher.apply_late(Late(conversation.id, event.entry_id, RISKY), reading)
    assert await r.store.transcript(conversation.id) == transcript  # no entry more, the flag the same
    assert await r.conversation(conversation.id) == replace(record, updated_at=r.clock())


async def test_a_long_message_s_windows_read_late_escalate_the_conversation(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(timeout=30)  # the model free: the message is read at once, as far as its cut
    r.gate.set()
    conversation = await queued(r, "zoe")
    await r.send("zoe", 1, LONG)
    assert r.embedder.calls == [[r.embedder.cut(LONG)]]  # the message waited for one pass of the model
    waiting = await r.conversation(conversation.id)
    assert waiting.priority is Priority.NORMAL and waiting.flag is None  # its start says nothing of a risk
    assert r.outcomes == ["queued"]
    event = await released_until_flagged(r, conversation.id)
    assert r.embedder.calls[1:] == [r.embedder.windows(LONG)]  # late: the windows only
    assert event.flag.risk == "suicide" and event.flag.source == "model" and event.flag.score > 0.5
    flagged = await r.conversation(conversation.id)
    assert flagged.priority is Priority.URGENT and flagged.flag is not None and flagged.flag.source == "model"
    assert (await r.bot_said(conversation.id)).count(r.partner("3114")) == 1
    assert [e.flag for e in await r.said(conversation.id)] == [event.flag]  # on the message, as on the card


async def test_windows_that_raise_what_the_message_s_start_raised_change_nothing(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig(timeout=30)
    r.gate.set()
    conversation = await queued(r, "zoe")
    text = (  # 25 words, over 48 tokens: its start reads suicide (0.67), its window more (1.00); no keyword
        "jsuis fatiguée de tout. bonjour, une question sur les inscriptions périscolaires: l'entraînement de handball, "
        "l'anniversaire de ma cousine, et ce soir je pense au pont"
    )
    await r.send("zoe", 1, text)
    raised = await r.conversation(conversation.id)
    assert raised.priority is Priority.URGENT and raised.flag is not None and raised.flag.risk == "suicide"
    assert SHIPPED.read(text).score(Risk.SUICIDE) > raised.flag.score + 0.2  # its windows: the same risk, higher
    before = await r.store.transcript(conversation.id)
    r.release()
    await eventually(lambda: asyncio.sleep(0, "read" in r.outcomes))
    assert r.outcomes == ["queued", "read"] and len(r.embedder.calls) == 2  # read late, nothing added
    assert await r.store.transcript(conversation.id) == before
    assert (await r.conversation(conversation.id)).flag == raised.flag


def late_objects(conversation_id: str) -> list[Late]:
    """Every ``Late`` of the conversation still alive anywhere in this process (each holds the message's text)."""
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, Late) and o.conversation_id == conversation_id]


async def test_an_erasure_drops_the_erased_messages_waiting_for_their_late_reading_at_once(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Erasure must not leave a young person's words in memory: the text of a message queued for its late reading
    goes with the erasure, not when the reading worker comes to it (the model may be busy for long)."""
    r = await rig()
    await r.busy()
    sam = await r.send("sam", 1, RISKY + " " + secrets.token_hex(4))
    zoe = await r.send("zoe", 1, HARMLESS)
    assert [late.conversation_id for late in r.late.queued()] == [sam.id, zoe.id]

    eraser = Eraser(r.store, r.dispatcher, r.flows, lambda channel, sender: "k", clock=r.clock, late=r.late)
    assert await eraser.erase_conversation(sam.id, "supervisor", "console") is not None

    assert [late.conversation_id for late in r.late.queued()] == [zoe.id]
    assert late_objects(sam.id) == []  # no reference to its text is left in the queue (nor anywhere else)
    r.release()  # the other conversation's is still read
    await eventually(lambda: _none_waiting(r))
    assert r.outcomes.count("read") == 1 and late_objects(zoe.id) == []


async def test_an_erasure_by_another_instance_drops_the_texts_at_the_next_renewal(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The erasing process does not know another's memory: the records it erased are not renewed there, and the
    texts they held go with them, before the reading worker comes to them."""
    r = await rig()
    await r.busy()
    sam = await r.send("sam", 1, RISKY + " " + secrets.token_hex(4))
    r.gate.set()  # the model is free again, but the reading worker does not run: the message stays queued
    await eventually(lambda: _model_free(r))
    elsewhere = Eraser(r.store, Dispatcher(r.store, r.flows), r.flows, lambda channel, sender: "k", clock=r.clock)
    assert await elsewhere.erase_conversation(sam.id, "supervisor", "console") is not None
    assert [late.conversation_id for late in r.late.queued()] == [sam.id]  # not told

    keeper = asyncio.create_task(r.late.keep())
    try:
        await eventually(lambda: _nothing_queued(r))
    finally:
        keeper.cancel()
    assert late_objects(sam.id) == []


async def _model_free(r: Rig) -> bool:
    return r.reader.held_for() == 0


async def _nothing_queued(r: Rig) -> bool:
    return r.late.waiting() == 0


async def test_a_store_failure_while_a_late_reading_is_applied_is_retried_at_once_not_a_worker_restart(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Until 2026-12-07 a StoreError from ``apply`` or ``late_done`` stopped the reading worker: restarted by the
    supervisor (``gateway_worker_restarts_total``), the message dropped from memory, its record left to lapse and be
    claimed again (a hold, 30 s by default, then the next claim): the late escalation waited that long. Now it is
    told as an outage and retried while this process holds it; the reading applied once."""
    r = await rig(holds=True)
    holds = cast(Holds, r.store)
    conversation = await queued(r, "zoe")
    await r.busy()
    await r.send("zoe", 1, RISKY)
    holds.fail("flag_entry", conversation.id)  # the escalation cut short by a reset connection
    holds.fail("late_done", conversation.id, times=3)  # then its record not forgotten, three times
    applied: list[bool] = []

    async def apply(late: Late, reading: Reading) -> bool:
        flagged = await r.dispatcher.apply_late(late, reading)
        applied.append(flagged)
        return flagged

    supervisor = Supervisor(r.metrics)
    supervisor.add("late-readings", lambda: r.late.run(apply))
    events = await r.store.subscribe()
    r.gate.set()
    supervisor.start()
    try:
        async with asyncio.timeout(10):  # no keep worker here: a message dropped by a restart is never read again
            event = await flag_raised(events, conversation.id)
            await eventually(lambda: _none_waiting(r))
    finally:
        await supervisor.stop()
        await events.aclose()
    assert event.flag.risk == "suicide" and event.flag.source == "model"
    assert applied == [True] and r.outcomes == ["queued", "flagged"]  # applied once, its failed try not twice
    assert dict(holds.failed) == {"flag_entry": 1, "late_done": 3}
    sample = r.metrics.registry.get_sample_value
    assert not sample("gateway_worker_restarts_total", {"worker": "late-readings"})  # never restarted
    assert sample("gateway_store_failures_total", {"part": "late_readings", "error": "StoreError"}) == 4
