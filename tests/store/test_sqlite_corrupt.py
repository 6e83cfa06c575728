"""A SQLite file restored corrupt (a copy torn by a checkpoint written during a ``cp``, a bad disk) is refused at
opening with a message that says so, never served.

Until 2026-12-05 a file whose header was sound opened: ``gateway serve`` started, ``/readyz`` answered 200 with
``store: ok`` (its probe writes a table of its own), and every web chat hello was closed 1013 (the conversations
table could not be read), with nothing in the log. Now the opening runs ``PRAGMA quick_check`` and refuses the
file; ``gateway serve`` exits 1 with that message, and ``gateway doctor`` names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from gateway.errors import StoreError
from gateway.messages import ChannelName
from gateway.store import open_store
from gateway.store.sqlite import path_from_url
from gateway.testing import store_keys
from tests.test_serve import running

CONVERSATIONS = 200  # a conversations table of several pages: its root is an interior page


async def written(url: str) -> None:
    store = await open_store(url, keys=store_keys(url))
    try:
        for n in range(CONVERSATIONS):
            await store.active_conversation(ChannelName.TELEGRAM, f"chat-{n}", datetime.now(UTC))
    finally:
        await store.close()


def torn(database: Path, table: str = "conversations") -> None:
    """Overwrite the cells of ``table``'s root page (what a copy torn mid-checkpoint holds: a page of another moment
    or of none), leaving the file's header and schema sound."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size + 12)
        file.write(b"\xde\xad\xbe\xef" * 100)


async def test_a_corrupt_file_is_refused_at_opening_with_a_message_that_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    await written(url)
    torn(path_from_url(url))
    with pytest.raises(StoreError) as refused:
        store = await open_store(url, keys=store_keys(url))
        await store.close()
    assert "is corrupt" in str(refused.value)
    assert "quick_check" in str(refused.value)
    assert "restore" in str(refused.value)


async def test_a_sound_file_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    await written(url)
    store = await open_store(url, keys=store_keys(url))
    try:
        assert await store.find_active_conversation(ChannelName.TELEGRAM, "chat-7") is not None
    finally:
        await store.close()


async def test_gateway_serve_on_a_corrupt_file_exits_1_saying_so(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        url = server.env["GATEWAY_STORE"]
        await written(url)
        torn(path_from_url(url))
        server.start()
        assert server.process is not None
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # until it exits, or answers (up to a minute on a slow machine)
                if server.process.poll() is not None:
                    break
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(server.url + "/readyz") as response:
                        pytest.fail(f"served a corrupt store: /readyz {response.status} {await response.text()}")
                await asyncio.sleep(0.1)
        assert server.process.wait(timeout=60) == 1
        log = server.log.read_text()
    assert "is corrupt" in log, log
