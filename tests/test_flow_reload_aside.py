"""A flows.yaml reload while the gateway serves young people: the file is read, validated and compiled off the event
loop (``FlowSet.reload_aside``), so webhooks, web chats and consoles are answered meanwhile.

The file is a named pipe held by a thread (a slow network share, at its slowest): the reload cannot finish until
the thread writes the flow. The gateway must answer while it waits. Before, the console's reload and the watcher
read it on the loop: nothing was answered until the file was (a 244 KB flows.yaml holds the loop 0.3–0.5 s on a
2-core machine; the pipe makes that wait as long as the test wants, here until the thread's safety delay)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.app import FLOWS
from gateway.flowset import FlowSet
from gateway.settings import Settings
from gateway.testing import no_new_thread
from tests.conftest import AppFactory, add_listener, login
from tests.test_app import flow_copy, with_flow
from tests.test_metrics import Client

OLD_NUMBER = "appelle le 116 006, tous les jours de 9h à 19h"
NEW_NUMBER = "appelle le 116 016, tous les jours de 9h à 19h"
SAFETY_DELAY = 30.0  # the thread writes the flow by itself this long after a reader came: a loop held is let go


class SlowShare:
    """A thread holding ``fifo``'s writing end: it waits for a reader (the reload), then for :meth:`release` (or the
    safety delay), then writes ``text``. ``reading`` is set once a reader opened the pipe; ``written`` once fed."""

    def __init__(self, fifo: Path, text: str) -> None:
        self.fifo, self.text = fifo, text
        self.reading, self.written, self._release = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._release.set()

    def _serve(self) -> None:
        deadline = time.monotonic() + 600
        while True:  # a pipe opened for writing without blocking: ENXIO until a reader has it open
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    return
                self._release.wait(0.01)
        self.reading.set()
        try:
            self._release.wait(SAFETY_DELAY)
            os.set_blocking(fd, True)
            os.write(fd, self.text.encode("utf-8"))
            self.written.set()
        finally:
            os.close(fd)

    def join(self) -> None:
        self._thread.join(timeout=SAFETY_DELAY + 5)


@contextmanager
def slow_share(flows: Path, text: str) -> Iterator[SlowShare]:
    flows.unlink()
    os.mkfifo(flows)
    share = SlowShare(flows, text)
    try:
        yield share
    finally:
        share.release()
        share.join()


async def gateway_on_a_copy(
    make_client: AppFactory, settings: Settings, tmp_path: Path, **options: float
) -> tuple[Client, Path, str]:
    """A gateway serving a copy of the default flows.yaml: the client, the copy's path, and the copy's text with a
    partner's number changed (what the reload is to load)."""
    flows = flow_copy(tmp_path)
    changed = flows.read_text(encoding="utf-8").replace(OLD_NUMBER, NEW_NUMBER)
    return await make_client(with_flow(settings, flows), **options), flows, changed


async def answered_while_read(client: Client, share: SlowShare) -> None:
    """Once the reload reads the held file: the gateway answers a health check and the chat page before the file is
    given (before: only after it, the loop held by the read); then the file is given."""
    assert await asyncio.to_thread(share.reading.wait, 60)
    statuses = [(await client.get(path)).status for path in ("/healthz", "/chat")]
    assert statuses == [200, 200]
    assert not share.written.is_set()
    share.release()


async def test_a_console_reload_of_a_file_slow_to_read_leaves_the_gateway_answering(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    client, flows, changed = await gateway_on_a_copy(make_client, settings, tmp_path, flow_watch_seconds=3600.0)
    first = client.app[FLOWS].version
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    with slow_share(flows, changed) as share:
        reload = asyncio.ensure_future(client.post("/api/admin/reload", json={}))
        await answered_while_read(client, share)
        response = await reload
    assert response.status == 200, await response.text()
    version = (await response.json())["version"]
    assert version != first and client.app[FLOWS].version == version


async def test_the_watchers_reload_of_a_file_slow_to_read_leaves_the_gateway_answering(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """The watcher (every ``flow_watch_seconds``) sees the file changed and settled, and reloads it."""
    client, flows, changed = await gateway_on_a_copy(make_client, settings, tmp_path, flow_watch_seconds=0.02)
    first = client.app[FLOWS].version
    with slow_share(flows, changed) as share:
        await answered_while_read(client, share)
        await asyncio.to_thread(share.written.wait, 60)
        while client.app[FLOWS].version == first:  # swapped in once read and compiled
            await asyncio.sleep(0.01)
    assert client.app[FLOWS].last_reload is not None and client.app[FLOWS].last_reload.ok


async def test_a_file_never_read_is_a_refused_reload_and_the_next_reload_is_answered(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """A share that stops answering mid-reload: the console's reload is refused with the file named after
    ``flow_read_seconds`` (the current flow kept), and every later reload is answered at once, 409 "a reload is
    already running", while that read goes on: one thread reading the file, however many reloads are asked. Once the
    share answers, a reload loads the file again. Before, the first reload's request stayed unanswered, and held the
    reload lock so that every later one (the watcher's, SIGHUP's, the console's) waited behind it, for as long as the
    share did not answer; until 2026-12-06 each later one started one more thread blocked on the file, without
    bound."""
    client, flows, changed = await gateway_on_a_copy(
        make_client, settings, tmp_path, flow_watch_seconds=3600.0, flow_read_seconds=0.5
    )
    first = client.app[FLOWS].version
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    before = readers()
    with slow_share(flows, changed):
        response = await asyncio.wait_for(client.post("/api/admin/reload", json={}), 60)
        assert response.status == 422, await response.text()
        body = await response.json()
        assert body["version"] == first and body["problems"][0].startswith(f"{flows}:1:1: the file was not read")
        for _ in range(4):
            response = await asyncio.wait_for(client.post("/api/admin/reload", json={}), 60)
            assert response.status == 409, await response.text()
            body = await response.json()
            assert body["version"] == first
            assert body["problems"][0].startswith(f"{flows}:1:1: a reload is already running"), body
        assert readers() == before + 1
        assert client.app[FLOWS].version == first
    while readers() > before:  # the share answered: the read ends, its result unused
        await asyncio.sleep(0.01)
    flows.unlink()
    flows.write_text(changed, encoding="utf-8")
    client.app[FLOWS].read_seconds = 60.0  # a whole read and compilation: 0.3-0.5 s on a quiet machine
    response = await asyncio.wait_for(client.post("/api/admin/reload", json={}), 60)
    assert response.status == 200, await response.text()
    assert client.app[FLOWS].version != first


def readers() -> int:
    """The threads reading flows.yaml for a reload (``gateway.flowset.in_own_thread`` names them)."""
    return sum(1 for thread in threading.enumerate() if thread.name == "flows-reload")


class HungShare(type(Path())):  # type: ignore[misc]
    """A path on a share that stops answering: its ``stat`` (what the watcher looks at) waits until ``answer`` is
    set, as a hard-mounted NFS share gone silent does. The file itself is the default flows.yaml's copy."""

    answer = threading.Event()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        HungShare.answer.wait(SAFETY_DELAY)
        return super().stat(follow_symlinks=follow_symlinks)


async def test_the_watchers_look_at_a_share_not_answering_leaves_the_loop_turning(tmp_path: Path) -> None:
    """The watcher looks at flows.yaml's modification time every few seconds, and a reload stats it too. On a share
    that stops answering, that look waited on the event loop: no webhook, web chat or console answered until the
    share did (the reload's read was already in its own thread, its look was not). Now each look is made in a thread
    of its own too, and a look still waiting skips the watcher's next ones; once the share answers, the watcher
    reloads the changed file."""
    flows = HungShare(flow_copy(tmp_path))
    HungShare.answer.set()
    flowset = FlowSet(flows, read_seconds=0.5)
    assert flowset.reload().ok
    flows.write_text(flows.read_text(encoding="utf-8").replace(OLD_NUMBER, NEW_NUMBER), encoding="utf-8")
    HungShare.answer.clear()
    try:
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0.01)
                turns += 1

        ticking = asyncio.ensure_future(ticker())
        looks = [await asyncio.wait_for(flowset.reload_if_settled_aside(), 10) for _ in range(3)]
        reload = await asyncio.wait_for(flowset.reload_aside(), 10)  # the console's, SIGHUP's: refused, answered
        ticking.cancel()
        assert looks == [None, None, None] and turns >= 10  # the loop turned while the share did not answer
        assert not reload.ok and ("not read" in reload.problems[0] or "already running" in reload.problems[0])
    finally:
        HungShare.answer.set()
    flowset.read_seconds = 60.0  # a whole read and compilation: 0.3-0.5 s on a quiet machine, more at load
    first, deadline = flowset.version, time.monotonic() + 60
    while flowset.version == first:  # the share answers: the watcher sees the change settle, and reloads
        assert time.monotonic() < deadline, "the watcher never reloaded the file once the share answered"
        await flowset.reload_if_settled_aside()
        await asyncio.sleep(0.01)
    assert flowset.version != first and flowset.last_reload is not None and flowset.last_reload.ok


async def test_a_reload_whose_thread_cannot_start_is_answered_503_and_the_next_one_runs(
    make_client: AppFactory, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The console's reload when no thread can be started for the file's read: 503, said in French then English, the
    current flow kept, a line naming the error's class; the next reload, once threads start again, loads the file.
    Until 2026-12-06 the read's in-flight mark stayed set (its thread never ran to clear it): every later reload,
    the console's, SIGHUP's and the watcher's, was refused 409 "a reload is already running" until a restart."""
    client, flows, changed = await gateway_on_a_copy(make_client, settings, tmp_path, flow_watch_seconds=3600.0)
    first = client.app[FLOWS].version
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    flows.write_text(changed, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="gateway.flowset"), no_new_thread():
        response = await asyncio.wait_for(client.post("/api/admin/reload", json={}), 60)
        refused = response.status, await response.json()
    kept = client.app[FLOWS].version
    response = await asyncio.wait_for(client.post("/api/admin/reload", json={}), 60)
    assert response.status == 200, await response.text()
    assert client.app[FLOWS].version != first
    status, body = refused
    assert status == 503 and body["version"] == first and kept == first, body
    assert body["problems"][0].startswith(f"{flows}:1:1: le rechargement n'a pas pu démarrer"), body
    assert "the reload could not start" in body["problems"][0], body
    assert any("RuntimeError" in r.getMessage() and "not started" in r.getMessage() for r in caplog.records)


async def test_the_watchers_look_whose_thread_cannot_start_is_made_again_at_the_next_one(tmp_path: Path) -> None:
    """The watcher's look at the file when no thread can be started: nothing changes, and once threads start again
    the watcher sees the change and reloads. Until 2026-12-06 the look's mark stayed set: every later look was
    skipped as "still waiting on the file", and the watcher never reloaded again until a restart."""
    flows = flow_copy(tmp_path)
    flowset = FlowSet(flows, read_seconds=10.0)
    assert flowset.reload().ok
    first = flowset.version
    flows.write_text(flows.read_text(encoding="utf-8").replace(OLD_NUMBER, NEW_NUMBER), encoding="utf-8")
    with no_new_thread():
        assert await asyncio.wait_for(flowset.reload_if_settled_aside(), 10) is None
    looks = 0
    while flowset.version == first:  # changed, then settled at the next look: reloaded
        assert looks < 5, "the watcher never reloaded the file once threads started again"
        await asyncio.wait_for(flowset.reload_if_settled_aside(), 60)
        looks += 1
    assert flowset.last_reload is not None and flowset.last_reload.ok
