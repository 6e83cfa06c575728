"""A TCP proxy in front of a real Redis that dies in the middle of a pipeline, as a gateway killed while sending one.

The proxy reads the gateway's stream command by command (RESP arrays of bulk strings, as redis-py sends them) and
passes each one on to Redis. Once :meth:`CuttingProxy.cut_before` is armed, the next command whose bytes hold every
marker (a script's text, ``tests.losing_proxy.script_text``) never reaches Redis, nor does anything after it on
that connection: the connection is reset (``reset_hard``). Redis ran the commands before it and nothing else: the
prefix of a pipeline that a gateway dying mid-send leaves behind (``gateway/store/redis.py``). The store, its
client library and the code under test are the real ones.

:meth:`CuttingProxy.hold_before` is the interleaving's tool, not the crash's: the next command holding every marker
waits at the proxy (the commands before it passed) while a coroutine runs (another instance's work, on its own
connection), then goes on. A test that needs "while this request holds that lock, something else happens" gets it at
the wire, without touching the code under test.

:attr:`CuttingProxy.commands` names every command that passed, in order (a test counting what the store sends
reads it there, not through a spy on the store's client).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from tests.losing_proxy import reset_hard


def command_end(buffer: bytes, start: int = 0) -> int | None:
    """Where the RESP command starting at ``start`` ends (the index after it); None while it is incomplete."""
    if start >= len(buffer):
        return None
    if buffer[start : start + 1] != b"*":  # an inline command (PING\r\n): up to its line's end
        line = buffer.find(b"\r\n", start)
        return None if line < 0 else line + 2
    line = buffer.find(b"\r\n", start)
    if line < 0:
        return None
    count, at = int(buffer[start + 1 : line]), line + 2
    for _ in range(count):
        header = buffer.find(b"\r\n", at)
        if header < 0:
            return None
        assert buffer[at : at + 1] == b"$", "a command's parts are bulk strings"
        at = header + 2 + int(buffer[at + 1 : header]) + 2
        if at > len(buffer):
            return None
    return at


def command_name(command: bytes) -> str:
    """A whole RESP command's name, upper case (``EVALSHA``, ``PUBLISH``); an inline command's first word."""
    if command[:1] != b"*":
        return command.split(maxsplit=1)[0].decode().upper()
    header = command.index(b"\r\n") + 2  # *N\r\n, then $len\r\nNAME\r\n
    start = command.index(b"\r\n", header) + 2
    return command[start : command.index(b"\r\n", start)].decode().upper()


class CuttingProxy:
    """``cut_before(*markers)``: the next command holding every marker, and what follows it on its connection, never
    reach Redis (``cut`` counts the cuts). ``hold_before(*markers, meanwhile=...)``: the next command holding every
    marker waits until ``meanwhile()`` has run, then goes on (``held`` counts them); with ``after=``, only a command
    that comes after one holding ``after`` on its connection (since 2026-12-07: the next pipeline's first command, when
    the client waits for a pipeline's answers before sending the next, whatever that command is)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.database = parts.path or "/0"
        self.server: asyncio.Server | None = None
        self.cut = self.held = 0
        self.commands: list[str] = []  # the name of every command that reached Redis, in order
        self.failures: list[BaseException] = []  # what a ``meanwhile`` raised (the command went on all the same)
        self._markers: tuple[bytes, ...] | None = None
        self._hold: tuple[tuple[bytes, ...], Callable[[], Awaitable[object]], bytes | None] | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{self.database}"

    def cut_before(self, *markers: bytes) -> None:
        self._markers = markers

    def hold_before(
        self, *markers: bytes, meanwhile: Callable[[], Awaitable[object]], after: bytes | None = None
    ) -> None:
        self._hold = (markers, meanwhile, after)

    def _after(self, command: bytes) -> bool:
        """``command`` holds the armed hold's ``after``: the commands that follow it on its connection may be held."""
        return self._hold is not None and self._hold[2] is not None and self._hold[2] in command

    def _meanwhile(self, command: bytes, follows: bool) -> Callable[[], Awaitable[object]] | None:
        if self._hold is None or not all(marker in command for marker in self._hold[0]):
            return None
        if self._hold[2] is not None and not follows:
            return None
        meanwhile, self._hold = self._hold[1], None
        self.held += 1
        return meanwhile

    def _marked(self, command: bytes) -> bool:
        if self._markers is None or not all(marker in command for marker in self._markers):
            return False
        self._markers = None
        self.cut += 1
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def up() -> None:
            buffer, follows = b"", False  # follows: a command holding the hold's ``after`` passed on this connection
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(1 << 16):
                    buffer += data
                    start = 0
                    while (end := command_end(buffer, start)) is not None:
                        if (meanwhile := self._meanwhile(buffer[start:end], follows)) is not None:
                            up_writer.write(buffer[:start])  # the commands before it reach Redis, then it waits
                            await up_writer.drain()
                            buffer, start, end = buffer[start:], 0, end - start
                            try:
                                await meanwhile()
                            except Exception as error:  # the test reads it: the gateway's request must not hang
                                self.failures.append(error)
                        if self._marked(buffer[start:end]):
                            up_writer.write(buffer[:start])  # the prefix before it, then nothing more
                            await up_writer.drain()
                            reset_hard(writer)
                            up_writer.close()
                            return
                        self.commands.append(command_name(buffer[start:end]))
                        follows = follows or self._after(buffer[start:end])
                        start = end
                    up_writer.write(buffer[:start])
                    await up_writer.drain()
                    buffer = buffer[start:]
            up_writer.close()

        async def down() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
            writer.close()
            up_writer.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


@contextlib.asynccontextmanager
async def cutting_proxy(upstream: str) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(upstream)
    proxy.server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    async with proxy.server:
        yield proxy
