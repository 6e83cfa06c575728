"""The console's live events: one store subscription per instance, fanned out to every console socket.

:meth:`ConsoleEvents.forward` is a supervised worker. Each console socket has its own
:class:`~gateway.sockets.SocketWriter`, so a listener's tab that stopped reading (or whose connection reset) is
dropped without delaying anybody else. When events may have been missed (the store's ``resync`` event after a
reconnection, or this worker restarting) every socket gets ``{"type": "resync"}``, on which the console and
supervision pages reload the queue and the open conversation.
"""

from __future__ import annotations

import asyncio

from gateway.console.media import public_event
from gateway.events import Resync, encode
from gateway.sockets import SocketWriter
from gateway.store import EventStore


class ConsoleEvents:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.sockets: set[SocketWriter] = set()

    async def forward(self) -> None:
        async with await self.store.subscribe() as subscription:
            self._offer_all(encode(Resync()))  # after a restart of this worker, events may have been missed
            async for event in subscription:
                self._offer_all(dict(public_event(encode(event))))
                await asyncio.sleep(0)  # let the writers run: a burst never fills the queue of a socket that reads

    def _offer_all(self, frame: dict[str, object]) -> None:
        for writer in list(self.sockets):
            writer.offer(frame)
