"""A Redis restart in the middle of a burst, with two gateway instances on it: both recover by themselves.

This test starts its own redis-server (with an append-only file, as a production Redis keeps its data across
a restart) because it restarts it; the session's shared server in tests/store/conftest.py must stay up. A web
chat socket on one instance and a console socket on the other stay open across the restart: each is told to
resynchronise, then gets the events of a new message again. Meanwhile web chats on both instances keep
sending, reconnecting and resending what was not acknowledged, as chat.js does: every message is recorded
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.store.conftest import _free_port, _wait_until_ready
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, receive_until, say

pytestmark = pytest.mark.redis

Client = Any


class OwnRedis:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not on PATH (`make system-deps`)"
        self.port, self.log = _free_port(), directory / "redis.log"
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory),
                        "--logfile", str(self.log)]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait_until_ready(self.process, self.port, self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(timeout=15)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def converse(client: Client, prefix: str, texts: list[str]) -> str:
    """Say every text, reconnecting and resending until each is acknowledged; the session token (chosen here,
    as a browser keeps its own: a retried hello resumes the same conversation)."""
    token = secrets.token_urlsafe(24)
    acknowledged = 0
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError, TypeError, TimeoutError, AssertionError, KeyError):
            async with client.ws_connect("/chat/ws") as ws:
                token = (await hello(ws, token))["token"]
                while acknowledged < len(texts):
                    await say(ws, f"{prefix}-{acknowledged}", texts[acknowledged])
                    acknowledged += 1
                return token
        await asyncio.sleep(0.1)  # the client's reconnection delay (chat.js waits too)
    raise AssertionError(f"{prefix}: {acknowledged} of {len(texts)} messages acknowledged")


async def ready(client: Client) -> None:
    for _ in range(600):
        if (await client.get("/readyz")).status == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(await (await client.get("/readyz")).text())


async def test_a_redis_restart_mid_burst_both_instances_recover(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, clock: Clock
) -> None:
    # One test client opens every chat from 127.0.0.1: the new-chat limits are not what this test is about.
    settings = settings.replace(store=own_redis.url, limit_chats_per_address="1000/hour",
                                   limit_chats_per_browser="1000/hour")  # fmt: skip
    one, two = await make_client(settings), await make_client(settings)
    await add_listener(two, "anne", supervisor=True)  # her console follows a conversation still in the bot
    await login(two, "anne")
    async with one.ws_connect("/chat/ws") as chat, two.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        token = (await hello(chat))["token"]
        burst = [asyncio.create_task(converse(client, f"burst{n}", WALK_TO_QUEUE))
                 for n, client in enumerate([one, two, one, two])]  # fmt: skip
        await say(chat, "before", "2")
        own_redis.stop()
        own_redis.start()
        await receive_until(chat, lambda f: f["type"] == "resync", limit=200)
        await receive_until(console, lambda f: f["type"] == "resync", limit=2000)
        tokens = await asyncio.gather(*burst)
        await ready(one)
        await ready(two)
        frames = await say(chat, "after", "1")
        if not bot_texts(frames):
            frames = await receive_until(chat, lambda f: bool(bot_texts([f])))
        assert bot_texts(frames), frames
        conversation, _ = await one.app[STORE].active_conversation(ChannelName.WEBCHAT, token, clock())
        await receive_until(console, lambda f: f.get("conversation_id") == conversation.id
                            and f["type"] == "entry" and f["entry"]["author"] == "bot", limit=2000)  # fmt: skip
    store = one.app[STORE]
    for n, burst_token in enumerate(tokens):  # nothing lost, nothing recorded twice
        found = await store.find_active_conversation(ChannelName.WEBCHAT, burst_token)
        assert found is not None
        said = [e.text for e in await store.transcript(found.id) if e.author.value == "user"]
        assert said == WALK_TO_QUEUE, (n, said)
