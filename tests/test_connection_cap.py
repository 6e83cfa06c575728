"""``gateway serve`` under many networks' connections at once: the process never runs out of file descriptors.

Each client network is capped (64 connections, ``tests/test_connection_networks.py``), but a few networks at their
cap filled the open files limit: at ``ulimit -n 256``, 8 loopback addresses of 60 web chat sockets each. Then every
new connection was accepted and closed at once by libuv, unseen (no log line, no metric): a young person could not
open the chat, ``/readyz`` did not answer, and a page's kept-alive connection got 503 for ``/chat`` (an ERROR line)
and 404 for its script. The guard now caps every connection at once within the open files limit, keeping files for
the gateway's own use, and at that cap the network holding the most gives way to a network holding fewer
(``gateway/connections.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from gateway.connections import ConnectionGuard
from gateway.metrics import Metrics
from gateway.networks import ClientNetworks, parse_networks
from gateway.proxies import ClientAddresses
from tests.test_serve import GATEWAY, Server

OPEN_FILES = 256


class LimitedServer(Server):
    """``gateway serve`` started under ``ulimit -n 256`` (soft and hard)."""

    def start(self) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(GATEWAY), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit,
            )  # fmt: skip

    def open_files(self) -> list[str]:
        assert self.process is not None
        fds = f"/proc/{self.process.pid}/fd"
        files = []
        for fd in os.listdir(fds):
            try:  # a file closed between the listing and its reading is no longer open: skipped
                files.append(os.readlink(f"{fds}/{fd}"))
            except FileNotFoundError:
                continue
        return sorted(files)


@contextmanager
def limited(tmp_path: Path) -> Iterator[LimitedServer]:
    server = LimitedServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def _frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(30):  # a bound on a busy machine: the frame comes at once
        while True:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame: dict[str, Any] = json.loads(message.data)
            if frame["type"] == kind:
                return frame


async def _flood(server: Server, source: str, count: int) -> tuple[aiohttp.ClientSession, list[Any]]:
    """``count`` web chat sockets from ``source`` (a loopback address), held open without a word."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0), limit=0))

    async def one() -> aiohttp.ClientWebSocketResponse | None:
        try:
            return await http.ws_connect(server.url + "/chat/ws", origin=server.url)
        except (aiohttp.ClientError, OSError):
            return None

    return http, list(await asyncio.gather(*(one() for _ in range(count))))


def _sockets(files: list[str]) -> int:
    return sum(name.startswith("socket:") for name in files)


async def _chat(http: aiohttp.ClientSession, server: Server, message_id: str) -> None:
    """A young person opens the chat and writes: a session, and the message acknowledged."""
    async with http.ws_connect(server.url + "/chat/ws", origin=server.url) as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        assert (await _frame(ws, "session"))["status"] == "bot"
        await ws.send_json({"type": "message", "id": message_id, "text": "bonjour"})
        assert (await _frame(ws, "ack"))["id"] == message_id


async def test_networks_at_their_cap_never_exhaust_the_open_files_and_a_young_person_still_gets_in(
    tmp_path: Path,
) -> None:
    with limited(tmp_path) as server:
        server.start()
        async with aiohttp.ClientSession() as http:
            await server.ready(http)
            await _chat(http, server, "m-0")  # a first conversation's connections made (the store's, the model's)
            before = server.open_files()
            floods = [await _flood(server, f"127.0.0.{n}", 60) for n in range(2, 10)]  # 480 > the 256 files
            try:
                async with http.get(server.url + "/readyz") as response:
                    assert response.status == 200
                for page in ("/chat", "/chat/static/chat.js"):  # the page, and its script
                    async with http.get(server.url + page) as response:
                        assert response.status == 200, page
                await _chat(http, server, "m-1")  # a young person from another address is answered
                metrics = await (await http.get(server.url + "/metrics")).text()
                assert 'gateway_connections_refused_total{reason="evicted"}' in metrics
                assert len(server.open_files()) < OPEN_FILES
            finally:
                for flood, sockets in floods:
                    for ws in sockets:
                        if ws is not None:
                            await ws.close()
                    await flood.close()
            log = await server.log_once("connections: all")
            assert "ERROR" not in log and "127.0.0." not in log.split("console http://127.0.0.1")[-1]
        for _ in range(600):  # every socket gone: the sockets they took are given back (a bound, not a wait)
            if _sockets(server.open_files()) <= _sockets(before):
                break
            await asyncio.sleep(0.05)
        assert _sockets(server.open_files()) <= _sockets(before), (before, server.open_files())


class _Connection:
    def __init__(self) -> None:
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True


def test_at_the_cap_on_every_connection_the_network_holding_the_most_gives_way_to_one_holding_fewer() -> None:
    guard = ConnectionGuard(max_per_address=64, header_timeout=10, metrics=Metrics(), max_open=10,
                            addresses=ClientAddresses.of("X-Forwarded-For", "192.0.2.1/32"))  # fmt: skip
    troll = [_Connection() for _ in range(7)]
    assert all(guard.admit("198.51.100.7", connection) for connection in troll)
    proxy = [_Connection() for _ in range(3)]
    assert all(guard.admit("192.0.2.1", connection) for connection in proxy)  # a trusted proxy: never evicted
    young = _Connection()
    assert guard.admit("203.0.113.5", young) == "203.0.113.5"  # the troll's newest gave way
    assert [c.evicted for c in troll] == [False] * 6 + [True] and guard.total == 10
    for n in range(5):
        assert guard.admit(f"203.0.113.{10 + n}", _Connection()) is not None  # each holding 0: room made
    assert sum(c.evicted for c in troll) == 6 and not any(c.evicted for c in proxy)
    assert guard.admit("203.0.113.5", _Connection()) is None  # holding 1, as much as any: refused
    assert guard.admit("192.0.2.1", _Connection()) is None  # the proxy holds more than anyone evictable
    assert not young.evicted and guard.total == 10


def test_a_declared_shared_network_gives_way_by_the_share_of_its_own_cap_it_holds() -> None:
    """A school holding 200 of its 256 holds less than a troll holding 64 of 64: the troll gives way first."""
    guard = ConnectionGuard(max_per_address=4, header_timeout=10, metrics=Metrics(), max_open=12,
                            networks=ClientNetworks(shared=parse_networks("192.0.2.0/24")),
                            max_per_shared_network=16)  # fmt: skip
    school = [_Connection() for _ in range(8)]  # half its cap
    assert all(guard.admit("192.0.2.9", connection) for connection in school)
    troll = [_Connection() for _ in range(4)]  # all of its cap
    assert all(guard.admit("198.51.100.7", connection) for connection in troll)
    assert guard.admit("192.0.2.9", _Connection()) is not None  # a ninth pupil: the troll's newest gave way
    assert [c.evicted for c in troll] == [False] * 3 + [True] and not any(c.evicted for c in school)
    assert guard.admit("203.0.113.5", _Connection()) is not None  # holding none: the troll (3 of 4) gives way again
    assert sum(c.evicted for c in troll) == 2 and not any(c.evicted for c in school)
