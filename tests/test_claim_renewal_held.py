"""An inbound message's claim renewed across a network that holds each renewal on its way, within the socket timeout:
the claim never lapses while its message is processed, so no other owner (a provider's redelivery on another
instance) takes it meanwhile. Each renewal's lease runs from its send (the lease end is the store's time then):
renewals are sent a third of the lease after the previous one was sent, at once when its answer took longer
(``Dispatcher._renew``). Until 2026-12-07 the next one was sent a third of the lease after the previous ANSWER: the
claim's (held 1.25 s) and its first renewal's (held 1.25 s) let a 3 s claim lapse between 3.0 s and 3.5 s after it
was sent, and another owner took the message.

A real Redis store behind ``tests/delaying_proxy.py``: every command naming the message's claim is held 1.25 s on
its way to Redis (``stall_at``, armed again after each, no sleep of the test's); a second store reaching Redis
directly tries to claim the message every 20 ms. The message is held before its conversation's lock (the store
wrapped, the only change: its ``locked_active`` waits for the test) for two leases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.ids import inbound_entry_id, inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, ClaimState, Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.delaying_proxy import DelayingProxy, delaying_proxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis

CLAIM = 3.0  # GATEWAY_INBOUND_CLAIM_SECONDS here (10 s by default): renewed every second
HOLD = 1.25  # each claim command held this long on its way to Redis
SOCKET_TIMEOUT = 1.5  # GATEWAY_REDIS_SOCKET_TIMEOUT here: at most half the claim (``Settings.check_leases``)
SENDER = "psid-31337"


class HeldBeforeTheLock:
    """The real store, whose ``locked_active`` (the conversation's lock, after the claim) waits for ``go``."""

    def __init__(self, store: Store) -> None:
        self._store, self.go = store, asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextlib.asynccontextmanager
    async def locked_active(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await self.go.wait()
        async with self._store.locked_active(*args, **kwargs) as state:
            yield state


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[DelayingProxy]:  # noqa: F811
    async with delaying_proxy(emptied(redis_url), delay=0.001) as proxy:
        yield proxy


async def test_a_claim_whose_renewals_are_held_on_their_way_never_lapses(
    proxy: DelayingProxy,
    redis_url: str,  # noqa: F811
    clock: Clock,
) -> None:
    store = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(redis_url, keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    held = HeldBeforeTheLock(store)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(cast(Store, held), flows, clock=clock, claim_seconds=CLAIM)
    inbound = Inbound(ChannelName.MESSENGER, SENDER, "m1", text="Bonjour")
    key, loop = inbound_key(inbound), asyncio.get_running_loop()
    holds = 0

    async def hold_each_claim() -> None:
        nonlocal holds
        while True:
            await proxy.stall_at(K.seen_claim(key).encode(), seconds=HOLD, down=False).wait()
            holds += 1

    holding = asyncio.create_task(hold_each_claim())
    taken: list[float] = []  # when another owner got the message, from when the claim reached Redis
    try:
        processing = asyncio.create_task(dispatcher.handle_inbound(inbound))

        async def another() -> ClaimState:
            """Another owner's try: BUSY while the message is claimed (one that got it gives it back at once)."""
            state = await other.claim(key, "another", CLAIM)
            if state is ClaimState.CLAIMED:
                await other.release(key, "another")
            return state

        async with asyncio.timeout(10):
            while not holds or await another() is not ClaimState.BUSY:  # the claim held 1.25 s, then in Redis
                await asyncio.sleep(0.01)
        began = loop.time()
        while loop.time() < began + 2 * CLAIM:  # then three or four renewals, each held 1.25 s
            assert not processing.done()
            if await another() is ClaimState.CLAIMED:
                taken.append(round(loop.time() - began, 2))
            await asyncio.sleep(0.02)
        assert taken == [], f"another owner took the message while it was processed, at {taken} s"
        assert holds >= 4, holds  # the claim and three renewals at least were held
        holding.cancel()  # the path clear again: the message goes on
        proxy.disarm()
        held.go.set()
        assert await asyncio.wait_for(processing, 30) is True
        conversation = await other.find_active_conversation(ChannelName.MESSENGER, SENDER)
        assert conversation is not None
        entries = [e.id for e in await other.transcript(conversation.id) if e.author is Author.USER]
        assert entries == [inbound_entry_id(inbound)]
    finally:
        holding.cancel()
        proxy.disarm()
        held.go.set()
        await store.close()
        await other.close()
