"""The SQLite store's WAL after a long reader: back to its usual size once the reader is gone.

While another process holds a read transaction (a backup's ``VACUUM INTO`` on a large file, a ``sqlite3`` shell
left in ``BEGIN``), no checkpoint can move the WAL's start past it, so the ``-wal`` file grows with every write
(58 MB for 300 messages through the real app). Until 2026-12-05 it then kept that size on disk until the daily
purge's ``wal_checkpoint(TRUNCATE)``, however soon the reader ended: on a small disk that fills slowly, a backup
a day could bring the line to a full disk. Now the WAL is cut back to ``WAL_KEPT_BYTES`` at the first reset after
the reader ends (``PRAGMA journal_size_limit``).
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from gateway.messages import ChannelName
from gateway.store import open_store
from gateway.store.sqlite import WAL_KEPT_BYTES, path_from_url
from gateway.testing import store_keys


async def test_the_wal_grown_under_a_long_reader_is_cut_back_once_it_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    database = path_from_url(url)
    wal = database.with_name(database.name + "-wal")
    senders = itertools.count()

    async def write() -> None:
        await store.active_conversation(ChannelName.TELEGRAM, f"chat-{next(senders)}", datetime.now(UTC))

    shell = subprocess.Popen(["sqlite3", str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert shell.stdin is not None and shell.stdout is not None
    try:
        shell.stdin.write("BEGIN; SELECT count(*) FROM conversations;\n")  # a read transaction, left open
        shell.stdin.flush()
        assert shell.stdout.readline().strip() == "0"
        while wal.stat().st_size <= 2 * WAL_KEPT_BYTES:
            await write()
    finally:
        shell.stdin.write("COMMIT;\n.quit\n")
        shell.stdin.flush()
        shell.wait(timeout=30)
    try:
        for _ in range(20_000):  # the checkpoints after the reader, then a reset of the WAL by a write
            if wal.stat().st_size <= WAL_KEPT_BYTES:
                break
            await write()
        assert wal.stat().st_size <= WAL_KEPT_BYTES
    finally:
        with contextlib.suppress(Exception):
            await store.close()
