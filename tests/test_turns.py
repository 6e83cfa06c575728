"""``gateway.turns.FairTurns``: turns bounded in all and per client network, a network's order kept, nothing lost to
a waiter leaving (the web chat's hellos, ``WebChatHub.hello_turn``)."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.turns import FairTurns


class Holders:
    """Tasks taking turns, each holding its turn until let go."""

    def __init__(self, turns: FairTurns) -> None:
        self.turns, self.started, self.tasks = turns, [], {}  # type: ignore[var-annotated]
        self.go: dict[str, asyncio.Event] = {}

    def add(self, name: str, network: str, share: int = 2) -> None:
        self.go[name] = asyncio.Event()

        async def hold() -> None:
            async with self.turns.turn(network, share):
                self.started.append(name)
                await self.go[name].wait()

        self.tasks[name] = asyncio.create_task(hold())

    async def settle(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def end(self, name: str) -> None:
        self.go[name].set()
        await self.tasks[name]
        await self.settle()


async def test_a_network_past_its_share_waits_without_holding_a_turn_or_a_place_ahead() -> None:
    turns = FairTurns(at_once=4)
    holders = Holders(turns)
    for n in range(6):
        holders.add(f"a{n}", "A")
    holders.add("b0", "B")
    holders.add("b1", "B")
    holders.add("b2", "B")
    holders.add("c0", "C")
    await holders.settle()
    assert holders.started == ["a0", "a1", "b0", "b1"]  # A at its share (2): B takes the free turns
    assert (turns.working, turns.waiting) == (4, 6)
    await holders.end("a0")  # A (1 now) and C (0) wait: C has fewer in progress
    assert holders.started[4:] == ["c0"]
    await holders.end("b0")  # A and B both at 1, A waiting longer for a turn
    assert holders.started[5:] == ["a2"]
    await holders.end("a1")
    assert holders.started[6:] == ["b2"]  # A at 1 again, B at 1, B longer without a turn
    for name in ("a2", "b1", "c0", "b2"):
        await holders.end(name)
    assert holders.started[7:] == ["a3", "a4"]  # A alone: its share, in its order
    await holders.end("a3")
    assert holders.started[9:] == ["a5"]
    for name in ("a4", "a5"):
        await holders.end(name)
    assert (turns.working, turns.waiting, turns.working_by) == (0, 0, {})


async def test_a_waiter_leaving_gives_up_its_place_and_a_turn_given_meanwhile_is_passed_on() -> None:
    turns = FairTurns(at_once=1)
    holders = Holders(turns)
    holders.add("a0", "A")
    holders.add("a1", "A")
    holders.add("b0", "B")
    await holders.settle()
    holders.tasks["a1"].cancel()  # left the line before its turn
    with contextlib.suppress(asyncio.CancelledError):
        await holders.tasks["a1"]
    assert turns.waiting == 1
    holders.go["a0"].set()  # its turn ends: b0's given, b0 cancelled before it ran
    await asyncio.sleep(0)
    holders.tasks["b0"].cancel()
    holders.add("c0", "C")
    with contextlib.suppress(asyncio.CancelledError):
        await holders.tasks["b0"]
    await holders.settle()
    assert "c0" in holders.started  # the turn b0 did not use was passed on
    await holders.end("c0")
    assert (turns.working, turns.waiting, turns.working_by) == (0, 0, {})
