"""The flows a running gateway serves: the current one, and older versions pinned by conversations.

``reload()`` validates the file completely before anything changes; an invalid file is refused with the same
``FILE:LINE:COLUMN: message`` lines as ``gateway flows check`` and the current flow keeps serving. A
conversation keeps the flow version it started on while this process knows it: a version loaded since start-up
stays in memory while an open conversation is pinned to it (:meth:`FlowSet.prune`, from the watcher: an engine is
3–4 MB, and a line whose ops reload often kept every one until 2026-12-05, ~200 MB after 61 reloads). After a
restart with a changed file, or once its version is pruned, an old conversation continues on the current flow at
the same step if that step still exists, else it goes to the current flow's fallback (a listener).

A running server reloads with :meth:`FlowSet.reload_aside` (the console's reload, SIGHUP, the file watcher): the file
is read, validated and compiled in a daemon thread of its own (:func:`in_own_thread`), only the swap on the event
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TypeVar

from gateway.errors import FlowValidationError, ThreadRefused
from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.flows.model import ALWAYS_SCHEDULE
from gateway.flows.positions import LoadedFlow

log = logging.getLogger(__name__)
_PLACEHOLDER = re.compile(r"\{\w+\}")
PRUNE_AFTER_SECONDS = 600.0  # a version replaced this long ago may be forgotten once no open conversation uses it
FLOW_READ_SECONDS = 60.0  # a running server's reload refused when the file is not read and compiled by then
T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True)
class ReloadResult:
    at: datetime
    ok: bool
    version: str | None
    problems: tuple[str, ...] = ()
    running: bool = False  # not started: the previous reload's read of the file has not ended (the API's 409)
    unstarted: bool = False  # not started: the system refused the read's thread (the API's 503)

    def to_dict(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "ok": self.ok, "version": self.version, "problems": list(self.problems)}


@dataclass
class FlowSet:
    path: Path
    current: Engine | None = None
    engines: dict[str, Engine] = field(default_factory=dict)
    last_reload: ReloadResult | None = None
    on_reload: Callable[[ReloadResult], None] = lambda result: None
    always_open: bool = False  # development only (GATEWAY_DEV_ALWAYS_OPEN): every queue open at any hour
    _seen: tuple[int, int, int] | None = None  # the file's (modification time, size, inode) last loaded
    _settling: tuple[int, int, int] | None = None  # a change the watcher saw at its last look, not yet loaded
    own_texts: OwnStrings = field(default_factory=lambda: OwnStrings())
    retired: dict[str, float] = field(default_factory=dict)  # a version no longer current: since when (monotonic)
    read_seconds: float = FLOW_READ_SECONDS  # reload_aside: how long the file's read and compilation are waited for
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)  # reload_aside: one at a time
    _reading: _Read | None = field(default=None, repr=False)  # reload_aside: the last read, which may outlive its wait
    _looking: _Read | None = field(default=None, repr=False)  # reload_if_settled_aside: the last look, the same
    _look_refused: bool = field(default=False, repr=False)  # _look_aside: a look's thread refused, said once

    def reload(self) -> ReloadResult:
        """Load the file; swap it in only when valid. The result is kept in ``last_reload``. Start-up, tools and
        tests: it holds the thread it runs on (see :meth:`reload_aside`)."""
        now = datetime.now(UTC)
        self._seen = self._stat()
        try:
            engine, strings = self._build()
        except FlowValidationError as exc:
            return self._refused(now, exc)
        return self._swap(now, engine, strings)

    async def reload_aside(self) -> ReloadResult:
        """:meth:`reload` for a running server: the file read, validated and compiled in a thread of its own (0.3–0.5 s
        for the default 244 KB flows.yaml on a 2-core machine; more for a bigger one), only the swap on the event
        loop; one reload at a time. Until 2026-12-06 the console's reload, SIGHUP and the file watcher did it on the
        loop: for that time no webhook was acknowledged and no web chat or console socket was served (at 1,000
        messages a second, 300–500 of them waited), and a flows.yaml that could not be read at once (a network
        share, a pipe) held the whole gateway until it could. A file not read and compiled within ``read_seconds``
        is a refused reload (the current flow kept), so the console's reload answers and the watcher goes on. While
        that read has not ended (its thread still blocked on the file), a reload is not started: it is answered at once
        as :meth:`_running` (nothing changed, nothing recorded), so one thread at most waits on the file; before
        2026-12-06 each reload asked meanwhile (the console's, SIGHUP's, the watcher's) started one more."""
        async with self._reloading:
            now = datetime.now(UTC)
            if self._reading is not None and not self._reading.ended.is_set():
                return self._running(now, self._reading)
            read = self._reading = _Read(time.monotonic())
            looked: list[tuple[int, int, int] | None] = []

            def build() -> tuple[Engine, set[str]]:  # the look at the file too: a share may hang on it
                looked.append(self._stat())
                return self._build()

            try:
                engine, strings = await asyncio.wait_for(in_own_thread(read.of(build)), self.read_seconds)
            except FlowValidationError as exc:
                self._seen = looked[0]
                return self._refused(now, exc)
            except ThreadRefused as exc:  # nothing runs: the next reload may start one
                read.ended.set()
                return self._unstarted(now, exc)
            except TimeoutError:  # the thread is left to end when the file answers, its result unused
                return self._refused(now, FlowValidationError([
                    f"{self.path}:1:1: the file was not read and validated within {self.read_seconds:g} s (a"
                    " network share or a disk not answering?): nothing changed; save it again or reload once it"
                    " can be read"
                ]))  # fmt: skip
            self._seen = looked[0]
            return self._swap(now, engine, strings)

    def _running(self, now: datetime, reading: _Read) -> ReloadResult:
        """A reload not started, the previous read still waiting on the file; said once per read in the log (the
        watcher asks again at every settled look). ``last_reload`` and the metrics keep the last reload made."""
        if not reading.said:
            reading.said = True
            log.warning("flow reload not started: the previous read of %s has not ended", self.path)
        return ReloadResult(now, False, self.version, (
            f"{self.path}:1:1: a reload is already running: the file has not answered its read, started"
            f" {time.monotonic() - reading.started:.0f} s ago (a network share or a disk not answering?): nothing"
            " changed; reload again once it can be read",
        ), running=True)  # fmt: skip

    def _unstarted(self, now: datetime, exc: ThreadRefused) -> ReloadResult:
        """A reload not started, the system refusing its thread: the current flow kept, nothing recorded (as
        :meth:`_running`); until 2026-12-06 its read stayed marked running, and every later reload was refused 409."""
        cause = type(exc.__cause__ or exc).__name__
        log.error("flow reload not started: no thread for the read of %s (%s); still serving %s", self.path, cause,
                  self.version)  # fmt: skip
        return ReloadResult(now, False, self.version, (
            f"{self.path}:1:1: le rechargement n'a pas pu démarrer (le système refuse un nouveau fil d'exécution) :"
            " rien n'a changé, réessayez dans un moment. / the reload could not start (the system refuses a new"
            " thread): nothing changed, try again shortly.",
        ), unstarted=True)  # fmt: skip

    def _build(self) -> tuple[Engine, set[str]]:
        """The file's engine and its own strings; touches nothing of this set (any thread)."""
        loaded = load_file(self.path)
        engine = Engine(open_every_queue(loaded) if self.always_open else loaded)
        return engine, strings_of(engine.flow.model_dump())

    def _refused(self, now: datetime, exc: FlowValidationError) -> ReloadResult:
        self.last_reload = ReloadResult(now, False, self.version, tuple(exc.problems))
        log.warning("flow reload refused: %d problem(s); still serving %s", len(exc.problems), self.version)
        for problem in exc.problems:
            log.warning("%s", problem)
        self.on_reload(self.last_reload)
        return self.last_reload

    def _swap(self, now: datetime, engine: Engine, strings: set[str]) -> ReloadResult:
        self.engines.setdefault(engine.version, engine)
        if self.current is not None and self.current.version != engine.version:
            self.retired[self.current.version] = time.monotonic()
        self.current = self.engines[engine.version]
        self.retired.pop(engine.version, None)
        self.own_texts.add(strings)
        self.last_reload = ReloadResult(now, True, engine.version)
        log.info("flow %s loaded from %s", engine.version, self.path)
        if self.always_open:
            log.warning("GATEWAY_DEV_ALWAYS_OPEN=1: every queue is open whatever its hours (never in production)")
        self.on_reload(self.last_reload)
        return self.last_reload

    def reload_if_changed(self) -> ReloadResult | None:
        """Reload when the file changed (polled by the server): its modification time, or its size or inode (an
        editor's truncation, then its writing, may share one tick of the filesystem's clock)."""
        return self.reload() if self._stat() != self._seen else None

    def reload_if_settled(self) -> ReloadResult | None:
        """What the file watcher calls at every look: reload a changed file once it looks the same at two looks in a
        row. An editor or ``cp`` writing in place leaves a half-written file for a moment, and the first lines of a
        flows.yaml can be a valid flow of their own (the default's lines before its ``erasure:``: a flow without
        the erasure a young person may ask for): loaded, it was served until the next look, and conversations begun
        meanwhile kept it for good. The console's reload and SIGHUP read the file at once."""
        return self.reload() if self._settled(self._stat()) else None

    async def reload_if_settled_aside(self) -> ReloadResult | None:
        """:meth:`reload_if_settled` with :meth:`reload_aside`: what the running server's watcher calls. Its look at
        the file is made in a thread of its own too (:meth:`_look_aside`): until 2026-12-06 it was made on the event
        loop, and a share that stopped answering held the whole gateway at the watcher's next look."""
        found = await self._look_aside()
        if found is _UNANSWERED:
            return None
        return await self.reload_aside() if self._settled(found) else None

    async def _look_aside(self) -> tuple[int, int, int] | _Unanswered | None:
        """The file's (modification time, size, inode) looked at in a thread of its own, waited for ``read_seconds``
        at most; ``_UNANSWERED`` when the look does not answer in time, or while an earlier look still waits on the
        file (one thread at most waits on it, said once in the log)."""
        look = self._looking
        if look is not None and not look.ended.is_set():
            return _UNANSWERED
        look = self._looking = _Read(time.monotonic())
        try:
            found = await asyncio.wait_for(in_own_thread(look.of(self._stat)), self.read_seconds)
        except ThreadRefused as exc:  # nothing runs: the next look may start one (until 2026-12-06, none did)
            look.ended.set()
            if not self._look_refused:  # said once until a look runs again, not at every look
                self._look_refused = True
                log.error("flows: no thread for a look at %s (%s): looked at again at the next look", self.path,
                          type(exc.__cause__ or exc).__name__)  # fmt: skip
            return _UNANSWERED
        except TimeoutError:
            log.warning("flows: %s did not answer a look within %g s (a network share or a disk not answering?):"
                        " looked at again once it answers", self.path, self.read_seconds)  # fmt: skip
            return _UNANSWERED
        self._look_refused = False
        return found

    def _settled(self, found: tuple[int, int, int] | None) -> bool:
        """Whether the file changed and looked the same at two looks in a row (a change seen now is looked at again);
        ``found``: this look (``_stat``)."""
        if found == self._seen:
            self._settling = None
            return False
        if found != self._settling:  # changed since the last look: maybe still being written
            self._settling = found
            return False
        self._settling = None
        return True

    def prune(self, in_use: Collection[str], settled: float = PRUNE_AFTER_SECONDS) -> int:
        """Forget the engines of versions no longer current for ``settled`` seconds that no open conversation is
        pinned to (``in_use``: the versions of the open conversations, read from the store after that time, so a
        conversation begun on a version just before a reload is recorded by then). A conversation of a version
        forgotten meanwhile (an edge: read open before it was) goes on on the current flow, as after a restart. How
        many were forgotten."""
        now, kept = time.monotonic(), set(in_use)
        gone = [v for v, since in self.retired.items() if now - since >= settled and v not in kept]
        for version in gone:
            del self.retired[version]
            if self.current is None or version != self.current.version:
                self.engines.pop(version, None)
        if gone:
            log.info("flows: %d version(s) no open conversation uses forgotten; %d kept", len(gone), len(self.engines))
        return len(gone)

    def prunable(self, settled: float = PRUNE_AFTER_SECONDS) -> bool:
        """Whether a version has been retired for ``settled`` seconds: worth reading which versions are in use."""
        now = time.monotonic()
        return any(now - since >= settled for since in self.retired.values())

    @property
    def version(self) -> str | None:
        return self.current.version if self.current else None

    def engine(self) -> Engine:
        if self.current is None:
            raise FlowValidationError(["no valid flow is loaded"])
        return self.current

    def for_version(self, version: str) -> Engine:
        """The engine a conversation is pinned to, or the current one when that version is unknown."""
        return self.engines.get(version) or self.engine()

    def knowing(self, version: str, has: Callable[[Engine], bool]) -> Engine | None:
        """The current engine when ``has`` holds for it, else the engine of ``version`` when it does, else None. The
        console offers the current flow's queues, partners and closing categories: one a reload added is known to the
        conversations begun before it too, which keep their own version for the bot's part; one a reload corrected (a
        partner's number, a queue's hours) is sent and told as corrected; one it removed stays usable on the
        conversations whose version has it."""
        return next((engine for engine in (self.engine(), self.for_version(version)) if has(engine)), None)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = self.path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size, found.st_ino


class OwnStrings:
    """Every string written in flows.yaml, in any version loaded since start: the line's own words, never a young
    person's. The store keeps a bot message made only of them (or of a template of them, filled) once for every
    transcript (``gateway/store/texts.py``)."""

    def __init__(self) -> None:
        self._strings: set[str] = set()
        self._templates: list[str] = []

    def add(self, strings: set[str]) -> None:
        new = strings - self._strings
        self._strings |= new
        self._templates += sorted(s for s in new if _PLACEHOLDER.search(s))

    def __contains__(self, text: object, /) -> bool:
        return text in self._strings

    def templates(self) -> Collection[str]:
        """Those with ``{placeholders}``."""
        return self._templates


def strings_of(data: object) -> set[str]:
    """Every string in a loaded flow (its values and its mapping keys)."""
    if isinstance(data, str):
        return {data}
    if isinstance(data, dict):
        return {s for key, value in data.items() for s in strings_of(key) | strings_of(value)}
    if isinstance(data, list | tuple | set | frozenset):
        return {s for item in data for s in strings_of(item)}
    return set()


def open_every_queue(loaded: LoadedFlow) -> LoadedFlow:
    """The same flow with every queue on the built-in ``always`` schedule (its version marked ``+open``)."""
    queues = {name: q.model_copy(update={"schedule": ALWAYS_SCHEDULE}) for name, q in loaded.flow.queues.items()}
    flow = loaded.flow.model_copy(update={"queues": queues})
    return replace(loaded, flow=flow, version=loaded.version + "+open")


class _Unanswered(Enum):
    """A look at the file that did not answer (:meth:`FlowSet._look_aside`)."""

    UNANSWERED = "unanswered"


_UNANSWERED = _Unanswered.UNANSWERED


@dataclass
class _Read:
    """One reload's read of the file, in its own thread: when it started (monotonic), whether it has ended (set by
    that thread, however it ended), whether a reload refused meanwhile was logged."""

    started: float
    ended: threading.Event = field(default_factory=threading.Event)
    said: bool = False

    def of(self, work: Callable[[], T]) -> Callable[[], T]:
        """``work``, marking this read ended when it returns or raises."""

        def run() -> T:
            try:
                return work()
            finally:
                self.ended.set()

        return run


async def in_own_thread(work: Callable[[], T], name: str = "flows-reload") -> T:
    """``work`` run in a daemon thread of its own (``name``), its result (or exception) awaited. A reload of a file
    that never answers (a share gone silent) leaves that thread blocked, and nothing waits for it: a stop cancels the
    await and the process ends. Until 2026-12-06 the reload ran in asyncio's default executor (``asyncio.to_thread``),
    which the loop's close and the interpreter's exit join: after SIGTERM the gateway stopped serving, logged
    "stopped", then never exited (tests/test_serve.py)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def fail(error: BaseException) -> None:
        if not done.done():  # done: cancelled, nobody waits
            done.set_exception(error)

    def succeed(result: T) -> None:
        if not done.done():
            done.set_result(result)

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task, raised there
            _on_loop(loop, fail, exc)
            return
        _on_loop(loop, succeed, result)

    try:
        threading.Thread(target=run, name=name, daemon=True).start()
    except RuntimeError as exc:  # "can't start new thread": ``work`` never runs (nor any mark it clears)
        raise ThreadRefused(f"the system refused a thread ({name})") from exc
    return await done


def _on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[A], None], arg: A) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (the process stopping): nobody waits
        loop.call_soon_threadsafe(call, arg)
