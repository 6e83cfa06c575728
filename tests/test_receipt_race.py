"""Two receipts of one reply at once, on two instances: the reply never goes back from read to delivered.

Messenger posts a ``delivery`` (with the reply's ``mid``) and a ``read`` (a watermark) a moment apart, round robin
to the instances behind the load balancer. Found by the chaos soak (``bench/chaos.py``, its receipts): a reply read
ended ``delivered`` when the ``delivery`` was processed on one instance while the ``read`` was on the other. Here the
first instance reaches Redis through a proxy that holds what Redis answers (the commands still run): its
``delivery`` has found the reply ``sent`` when the other instance records the ``read``; then its answers come.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Delivery, TranscriptEntry
from gateway.testing import (
    FakeGraphAPI,
    messenger_body,
    messenger_delivery,
    messenger_read,
    named_by_provider,
    signed_messenger,
)
from tests.conftest import AppFactory
from tests.e2e.channel_support import Client
from tests.redis_messenger import SECRET, messenger_on_redis, post_message
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)
from tests.test_redis_connections import ResettingProxy

__all__ = ["messenger_on_redis"]  # fixtures used by the tests below

pytestmark = pytest.mark.redis

PSID = "7100000000000042"


class HoldingProxy(ResettingProxy):
    """A TCP proxy in front of Redis that holds what Redis answers, from the first answer holding ``hold_on``,
    while the commands still reach it and run: an instance slow to hear back from Redis (a busy host, a slow
    network), caught between a read and its write."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.database = urlsplit(upstream).path or "/0"
        self.open = asyncio.Event()
        self.open.set()
        self.hold_on: bytes | None = None

    @property
    def url(self) -> str:
        return super().url.removesuffix("/0") + self.database

    async def _down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def write() -> None:
            while data := await queue.get():
                await self.open.wait()
                writer.write(data)
                await writer.drain()
            writer.close()

        writing = asyncio.create_task(write())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                if self.hold_on is not None and self.hold_on in data:
                    self.open.clear()
                queue.put_nowait(data)
        queue.put_nowait(b"")
        with contextlib.suppress(ConnectionError):
            await writing

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer), self._down(up_reader, writer))


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[HoldingProxy]:  # noqa: F811
    holding = HoldingProxy(redis_url)
    holding.server = await asyncio.start_server(holding._serve, "127.0.0.1", 0)
    async with holding.server:
        yield holding


async def replies(client: Client) -> list[TranscriptEntry]:
    store = client.app[STORE]
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, PSID)
    if conversation is None:
        return []
    return [e for e in await store.transcript(conversation.id) if e.author is Author.BOT]


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def post(client: Client, event: dict[str, object]) -> int:
    raw, headers = signed_messenger(SECRET, messenger_body([event]))
    response = await client.post("/webhooks/messenger", data=raw, headers=headers)
    await response.read()
    return response.status


async def test_a_delivery_found_before_a_read_on_another_instance_never_takes_the_reply_back(
    make_client: AppFactory, messenger_on_redis: Settings, proxy: HoldingProxy, graph: FakeGraphAPI
) -> None:
    # Its answers held while the other instance records the read: for as long as that takes on a busy machine, not
    # cut at the default 5 s socket timeout (the hold ran into it when the waits below were bounded by 4 s each).
    slow = await make_client(messenger_on_redis.replace(store=proxy.url, redis_socket_timeout=60.0))
    other = await make_client(messenger_on_redis)
    assert await post_message(other, PSID, "bonjour", "m_first") == 200

    async def all_sent() -> bool:
        found = await replies(other)
        return bool(found) and all(e.delivery is Delivery.SENT and e.provider_message_id for e in found)

    await until(all_sent, "the bot's replies were never recorded sent")
    reply = (await replies(other))[-1]
    assert reply.provider_message_id is not None
    mid = named_by_provider(other.app[STORE], graph.answered)[reply.provider_message_id]  # its entry keeps a digest
    watermark = int(reply.at.timestamp() * 1000) + 1000  # read after the reply was sent

    proxy.hold_on = reply.provider_message_id.encode()  # the slow instance's answers held from the reply found
    delivery = asyncio.create_task(post(slow, messenger_delivery(PSID, [mid], watermark)))

    async def found_by_the_slow_one() -> bool:
        return not proxy.open.is_set()  # its look-up by the reply's id ran in Redis: it read "sent"

    try:
        await until(found_by_the_slow_one, "the slow instance never looked the reply up")
        assert await post(other, messenger_read(PSID, watermark)) == 200

        async def read() -> bool:
            entry = await other.app[STORE].find_by_provider_id(mid)
            return entry is not None and entry.delivery is Delivery.READ

        await until(read, "the read was not recorded")
    finally:
        proxy.hold_on = None
        proxy.open.set()
    assert await delivery == 200
    entry = await other.app[STORE].find_by_provider_id(mid)
    assert entry is not None and entry.delivery is Delivery.READ
