"""A backup of the SQLite file while the gateway runs (docs/deployment.md, "One instance on SQLite").

The real app on the embedded store, Messenger webhooks posted while another process copies the file with SQLite's
own ``VACUUM INTO`` (what the docs say to run) and with the shell's ``.backup``. Neither blocks the gateway (WAL:
the copy is a reader, and a reader never holds a writer up): every webhook meanwhile is acknowledged. Each copy is
consistent (``PRAGMA integrity_check``) and, opened as a store with the same keys, holds every message
acknowledged before the copy began. A copy of the file alone (``cp``) is not this: what is in the ``-wal`` file and
not yet checkpointed is not in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from gateway.crypto import DataKeys
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import open_store
from gateway.store.sqlite import path_from_url
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory
from tests.redis_messenger import SECRET, post_message

BEFORE, DURING = 20, 40


@pytest.mark.parametrize("command", ["VACUUM INTO '{copy}'", ".backup '{copy}'"])
async def test_a_backup_made_while_the_gateway_runs_blocks_nothing_and_holds_what_was_acknowledged(
    make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, tmp_path: Path, command: str
) -> None:
    settings = settings.replace(
        messenger_app_secret=SECRET, messenger_verify_token="verify", messenger_page_access_token="page-token",
        messenger_api_url=graph.url + "/v23.0",
    )  # fmt: skip
    client = await make_client(settings)
    statuses = [await post_message(client, f"psid-{n}", "bonjour", f"m-{n}") for n in range(BEFORE)]
    assert statuses == [200] * BEFORE
    copy = tmp_path / "backups" / "gateway.sqlite3"
    copy.parent.mkdir(mode=0o700)
    backup = await asyncio.create_subprocess_exec("sqlite3", str(path_from_url(settings.store)),
                                                  command.format(copy=copy))  # fmt: skip
    during = [await post_message(client, f"psid-{n}", "bonjour", f"m-{n}") for n in range(BEFORE, BEFORE + DURING)]
    assert await backup.wait() == 0
    assert during == [200] * DURING  # nothing waited for the copy, nothing refused
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    restored = await open_store(f"sqlite:///{copy}", keys=DataKeys.from_settings(settings))
    try:
        for n in range(BEFORE):
            conversation = await restored.find_active_conversation(ChannelName.MESSENGER, f"psid-{n}")
            assert conversation is not None, n
            assert [e.text for e in await restored.transcript(conversation.id) if e.text == "bonjour"] == ["bonjour"]
    finally:
        await restored.close()
    await client.close()
