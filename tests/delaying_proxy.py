"""A TCP proxy in front of a real Redis that puts a network between it and the gateway: every chunk, each way, is
delivered ``delay`` s after it was read, plus a random jitter of up to ``jitter`` s, as Redis in another zone or on
a managed service is (docs/deployment.md: 0.5-2 ms a round trip in one zone, 5-20 ms across zones). Order is kept on
each connection (a TCP stream): a chunk is never delivered before the one read ahead of it, so jitter delays, never
reorders. :meth:`DelayingProxy.stall` holds every byte, both ways, on every connection, for that long from now (what
arrives meanwhile waits, then flows in order), as a managed Redis's failover, a GC pause on its host or a congested
link does now and then (100-500 ms). :meth:`DelayingProxy.stall_at` begins such a stall when a chosen command
goes towards Redis (its chunk the first held): a stall at the worst moment for that command, without a sleep in
the test. Nothing is dropped or cut: the fault is time alone.

Shaped as ``tests/losing_proxy.py`` (``delaying_proxy(upstream, delay=...)``, ``.url``). ``python -m
tests.delaying_proxy REDIS_URL DELAY_MS JITTER_MS`` runs it as a process of its own (``bench/load.py``'s
``--redis-delay-ms``): it prints its URL on a line, then reads ``stall MS`` lines on its standard input (since
2026-12-07 ``stall MS up`` or ``stall MS down`` too: only towards Redis, or only back; ``bench/chaos.py``'s
``redis-stall`` fault), ``arm MS WAY HEX`` (a :meth:`DelayingProxy.stall_at` of the bytes ``HEX`` stands for: it
prints ``began`` when it begins), ``disarm``, and ``count`` (it prints ``fenced N unheard M``: :attr:`fenced`,
:attr:`unheard`; ``redis-stall-commit``).

Since 2026-12-07 a connection the client closes is half-closed towards Redis once what it sent was delivered (as a
client's FIN reaches Redis after its bytes), and Redis's answers are still read until Redis closes it: until then it
was closed at once, Redis's answers to what it ran last were never read, and a fenced commit refused after its client
gave up (the gateway saw a timeout) could not be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

FENCED_REPLY = b"$6\r\nfenced\r\n"  # a fenced script's refusal (``redis_lua.FENCED``) as RESP2 sends it


class DelayingProxy:
    """``delay`` s each way plus up to ``jitter`` s, order kept per connection; ``stall(seconds)``: nothing passes,
    either way, until that long from now. ``chunks`` counts what was delivered; ``fenced`` the answers
    ``FENCED_REPLY`` Redis gave back (a fenced script's refusal: ``gateway/store/redis_lua.py``'s ``_FENCE``), and
    ``unheard`` those of them given on a connection its client had closed already (it timed out on them)."""

    def __init__(self, upstream: str, delay: float = 0.0, jitter: float = 0.0, seed: int | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.database = parts.path or "/0"
        self.delay, self.jitter = delay, jitter
        self.server: asyncio.Server | None = None
        self.chunks = 0
        self.stalls = 0
        self.fenced = self.unheard = 0
        self._random = random.Random(seed)
        self._stalled_until = {"up": 0.0, "down": 0.0}  # time.monotonic(): nothing delivered that way before it
        self._armed: tuple[tuple[bytes, ...], float, bool, bool, asyncio.Event] | None = None  # ``stall_at``
        self.serving: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # both sides of every open connection (closed at the end)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{self.database}"

    def stall(self, seconds: float, *, up: bool = True, down: bool = True) -> None:
        """Every byte held until ``seconds`` from now (a longer stall under way is not shortened): both ways, or
        only towards Redis (``down=False``: the commands wait) or only back (``up=False``: Redis ran them, their
        answers wait, as a congested return path)."""
        self.stalls += 1
        for way in ("up",) * up + ("down",) * down:
            self._stalled_until[way] = max(self._stalled_until[way], time.monotonic() + seconds)

    def stall_at(self, *markers: bytes, seconds: float, up: bool = True, down: bool = True) -> asyncio.Event:
        """The next chunk towards Redis holding every marker begins a :meth:`stall` of ``seconds`` (that chunk
        held too); the event returned is set then."""
        began = asyncio.Event()
        self._armed = (markers, seconds, up, down, began)
        return began

    def disarm(self) -> None:
        """A :meth:`stall_at` not begun yet forgotten."""
        self._armed = None

    def _trigger(self, data: bytes) -> None:
        if self._armed is not None and all(marker in data for marker in self._armed[0]):
            _, seconds, up, down, began = self._armed
            self._armed = None
            self.stall(seconds, up=up, down=down)
            began.set()

    def _due(self, previous: float) -> float:
        """When a chunk read now is delivered: after the delay and jitter, never before the chunk ahead of it."""
        extra = self._random.uniform(0, self.jitter) if self.jitter > 0 else 0.0
        return max(previous, time.monotonic() + self.delay + extra)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str,
                    gone: list[bool]) -> None:  # fmt: skip
        """One direction: a reader stamping each chunk with its due time, a writer delivering them in order. ``gone``:
        whether the client has closed its side (set by the way up, read by the way down)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            due = 0.0
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(1 << 16):
                    if way == "up":
                        self._trigger(data)
                    elif FENCED_REPLY in data:
                        refused = data.count(FENCED_REPLY)
                        self.fenced += refused
                        self.unheard += refused if gone[0] else 0
                    due = self._due(due)
                    queue.put_nowait((due, data))
            if way == "up":
                gone[0] = True
            queue.put_nowait((due, b""))

        async def deliver() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    due, data = await queue.get()
                    while (wait := max(due, self._stalled_until[way]) - time.monotonic()) > 0:
                        await asyncio.sleep(wait)  # a stall begun meanwhile is waited for too
                    if not data:
                        break
                    if way == "down" and gone[0]:
                        continue  # its client left: Redis's answers read (counted), dropped, until Redis closes
                    writer.write(data)
                    await writer.drain()
                    self.chunks += 1
            if way == "up" and gone[0] and writer.can_write_eof() and not writer.transport.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()  # Redis runs what it read, answers, then closes: its answers still read
                    return
            writer.close()

        reading = asyncio.create_task(read())
        try:
            await deliver()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.serving.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.close()
                return
            self._writers |= {writer, up_writer}
            gone = [False]
            try:
                await asyncio.gather(self._pump(reader, up_writer, "up", gone),
                                     self._pump(up_reader, writer, "down", gone), return_exceptions=True)  # fmt: skip
            finally:
                self._writers -= {writer, up_writer}
                up_writer.close()  # half-closed only, when the client left first
        finally:
            if task is not None:
                self.serving.discard(task)


@contextlib.asynccontextmanager
async def delaying_proxy(
    upstream: str, delay: float = 0.0, jitter: float = 0.0, seed: int | None = None
) -> AsyncIterator[DelayingProxy]:
    proxy = DelayingProxy(upstream, delay, jitter, seed)
    proxy.server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    async with proxy.server:
        try:
            yield proxy
        finally:
            proxy._stalled_until = {"up": 0.0, "down": 0.0}
            proxy.server.close()
            for writer in proxy._writers:  # each pump sees its connection closed and ends
                writer.transport.abort()
            async with asyncio.timeout(10):
                await asyncio.gather(*proxy.serving, return_exceptions=True)


async def _main(upstream: str, delay_ms: float, jitter_ms: float) -> None:
    async with delaying_proxy(upstream, delay_ms / 1000, jitter_ms / 1000) as proxy:
        print(proxy.url, flush=True)
        loop = asyncio.get_running_loop()
        told: set[asyncio.Task[None]] = set()

        async def tell(began: asyncio.Event) -> None:
            await began.wait()
            print("began", flush=True)

        while line := await loop.run_in_executor(None, sys.stdin.readline):
            words = line.split()
            if len(words) in (2, 3) and words[0] == "stall":  # ``stall MS [both|up|down]``: both ways by default
                way = words[2] if len(words) == 3 else "both"
                proxy.stall(float(words[1]) / 1000, up=way != "down", down=way != "up")
            elif len(words) == 4 and words[0] == "arm":  # ``arm MS WAY HEX``: ``began`` printed when it begins
                way = words[2]
                began = proxy.stall_at(bytes.fromhex(words[3]), seconds=float(words[1]) / 1000, up=way != "down",
                                       down=way != "up")  # fmt: skip
                telling = asyncio.create_task(tell(began))
                told.add(telling)
                telling.add_done_callback(told.discard)
            elif words == ["disarm"]:
                proxy.disarm()
            elif words == ["count"]:
                print(f"fenced {proxy.fenced} unheard {proxy.unheard}", flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
