"""Automatic pipelining: the Redis commands that many tasks send during one turn of the event loop go as one pipeline.

Under load the gateway processes many conversations at once, and each sends its commands one at a time (a GET, a
script, a pipeline of a few steps). Sent alone, every one of them takes a connection from the pool, writes to
the socket, waits for its reply and gives the connection back: redis-py's per-command cost, over half of the
gateway's CPU on Redis. Here a command is queued instead, and the commands queued during one turn of the event
loop leave together, as one pipeline (not a transaction) on one connection; each caller gets its own replies
(ioredis' ``enableAutoPipelining``, Lettuce). What a caller sees does not change:

* **its reply, or its own error**: a command that fails (a script's error, a wrong type) fails only its caller;
  the batch is sent with ``raise_on_error=False`` and each reply goes to the command that asked for it;
* **a group stays together and in order**: the commands of a non-transactional pipeline (``pipeline(
  transaction=False)``, :func:`gateway.store.redis_steps.ordered`) are one unit of the batch, consecutive on its
  connection, so Redis runs them in their order as before (a crash leaves a prefix done); its caller gets the first
  error among its replies raised, as ``Pipeline.execute`` raises it;
* **a connection that fails fails the batch**: every caller of the batch gets the redis-py error (a copy each),
  which the store maps to its StoreError as before; the connection is dropped and the next batch takes a fresh
  one. So is a batch whose replies are not all read within the connection's ``socket_timeout`` (5 s; one timeout
  for the batch, the batcher reading the replies itself; reached late because the loop was held, a process frozen,
  1 s more to read the answers that came meanwhile: since 2026-12-08, ``gateway.loop_watch.timeout_unheld``; before,
  a batch Redis had run during a freeze was failed on resume, tests/test_freeze.py). Commands are never retried:
  one whose answer was lost may have run (a replica's refusal, below, is an answer that says nothing ran). A batch
  whose write failed before a byte of it left (its connection reset, the RST in the kernel but not yet read by the
  loop, so the connection's
  check found nothing wrong: ``redis_pool.NothingSent``) is written once more on the connection opened again;
  until 2026-12-07 its callers got a StoreError (``tests/test_redis_connections.py``);
* **a call a replica refused whole is sent again once, on the primary**: after a failover the old primary, made a
  replica, answers READONLY to every write, before running it (a script at its first write), on the connections
  still open to it (a virtual IP's failover, an operator's ``REPLICAOF``: nothing closes them; Sentinel's own
  reconfiguration does). Such a connection is to the wrong node: it is dropped, behind Sentinel the pool asks where
  the primary is now (a new one closes every connection to another address), and each call of which every reply
  was READONLY, so nothing of it ran, is sent once more on a fresh connection; refused again, its caller gets the
  error. The rest of the batch keeps its replies, and a group of which a command was answered is not sent again.
  Before, the caller got the error and the connection went back to the pool, refusing every write that took it;
* **a caller cancelled before its batch leaves is left out of it** (nothing of it is sent); cancelled later, its
  replies are read and dropped, and the other callers of the batch get theirs.

Commands that must stay alone keep redis-py's own path: transactions (``pipeline(transaction=True)``, WATCH),
blocking commands (they would hold up every caller of their batch), pub/sub (its own connection,
:mod:`gateway.store.redis_events`). Scripts called alone go as EVALSHA, sent again as SCRIPT LOAD then EVALSHA on
NOSCRIPT (redis-py's ``Script``: nothing ran, so that is safe); inside a group they stay EVAL with their text
(``gateway.store.redis._eval`` says why).

A batcher may bound its batches out (``batches_out``: one per connection of its pool, the lock renewals' own,
``RedisStore._renewing``, since 2026-12-07): the calls queued while they are all out leave together, in one batch,
when one comes back, instead of a batch each waiting for the pool (every renewal of many locks held at their own
moments was a batch of one, each a connection's round trip: they queued for the pool past their lease).

A Cluster client is not batched (``RedisStore.open`` gives it its commands directly): a batch is one connection to
one node, and a Cluster client's pipeline sends each node its share in any order
(:mod:`gateway.store.redis_steps`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.loop_watch import timeout_unheld
from gateway.store.redis_pool import NothingSent
from gateway.supervisor import where

Commands = list[tuple[tuple[Any, ...], Mapping[str, Any]]]  # redis-py's command stack: (args, options) each

# Commands that block the connection until something happens, or change its state: never in a shared batch.
ALONE = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "XREAD", "XREADGROUP",
    "WAIT", "WAITAOF", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "SUBSCRIBE", "PSUBSCRIBE",
    "SSUBSCRIBE", "MONITOR", "CLIENT", "RESET", "QUIT",
})  # fmt: skip
KEPT_CONNECTIONS = 4  # connections the batcher keeps between batches (a few batches are out at once under load)
_NOT_FOR_CALLBACKS = frozenset({NEVER_DECODE, EMPTY_RESPONSE, "keys"})  # options redis-py takes out before a callback


log = logging.getLogger(__name__)


def _said(task: asyncio.Task[None]) -> None:
    """A give-back task's failure (the pool's release raising: a bug), logged by class and place."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("redis: giving kept connections back failed with %s at %s", type(error).__name__, where(error))


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__
class _Call:
    """One caller's commands (one, or a group) and where its replies go (16 a message: never changed once made)."""

    commands: Commands
    replies: asyncio.Future[list[Any]]


class AutoPipeline:
    """Queues commands and sends those of one event-loop turn as one pipeline; :attr:`client` is its face, a
    redis-py client whose commands (and non-transactional pipelines) go through it."""

    def __init__(self, client: Redis, *, batches_out: int | None = None) -> None:
        """``batches_out``: at most that many batches out at once (one per connection of a pool that size: the
        lock renewals', ``RedisStore.open``); the calls queued meanwhile leave together in one batch when one
        comes back, instead of a batch each waiting for a connection (see :meth:`send`). None: no bound (the
        store's batcher, whose pool is large)."""
        self._redis = client
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._batches_out = batches_out
        self._out = 0  # batches out (their tasks begun, not ended) when ``batches_out`` bounds them
        self._closed = False
        # connections of the pool kept between batches (``_taken``, ``_done_with``), at most ``KEPT_CONNECTIONS``
        self._kept: list[AbstractConnection] = []
        self._idle_check = False  # :meth:`_give_back_if_idle` is scheduled
        self._giving_back: set[asyncio.Task[None]] = set()  # :meth:`_give_back`s under way (``close`` awaits them)
        self.client: Redis = _Batched(self, client)

    async def send(self, commands: Commands) -> list[Any]:
        """The replies to ``commands``, sent in order with whatever else is queued in this turn of the loop; a
        command's error is in its place in the list (a ResponseError), a connection's is raised."""
        if self._closed:
            raise _closed()
        call = _Call(commands, asyncio.get_running_loop().create_future())
        self._pending.append(call)
        # the first of this turn: its batch leaves once the others of the turn queued; with ``batches_out`` out
        # already, the first of them to come back takes it (``_send_pending``), with all queued meanwhile
        if len(self._pending) == 1 and (self._batches_out is None or self._out < self._batches_out):
            self._start()
        return await call.replies

    def _start(self) -> None:
        if self._batches_out is not None:
            self._out += 1
        task = asyncio.create_task(self._send_pending())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_pending(self) -> None:
        """The calls queued, sent as one batch; with ``batches_out``, then those queued while it was out, until
        none is (since 2026-12-07, the lock renewals': each sent alone took a connection of their 2 for its round
        trip, and with many locks held renewals queued for the pool past their lease, tests/test_lock_pool.py)."""
        try:
            while True:
                calls, self._pending = self._pending, []
                await self._send(calls, first=True)
                if self._batches_out is None or not self._pending:
                    break
        finally:
            if self._batches_out is not None:
                self._out -= 1  # nothing awaited since ``_pending`` was found empty: no call left behind
                if self._pending and not self._closed:  # ended by an error: the calls queued get a batch
                    self._start()
        if self._kept and not self._idle_check:  # once the callers resumed: a next batch of theirs, or idle
            self._idle_check = True
            asyncio.get_running_loop().call_soon(self._give_back_if_idle)

    def _give_back_if_idle(self) -> None:
        """The connections kept given back to the pool when no batch is queued or out one turn after a batch's
        callers got their replies (a caller awaiting its calls one after the other has queued its next one by then,
        so it keeps them): idle, the batcher holds none that another caller of the pool may be waiting for."""
        self._idle_check = False
        if self._closed or self._pending or not self._kept or any(not task.done() for task in self._sending):
            return
        self._giving(self._redis.connection_pool, len(self._kept))

    def _giving(self, pool: ConnectionPool, count: int) -> asyncio.Task[None]:
        """:meth:`_give_back` as a task of its own, which ``close`` awaits: awaited through ``asyncio.shield``, a
        cancel of its awaiter (``close`` cancelled, a batch cancelled by ``close``) leaves it to finish."""
        task = asyncio.get_running_loop().create_task(self._give_back(pool, count))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)
        task.add_done_callback(_said)  # a failure said, not left to the garbage collector's "never retrieved"
        return task

    async def _give_back(self, pool: ConnectionPool, count: int) -> None:
        """Up to ``count`` kept connections given back to the pool, each waking the caller that waits longest for
        one (the pool's queue). Never cancelled (:meth:`_giving`): a connection taken from ``_kept`` waits for the
        pool's lock, and a cancel then lost it, counted in use by the pool for good (until 2026-12-07, at close:
        the batch cancelled while giving back, or ``close`` cancelled while awaiting this; tests/store/
        test_redis_batch.py)."""
        while count > 0 and self._kept:
            count -= 1
            await pool.release(self._kept.pop())

    async def _send(self, calls: list[_Call], *, first: bool) -> None:
        """Send ``calls`` as one batch and give each its replies. Those a replica refused whole (every reply
        READONLY: :func:`_refused_whole`) are sent once more (``first``), on a fresh connection, once the pool has
        asked where the primary is now (:meth:`_ask_primary`)."""
        calls = [call for call in calls if not call.replies.done()]  # cancelled before leaving: not sent
        if not calls:
            return
        try:
            if not first:
                await self._ask_primary()
            replies = await self._execute([command for call in calls for command in call.commands])
        except Exception as error:
            _fail(calls, functools.partial(_copy, error))
            return
        except BaseException:  # stopped by ``close``
            _fail(calls, _closed)
            raise
        refused: list[_Call] = []
        start = 0
        for call in calls:
            end = start + len(call.commands)
            if first and _refused_whole(replies[start:end]):
                refused.append(call)
            elif not call.replies.done():  # a caller cancelled while its batch was out: its replies are dropped
                call.replies.set_result(replies[start:end])
            start = end
        await self._send(refused, first=False)

    async def _ask_primary(self) -> None:
        """Behind Sentinel, the pool asks the Sentinels where the primary is: a new one closes every connection to
        another address (``BlockingSentinelPool.get_master_address``), so the next connection taken is the
        primary's. Sentinels that cannot be asked change nothing: the fresh connection asks them again itself, and
        fails with its own error. Another pool (a ``redis://`` address behind a virtual IP) has only the fresh
        connection that the refused one's drop makes (:meth:`_execute`)."""
        pool = self._redis.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            with contextlib.suppress(RedisError):
                await pool.get_master_address()  # type: ignore[no-untyped-call]  # redis-py

    async def _execute(self, commands: Commands) -> list[Any]:
        """One write on a connection of the pool, then the replies read in order under one timeout for the whole
        batch (the connection's ``socket_timeout``, 5 s by default), each through the client's response callback
        as redis-py's pipeline does; a command's error in its place. redis-py's own pipeline read each reply through
        five coroutines and a timeout of its own. A connection that fails, or a batch whose replies are not all
        read within the timeout, raises redis-py's ConnectionError or TimeoutError, and the connection is dropped:
        its next reply would belong to this batch."""
        pool = self._redis.connection_pool
        connection: Any = await self._taken(pool)  # redis-py's, its parser typed loosely
        try:
            packed = connection.pack_commands([args for args, _ in commands])
            try:
                await connection.send_packed_command(packed)
            except NothingSent:  # a reset the loop had not read yet: nothing of the batch left, so written once more
                await connection.send_packed_command(packed)  # on the connection opened again (``_reopen``)
            parser = connection._parser  # redis-py's hiredis or Python parser, which ``read_response`` calls
            replies: list[Any] = []
            try:
                async with timeout_unheld(connection.socket_timeout):  # a freeze's answers read first
                    for args, options in commands:
                        reply = await parser.read_response(disable_decoding=NEVER_DECODE in options)
                        parsed = self._parsed(args[0], reply, options)
                        if parsed is not reply and inspect.isawaitable(parsed):  # an async callback's
                            parsed = await parsed
                        replies.append(parsed)
            except TimeoutError:
                await connection.disconnect(nowait=True)
                raise RedisTimeoutError(f"Timeout reading from {connection._host_error()}") from None
            except OSError as error:
                await connection.disconnect(nowait=True)
                where = connection._host_error()
                raise RedisConnectionError(f"Error while reading from {where}: {error.args}") from error
            except BaseException:  # a connection error, or cancelled (``close``): the rest of the replies unread
                await connection.disconnect(nowait=True)
                raise
            if any(isinstance(reply, ReadOnlyError) for reply in replies):  # a replica (the old primary, demoted):
                await connection.disconnect()  # never used again (redis-py's own read drops it the same way)
            elif connection.health_check_interval:  # as ``read_response`` marks a connection just heard from
                connection.next_health_check = asyncio.get_running_loop().time() + connection.health_check_interval
            return replies
        finally:
            await self._done_with(pool, connection)

    async def _taken(self, pool: ConnectionPool) -> AbstractConnection:
        """A connection for a batch: one kept from an earlier batch, checked as the pool checks one it hands out
        (``ensure_connection``: one that Redis closed, reset, or with data waiting, is opened again), else the
        pool's. The pool's own path (a condition, a timeout, its observability hooks) cost about 15 µs a batch
        (bench/README.md, "Twenty-fourth pass"). With the pool full (none free, none more to open: others may be
        waiting for one), the other kept ones are given back first, each to the caller waiting longest (until
        2026-12-07 the batcher took its kept connections round and round, past the pool's queue: a call waiting for
        one, a lock's release, ``WAIT``, a batch that had found none kept, got none until the pool's timeout, 10
        s)."""
        if self._kept:
            connection = self._kept.pop()
            try:
                if self._kept and not pool.can_get_connection():
                    await asyncio.shield(self._giving(pool, len(self._kept)))
                await pool.ensure_connection(connection)
            except BaseException:
                await pool.release(connection)
                raise
            return connection
        return await pool.get_connection()  # type: ignore[no-untyped-call, no-any-return]  # redis-py

    async def _done_with(self, pool: ConnectionPool, connection: AbstractConnection) -> None:
        """Kept for the next batch while the batcher is open, it is connected (all its replies read: a failed
        batch's connection was dropped) and the pool is not full (it has a connection free, or room to open one:
        nobody waits for this one), else given back to the pool, which wakes the caller waiting longest. Kept ones
        go back too once the batcher is idle (:meth:`_give_back_if_idle`). A kept one stays the pool's, in use: a
        Sentinel's new primary closes it as any other (``BlockingSentinelPool.get_master_address``), and the pool's
        close closes it. Until 2026-12-07 one was kept whoever waited for it, and never given back before
        ``close``: with a pool of up to ``KEPT_CONNECTIONS``, the batcher held all of it
        (tests/store/test_redis_batch.py, ``test_a_call_waiting_for_the_pool_is_not_overtaken_by_batches``)."""
        keep = not self._closed and connection.is_connected and len(self._kept) < KEPT_CONNECTIONS
        if keep and pool.can_get_connection():
            self._kept.append(connection)
        else:
            await pool.release(connection)

    def _parsed(self, name: Any, reply: Any, options: Mapping[str, Any]) -> Any:
        """A reply as ``Redis.parse_response`` gives it: an error kept (or the command's empty answer), else
        through the command's response callback."""
        if isinstance(reply, ResponseError):
            return options.get(EMPTY_RESPONSE, reply)
        callback = self._redis.response_callbacks.get(name)
        if callback is None:
            return reply
        if not options:  # most commands: no options to pass on
            return callback(reply)
        extra = {key: value for key, value in options.items() if key not in _NOT_FOR_CALLBACKS}
        return callback(reply, **extra)

    async def close(self) -> None:
        """Refuse new commands; the batches out are stopped, their callers failed (the store is closing)."""
        self._closed = True
        _fail(self._pending, _closed)
        self._pending = []
        for task in list(self._sending):
            task.cancel()
        for task in list(self._sending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.shield(asyncio.gather(*self._giving_back, return_exceptions=True))  # cancelled: they finish
        if self._kept:
            await asyncio.shield(self._giving(self._redis.connection_pool, len(self._kept)))


def _copy(error: BaseException) -> BaseException:
    """Each caller raises an exception of its own (one instance raised in several tasks would pile up their
    tracebacks), of the same class and message, caused by the batch's."""
    copy: BaseException
    try:
        copy = type(error)(*error.args)
    except Exception:
        copy = RuntimeError(str(error))
    copy.__cause__ = error
    return copy


def _fail(calls: list[_Call], error: Callable[[], BaseException]) -> None:
    for call in calls:
        if not call.replies.done():
            call.replies.set_exception(error())


def _closed() -> BaseException:
    return RedisConnectionError("the redis store is closed")


def _refused_whole(replies: list[Any]) -> bool:
    """A call of which nothing ran: a replica answered READONLY to each of its commands. A replica refuses every
    write before it runs (a script at its first write, nothing written before it), so the call is sent again whole
    with no risk of applying it twice. A group of which a command succeeded (a read a replica answers, or a write
    that ran as the node changed role mid-batch) is not: its caller gets the error, as before."""
    return bool(replies) and all(isinstance(reply, ReadOnlyError) for reply in replies)


def _first_error(replies: list[Any]) -> None:
    """Raise the first command error among a group's replies (as ``Pipeline.execute`` does by default)."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply


class _Batched(Redis):
    """A redis-py client whose commands go through the :class:`AutoPipeline`, but those of :data:`ALONE`; its
    ``pipeline(transaction=False)`` is a group of the batch, ``pipeline()`` (a transaction) redis-py's own."""

    def __init__(self, batcher: AutoPipeline, client: Redis) -> None:
        super().__init__(connection_pool=client.connection_pool)
        self._batcher, self._alone = batcher, client

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0].upper() if isinstance(args[0], str) else args[0]
        if name in ALONE or (isinstance(name, str) and name.split(" ", 1)[0] in ALONE):
            return await self._alone.execute_command(*args, **options)  # type: ignore[no-untyped-call]  # redis-py
        (reply,) = await self._batcher.send([(args, options)])
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if transaction or shard_hint is not None:
            return self._alone.pipeline(transaction, shard_hint)
        return _Group(self._batcher, self._alone)


class _Group(Pipeline):
    """A non-transactional pipeline sent as one unit of a batch: its commands consecutive, in their order."""

    def __init__(self, batcher: AutoPipeline, client: Redis) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, False, None)
        self._batcher = batcher

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self.command_stack = self.command_stack, []
        if not commands:
            return []
        replies = await self._batcher.send(commands)
        if raise_on_error:
            _first_error(replies)
        return replies
