"""The wall clock jumps forward while a send is in flight (a virtual machine suspended mid-send and its clock set right
on resume, a clock stepped forward): the lease that send holds ends at once on the store's reckoning, and the outbox's
own next claim, a poll later, must not take the reply again and send it a second time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.errors import StoreError
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.store import OutboxItem, OutboxStatus, Store
from gateway.store.codec import encode_outbound
from tests.conftest import Clock
from tests.e2e.channel_support import eventually

TG = ChannelName.TELEGRAM


class SlowChannel:
    """Every send is held until ``go`` is set (the provider takes its time), and counted."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.go = asyncio.Event()

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        self.sent.append(message.id)
        await self.go.wait()
        return f"provider-{message.id}-{len(self.sent)}"


class JumpedStore:
    """The real store; its claims counted (to wait until the outbox has claimed since the jump), and its renewals
    refused with a store error while ``down`` (a connection broken by the suspend), one call."""

    def __init__(self, store: Store) -> None:
        self._store, self.claims, self.down = store, 0, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_due(self, *args: Any, **kwargs: Any) -> list[OutboxItem]:
        found: list[OutboxItem] = await self._store.outbox_due(*args, **kwargs)
        self.claims += 1
        return found

    async def outbox_renew(self, *args: Any, **kwargs: Any) -> bool:
        if self.down:
            self.down = False  # one call: the next one reaches the store again
            raise StoreError("the store did not answer")
        renewed: bool = await self._store.outbox_renew(*args, **kwargs)
        return renewed


@pytest.mark.parametrize("renewal", ["answered", "fails once"])
async def test_a_clock_jump_while_a_reply_is_sending_does_not_send_it_again(
    sqlite_store: Store, clock: Clock, renewal: str
) -> None:
    """Until 2026-12-06 the outbox's next claim after the jump took the lapsed lease and sent the reply twice; and once
    renewals were made after a jump, a renewal that failed (the first store call after the resume, its connection
    broken by the suspend) let the claim go on a poll later, the same."""
    store = JumpedStore(sqlite_store)
    channel = SlowChannel()
    sending = Outbox(store, {TG: channel}, clock=clock, max_attempts=4, poll_seconds=0.05)  # type: ignore[arg-type]
    message = Outbound("r1", "c1", TG, "424242", "Bonjour")
    await sqlite_store.outbox_put(OutboxItem("r1", "c1", encode_outbound(message), created_at=clock()))
    worker = asyncio.create_task(sending.run())
    try:
        await eventually(lambda: asyncio.sleep(0, channel.sent == ["r1"] or None))
        store.down = renewal == "fails once"
        clock.jump(minutes=30)  # suspended 30 minutes mid-send, resumed
        claims = store.claims
        await eventually(lambda: asyncio.sleep(0, store.claims >= claims + 3 or None))  # claimed since, a few times
        channel.go.set()

        async def recorded() -> bool:
            found = await sqlite_store.outbox_get("c1", "r1")
            return found is not None and found.status == OutboxStatus.SENT

        await eventually(recorded)
        assert not store.down  # a renewal was tried (and, "fails once", failed)
        assert channel.sent == ["r1"]  # once
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
