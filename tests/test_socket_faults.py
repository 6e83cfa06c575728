"""Faults of one websocket client stay with that client: the other young people keep getting their replies,
the other listeners their events.

The faulty clients are real TCP clients speaking the websocket protocol by hand, so they can do what a phone
losing its network does: send a message, then reset the connection (``SO_LINGER`` 0, then close: an RST).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import STORE, create_app
from gateway.events import EntryAdded, NoticesChanged, Typing
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, TranscriptEntry
from tests.conftest import Clock, add_listener, login
from tests.test_webchat import bot_texts, hello, receive_until

Client = TestClient  # type: ignore[type-arg]


class ServedAsInProduction(TestServer):
    """The test server as ``gateway serve`` runs it: a handler is not cancelled when its client goes away."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return await super()._make_runner(**{**kwargs, "handler_cancellation": False})


@pytest.fixture
async def client(settings: Settings, clock: Clock) -> Any:
    app = await create_app(settings, clock=clock, worker_poll_seconds=0.05)
    async with TestClient(ServedAsInProduction(app)) as served:
        yield served


class RawChat:
    """A websocket client on a bare TCP connection: it can stop reading, or reset the connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(
        cls, client: Client, receive_buffer: int | None = None, path: str = "/chat/ws", cookie: str = ""
    ) -> RawChat:
        host, port = client.server.host, client.server.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # a small window fills up quickly once the client stops reading
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{cookie}\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, *frames: dict[str, Any]) -> None:
        """Write the frames in one go: they reach the server in one TCP segment."""
        self.writer.write(b"".join(_masked(frame) for frame in frames))

    async def receive(self) -> dict[str, Any]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        data = await self.reader.readexactly(length)
        assert first & 0x0F == 1, first  # text frames only in this protocol
        frame: dict[str, Any] = json.loads(data)
        return frame

    async def hello(self) -> str:
        self.send({"type": "hello", "token": None, "language": "fr"})
        while (frame := await self.receive())["type"] != "session":
            pass
        token: str = frame["token"]
        return token

    def reset(self) -> None:
        """Close with an RST, as a phone dropping off the network does: nothing more can be written to it."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def test_a_reset_right_after_a_message_leaves_the_other_chats_working(client: Client, clock: Clock) -> None:
    """The reset lands while the server is still processing the message, as it does over a real network.

    The test holds the conversation's lock so the message is read but not yet processed when the RST arrives;
    the typing frame sent in the same TCP segment tells the test the server has read both frames. The page then
    resends the unacknowledged message on a new socket: it is recorded once.
    """
    store = client.app[STORE]
    chat = await RawChat.connect(client)
    token = await chat.hello()
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, token, clock())
    async with await store.subscribe() as events:
        async with store.lock(conversation.id):
            chat.send({"type": "typing"}, {"type": "message", "id": "gone", "text": "2"})
            await chat.writer.drain()
            async for event in events:
                if event == Typing(conversation.id, "user"):
                    break
            chat.reset()
        async for event in events:  # the message is processed all the same: acknowledged or not, it counts
            if isinstance(event, EntryAdded) and event.entry.author == Author.BOT:
                break
    processed = await store.get_conversation(conversation.id)
    async with client.ws_connect("/chat/ws") as ws:  # the page comes back and resends what was not acknowledged
        await hello(ws, token)
        await ws.send_json({"type": "message", "id": "gone", "text": "2"})
        await receive_until(ws, lambda f: f == {"type": "ack", "id": "gone"})
    said = [e.text for e in await store.transcript(conversation.id) if e.author == Author.USER]
    assert said == ["2"]  # nothing lost, nothing recorded twice
    after = await store.get_conversation(conversation.id)
    assert processed is not None and after is not None and after.engine == processed.engine  # nor processed twice
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await ws.send_json({"type": "message", "id": "m0", "text": "2"})
        await receive_until(ws, lambda f: any("anglais" in text for text in bot_texts([f])))


def _masked(frame: dict[str, Any]) -> bytes:
    payload, mask = json.dumps(frame).encode(), os.urandom(4)
    length = len(payload)
    size = bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + struct.pack("!H", length)
    return bytes([0x81]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_chat_that_never_reads_is_dropped_and_holds_nobody_back(client: Client, clock: Clock) -> None:
    """Megabytes of replies for a chat that stopped reading: it is dropped, the other chats are answered."""
    store = client.app[STORE]
    stalled = await RawChat.connect(client, receive_buffer=4096)
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, await stalled.hello(), clock())
    for n in range(900):  # ~7 MB: more than the kernel's and the transport's buffers hold
        entry = TranscriptEntry(f"flood-{n}", conversation.id, clock(), Author.BOT, "x" * 8000)
        await store.publish(EntryAdded(conversation.id, entry))
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await ws.send_json({"type": "message", "id": "m0", "text": "2"})
        await receive_until(ws, lambda f: any("anglais" in text for text in bot_texts([f])))
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert any(line.startswith('gateway_socket_drops_total{reason="queue_full",surface="webchat"} 1') for line in
               metrics), [line for line in metrics if "socket_drops" in line]  # fmt: skip
    with contextlib.suppress(ConnectionError):  # the stalled chat's connection was cut: reading ends there
        while await stalled.reader.read(1 << 16):
            pass


async def test_a_console_that_never_reads_is_dropped_and_holds_nobody_back(client: Client) -> None:
    """A listener's tab that stopped reading: dropped; another listener's tab still gets every event."""
    await add_listener(client, "anne", supervisor=True)  # the flood's conversation exists nowhere: supervisors see it
    await login(client, "anne")
    cookie = "".join(f"Cookie: {m.key}={m.value}\r\n" for m in client.session.cookie_jar)
    stalled = await RawChat.connect(client, receive_buffer=4096, path="/api/events", cookie=cookie)
    assert (await stalled.receive())["type"] == "hello"
    async with client.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        store = client.app[STORE]
        at = datetime(2026, 3, 10, 13, tzinfo=UTC)
        for n in range(900):  # ~7 MB of events: more than the kernel's and the transport's buffers hold
            entry = TranscriptEntry(f"flood-{n}", "c-flood", at, Author.USER, "x" * 8000)
            await store.publish(EntryAdded("c-flood", entry))
        await store.publish(NoticesChanged("c-last"))
        await receive_until(console, lambda f: f.get("conversation_id") == "c-last", limit=1000)
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_socket_drops_total{reason="queue_full",surface="console"} 1.0' in metrics
