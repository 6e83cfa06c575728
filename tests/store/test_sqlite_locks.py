"""The SQLite store's named locks across processes (``gateway/store/sqlite_locks.py``): a lock held by another
process on the same file is waited for (``LockTimeout`` after the timeout), and given back by the kernel when that
process is killed (``kill -9``: nothing to expire). Until 2026-12-07 the locks held in one process only: the second
process took the lock at once, while the first held it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from gateway.errors import LockTimeout
from gateway.store import open_store
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.store.test_reseal import env_keys

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import asyncio, sys
from gateway.crypto import DataKeys
from gateway.settings import Settings
from gateway.store import open_store

async def main() -> None:
    url, key, secret, name = sys.argv[1:]
    keys = DataKeys.from_settings(Settings(store=url, data_key=key, secret_key=secret))
    store = await open_store(url, keys=keys)
    async with store.lock(name, 5.0):
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("let go", flush=True)
    await store.close()

asyncio.run(main())
"""


async def holder(url: str, name: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, url, DATA_KEY, SECRET_KEY, name, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(30):
        assert await process.stdout.readline() == b"held\n"
    return process


async def test_a_lock_held_by_another_process_is_waited_for_and_given_back_when_it_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    store = await open_store(url, keys=env_keys(url, DATA_KEY))
    try:
        process = await holder(url, "erasing-c1")
        try:
            with pytest.raises(LockTimeout):  # before: taken at once, the other process holding it
                async with store.lock("erasing-c1", 0.3):
                    pass
            async with store.lock("erasing-c2", 0.3):  # another name: free
                pass
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        async with store.lock("erasing-c1", 10.0):  # the holder killed: given back by the kernel
            pass
    finally:
        await store.close()
