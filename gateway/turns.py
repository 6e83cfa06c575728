"""Turns shared fairly between client networks: :class:`FairTurns` (the web chat's hellos, ``WebChatHub.hello_turn``).

At most ``at_once`` holders at once in all, and at most a network's ``share`` of them from one client network (its
keyed hash, ``Gate.client_key``: never an address). A network at its share waits for its own turns to end: its next
waiter takes no turn and keeps no place ahead of another network's. When a turn ends, the next one goes to the
network with the fewest turns in progress among those waiting and below their share (the longest without a turn
first among equals), to its oldest waiter: the order of one network's waiters is kept. Never refused, never timed
out; a waiter cancelled leaves the line (a turn it was given meanwhile passed on).

Until 2026-12-07 (afternoon) the hellos waited in one line (an ``asyncio.Semaphore``): one client network holding 64
sockets (``gateway/connections.py``'s cap) filled the 32 turns and the line ahead of every young person's hello.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator


class FairTurns:
    def __init__(self, at_once: int) -> None:
        self.at_once = at_once
        self.working = 0  # turns in progress
        self.working_by: Counter[str] = Counter()  # by network
        self.waiting = 0  # waiters not given a turn yet
        self._lines: dict[str, deque[asyncio.Future[None]]] = {}  # each network's waiters, oldest first
        self._shares: dict[str, int] = {}  # the share of each network with turns in progress or waiters
        # The networks with waiters that may take a turn (below their share), by their turns in progress, the one
        # longest without a turn first: the next turn goes to the first of the first line not empty.
        self._ready: dict[int, OrderedDict[str, None]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, network: str, share: int) -> AsyncIterator[None]:
        """A turn of ``network`` (at most ``share`` of its own at once), held until the block ends."""
        await self._take(network, share)
        try:
            yield
        finally:
            self._end(network)

    async def _take(self, network: str, share: int) -> None:
        self._shares.setdefault(network, share)
        line = self._lines.get(network)
        if line is None:
            line = self._lines[network] = deque()
            self._mark_ready(network)
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        self.waiting += 1
        self._give()
        try:
            await waiter  # given at once (done already) when a turn was free
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # given a turn meanwhile: passed on
                self._end(network)
            elif waiter in line:  # left the line before its turn
                line.remove(waiter)
                self.waiting -= 1
                self._drop_if_empty(network)
            raise

    def _give(self) -> None:
        """Turns given while some are free and a network may take one."""
        while self.working < self.at_once:
            ready = next((self._ready[n] for n in sorted(self._ready) if self._ready[n]), None)
            if ready is None:
                return
            network, _ = ready.popitem(last=False)
            line = self._lines[network]
            waiter = line.popleft()
            self.waiting -= 1
            if waiter.cancelled():  # its holder is leaving (``_take``'s except): not a turn, nor its place lost
                if not self._drop_if_empty(network):
                    ready[network] = None
                    ready.move_to_end(network, last=False)
                continue
            self.working += 1
            self.working_by[network] += 1
            waiter.set_result(None)
            if not self._drop_if_empty(network):
                self._mark_ready(network)

    def _end(self, network: str) -> None:
        if network in self._lines:
            self._unmark_ready(network)
        self.working -= 1
        self.working_by[network] -= 1
        if self.working_by[network] <= 0:
            del self.working_by[network]
            if network not in self._lines:
                self._shares.pop(network, None)
        if network in self._lines:
            self._mark_ready(network)
        self._give()

    def _mark_ready(self, network: str) -> None:
        """``network`` (waiters in its line) ready for a turn when below its share, behind the others as many."""
        working = self.working_by[network]
        if working < self._shares[network]:
            self._ready.setdefault(working, OrderedDict())[network] = None

    def _unmark_ready(self, network: str) -> None:
        ready = self._ready.get(self.working_by[network])
        if ready is not None:
            ready.pop(network, None)

    def _drop_if_empty(self, network: str) -> bool:
        """Whether ``network`` has no waiter left (then no line, and not ready)."""
        if self._lines[network]:
            return False
        del self._lines[network]
        self._unmark_ready(network)
        if network not in self.working_by:
            self._shares.pop(network, None)
        return True
