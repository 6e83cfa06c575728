"""The SQLite file refusing writes is seen by ops: ``/readyz``, ``gateway_store_up`` and one log line by class.

The real app on the embedded store (what ``make run`` uses), Messenger webhooks from the fake Graph API's side,
while the file takes no write: its disk full (a 2 MiB tmpfs filled by another file: root only), or its write lock
held by another process (a ``sqlite3`` shell in a ``BEGIN IMMEDIATE`` transaction, as a backup tool may hold it).
Every webhook is answered 503 (the provider redelivers, nothing is lost); until 2026-12-05 ``/readyz`` said 200
``store: ok`` and ``gateway_store_up`` stayed 1 meanwhile (the store's ping was a read, which a full disk or a held
lock does not stop), and with the lock held every store call waited the 10 s busy timeout one after the other on the
store's thread (the workers' writes among them): a webhook was answered after 139 s, ``/readyz`` after 91 s. Now
both say the store is not usable, naming the SQLite error, one ERROR line says it once, the calls after the first
refusal are refused at once, and all of it comes back by itself once a write is taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.app import METRICS, STORE
from gateway.settings import Settings
from gateway.store.sqlite import BUSY_TIMEOUT, path_from_url
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory
from tests.redis_messenger import SECRET, post_message

WATCH = 2.0  # the alert checks' period (10 s in production): the test waits for two of their probes and the end
PSID, TEXT = "psid-5151-refused", "personne ne me répond ce soir"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(90):  # a safety net against a hang, not a timing assumption
        while not condition():
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def small_disk(directory: Path) -> Iterator[Path]:
    directory.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(disk: Path) -> Path:
    """Another file takes every free block of ``disk``."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another process holds the file's write lock (a ``sqlite3`` shell in a write transaction) until the end."""
    shell = subprocess.Popen(["sqlite3", str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert shell.stdin is not None and shell.stdout is not None
    try:
        shell.stdin.write("BEGIN IMMEDIATE;\nSELECT 'held';\n")
        shell.stdin.flush()
        assert shell.stdout.readline().strip() == "held"
        yield
    finally:
        shell.stdin.write("ROLLBACK;\n.quit\n")
        shell.stdin.flush()
        shell.wait(timeout=30)


@pytest.mark.parametrize("refusal", ["locked", "full"])
async def test_a_sqlite_file_that_refuses_writes_is_not_ready_and_not_up(
    make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, tmp_path: Path, refusal: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    if refusal == "full" and os.geteuid() != 0:
        pytest.skip("mounting the small disk needs root")
    caplog.set_level(logging.INFO, logger="gateway")
    with contextlib.ExitStack() as stack:
        if refusal == "full":
            disk = stack.enter_context(small_disk(tmp_path / "disk"))
            settings = settings.replace(store=f"sqlite:///{disk}/gateway.sqlite3")
        settings = settings.replace(
            messenger_app_secret=SECRET, messenger_verify_token="verify", messenger_page_access_token="page-token",
            messenger_api_url=graph.url + "/v23.0",
        )  # fmt: skip
        client = await make_client(settings, watch_seconds=WATCH)
        metrics = client.app[METRICS]
        loop = asyncio.get_running_loop()
        assert await post_message(client, PSID, TEXT, "m-before") == 200
        assert (await client.get("/readyz")).status == 200
        await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 1)
        with contextlib.ExitStack() as refusing:
            if refusal == "full":
                refusing.callback(fill(path_from_url(settings.store).parent).unlink)
            else:
                refusing.enter_context(write_lock_held(path_from_url(settings.store)))
            async with asyncio.timeout(90):  # before: each call behind the workers' writes, 10 s each
                assert await post_message(client, PSID, TEXT, "m-refused") == 503
                started = loop.time()
                statuses = [await post_message(client, PSID, TEXT, f"m-refused-{n}") for n in range(3)]
                refused_in = loop.time() - started
                answer = await client.get("/readyz")
            body = await answer.json()
            assert statuses == [503] * 3
            assert refused_in < BUSY_TIMEOUT  # refused at once once known refused (before: 10 s each, at least)
            expected = "SQLITE_FULL" if refusal == "full" else "SQLITE_BUSY"
            assert answer.status == 503 and body["store"] == "unreachable", body
            assert body["store_error"] == expected, body
            await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 0)
        await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 1)
        assert (await client.get("/readyz")).status == 200
        assert await post_message(client, PSID, TEXT, "m-refused") == 200  # the provider's redelivery
        said = [r for r in caplog.records if r.name.startswith("gateway")]
        # One alert per refusal, over once a write is taken. A full disk may take a write that fits in the pages
        # its files already hold (the WAL reused after a checkpoint) and refuse the next: then alert and over again,
        # never one line per refused write (seen on CI: two of each).
        told = [r for r in said if r.getMessage().startswith(("alert: the sqlite store", "alert over: the sqlite"))]
        assert told and len(told) % 2 == 0, [r.getMessage() for r in told]
        for alert, over in zip(told[::2], told[1::2], strict=True):
            assert alert.levelno == logging.ERROR and expected in alert.getMessage()
            assert alert.getMessage().startswith("alert: the sqlite store refuses writes")
            assert over.getMessage().startswith("alert over: the sqlite store takes writes again")
        assert not [r for r in said if PSID in r.getMessage() or TEXT in r.getMessage()]
        await client.close()


async def test_a_full_disk_is_one_outage_in_the_outage_log(
    make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file's disk full, SQLite still answers reads, and the workers' claims of a quiet gateway (a write
    transaction that changes no row writes nothing): their polls are answered, the webhooks and the alert checks'
    probe refused (SQLITE_FULL). Until 2026-12-05 the outage log took the answered polls for the store back and said
    a WARNING ``the store failed briefly … it answers again`` after each refused webhook or check, while every
    webhook was answered 503. Now one outage, over once a write is taken again. (Its write lock held by another
    process, the claims are refused at every poll too: told as one outage before as now.)"""
    if os.geteuid() != 0:
        pytest.skip("mounting the small disk needs root")
    caplog.set_level(logging.INFO, logger="gateway")
    with small_disk(tmp_path / "disk") as disk:
        settings = settings.replace(
            store=f"sqlite:///{disk}/gateway.sqlite3", messenger_app_secret=SECRET, messenger_verify_token="verify",
            messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
        )  # fmt: skip
        client = await make_client(settings, outage_summary_seconds=1.0, watch_seconds=WATCH)
        metrics, store = client.app[METRICS], client.app[STORE]
        assert await post_message(client, PSID, TEXT, "m-before") == 200
        async with asyncio.timeout(90):  # its reply sent and recorded: a quiet gateway, its workers finding nothing
            while await store.outbox_oldest_pending() is not None:
                await asyncio.sleep(0.05)

        def said(text: str) -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "gateway.outage_log" and text in r.getMessage()]

        def refused(part: str) -> float:
            return metrics.registry.get_sample_value(
                "gateway_store_failures_total", {"part": part, "error": "SQLITE_FULL"}
            ) or 0.0  # fmt: skip

        caplog.clear()
        filler = fill(disk)
        try:
            assert await post_message(client, PSID, TEXT, "m-refused") == 503
            await until(lambda: refused("alerts") >= 1)  # the alert checks' probe refused too (every 10 s)
            # a summary (the outage said, lasting), or before the fix the false "back" line
            await until(lambda: bool(said("store unavailable for") or said("failed briefly")))
            assert not said("failed briefly"), [r.getMessage() for r in said("failed briefly")]
            assert await post_message(client, PSID, TEXT, "m-refused") == 503
            assert not said("failed briefly") and not said("alert over"), [r.getMessage() for r in caplog.records]
        finally:
            filler.unlink()
        await until(lambda: bool(said("alert over")))
        [start] = said("alert: the store refuses writes")  # not "unreachable": it answers reads
        assert start.levelno == logging.ERROR and "SQLITE_FULL" in start.getMessage()
        assert not said("failed briefly")
        assert not [r for r in caplog.records if PSID in r.getMessage() or TEXT in r.getMessage()]
        assert await post_message(client, PSID, TEXT, "m-refused") == 200  # the provider's redelivery
        await client.close()
