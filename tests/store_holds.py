"""One store double for the tests that widen a race or cut a step short: :class:`Holds`, the real store (nothing
of the gateway patched), with steps armed at named methods for a chosen target.

- :meth:`Holds.hold`: the next matching call waits for :attr:`Holds.go` (:attr:`Holds.reached` set first), made
  before the wait, or after it (``after=True``: the answer read at once, handed back once released);
- :meth:`Holds.fail`: matching calls raise StoreError before running, as a connection reset before the command
  does (what was written before them kept), counted in :attr:`Holds.failed`;
- :meth:`Holds.run`: the next matching call runs a callback first (another writer's step in between);
- :meth:`Holds.told`: an event set at the next matching call (a second actor got there and waits).

A target is a string (the call's first argument starts with it: a conversation id, an upload key under it) or a
predicate over the call's arguments (it may be async: it may read the store). Steps armed at one method run in the
order armed. The fixture :func:`holds` opens it on the test's store (``store_url``: SQLite, Redis, a Cluster).

Written 2026-12-07: until then each test wrote its own double (``Pausing``, ``Erasing``, ``Cutting``, ``Dying``,
``Held``, ``Holding``, ``FailingFirstSave``, ``NoLine``) and its own fixture opening it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.crypto import DataKeys
from gateway.errors import StoreError
from gateway.settings import Settings
from gateway.store import Store, open_store

Target = str | Callable[..., bool | Awaitable[bool]] | None
RESET = "the connection to the store was reset"


@dataclass
class _Step:
    kind: str  # "hold", "fail", "run", "told"
    target: Target
    times: int | None  # how many more calls it takes (None: every one)
    after: bool = False
    callback: Callable[..., Awaitable[Any]] | None = None
    event: asyncio.Event | None = None


def _matches_now(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if target is None:
        return True
    if isinstance(target, str):
        return bool(args) and str(args[0]).startswith(target)
    return target(*args, **kwargs)


class Holds:
    """The real store, with the steps armed by :meth:`hold`, :meth:`fail`, :meth:`run` and :meth:`told`."""

    def __init__(self, store: Store) -> None:
        self.real = store
        self._steps: dict[str, list[_Step]] = {}
        self.reached, self.go = asyncio.Event(), asyncio.Event()
        self.failed: Counter[str] = Counter()

    def _arm(self, method: str, step: _Step) -> None:
        self._steps.setdefault(method, []).append(step)

    def hold(self, method: str, target: Target = None, *, after: bool = False) -> None:
        """The next call of ``method`` matching ``target`` sets :attr:`reached` and waits for :attr:`go`: then
        runs (``after``: ran at once, its answer handed back once :attr:`go` is set)."""
        self._arm(method, _Step("hold", target, 1, after=after))

    def fail(self, method: str, target: Target = None, *, times: int | None = 1) -> None:
        """The next ``times`` calls (None: every one) of ``method`` matching ``target`` raise StoreError."""
        self._arm(method, _Step("fail", target, times))

    def run(self, method: str, callback: Callable[..., Awaitable[Any]], target: Target = None) -> None:
        """The next call of ``method`` matching ``target`` awaits ``callback(*args)`` first."""
        self._arm(method, _Step("run", target, 1, callback=callback))

    def told(self, method: str, target: Target = None) -> asyncio.Event:
        """An event set at the next call of ``method`` matching ``target`` (the call itself untouched)."""
        event = asyncio.Event()
        self._arm(method, _Step("told", target, 1, event=event))
        return event

    def _take(self, step: _Step) -> None:
        if step.times is not None:
            step.times -= 1

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.real, name)
        steps = self._steps.get(name)
        if not steps:
            return found
        if all(step.kind == "told" for step in steps):  # a plain call: sync methods (lock) too

            def told(*args: Any, **kwargs: Any) -> Any:
                for step in [s for s in steps if s.times != 0]:
                    if _matches_now(step.target, args, kwargs):
                        self._take(step)
                        assert step.event is not None
                        step.event.set()
                return found(*args, **kwargs)

            return told

        async def stepped(*args: Any, **kwargs: Any) -> Any:
            release_after = False
            for step in [s for s in steps if s.times != 0]:
                matched = _matches_now(step.target, args, kwargs)
                if inspect.isawaitable(matched):
                    matched = await matched
                if not matched or step.times == 0:
                    continue
                self._take(step)
                if step.kind == "told":
                    assert step.event is not None
                    step.event.set()
                elif step.kind == "run":
                    assert step.callback is not None
                    await step.callback(*args, **kwargs)
                elif step.kind == "fail":
                    self.failed[name] += 1
                    raise StoreError(RESET)
                elif step.after:
                    release_after = True
                else:
                    self.reached.set()
                    await self.go.wait()
            answer = await found(*args, **kwargs)
            if release_after:
                self.reached.set()
                await self.go.wait()
            return answer

        return stepped


def held_at(store: Store, method: str, target: Target = None, *, after: bool = False) -> Holds:
    """:class:`Holds` on ``store``, its next call of ``method`` matching ``target`` held (:meth:`Holds.hold`)."""
    holds = Holds(store)
    holds.hold(method, target, after=after)
    return holds


def cut_at(store: Store, conversation_id: str) -> Holds:
    """:class:`Holds` on ``store``, its next deletion of that conversation (``erase_conversation``) failing: an
    erasure cut short there, what it wrote before kept (counted in ``failed["erase_conversation"]``)."""
    holds = Holds(store)
    holds.fail("erase_conversation", conversation_id)
    return holds


async def open_holds(settings: Settings) -> Holds:
    """:class:`Holds` on the store ``settings`` name (whoever opens it closes it: the app does)."""
    return Holds(await open_store(settings.store, keys=DataKeys.from_settings(settings)))


@pytest.fixture
async def holds(store_url: str, settings: Settings) -> AsyncIterator[tuple[Settings, Holds]]:
    """The settings on the test's store and :class:`Holds` on it. Ask for it before ``make_client``: the app (which
    closes the store) stops before this fixture closes it again."""
    settings = settings.replace(store=store_url)
    holds = await open_holds(settings)
    try:
        yield settings, holds
    finally:
        await holds.real.close()
