"""A web chat socket whose close is seen just after a hold of this instance's loop (a freeze, a VM paused, a blocking
call: ``LoopWatch.held_for``) is dated as early as the hold began, so that a page gone meanwhile to another instance is
not marked gone (tests/test_freeze.py). But a close is never dated before the hello that same socket made: a page
that came back on this instance as the hold ended (or whose hello and close both waited out the hold in the socket's
buffer) and then closed for good is still the young person gone. Until 2026-12-08 its close was dated before its own
return (``Conversation.page_opened_at``), ``leaving.socket_closed`` took the page for back, and no "gone" timer was
armed: the listener was never told that nobody reads.

The real app on SQLite; the hold is what the hub's ``held_for`` (the loop watch's, wired in gateway/app.py) answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp.test_utils import TestClient

from gateway.app import STORE, WEBCHAT
from gateway.store import TimerKind
from tests.conftest import Clock
from tests.test_webchat import hello, say

Client = TestClient  # type: ignore[type-arg]
HOLD = 30.0  # seconds: the loop last ran this long before the close was seen (a hold just ended)


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not await condition():
            await asyncio.sleep(0.02)


async def test_a_page_back_then_closed_for_good_after_a_hold_is_still_marked_gone(client: Client, clock: Clock) -> None:
    store, hub = client.app[STORE], client.app[WEBCHAT]

    async def gone_armed() -> bool:
        due = await store.due_timers(clock.now + timedelta(hours=1))
        return any(t.conversation_id == conversation and t.kind == TimerKind.WEBCHAT_GONE for t in due)

    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        token, conversation = session["token"], session["conversation"]
        await say(ws, "m1", "bonjour")
    await until(gone_armed)  # the first socket's close: armed, as always

    asked: list[float] = []

    def held_for() -> float:  # a hold of HOLD seconds just ended: the loop watch's answer within RECENT of it
        asked.append(HOLD)
        return HOLD

    hub.held_for = held_for
    clock.advance(seconds=5)
    async with client.ws_connect("/chat/ws") as ws:  # the page back on this instance, right after the hold
        assert (await hello(ws, token))["conversation"] == conversation
        assert not await gone_armed()  # its return cancelled the timer
    # then closed for good: the handler asked how long the loop was held, then armed (or not) the timer
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not asked or conversation in hub.arming:
            await asyncio.sleep(0.02)
    assert await gone_armed(), "the page closed after its return, its close dated before it: never marked gone"
