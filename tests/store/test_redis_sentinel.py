"""The store on ``redis+sentinel://`` with real processes (tests/sentinel_servers.py): the pool asks the Sentinels
without redis-py's client retries, and closes every connection it made, the Sentinels' too. The failover itself,
``kill -9`` of the primary under a burst, is tests/test_sentinel_failover.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import METRICS, create_app
from gateway.cli import main
from gateway.errors import LockLost, StoreError
from gateway.events import QueueChanged, Resync
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import (
    Author,
    Claim,
    ClaimState,
    Delivery,
    DoneMark,
    HasWorkers,
    Listener,
    TranscriptEntry,
    open_store,
    redis_keys,
)
from gateway.store.redis import LOCK_LEASE_MS, RedisStore
from gateway.store.redis_pool import open_pool
from gateway.testing import DATA_KEY, SECRET_KEY, store_keys
from tests.conftest import Clock
from tests.sentinel_servers import SERVICE, Sentinels
from tests.test_webchat import hello, say

pytestmark = pytest.mark.redis

LISTENERS = redis_keys.key("listeners")  # the hash of listener accounts: written by ``add_listener``


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    servers = Sentinels(tmp_path_factory.mktemp("sentinels"))
    try:
        yield servers
    finally:
        servers.stop()


class Refusing:
    """A Sentinel that is down in the worst way for a client that retries: it accepts, then closes at once."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def refusing() -> AsyncIterator[tuple[Refusing, int]]:
    sentinel = Refusing()
    async with sentinel as port:
        yield sentinel, port


async def test_a_sentinel_down_is_asked_once_then_the_next_one(
    sentinels: Sentinels, refusing: tuple[Refusing, int]
) -> None:
    """redis-py's client retries a connection error three times with a backoff of up to 10 s by default: a Sentinel
    down first in the list held every new connection that long. Asked once, the next Sentinel answers."""
    dead, port = refusing
    url = sentinels.url.replace("redis+sentinel://", f"redis+sentinel://127.0.0.1:{port},")
    started = time.monotonic()
    store = await open_store(url, keys=store_keys(url), max_connections=4)
    try:
        await asyncio.gather(*(store.ping() for _ in range(8)))  # several connections: each asks the Sentinels
    finally:
        await store.close()
    assert dead.accepted == 1  # then the Sentinel that answered is asked first (redis-py moves it to the front)
    assert time.monotonic() - started < 5


def clients(port: int) -> list[str]:
    """The clients of a server (a Redis or a Sentinel) but this one, the Sentinels' and the replica's links."""
    with redis.Redis(port=port, decode_responses=True) as admin:
        me = admin.client_id()
        return sorted(f"{c['addr']} {c['cmd']}" for c in admin.client_list() if c["id"] != str(me)
                      and not c["name"].startswith("sentinel-") and "S" not in c["flags"])  # fmt: skip


async def until_no_clients(port: int) -> None:
    deadline = time.monotonic() + 20
    while found := clients(port):
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


async def test_every_connection_is_closed_at_shutdown_the_sentinels_too(
    settings: Settings, sentinels: Sentinels, clock: Clock
) -> None:
    """The store's pool and the rate limits' each own a Sentinel client (its connections to the Sentinels): the
    app's cleanup closes them with the pools, so a restart in a loop leaks nothing on either side."""
    sentinel_port = sentinels.sentinel_ports[0]
    await until_no_clients(sentinel_port)
    app = await create_app(settings.replace(store=sentinels.url), clock=clock, worker_poll_seconds=0.05)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with client.ws_connect("/chat/ws") as ws:  # a new chat and a message: both rate-limited
            await hello(ws)
            await say(ws, "m0", "2")
        assert clients(sentinel_port) and clients(sentinels.primary_port)
    finally:
        await client.close()
    await until_no_clients(sentinel_port)
    await until_no_clients(sentinels.primary_port)


async def test_rediss_sentinel_reaches_sentinels_and_primary_over_tls(tmp_path: Path) -> None:
    """``rediss+sentinel://``: the Sentinels and the primary listen on TLS only (no plain port), the URL names the
    test's CA: the store opens and writes there."""
    servers = Sentinels(tmp_path, tls=True)
    try:
        assert servers.url.startswith("rediss+sentinel://")
        store = await open_store(servers.url, keys=store_keys(servers.url), max_connections=4)
        try:
            await store.ping()
            assert store.closed is False
        finally:
            await store.close()
        with servers.client(servers.primary_port) as primary:  # what the store wrote reached the primary
            assert primary.dbsize() > 0
    finally:
        servers.stop()


@pytest.fixture
def own_sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    """Sentinels of this test alone: it moves the primary."""
    servers = Sentinels(tmp_path)
    try:
        yield servers
    finally:
        servers.stop()


async def planned_failover(servers: Sentinels) -> None:
    """``SENTINEL FAILOVER`` (an operator's planned switch: both Redis processes stay up), until the Sentinel names
    the replica. It answers NOGOODSLAVE until its view of the replica is fresh enough: asked again until then."""

    def ask() -> bool:
        with servers.client(servers.sentinel_ports[0]) as sentinel:
            try:
                sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
            except redis.ResponseError as error:
                assert str(error).startswith("NOGOODSLAVE"), error
                return False
        return True

    try:
        async with asyncio.timeout(30):
            while not await asyncio.to_thread(ask):
                await asyncio.sleep(0.2)
            while await asyncio.to_thread(servers.primary_named) != servers.replica_port:
                await asyncio.sleep(0.05)
    except TimeoutError:
        log = (servers.directory / "sentinel0" / "redis.log").read_text()
        pytest.fail(f"no planned failover within 30 s; the Sentinel's log:\n{log}")


async def test_a_planned_failover_moves_writes_and_subscribers_to_the_new_primary(own_sentinels: Sentinels) -> None:
    """After ``SENTINEL FAILOVER`` the old primary stays a writable primary for about 10 s (until the Sentinels
    make it a replica, which throws away what it was written meanwhile): the connections open on it must not go on
    writing there. Within a few seconds of the switch the store writes on the new primary, and its subscription is
    told (a Resync, or a StoreError after which its consumer subscribes again, on the new primary)."""
    servers = own_sentinels
    store = await open_store(servers.url, keys=store_keys(servers.url), max_connections=4)
    assert isinstance(store, HasWorkers)
    following = asyncio.create_task(store.workers()["store-primary"]())  # the app's supervisor runs it
    try:
        await store.add_listener(Listener("before", "hash", capacity=1))
        with servers.client(servers.replica_port) as replica:  # replicated before the switch, which waits for no one
            async with asyncio.timeout(10):  # (a fresh-clone run beside other jobs, 2026-12-05: not yet there)
                while not replica.hexists(LISTENERS, "before"):
                    await asyncio.sleep(0.05)
        subscription = await store.subscribe()
        loop = asyncio.get_running_loop()
        await planned_failover(servers)
        switched = loop.time()
        with servers.client(servers.primary_port) as old:
            assert old.info("replication")["role"] == "master"  # still: what is written there now is lost later
        with servers.client(servers.replica_port) as new:
            written = 0
            async with asyncio.timeout(8):  # the old primary is demoted ~10 s after the switch: not waited for
                while True:
                    with contextlib.suppress(StoreError):  # a command on the wire when the connections closed
                        await store.add_listener(Listener(f"after-{written}", "hash", capacity=1))
                    if new.hexists(LISTENERS, f"after-{written}"):
                        break
                    written += 1
                    await asyncio.sleep(0.05)
            moved = loop.time() - switched
            try:  # told, as after the old primary's death: redis-py subscribed again (Resync), or it failed
                async with asyncio.timeout(8):
                    assert await anext(subscription) == Resync()
            except StoreError:
                pass
            again = await store.subscribe()
            await store.publish(QueueChanged())
            async with asyncio.timeout(8):
                assert await anext(again) == QueueChanged()
            await again.aclose()
            assert new.hexists(LISTENERS, "before")  # replicated before the switch
        print(f"\nplanned failover: the store wrote on the new primary {moved:.1f} s after the switch")
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await store.close()


def primary_listed(servers: Sentinels) -> int:
    """The primary's port in the first Sentinel's ``SENTINEL MASTERS``, which redis-py's ``discover_master`` reads:
    during a failover it names the old primary a little longer than ``GET-MASTER-ADDR-BY-NAME`` does."""
    with servers.client(servers.sentinel_ports[0]) as sentinel:
        return int(sentinel.sentinel_masters()[SERVICE]["port"])


@pytest.mark.parametrize("dropped", ["closed", "ping-failed"])
async def test_a_connection_in_use_reopened_after_a_planned_failover_goes_to_the_new_primary(
    own_sentinels: Sentinels, dropped: str
) -> None:
    """A connection held by its user (the pub/sub connection, a pipeline's) that is dropped after a planned
    failover, and reopened by its next command, asks the Sentinels where the primary is: ``closed`` as
    ``follow_primary`` closes it (redis_pool.py's ``_WrittenInPlace``), ``ping-failed`` as a connection reset
    found by the health check (``_ReconnectWhenPingFails``). redis-py's ``connect_check_health`` reopened the old
    primary's address, still up and writable for ~10 s after ``SENTINEL FAILOVER`` (this failed, in both ways).
    The pool's own check of the primary (``follow_primary``) does not run here: the connection asks by itself."""
    servers = own_sentinels
    pool = open_pool(servers.url, max_connections=2, timeout=5.0, health_check_interval=0.05, socket_timeout=2.0,
                     decode_responses=True)  # fmt: skip
    connection = await pool.get_connection()
    try:
        await connection.send_command("CLIENT", "ID")
        client_id = await connection.read_response()
        assert connection.port == servers.primary_port
        await planned_failover(servers)
        async with asyncio.timeout(30):  # and until SENTINEL MASTERS, redis-py's question, names it too
            while await asyncio.to_thread(primary_listed, servers) != servers.replica_port:
                await asyncio.sleep(0.05)
        if dropped == "closed":
            await connection.disconnect()
        else:
            with servers.client(servers.primary_port) as old:
                assert old.client_kill_filter(_id=client_id) == 1
            loop = asyncio.get_running_loop()
            while loop.time() <= connection.next_health_check:  # the next command is checked first
                await asyncio.sleep(0.05)
        await connection.send_command("PING")
        assert await connection.read_response() == "PONG"
        assert connection.port == servers.replica_port  # the new primary
    finally:
        await pool.release(connection)
        await pool.aclose()


async def test_the_check_of_the_primary_is_a_supervised_worker_named_by_readyz_when_it_fails(
    settings: Settings, own_sentinels: Sentinels, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each pool's check of the primary (the store's, the rate limits') runs under the app's supervisor: when it
    fails (here the Sentinel refuses it the question, NOPERM, as an ACL may), the failure is logged by class,
    the worker restarted and counted, and ``/readyz`` names it (503): a gateway that can no longer follow a
    planned failover says so. Before 2026-12-02 it was a task of the pool's own: it died unseen, every second."""
    servers = own_sentinels
    app = await create_app(settings.replace(store=servers.url), clock=clock, worker_poll_seconds=0.05)
    client = TestClient(TestServer(app))
    await client.start_server()
    workers = ("store-primary", "limits-primary")

    def restarts(worker: str) -> float:
        found = app[METRICS].registry.get_sample_value("gateway_worker_restarts_total", {"worker": worker})
        return found or 0.0

    try:
        assert (await client.get("/readyz")).status == 200
        with servers.client(servers.sentinel_ports[0]) as sentinel:
            sentinel.execute_command("ACL", "SETUSER", "default", "-sentinel")
        try:
            async with asyncio.timeout(30):
                while True:  # restarted, and failed again after its restart
                    response = await client.get("/readyz")
                    named = (await response.json()).get("workers", {})
                    if all(w in named for w in workers) and min(map(restarts, workers)) >= 2:
                        break
                    await asyncio.sleep(0.05)
        finally:
            with servers.client(servers.sentinel_ports[0]) as sentinel:
                sentinel.execute_command("ACL", "SETUSER", "default", "+@all")
        assert response.status == 503
        assert {named[w] for w in workers} <= {"down", "restarting too often"}
        stopped = " ".join(r.getMessage() for r in caplog.records if "stopped by NoPermissionError" in r.getMessage())
        assert "worker store-primary stopped" in stopped and "worker limits-primary stopped" in stopped
        assert not any("NOPERM" in r.getMessage() for r in caplog.records)  # the class, never the message
    finally:
        await client.close()


async def test_the_store_migration_runs_on_the_primary_the_sentinels_name(
    sentinels: Sentinels, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gateway store migrate`` reads GATEWAY_STORE as the gateway does: a Sentinel URL reaches the primary."""
    monkeypatch.setenv("GATEWAY_STORE", sentinels.url)
    monkeypatch.setenv("GATEWAY_DATA_KEY", DATA_KEY)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET_KEY)
    assert await asyncio.to_thread(main, ["store", "migrate"]) == 0  # the command runs its own event loop
    assert "nothing: the layout is current" in capsys.readouterr().out


async def test_a_commit_on_the_new_primary_after_its_earlier_writes_were_lost_on_the_old_one_is_refused(
    own_sentinels: Sentinels,
) -> None:
    """A message's processing under its conversation's lock sends its writes in several pipelines (a read in the
    middle sends the writes held so far). A planned failover between two of them: the lock and the claim reached the
    replica before it, the first pipeline (the young person's entry) went to the old primary after the switch, a
    writable primary still, and is lost with it; the next pipeline (the record and the processed mark) goes to the
    new primary once the store follows it, where the lock still holds the holder's token. Until 2026-12-07 the fence
    read only the token: the record and the mark were written there, the message taken for processed (a
    redelivery DONE) and its entry in no transcript. Now each fenced write also carries how many the holder made
    before it under this lock, which the new primary does not have: refused (``LockLost``), the mark taken back,
    the redelivery processed."""
    servers = own_sentinels
    # a lease longer than the failover's seconds on a busy machine: the lock the replica got is still there after it
    store = await open_store(servers.url, keys=store_keys(servers.url), max_connections=4, socket_timeout=20)
    assert isinstance(store, RedisStore)
    following: asyncio.Task[None] | None = None
    pool = store._client.connection_pool  # the store's Sentinel pool: the primary it follows
    try:
        conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-f", datetime.now(UTC))
        cid = conversation.id
        assert await store.claim("in:f", "first", 60) is ClaimState.CLAIMED
        refused = False
        try:
            async with store.locked_batch(cid, claim=Claim("in:f", "first", 60)) as state:
                assert state is ClaimState.CLAIMED
                found = await store.get_conversation(cid)
                assert found is not None
                with servers.client(servers.replica_port) as replica:  # the lock reached the replica
                    async with asyncio.timeout(10):
                        while not replica.exists(redis_keys.lock(cid)):
                            await asyncio.sleep(0.05)
                await planned_failover(servers)
                with servers.client(servers.primary_port) as old:
                    assert old.info("replication")["role"] == "master"  # still: what is written there now is lost
                entry = TranscriptEntry(id="in-f", conversation_id=cid, at=datetime.now(UTC), author=Author.USER,
                                        text="bonjour", delivery=Delivery.DELIVERED)  # fmt: skip
                await store.append_transcript(entry)
                await store.get_conversation(cid)  # a read: the entry's pipeline sent, to the old primary
                with servers.client(servers.replica_port) as new:
                    assert not new.exists(redis_keys.transcript(cid)), "the entry reached the new primary"
                    assert new.get(redis_keys.lock(cid)) is not None  # the lock the replica got, still there
                following = asyncio.create_task(store.workers()["store-primary"]())  # the app's supervisor runs it
                async with asyncio.timeout(10):
                    while pool.master_address is None or pool.master_address[1] != servers.replica_port:
                        await asyncio.sleep(0.05)
                await store.save_conversation(replace(found, engine={"step": "f"}), done=DoneMark("in:f", 3600))
        except LockLost:
            refused = True
        with servers.client(servers.replica_port) as new:
            assert not new.exists(redis_keys.transcript(cid))
        assert await store.transcript(cid) == []
        assert await store.claim("in:f", "redelivery", 60) is ClaimState.CLAIMED, (
            "taken for processed, recorded nowhere"
        )
        assert refused  # the commit told of its refusal: the message not processed, its claim let go
    finally:
        if following is not None:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        await store.close()


async def test_a_lock_held_across_a_planned_failover_is_renewed_on_the_new_primary(own_sentinels: Sentinels) -> None:
    """The lock's renewals go on connections of their own (``RENEWAL_CONNECTIONS``). After ``SENTINEL FAILOVER``
    the old primary stays a writable primary for a while: renewals sent there renew nothing the new primary holds.
    Until 2026-12-07 only the store's main pool followed the Sentinels (``store-primary``): the renewals went on
    reaching the old primary, the lock the replica got lapsed on the new one within the lease while its holder
    renewed it (another instance could take it; the holder's commit refused, ``LockLost``). Now the same worker
    follows the renewals' pool too: the lock stays on the new primary, the commit lands."""
    servers = own_sentinels
    store = await open_store(servers.url, keys=store_keys(servers.url), max_connections=4)
    assert isinstance(store, RedisStore)
    following = asyncio.create_task(store.workers()["store-primary"]())  # the app's supervisor runs it
    loop = asyncio.get_running_loop()
    lease = LOCK_LEASE_MS / 1000
    try:
        conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-r", datetime.now(UTC))
        cid = conversation.id
        async with store.locked_batch(cid):
            found = await store.get_conversation(cid)
            assert found is not None
            with servers.client(servers.replica_port) as replica:  # the lock reached the replica
                async with asyncio.timeout(10):
                    while not replica.exists(redis_keys.lock(cid)):
                        await asyncio.sleep(0.05)
            await planned_failover(servers)
            switched = loop.time()
            with servers.client(servers.replica_port) as new:  # held past a lease after the switch, as a slow step
                while loop.time() < switched + lease + 2:
                    assert new.exists(redis_keys.lock(cid)), (
                        f"the lock lapsed on the new primary {loop.time() - switched:.1f} s after the switch while"
                        " its holder renewed it"
                    )
                    await asyncio.sleep(0.1)
            await store.save_conversation(replace(found, engine={"step": "r"}))
        record = await store.get_conversation(cid)
        assert record is not None and record.engine == {"step": "r"}
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await store.close()
