"""``gateway erase`` in a shell beside the running server, on the same SQLite file, while the young person's own
erasure ("J'efface tout", then "oui") runs in the server: the CLI waits for the erasure's locks, held by the server's
process (``gateway/store/sqlite_locks.py``), and says so when they stay held past its wait.

Until 2026-12-07 the SQLite store's locks held in one process only: the CLI erased the person at once under the
server's erasure (its goodbye published in its own process, to nobody), and the server's, let go, erased again what
was gone and wrote a second audit line.

The race: the server's erasure held at its ``inbox_forget`` (:class:`tests.store_holds.Holds`: the real store, the
person's lock and ``erasing-<id>`` held) while the real command runs to its end in another process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory
from tests.store_holds import Holds, open_holds
from tests.test_webchat import bot_texts, hello, receive_until, say
from tests.test_webchat_erased import SECRET

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def on_file(settings: Settings) -> AsyncIterator[tuple[Settings, Holds]]:
    holds = await open_holds(settings)
    try:
        yield settings, holds
    finally:
        await holds.real.close()


async def gateway_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """The real command, in its own process, on the server's file and keys."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_STORE": settings.store, "GATEWAY_FLOWS": settings.flows,
           "GATEWAY_DATA_KEY": settings.data_key.get_secret_value(),
           "GATEWAY_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_gateway_erase_beside_the_server_waits_for_the_young_persons_own_erasure(
    on_file: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Before: the command exited 0 ("erased 1 conversation(s)") while the server's erasure held its locks, and the
    audit log had 2 erase lines for one erasure."""
    settings, store = on_file
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as ws:
        conversation = (await hello(ws))["conversation"]
        await say(ws, "m1", SECRET)
        asked = await say(ws, "m2", "Efface mes données stp")
        assert any("Réponds « oui »" in t for t in bot_texts(asked))
        store.hold("inbox_forget")  # the server's erasure under way, its locks held
        await ws.send_json({"type": "message", "id": "m3", "text": "oui"})
        try:
            async with asyncio.timeout(30):
                await store.reached.wait()
            code, out, err = await gateway_cli(settings, "erase", "--conversation", conversation)
        finally:
            store.go.set()
        assert code == 1, (out, err)  # before: 0, erased under the server's erasure
        assert "under way" in err and conversation not in err, err
        frames = await receive_until(ws, lambda f: any("effacé" in t for t in bot_texts([f])), limit=20)
        [goodbye] = [t for t in bot_texts(frames) if "effacé" in t]
        assert all(number in goodbye for number in ("119", "3114"))
    assert await store.get_conversation(conversation) is None
    assert await store.erasures_begun() == {}
    erasures = [e for e in await store.audit_log(20) if e.action == "erase"]
    assert [e.actor for e in erasures] == ["young person"]  # before: 2 lines
