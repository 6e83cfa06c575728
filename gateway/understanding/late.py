"""Late readings: the model's second check on a message that went on without it (docs/understanding.md, "Cost").

A young person's message whose reading the :class:`~gateway.understanding.reader.Reader` could not give in time
(``busy`` or ``timeout``) goes on at once with the keywords only, and a long one goes on with the reading of its
first ``max_tokens`` tokens (its windows unread: ``Inline.rest``); it is then queued here (:meth:`LateReadings.offer`)
and read after the fact by one worker (:meth:`LateReadings.run`, under the supervisor), in the Reader's own model
thread and only while no fresh message waits for it (:meth:`Reader.read_late`). Its reading is handed to ``apply``
(:meth:`gateway.dispatcher.Dispatcher.apply_late`), which may only escalate.

Bounds: at most ``size`` messages wait (beyond, the newest is dropped and counted, and logged by count); they are
held in this process's memory only, never written, logged or put in a metric's labels, and lost if the process
dies (a message lost so was still checked by the keywords when it came).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.flows.reading import Reading
from gateway.understanding.reader import Reader

log = logging.getLogger(__name__)

SIZE = 1000  # messages waiting for a late reading at most
LOG_EVERY = 100  # overflow is logged at the first message dropped, then every this many

Outcome = Literal["queued", "read", "flagged", "failed", "dropped"]


@dataclass(frozen=True, slots=True)
class Late:
    """A message to read after the fact: its conversation, its transcript entry, its text (never shown in a repr),
    and ``first``, the reading of its start when it was read inline as far as its cut (only its windows are left to
    read: ``Inline.rest``); None when it went on without a reading."""

    conversation_id: str
    entry_id: str
    text: str = field(repr=False)
    first: Reading | None = None


Apply = Callable[[Late, Reading], Awaitable[bool]]
"""Apply a late reading; True when it raised a flag."""


class LateReadings:
    def __init__(
        self, reader: Reader, *, size: int = SIZE, on_outcome: Callable[[Outcome], None] = lambda outcome: None
    ) -> None:
        self.reader = reader
        self.size = size
        self._on_outcome = on_outcome
        self._queue: asyncio.Queue[Late] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, late: Late) -> bool:
        """Queue a message for a late reading; False (counted) when the queue is full."""
        try:
            self._queue.put_nowait(late)
        except asyncio.QueueFull:
            self.dropped += 1
            self._on_outcome("dropped")
            if self.dropped == 1 or self.dropped % LOG_EVERY == 0:
                log.warning("understanding: %d late readings dropped so far (%d waiting at most)",
                            self.dropped, self.size)  # fmt: skip
            return False
        self._on_outcome("queued")
        return True

    def waiting(self) -> int:
        return self._queue.qsize()

    async def run(self, apply: Apply) -> None:
        """The worker: read each queued message, oldest first, and apply its reading."""
        while True:
            late = await self._queue.get()
            reading = await self.reader.read_late(late.text, late.first)
            if reading is None:
                self._on_outcome("failed")
                continue
            self._on_outcome("flagged" if await apply(late, reading) else "read")
