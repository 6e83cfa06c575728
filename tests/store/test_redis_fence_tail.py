"""The lock's fence and a failover that keeps only part of a pipeline (``_Fence``, ``redis_lua._FENCE``): the
replication stream cut between a pipeline's last fenced script and the writes after it (``HeldReplies``: a reply's
item, then its line's step in slot ``{outbox}``), the primary killed, its replica promoted.

Real processes: a primary and its replica, the replication stream through :class:`StreamCut`, a proxy of the test
that reads the primary's stream command by command (RESP arrays, ``tests/cutting_proxy.py``'s ``command_end``) once
armed and passes none from the first that holds a marker on (nothing either way after it, every socket left open: a
network partition), so that the replica has a chosen prefix of what the primary ran and answered. The store reaches
the primary through ``tests/losing_proxy.py``, moved to the promoted replica (a virtual IP)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.errors import LockLost
from gateway.messages import ChannelName
from gateway.store import (
    Author,
    Claim,
    ClaimState,
    Delivery,
    DoneMark,
    OutboxItem,
    TranscriptEntry,
    open_store,
    redis_keys,
)
from gateway.store.redis import RedisStore
from gateway.testing import store_keys
from tests.cutting_proxy import command_end
from tests.losing_proxy import losing_proxy
from tests.store.conftest import _redis_server, _stop

pytestmark = pytest.mark.redis

DEADLINE = 20.0  # every wait on a condition: a busy machine


class StreamCut:
    """A proxy on a replica's link to its primary: every byte passes until :meth:`cut_at` is armed; from then on the
    primary's stream is read command by command, and the first command holding every marker, and everything after
    it, never reaches the replica (nor the replica's acknowledgements the primary): ``cut`` is set then."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server: asyncio.Server | None = None
        self.cut = asyncio.Event()
        self._markers: tuple[bytes, ...] | None = None
        self.serving: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def cut_at(self, *markers: bytes) -> None:
        """Armed between two commands of the stream (the replica in step with the primary, nothing on its way)."""
        self._markers = markers

    def _passed(self, buffer: bytes) -> tuple[bytes, bytes]:
        """What of ``buffer`` goes on, and what waits for more bytes (a command not whole yet)."""
        markers, at = self._markers, 0
        if markers is None:
            return buffer, b""
        while (end := command_end(buffer, at)) is not None:
            if all(marker in buffer[at:end] for marker in markers):
                self.cut.set()
                return buffer[:at], b""
            at = end
        return buffer[:at], buffer[at:]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        task = asyncio.current_task()
        if task is not None:
            self.serving.add(task)

        async def up() -> None:  # the replica's PSYNC, REPLCONF ACKs
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(1 << 16):
                    if not self.cut.is_set():
                        up_writer.write(data)
                        await up_writer.drain()

        async def down() -> None:  # the primary's stream
            waiting = b""
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(1 << 16):
                    if self.cut.is_set():
                        continue
                    passed, waiting = self._passed(waiting + data)
                    writer.write(passed)
                    await writer.drain()

        try:
            await asyncio.gather(up(), down(), return_exceptions=True)
        finally:
            writer.close()
            up_writer.close()
            if task is not None:
                self.serving.discard(task)


@contextlib.asynccontextmanager
async def stream_cut(upstream_port: int) -> AsyncIterator[StreamCut]:
    proxy = StreamCut(upstream_port)
    proxy.server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    async with proxy.server:
        try:
            yield proxy
        finally:
            for task in proxy.serving:
                task.cancel()
            await asyncio.gather(*proxy.serving, return_exceptions=True)


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)


def _in_step(replica: int, primary: int) -> bool:
    with _client(primary) as old, _client(replica) as new:
        at_primary = int(old.info("replication")["master_repl_offset"])
        found = new.info("replication")
        return found.get("master_link_status") == "up" and int(found.get("slave_repl_offset", -1)) >= at_primary


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {DEADLINE:.0f} s: {what}")


async def test_a_reply_listed_nowhere_after_a_failover_refuses_the_next_pipeline_under_the_lock(tmp_path: Path) -> None:
    """A message's processing under its conversation's lock sends its writes in several pipelines (a read in the
    middle sends those held so far: an ending's, a hand-off's). The first one here is the young person's entry and a
    reply's (``HeldReplies``): their entries and the reply's item in one fenced script, then the item's listing on
    its line (slot ``{outbox}``, unfenced). The primary ran and answered it all; its replica got the fenced script,
    not the listing, when the primary died; the replica promoted, the next pipeline (the record, the processed
    mark) reaches it. Until 2026-12-07 that pipeline's fence counted the fenced script, which the new primary had,
    and passed: the message taken for processed, its reply's item kept and listed nowhere, never sent. Now a
    pipeline followed by another under the lock ends with the fence alone (``fenced_check``) after its unfenced
    writes: the next one's count proves them on the server, else it is refused (``LockLost``), the mark taken back,
    and the redelivery processed again."""
    processes = []
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    primary, primary_port = await asyncio.to_thread(_redis_server, tmp_path / "primary")
    processes.append(primary)
    try:
        async with stream_cut(primary_port) as link:
            replica, replica_port = await asyncio.to_thread(
                _redis_server, tmp_path / "replica", "--replicaof", "127.0.0.1", str(link.port)
            )
            processes.append(replica)
            async with losing_proxy(f"redis://127.0.0.1:{primary_port}/0") as front:
                # a lease longer than the failover on a busy machine: the lock the replica got is still there after it
                store = await open_store(front.url, keys=store_keys(front.url), socket_timeout=20)
                assert isinstance(store, RedisStore)
                try:
                    await _failover_between_the_fenced_script_and_its_tail(
                        store, link, front.point_at, front.reset_all, primary, primary_port, replica_port
                    )
                finally:
                    await store.close()
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                await asyncio.to_thread(_stop, process)


async def _failover_between_the_fenced_script_and_its_tail(
    store: RedisStore,
    link: StreamCut,
    point_at: Callable[[str], None],
    reset_all: Callable[[], int],
    primary: Any,
    primary_port: int,
    replica_port: int,
) -> None:
    now = datetime.now(UTC)
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-t", now)
    cid = conversation.id
    assert await store.claim("in:t", "first", 60) is ClaimState.CLAIMED
    reply = TranscriptEntry(id="out-t", conversation_id=cid, at=now, author=Author.BOT, text="je t'écoute",
                            delivery=Delivery.PENDING)  # fmt: skip
    refused = False
    try:
        async with store.locked_batch(cid, claim=Claim("in:t", "first", 60)) as state:
            assert state is ClaimState.CLAIMED
            found = await store.get_conversation(cid)
            assert found is not None
            await until(lambda: asyncio.to_thread(_in_step, replica_port, primary_port), "the lock on the replica")
            link.cut_at(redis_keys.outbox_line(cid).encode())  # the item's listing, and all after it
            await store.append_transcript(TranscriptEntry(id="in-t", conversation_id=cid, at=now, author=Author.USER,
                                                          text="bonjour", delivery=Delivery.DELIVERED))  # fmt: skip
            await store.append_transcript(reply)
            await store.outbox_put(OutboxItem(reply.id, cid, {"text": reply.text}, now))
            await store.get_conversation(cid)  # a read: the writes held so far sent, run and answered
            async with asyncio.timeout(DEADLINE):
                await link.cut.wait()

            def replica_has_the_item() -> bool:
                with _client(replica_port) as new:
                    return bool(new.exists(redis_keys.outbox_item(cid, reply.id)))

            await until(lambda: asyncio.to_thread(replica_has_the_item), "the fenced script on the replica")
            await asyncio.to_thread(primary.kill)  # kill -9: what it did not send is gone
            await asyncio.to_thread(primary.wait)
            with _client(replica_port) as new:
                await asyncio.to_thread(new.execute_command, "REPLICAOF", "NO", "ONE")  # the failover
            point_at(f"redis://127.0.0.1:{replica_port}/0")
            reset_all()
            await store.save_conversation(replace(found, engine={"step": "t"}), done=DoneMark("in:t", 3600))
    except LockLost:
        refused = True
    with _client(replica_port) as new:
        kept = bool(new.exists(redis_keys.outbox_item(cid, reply.id)))
        listed = bool(new.zscore(redis_keys.outbox_line(cid), reply.id) is not None)
    handed = [item.id for item in await store.outbox_due(now + timedelta(minutes=1), 10)]
    redelivery = await store.claim("in:t", "redelivery", 60)
    assert refused and redelivery is ClaimState.CLAIMED, (
        f"the commit after the lost listing stood (refused: {refused}; redelivery: {redelivery}; the reply's item "
        f"kept: {kept}, listed: {listed}, handed out: {reply.id in handed})"
    )
