"""``kill -9`` of a real gateway process before it applies a late reading (issue 9, "escalate, never silence").

The first process (``tests/hung_gateway.py``: the real app, its model hung by ``FaultyEmbedder``) takes a young
person through the web chat to the listeners' queue, then a suicidal message that no keyword finds: it goes on at
normal priority and its late reading is recorded in the store. The process is killed (SIGKILL) with the reading
never applied. A real ``gateway serve`` started on the same SQLite file claims the reading once its hold lapses
and applies it: the conversation is urgent, flagged by the model on the card and on the message, and the risk's
referral was sent. Before late readings were kept in the store, the reading died with the first process.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.conversation import Conversation, Priority, Status
from gateway.messages import ChannelName
from gateway.store import Author, Store, open_store
from gateway.testing import store_keys
from tests.conftest import ROOT
from tests.test_serve import Server, chat
from tests.test_webchat import WALK_TO_QUEUE, hello, say

RISKY = "je pense au pont tous les soirs"  # suicide, read by the model only: no keyword finds it


class HungServer(Server):
    """The real app with its model hung, as a process of its own (``tests/hung_gateway.py``)."""

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.hung_gateway", "--port", str(self.port)],
                env={**self.env, "PYTHONPATH": str(ROOT)}, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def model_loaded(http: aiohttp.ClientSession, server: Server) -> None:
    for _ in range(600):
        body = await server.ready(http)
        if body["understanding"] == "ok":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the model never loaded:\n" + server.log.read_text())


async def the_conversation(store: Store) -> Conversation:
    [conversation] = [c for s in Status for c in await store.conversations_by_status(s)]
    return conversation


async def test_kill_9_before_a_late_reading_is_applied_the_next_process_applies_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    first, second = HungServer(tmp_path), Server(tmp_path)  # one SQLite file
    for server in (first, second):
        server.env.update({"GATEWAY_UNDERSTANDING_TIMEOUT": "0.2", "GATEWAY_LATE_HOLD_SECONDS": "1",
                           "GATEWAY_DEV_ALWAYS_OPEN": "1", "GATEWAY_LOG_LEVEL": "WARNING"})  # fmt: skip  # real time
    url = first.env["GATEWAY_STORE"]
    try:
        first.start()
        await model_loaded(http, first)
        async with chat(http, first) as ws:
            await hello(ws)
            for number, answer in enumerate(WALK_TO_QUEUE):
                await say(ws, f"m{number}", answer)
            await say(ws, "risky", RISKY)
        first.kill()

        store = await open_store(url, keys=store_keys(url))
        try:
            before = await the_conversation(store)
            assert before.status is Status.QUEUED and before.priority is Priority.NORMAL and before.flag is None
            assert await store.late_waiting() >= 1  # the reading the killed process never applied

            second.start()
            await second.ready(http)
            for _ in range(600):
                after = await the_conversation(store)
                if after.flag is not None and await store.late_waiting() == 0:
                    break
                await asyncio.sleep(0.1)
            assert after.flag is not None, second.log.read_text()
            assert (after.flag.risk, after.flag.source) == ("suicide", "model")
            [waiting] = await store.waiting()
            assert waiting.priority is Priority.URGENT
            entries = await store.transcript(after.id)
            flagged = [e for e in entries if e.flag is not None]
            assert [(e.text, e.flag.source if e.flag else "") for e in flagged] == [(RISKY, "model")]
            assert any("3114" in e.text for e in entries if e.author is Author.BOT)  # the risk's referral
            assert await store.find_active_conversation(ChannelName.WEBCHAT, before.sender) is not None
        finally:
            await store.close()
    finally:
        if first.process is not None:
            first.kill()
        second.stop()
