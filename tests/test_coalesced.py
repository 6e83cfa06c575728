"""gateway/coalesced.py: the callers that come while a read runs share the next one, never an older answer.

The read is the test's own (a counter behind an event the test opens), as the consoles' queue read is the store's:
orders and counts are compared, never durations.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.coalesced import Coalesced


class Reads:
    """A read the test lets finish: each returns its own number, the state of the world when it began."""

    def __init__(self) -> None:
        self.begun = 0
        self.world = 0  # what a read begun now sees
        self.gates: list[asyncio.Event] = []
        self.fail: Exception | None = None

    async def read(self) -> int:
        self.begun += 1
        seen = self.world
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail is not None:
            raise self.fail
        return seen

    async def began(self, count: int) -> None:
        while self.begun < count:
            await asyncio.sleep(0)


async def test_twenty_callers_during_a_read_share_the_next_one_which_sees_what_changed_before_they_called() -> None:
    reads = Reads()
    shared = Coalesced(reads.read)
    first = asyncio.ensure_future(shared.get())
    await reads.began(1)
    reads.world = 1  # a change (a take, an arrival): the consoles reload because of it
    reloads = [asyncio.ensure_future(shared.get()) for _ in range(20)]
    await asyncio.sleep(0)
    assert reads.begun == 1  # they wait for the read under way to end, not begin twenty more
    reads.gates[0].set()
    assert await first == 0
    await reads.began(2)
    reads.gates[1].set()
    assert await asyncio.gather(*reloads) == [1] * 20  # none got the read begun before the change
    assert reads.begun == 2


async def test_a_failed_read_fails_its_callers_only_and_a_caller_gone_leaves_the_read_to_the_others() -> None:
    reads = Reads()
    shared = Coalesced(reads.read)
    failing = [asyncio.ensure_future(shared.get()) for _ in range(3)]
    await reads.began(1)
    reads.fail = RuntimeError("the store")
    reads.gates[0].set()
    for caller in failing:
        with pytest.raises(RuntimeError):
            await caller

    reads.fail = None
    gone, staying = asyncio.ensure_future(shared.get()), asyncio.ensure_future(shared.get())
    await reads.began(2)
    gone.cancel()  # a console closed while it waited
    reads.world = 7
    reads.gates[1].set()
    assert await staying == 0
    assert gone.cancelled()
