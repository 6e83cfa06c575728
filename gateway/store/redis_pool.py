"""How the gateway connects to Redis: one kind of pool for the store and the rate limits.

A blocking pool (a caller waits up to ``timeout`` for a free connection instead of failing at once with
MaxConnectionsError, which redis-py's default pool raises under load) whose connections are checked before use:

* every time a connection is taken from the pool: one that Redis closed (a restart, ``CLIENT KILL``, its
  ``timeout`` setting), or that was reset (an RST seen: since 2026-12-07, :class:`_ResetIsNotReady`), is replaced
  by a fresh one. redis-py does this check only with its "maintenance notifications" off (they are for Redis
  Enterprise and Cloud's planned failovers, and "auto" by default in redis-py 8): with them on, the first command
  on each connection Redis closed failed, which gave a 503 or a closed web chat for the first messages after every
  Redis restart (tests/test_redis_connections.py);
* once idle for ``health_check_interval`` seconds (``GATEWAY_REDIS_HEALTH_CHECK_SECONDS``), with a PING; when the
  PING fails (a connection reset, no close seen: a NAT or firewall that dropped it) or gets no answer within
  ``socket_timeout`` (``GATEWAY_REDIS_SOCKET_TIMEOUT``: a silent path), a fresh connection at once, its handshake
  answered within ``socket_timeout`` too or the command fails. redis-py would raise the PING's error instead (its
  connections retry nothing by default), failing the command although nothing was sent yet.

Commands themselves are never retried: one whose answer was lost may have run, and resending it could apply it
twice. A write that failed before any byte of it left (a reset the loop had not read yet: :class:`NothingSent`) is
the batcher's to write again, once, on a fresh connection (since 2026-12-07); other callers get its error.
The standalone and Sentinel pools' connections retry nothing (redis-py's default for a connection made by a
pool); a Cluster client (:func:`open_cluster`, ``GATEWAY_REDIS_CLUSTER``) is made with no retry either, where
redis-py's default resends a command, a pipeline's commands or a transaction up to 10 times after a
``ConnectionError`` or ``TimeoutError`` (an answer lost after the command ran as well as a node unreachable).

A connection silently dropped (no close and no reset ever arrives) is found by the answer it does not give:
every read waits ``socket_timeout`` at most (the batcher's, ``redis_batch.py``; redis-py's own), then the connection
is dropped; the events connection, which waits for messages, is asked a PING once quiet (``redis_events.py``).

Commands are packed into the Redis protocol by hiredis (C), as redis-py's synchronous client does when hiredis is
installed; its asyncio client packs them in Python, which was ~8 % of the gateway's CPU per message under load
(bench/README.md, "Sixth pass"). Replies are read by hiredis too: redis-py picks its parser by itself once hiredis
is installed.

A command is written in its caller's task: redis-py's asyncio connection wraps every write in ``asyncio.wait_for``
when ``socket_timeout`` is set (5 s by default), which on Python 3.11 makes a task per write and costs each command
a turn of the event loop. The same timeout bounds the wait for room in the socket's buffer here, the only part of a
write that can wait (bench/README.md, "Eighth pass").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import hiredis
from redis._parsers import Encoder
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, DataError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig
from redis.typing import EncodableT

from gateway.loop_watch import timeout_unheld
from gateway.store.redis_url import SentinelURL, is_sentinel

PRIMARY_CHECK_SECONDS = 1.0  # how often the Sentinels are asked whether the primary changed (follow_primary)


class _ReconnectWhenPingFails:
    """A connection whose failed health check reconnects instead of failing the command about to be sent."""

    async def check_health(self) -> None:
        try:
            await super().check_health()  # type: ignore[misc]  # the redis-py connection this is mixed into
        except AuthenticationError:
            # Not a dropped connection: Redis wants a password it was not given (NOAUTH), which a fresh connection
            # is refused too. Reconnecting here recursed (the fresh connection's own check failing the same way)
            # until a RecursionError, reported as a ConnectionError (tests/test_store_waiting.py).
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await self.disconnect()  # type: ignore[attr-defined]
            # Without a health check of its own: a fresh connection's handshake sends its commands through this
            # check, whose interval has passed still (the last answer was the old connection's), so on a silent path
            # (the PING timed out: no close, no reset) each reconnection's PING timed out and reconnected again: a
            # socket timeout per level, every call of the pool hanging until a RecursionError (about 12 minutes at 5
            # s; tests/test_redis_connections.py). Now a handshake that gets no answer fails the command.
            await _reopen(self)


async def _reopen(connection: Any) -> None:
    """A dropped connection opened again, without a health check (:class:`_ReconnectWhenPingFails` says why); behind
    Sentinel, at the address the Sentinels name now. redis-py's ``connect_check_health`` reopens the last address,
    which was the old primary's after a planned failover (``SENTINEL FAILOVER``: it stays up, a writable primary for
    about 10 s): a connection in use that :meth:`BlockingSentinelPool.get_master_address` closed, or whose PING
    failed, was reopened there, and what it wrote was lost (tests/store/test_redis_sentinel.py). A connection the
    pool hands out is opened by ``connect``, which asks the Sentinels already."""
    if isinstance(connection, SentinelManagedConnection) and connection.connection_pool.is_master:
        connection.host, connection.port = await connection.connection_pool.get_master_address()
    await connection.connect_check_health(check_health=False)


class _PackedInC:
    """A connection whose commands are packed by hiredis: the same bytes as redis-py's packer (a command name with
    a space, "SCRIPT LOAD", split in words the same way; a str that is not UTF-8, one decoded with
    ``surrogateescape``, encoded back by the connection's encoder), and the same DataError for a value that is not
    bytes, str, int or float. A connection with another encoding than UTF-8 keeps redis-py's packer."""

    encoder: Encoder  # the redis-py connection's, which this is mixed into

    def pack_command(self, *args: Any) -> list[bytes]:
        if self.encoder.encoding != "utf-8":
            return super().pack_command(*args)  # type: ignore[misc, no-any-return]  # redis-py's
        return [self._packed(args)]

    def pack_commands(self, commands: Iterable[Iterable[EncodableT]]) -> list[bytes]:
        if self.encoder.encoding != "utf-8":
            return super().pack_commands(commands)  # type: ignore[misc, no-any-return]  # redis-py's
        return [b"".join([self._packed(tuple(args)) for args in commands])]

    def _packed(self, args: tuple[Any, ...]) -> bytes:
        name = args[0]
        if (" " if isinstance(name, str) else b" ") in name:
            args = (*name.split(), *args[1:])
        packed: bytes
        try:
            packed = hiredis.pack_command(args)
        except UnicodeEncodeError:  # a str holding bytes that are not UTF-8: as redis-py encodes it
            packed = hiredis.pack_command(tuple(map(self.encoder.encode, args)))
        except TypeError as error:
            raise DataError(f"invalid input in a redis command: {error}") from error
        return packed


class NothingSent(RedisConnectionError):
    """A write that failed before any byte of it left: the connection was reset (an RST in the kernel that the event
    loop had not read yet, so the pool's check found nothing wrong) and its first send failed. Nothing reached
    Redis, so sending it again on a fresh connection is safe for a caller whose commands need no state of the
    connection's (the batcher's: no WATCH, no MULTI, no SUBSCRIBE, ``redis_batch.ALONE``; since 2026-12-07).
    Others get it as the ConnectionError it is."""


class _WrittenInPlace:
    """A connection that writes in the caller's task, without redis-py's ``wait_for`` (a task per write): the same
    bytes, the same errors (``TimeoutError`` when the socket's buffer stays full ``socket_timeout`` s,
    ``ConnectionError`` on a socket error), and the connection dropped on any failure, as redis-py does.

    A write to a transport that is closed already is a ``ConnectionError`` too. It happens when one task writes
    while another closes the connection (redis-py's ``disconnect`` awaits ``wait_closed`` before it forgets the
    writer): asyncio's loop drops such a write with a warning, uvloop (``gateway serve``'s) raises ``RuntimeError:
    unable to perform operation on <TCPTransport closed=True>``, which went up as a bug: the chaos soak saw the web
    chat's forwarding worker stopped by it (a SUBSCRIBE on the events connection as Redis restarted)."""

    is_connected: bool  # the redis-py connection's, which this is mixed into
    socket_timeout: float | None
    _writer: asyncio.StreamWriter | None

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        if not self.is_connected:
            await _reopen(self)
        if check_health:
            await self.check_health()  # type: ignore[attr-defined]
        unsent = False
        try:
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            writer = self._writer
            assert writer is not None  # connected above
            idle = not writer.transport.is_closing() and not writer.transport.get_write_buffer_size()
            try:
                writer.writelines(command)
            except RuntimeError as error:  # uvloop, on a transport closed already (asyncio's loop drops the write)
                if not writer.transport.is_closing():
                    raise
                raise ConnectionResetError("the connection is closed") from error  # as a socket error, below
            # closed by this write, nothing buffered: its first send failed (a reset the loop had not read yet), and
            # nothing of the command left (a send that wrote part of it leaves the rest buffered, the transport open)
            unsent = idle and writer.transport.is_closing() and not writer.transport.get_write_buffer_size()
            if self.socket_timeout and writer.transport.get_write_buffer_size():  # only then can it wait
                async with asyncio.timeout(self.socket_timeout):
                    await writer.drain()
            else:
                await writer.drain()
        except TimeoutError:
            await self._drop()
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as error:
            await self._drop()
            number, message = ("UNKNOWN", error.args[0]) if len(error.args) == 1 else error.args[:2]
            failed = NothingSent if unsent else RedisConnectionError
            raise failed(f"Error {number} while writing to socket. {message}.") from error
        except BaseException:  # cancelled mid-write: what was sent is unknown, so the connection goes
            await self._drop()
            raise

    async def _drop(self) -> None:
        """The connection dropped after a failed write, what its socket's buffer still holds discarded (``abort``):
        redis-py's ``disconnect`` closes the transport, which first sends what it holds, so the rest of a command
        whose caller was told it failed reached Redis once it could take it, and ran
        (``tests/store/test_redis_batch.py``, a write that cannot leave within the socket timeout)."""
        if self._writer is not None:
            self._writer.transport.abort()
        await self.disconnect(nowait=True)  # type: ignore[attr-defined]


class _ResetIsNotReady:
    """A connection whose socket was reset (an RST: a proxy, a NAT or Redis's host gone) is not ready to send.

    The pool checks each connection it hands out with ``can_read`` (``ensure_connection``; the batcher checks the
    ones it keeps the same way): one with data waiting or at its end of file (Redis closed it: a restart,
    ``CLIENT KILL``) is opened again. A reset leaves neither, only the error in the connection's reader and its
    transport closed, so until 2026-12-07 such a connection was handed out as sound and its next command failed on
    the closed socket ("Error UNKNOWN while writing to socket. the connection is closed."), although a fresh
    connection would have carried it: within ``health_check_interval`` of its last use nothing else checks it
    (tests/test_redis_connections.py). Nothing of that command was sent, so opening a fresh one is safe."""

    _reader: asyncio.StreamReader | None  # the redis-py connection's, which this is mixed into
    _writer: asyncio.StreamWriter | None

    async def can_read(self) -> bool:
        reader, writer = self._reader, self._writer
        if writer is not None and writer.transport.is_closing():
            return True  # as at an end of file: not ready, opened again
        if reader is not None and reader.exception() is not None:
            return True
        return await super().can_read()  # type: ignore[misc, no-any-return]  # redis-py's


class _ReadUnheld:
    """A connection whose reads wait ``socket_timeout`` seconds of a loop that ran: one whose deadline the loop
    reached late because it was held (the process frozen, its VM paused) is given ``GRACE`` seconds more to read the
    answer that came meanwhile (:func:`gateway.loop_watch.timeout_unheld`), as the batcher's reads (``redis_batch.py``)
    are. Since 2026-12-08 for redis-py's own reads: a transaction's (``pipeline(transaction=True)``), a command of
    :data:`redis_batch.ALONE`, a health check's, a handshake's, and every command of a Cluster client (not batched:
    :func:`open_cluster`). Until then a call Redis ran while the process was frozen past the socket timeout was taken
    on resume for a ``TimeoutError`` (its connection dropped, its caller's StoreError; on a Cluster a send's record,
    the reply given up and sent again): ``tests/store/test_redis_frozen_reads.py``. A read given its own timeout (the
    pub/sub's, which answers None when it passes) keeps redis-py's."""

    socket_timeout: float | None  # the redis-py connection's, which this is mixed into

    async def read_response(
        self, disable_decoding: bool = False, timeout: float | None = None, *,
        disconnect_on_error: bool | float | None = True,  # redis-py's Sentinel connection types it Optional[float]
        push_request: bool | None = False,
    ) -> Any:  # fmt: skip
        read = super().read_response  # type: ignore[misc]  # redis-py's
        if timeout is not None or self.socket_timeout is None:
            return await read(disable_decoding, timeout, disconnect_on_error=disconnect_on_error,
                              push_request=push_request)  # fmt: skip
        try:
            async with timeout_unheld(self.socket_timeout):  # redis-py's own deadline off (math.inf): ours
                return await read(disable_decoding, math.inf, disconnect_on_error=disconnect_on_error,
                                  push_request=push_request)  # fmt: skip
        except TimeoutError:
            # the read cancelled: redis-py dropped the connection (disconnect_on_error), as at its own deadline
            raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None  # type: ignore[attr-defined]


class UnheldClusterConnection(_ReadUnheld, Connection):
    """A Cluster client's connection (redis://): its reads as :class:`_ReadUnheld`'s, the rest redis-py's."""


class UnheldClusterSSLConnection(_ReadUnheld, SSLConnection):
    """A Cluster client's connection (rediss://)."""


class CheckedConnection(
    _PackedInC, _WrittenInPlace, _ResetIsNotReady, _ReconnectWhenPingFails, _ReadUnheld, Connection
):
    """redis://"""


class CheckedSSLConnection(
    _PackedInC, _WrittenInPlace, _ResetIsNotReady, _ReconnectWhenPingFails, _ReadUnheld, SSLConnection
):
    """rediss://"""


class CheckedUnixConnection(
    _PackedInC, _WrittenInPlace, _ResetIsNotReady, _ReconnectWhenPingFails, _ReadUnheld, UnixDomainSocketConnection
):
    """unix:// (a Redis on the same machine, through its ``unixsocket``: docs/deployment.md)"""


class CheckedSentinelConnection(
    _PackedInC, _WrittenInPlace, _ResetIsNotReady, _ReconnectWhenPingFails, _ReadUnheld, SentinelManagedConnection
):
    """redis+sentinel:// (each new connection asks the Sentinels where the primary is: gateway/store/redis_url.py)"""


class CheckedSentinelSSLConnection(
    _PackedInC, _WrittenInPlace, _ResetIsNotReady, _ReconnectWhenPingFails, _ReadUnheld, SentinelManagedSSLConnection
):
    """rediss+sentinel://"""


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's pool of a Sentinel-managed primary, blocking as the other pools here: a connection is made to the
    address the Sentinels give at that moment. Closing the pool closes the connections to the Sentinels too (the
    pool owns them).

    redis-py asks the Sentinels only when it makes a connection, so the connections already open stayed on the old
    primary as long as it answered: after a planned failover (``SENTINEL FAILOVER``) the old primary stays a
    writable primary for about 10 s, until the Sentinels make it a replica, and what the gateway wrote there
    meanwhile was lost (tests/store/test_redis_sentinel.py). So the Sentinels are asked again every
    ``PRIMARY_CHECK_SECONDS`` by :meth:`follow_primary`, a worker the app runs under its supervisor (``store-primary``
    and ``limits-primary``: a failure logged by class, restarted, counted, named by ``/readyz``; until 2026-12-02 a
    task of the pool's own, which nothing watched: dead, it would have left writes on the old primary unsaid); when
    they name another primary, every connection is closed, in use or idle, as the old primary's death would close
    them: commands on the wire fail (their callers' StoreError), the next ones go to the new primary, and the
    pub/sub connection's subscribers subscribe again and resynchronise. A pool nobody follows (a CLI command's)
    still asks the Sentinels for each new connection, and for each connection reopened by its next command
    (:func:`_reopen`: until 2026-12-02 redis-py's reconnection went back to the old primary)."""

    sentinel_manager: Sentinel
    master_address: tuple[str, int] | None
    # its Sentinels' client closed with it, unless it is another pool's (``open_pool``'s ``sentinels_of``)
    owns_sentinels = True

    async def follow_primary(self) -> None:
        """Ask the Sentinels every ``PRIMARY_CHECK_SECONDS`` until cancelled. A Sentinel that cannot be asked
        changes nothing (none at all: MasterNotFoundError, a ConnectionError; the next new connection fails the
        same way, which the store reports); any other failure (a Sentinel refusing the question: NOPERM) ends the
        worker, for its supervisor to log, count and restart."""
        await follow_primaries([self])

    async def get_master_address(self) -> tuple[str, int]:
        """The primary the Sentinels name; when it changed, every connection to another address is closed, in use
        or idle (redis-py's closed only the idle ones: the pub/sub connection, always in use, stayed on the old
        primary). Called for each new connection too, which may be the first to see the change."""
        address: tuple[str, int] = await self.sentinel_manager.discover_master(self.service_name)
        if self.master_address != address:
            self.master_address = address
            stale = [connection for connection in (*self._available_connections, *self._in_use_connections)
                     if connection.is_connected and _address(connection) != address]  # fmt: skip
            await asyncio.gather(*(connection.disconnect() for connection in stale), return_exceptions=True)
        return address

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            if self.owns_sentinels:
                await self.sentinel_manager.aclose()


async def follow_primaries(pools: list[BlockingSentinelPool]) -> None:
    """:meth:`BlockingSentinelPool.follow_primary` for each of ``pools`` in turn, every ``PRIMARY_CHECK_SECONDS``."""
    while True:
        for pool in pools:
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                await pool.get_master_address()
        await asyncio.sleep(PRIMARY_CHECK_SECONDS)


def primary_followers(pool: object, name: str, *others: object) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
    """``{name: the pool's follow_primary}`` for a pool behind Sentinel, for the app's supervisor; else nothing.
    ``others``: pools behind the same Sentinels followed by the same worker (the store's lock renewals' pool, since
    2026-12-07: until then it stayed on the old primary after a planned failover, and a lock held across it lapsed
    on the new one while its holder renewed it there, ``tests/store/test_redis_sentinel.py``)."""
    if not isinstance(pool, BlockingSentinelPool):
        return {}
    pools = [pool, *(other for other in others if isinstance(other, BlockingSentinelPool))]
    return {name: pool.follow_primary if len(pools) == 1 else functools.partial(follow_primaries, pools)}


def _address(connection: AbstractConnection) -> tuple[str, int] | None:
    return (connection.host, connection.port) if isinstance(connection, SentinelManagedConnection) else None


def open_pool(
    url: str,
    *,
    max_connections: int,
    timeout: float,
    health_check_interval: float,
    sentinels_of: object = None,
    **options: Any,
) -> BlockingConnectionPool:
    """``sentinels_of``: a pool of the same URL whose Sentinels' client this one asks too (the store's lock renewals'
    pool, since 2026-12-07), closed with that pool: a Sentinel down is then asked once for both, the one that
    answered first from then on. Until then each pool had its own, and the renewals' connections, made as the store
    opens (``RedisStore._ready_renewals``), asked the Sentinel down again: a socket timeout more at each start when
    it does not answer at all (``tests/store/test_redis_sentinel.py``)."""
    checks = {"max_connections": max_connections, "timeout": timeout, "health_check_interval": health_check_interval,
              "maint_notifications_config": MaintNotificationsConfig(enabled=False)}  # fmt: skip
    if is_sentinel(url):
        shared = sentinels_of if isinstance(sentinels_of, BlockingSentinelPool) else None
        return _sentinel_pool(SentinelURL.parse(url), shared, **checks, **options)
    checked: type[AbstractConnection] = CheckedConnection
    if url.startswith("rediss://"):
        checked = CheckedSSLConnection
    elif url.startswith("unix://"):
        checked = CheckedUnixConnection
    return BlockingConnectionPool.from_url(url, connection_class=checked, **checks, **options)


def sent_once() -> Retry:
    """The retry policy of every client of ours that redis-py would otherwise give one: none."""
    return Retry(NoBackoff(), 0)


def open_cluster(url: str, **options: Any) -> RedisCluster:
    """A Cluster client that sends each command once: redis-py's default (``retry``: 10 attempts after a
    ConnectionError, TimeoutError, ClusterDownError or SlotNotCoveredError, for single commands, pipelines and
    transactions alike) resent a command whose answer was lost after it ran, so a write that is not idempotent ran
    twice without a word: a rate limit's hit counted twice (a young person refused as a flood sooner), an audit
    line or a published event twice, a queue entry given a later place (``tests/store/test_redis_cluster_retry.py``).

    What is still followed, since the node refused the command and nothing ran: MOVED and ASK (the slot's node
    changed), TRYAGAIN (a slot being migrated), each up to redis-py's 16 redirections. What now fails the call with
    StoreError, as on one Redis, for the caller to retry at its level (the inbox, outbox and timers at their next
    pass, a webhook by the provider's redelivery, whose processing is idempotent by its claim and the ids its
    writes carry): a connection lost or a timeout (a command perhaps run), and CLUSTERDOWN or a slot no node
    covers (a failover under way; the client learns the new layout at its next command). Which writes would be safe
    to resend is in docs/deployment.md ("Redis Cluster"): not all of them, so none is.

    Its connections read as :class:`_ReadUnheld` (since 2026-12-08): redis-py's RedisCluster takes no connection
    class, so its nodes' (those known, and those it learns: ``connection_kwargs``) is set here, before any is made."""
    client = RedisCluster.from_url(url, retry=sent_once(), **options)
    kwargs = client.nodes_manager.connection_kwargs  # the client's own dict, whence every node learnt later is made
    unheld = UnheldClusterSSLConnection if issubclass(kwargs["connection_class"], SSLConnection) else (
        UnheldClusterConnection)  # fmt: skip
    kwargs["connection_class"] = unheld
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = unheld
    return client


async def close_cluster(client: RedisCluster) -> None:
    """Close a Cluster client's connections to every node, whatever its last command did. redis-py's ``aclose``
    (8.1) does nothing while the client waits to learn the nodes again (a connection error or a timeout sets that
    for its next command, which does it first): a client whose last command failed so, with none after it, kept its
    connections open after its close. The rate limits' client after a hit whose answer was lost, in the tests
    ("Unclosed ClusterNode object", found by another test's garbage collection); the store's or the limits' at a
    shutdown during a Redis outage. Its nodes are closed here as ``aclose`` would (closing one twice changes
    nothing): ``tests/store/test_redis_cluster_retry.py``."""
    try:
        await client.aclose()
    finally:
        await client.nodes_manager.aclose()
        await client.nodes_manager.aclose("startup_nodes")


def _sentinel_pool(
    url: SentinelURL, shared: BlockingSentinelPool | None = None, **options: Any
) -> BlockingSentinelPool:
    """The primary's pool, with the checks and options of the standalone one. The Sentinels are asked with no
    retry (a client's default retries three times with a backoff of up to 10 s: a Sentinel down would have held
    every new connection that long before the next Sentinel was asked) and with the same socket timeouts; through
    ``shared``'s client of them when given (``open_pool``'s ``sentinels_of``)."""
    if shared is not None:
        sentinel = shared.sentinel_manager
    else:
        sockets = {k: v for k, v in options.items() if k.startswith("socket_")}
        asking = {**sockets, **url.sentinel_options, "retry": sent_once(), "ssl": url.tls,
                  "maint_notifications_config": options["maint_notifications_config"]}  # fmt: skip
        sentinel = Sentinel(list(url.sentinels), sentinel_kwargs=asking)  # type: ignore[no-untyped-call]  # redis-py
    checked = CheckedSentinelSSLConnection if url.tls else CheckedSentinelConnection
    options = {**url.redis_options, **options, "connection_class": checked, "is_master": True}
    pool = BlockingSentinelPool(url.service, sentinel, **options)  # type: ignore[no-untyped-call]  # redis-py
    pool.owns_sentinels = shared is None
    return pool
