"""A Redis too old for the gateway's scripts is refused at the start, in words (``RedisStore._check_version``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.errors import ConfigError
from gateway.store.redis import RedisStore, too_old
from gateway.testing import store_keys


@pytest.mark.parametrize(
    ("version", "old"),
    [("6.0.16", True), ("5.0.7", True), ("6.2.0", False), ("6.2.0-rc1", False), ("7.0.15", False),
     ("7.2.4", False), ("255.255.255", False), ("", False), ("unstable", False)],
)  # fmt: skip
def test_versions_older_than_6_2_are_too_old(version: str, old: bool) -> None:
    assert too_old(version) is old


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: str) -> None:
    """A server speaking RESP2 as far as opening a store goes: PING, INFO, anything else +OK."""
    try:
        while line := await reader.readline():
            count = int(line[1:])
            words = []
            for _ in range(count):
                size = int((await reader.readline())[1:])
                words.append((await reader.readexactly(size + 2))[:-2].decode().upper())
            if words[0] == "PING":
                writer.write(b"+PONG\r\n")
            elif words[0] == "INFO":
                body = f"# Server\r\nredis_version:{version}\r\n".encode()
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def old_redis() -> AsyncIterator[str]:
    server = await asyncio.start_server(lambda r, w: _answer(r, w, "6.0.16"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"redis://127.0.0.1:{port}/0"


async def test_a_redis_older_than_6_2_is_refused_when_the_store_opens(old_redis: str) -> None:
    with pytest.raises(ConfigError, match=r"Redis 6\.0\.16 is too old: the gateway needs Redis 6\.2 or later"):
        await RedisStore.open(old_redis, store_keys(old_redis))


async def test_the_suites_redis_is_recent_enough(redis_url: str) -> None:
    store = await RedisStore.open(redis_url, store_keys(redis_url))
    await store.close()
