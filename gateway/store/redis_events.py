"""The Redis store's events: one pub/sub connection per process, fanned out to every subscription in it.

Each gateway instance runs several consumers of the events (the web chat's forwarding, the console's, presence,
the typing relay). With a pub/sub connection each, Redis sent every event to an instance once per consumer and
each decoded the JSON again: under load that was a tenth of the gateway's CPU per message. Here one reader task
holds the instance's only pub/sub connection, decodes each event once and hands it to the local subscriptions
that want it, each through its bounded buffer (frozen events: subscribers share them).

Channels (``redis_keys.py``): an event is published once, on the channel of its scope (``gateway/events.py``'s
``scope``): ``hg:events`` for what every subscription gets (presence, typing, sessions ended), ``hg:ev:c:<id>``
for a conversation's, ``hg:ev:any`` for the queue's changes and alerts. The connection is subscribed to
``hg:events`` always, to a conversation's channel while a subscription follows that conversation (the web chat,
for its sockets' conversations), and to the pattern ``hg:ev:*`` while one follows every conversation (the
console, while a console socket is open on this instance). So an instance is not sent the events of
conversations none of its sockets shows: with several instances, each no longer reads and decodes every other
instance's events. An event is decoded only when a local subscription wants it, and once even when both its
conversation's channel and the pattern brought it.

What a consumer sees is what it saw with a connection of its own:

* events published after :meth:`RedisEvents.subscribe`, ``follow`` or ``follow_all`` returned, in order (each
  waits for Redis to confirm the channel it needed; one already confirmed is joined at once);
* :class:`~gateway.events.Resync` when events may have been missed: Redis confirmed a channel nobody here was
  waiting for (redis-py restored the lost connection and subscribed again to every channel: one Resync for the
  burst), or this subscriber read so slowly that its oldest events were dropped (``SUBSCRIBER_BUFFER``, as
  in-process);
* StoreError when the connection fails for good, or is found silent (quiet ``GATEWAY_REDIS_HEALTH_CHECK_SECONDS``,
  then a PING not answered within ``GATEWAY_REDIS_SOCKET_TIMEOUT``: a partition, a NAT that forgot it, a frozen
  Redis, on which a read would wait for ever): every subscription fails with it (their consumers subscribe again,
  which opens a new connection, and resync); the reader does not outlive it.

When the last subscription closes, the connection is closed too. A malformed event is skipped and logged by class,
never given to anyone (it named no text).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections import Counter, deque
from typing import Any, Self

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import StoreError
from gateway.events import Event, Resync, decode
from gateway.loop_watch import timeout_unheld
from gateway.store.local import SUBSCRIBER_BUFFER
from gateway.store.redis_keys import ALL_CONVERSATIONS, CONVERSATION_EVENTS, EVENTS_CHANNEL
from gateway.supervisor import where

log = logging.getLogger(__name__)
CONFIRM_SECONDS = 10.0  # the least a subscription's confirmation is waited for (RedisEvents: twice the answer's wait)
PROBE = "gateway-events-check"  # the PING's message, which its answer repeats (RedisEvents._heard_within)


class _OurPing:
    """A pub/sub object on which redis-py sends no PING of its own, so that every reply read is an answer to ours.

    redis-py's ``PubSub.check_health`` sends ``PING redis-py-health-check`` as a read begins once the connection is
    idle ``health_check_interval`` s, and ``parse_response`` drops its answer, returning None as for a read that
    timed out: read just at the end of our wait, it hid the path's last sign of life, and two PINGs were in flight
    for one question. Ours (:meth:`RedisEvents._next`) asks while a read waits, which theirs cannot: theirs is left
    out here, on this connection only (the pool's other connections keep their check before use, redis_pool.py)."""

    async def check_health(self) -> None:
        return None


class _ProbedPubSub(_OurPing, PubSub):
    """The standalone store's (and Sentinel's) events connection."""


class _ProbedClusterPubSub(_OurPing, ClusterPubSub):
    """A Cluster store's events connection (one node's)."""


class RedisEvents:
    """The process's pub/sub connection, shared by every :meth:`subscribe`."""

    def __init__(self, redis: Redis, quiet: float = 30.0, answer: float = 5.0) -> None:
        self._redis = redis
        self._quiet, self._answer = quiet, answer  # the silent connection's check (:meth:`_next`)
        # A SUBSCRIBE's confirmation is an answer like any other, on a path trusted to write within ``answer`` (the
        # socket timeout) and to answer within it: it is waited for both, 10 s at least. Until 2026-12-02 it was a
        # fixed 10 s, which cut a slower path short (a socket timeout of 15 s over a WAN): a follow that Redis
        # confirmed in 12 s failed, its consumer subscribed again, and so on.
        self._confirm = max(CONFIRM_SECONDS, 2 * answer)
        self._heard = 0.0  # when the reader's connection last brought something (loop time)
        self._asked: float | None = None  # when it was asked a PING not answered yet
        self._subscriptions: set[SharedSubscription] = set()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        self._wanted: Counter[str] = Counter()  # a conversation's channel, or the pattern → subscriptions wanting it
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}  # SUBSCRIBEs sent, not yet confirmed
        self._last: tuple[str, list[Event]] | None = None  # the last message decoded (its events), by its JSON

    async def subscribe(self, everything: bool) -> SharedSubscription:
        subscription = SharedSubscription(self)
        async with self._changing:
            confirmed: asyncio.Future[None] | None
            if self._reader is None or self._reader.done():
                await self._stop()
                pubsub = self._opened()
                confirmed = self._expect(EVENTS_CHANNEL)
                try:
                    await pubsub.subscribe(EVENTS_CHANNEL)
                except BaseException:
                    await self._stop()
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
                    raise
                self._pubsub = pubsub
                self._reader = asyncio.create_task(self._read(pubsub))
            else:
                confirmed = self._pending(EVENTS_CHANNEL)
            self._subscriptions.add(subscription)
        try:
            await self._wait(confirmed)
            await subscription.follow_all(everything)
        except BaseException:
            await subscription.aclose()
            raise
        return subscription

    def _opened(self) -> PubSub:
        """A pub/sub object as ``self._redis.pubsub()`` makes it, without redis-py's own PING (:class:`_OurPing`)."""
        if isinstance(self._redis, RedisCluster):  # the store's Cluster client, typed as a Redis (redis.py's open)
            return _ProbedClusterPubSub(self._redis)
        return _ProbedPubSub(self._redis.connection_pool)

    async def close(self) -> None:
        """The store closes: every subscription ends (StopAsyncIteration), the connection is closed."""
        async with self._changing:
            for subscription in list(self._subscriptions):
                subscription.end()
            self._subscriptions.clear()
            await self._stop()

    async def want(self, name: str) -> None:
        """One more subscription wants this channel (or the pattern): subscribed, once Redis confirmed it."""
        async with self._changing:
            pubsub = self._pubsub
            if pubsub is None or self._reader is None or self._reader.done():
                raise StoreError("redis: the events connection is closed")
            self._wanted[name] += 1
            confirmed: asyncio.Future[None] | None
            if self._wanted[name] > 1:
                confirmed = self._pending(name)
            else:
                confirmed = self._expect(name)
                try:
                    await (pubsub.psubscribe(name) if name == ALL_CONVERSATIONS else pubsub.subscribe(name))
                except BaseException as exc:
                    self._unexpect(name, confirmed)
                    self._wanted[name] -= 1
                    if isinstance(exc, RedisError):
                        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
                    raise
        try:
            await self._wait(confirmed)
        except BaseException:
            await self.unwant(name)
            raise

    async def unwant(self, name: str) -> None:
        async with self._changing:
            if self._wanted[name] <= 0:  # the connection it counted on is gone
                return
            self._wanted[name] -= 1
            if self._wanted[name] == 0:
                del self._wanted[name]
                await self._unsubscribe(name)

    async def _unsubscribe(self, name: str) -> None:
        if self._pubsub is None:
            return
        try:
            await (self._pubsub.punsubscribe(name) if name == ALL_CONVERSATIONS else self._pubsub.unsubscribe(name))
        except RedisError:
            # The connection is lost: the reader fails or redis-py subscribes again, and what arrives on this
            # channel meanwhile is wanted by nobody here, so never decoded.
            return

    async def settled(self, name: str) -> None:
        """Once the subscription to a channel already asked for is confirmed."""
        await self._wait(self._pending(name))

    def _expect(self, name: str) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(name, deque()).append(future)
        return future

    def _unexpect(self, name: str, future: asyncio.Future[None]) -> None:
        waiting = self._confirming.get(name)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._confirming[name]

    def _pending(self, name: str) -> asyncio.Future[None] | None:
        """The confirmation a channel already asked for still waits for (None: it is confirmed)."""
        waiting = self._confirming.get(name)
        return waiting[-1] if waiting else None

    async def _wait(self, confirmed: asyncio.Future[None] | None) -> None:
        if confirmed is None:
            return
        try:
            async with asyncio.timeout(self._confirm):
                await asyncio.shield(confirmed)
        except TimeoutError:
            raise StoreError("redis: a subscription was not confirmed in time") from None

    async def _left(self, subscription: SharedSubscription) -> None:
        if subscription not in self._subscriptions:  # failed with the connection: nothing of it is counted any more
            return
        names = [CONVERSATION_EVENTS + conversation_id for conversation_id in subscription.followed]
        names += [ALL_CONVERSATIONS] if subscription.everything else []
        for name in names:
            await self.unwant(name)
        async with self._changing:
            self._subscriptions.discard(subscription)
            if not self._subscriptions:
                await self._stop()

    async def _stop(self) -> None:
        reader, pubsub = self._reader, self._pubsub
        self._reader = self._pubsub = None
        self._wanted.clear()
        self._last = None
        for waiting in self._confirming.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(StoreError("redis: the events connection was closed"))
                    future.exception()  # retrieved here: nobody may be waiting any more
        self._confirming.clear()
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    async def _read(self, pubsub: PubSub) -> None:
        self._heard, self._asked = asyncio.get_running_loop().time(), None  # a fresh connection
        try:
            while True:
                message = await self._next(pubsub)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "message" or kind == "pmessage":
                    self._deliver(message["channel"], message["data"], kind == "pmessage")
                elif kind == "subscribe" or kind == "psubscribe":
                    self._confirmed(message["channel"])
        except RedisError as error:
            failure = StoreError(f"redis: {type(error).__name__}: {error}")
            failure.__cause__ = error  # its class is what gateway/outage_log.py names
            self._fail(failure)
        except Exception as exc:  # a bug: every consumer restarts rather than waiting forever
            log.error("redis events: the reader failed with %s at %s", type(exc).__name__, where(exc))
            self._fail(StoreError(f"the events reader failed ({type(exc).__name__})"))

    async def _next(self, pubsub: PubSub) -> dict[str, Any] | None:
        """The connection's next message, or None. A silent path (a partition, a NAT that forgot the connection, a
        frozen Redis: no close, no reset) never ends a read: quiet for ``quiet`` seconds, the connection is asked a
        PING, and what it brings is waited for ``answer`` seconds more; nothing by then raises redis-py's
        TimeoutError, which fails the subscriptions (each consumer subscribes again on a fresh connection, told to
        resync). redis-py's own health check cannot see it: it sends its PING only when a read begins, and the read
        it then begins waits for ever (``get_message(timeout=None)``, the wait this replaced). ``quiet`` 0: no check.

        Each turn's wait is one number, the time left until the next step (ask, or give up), and the connection is
        found silent only when a PING was asked and that time has run out. Until 2026-12-02 the turn asked itself
        twice in two forms (``now - heard >= quiet`` to ask, ``now >= heard + quiet`` to give up), which rounding
        can answer differently: on uvloop (``gateway serve``'s loop, whose clock counts whole milliseconds) a quiet
        period ended with the first false and the second true, and a healthy connection was found silent without a
        PING ever asked (tests/store/test_redis_events.py, the quiet connection kept)."""
        if not self._quiet:
            return await pubsub.get_message(timeout=None)  # type: ignore[no-any-return]  # untyped in redis-py
        now = asyncio.get_running_loop().time()
        if self._asked is None:
            wait = self._heard + self._quiet - now
            if wait <= 0:
                await pubsub.ping(PROBE)
                self._asked, wait = now, self._answer
        else:
            wait = self._asked + self._answer - now
        # wait <= 0: asked, and nothing came in time; unless it came while the event loop was held up (a last read
        # of what is buffered), the path is silent
        message = await self._heard_within(pubsub, max(wait, 0.0))
        if wait <= 0 and self._asked is not None:
            raise RedisTimeoutError(f"the events connection did not answer a PING within {self._answer:g} s")
        return message

    async def _heard_within(self, pubsub: PubSub, wait: float) -> dict[str, Any] | None:
        """What the connection brings within ``wait`` seconds: a message, or None (nothing, or the PING's answer).

        The PING's answer is told apart here rather than by redis-py's ``get_message``: on a subscribed connection
        RESP2 answers it as a message ``["pong", PROBE]`` but RESP3 (``HELLO 3``, redis-py 8's default) as a plain
        reply, ``PROBE``, which ``handle_message`` indexes as if it were a list (a message of type "g" on channel
        "a"): it worked by accident. Anything read counts as heard, so the connection carries only our PING
        (:class:`_OurPing`: redis-py's own answers were dropped by ``parse_response`` unseen, not heard).

        The wait is ``wait`` seconds of a loop that ran (:func:`gateway.loop_watch.timeout_unheld`, since 2026-12-08):
        one whose end the loop reached late because it was held (the process frozen, its VM paused) gives the read 1 s
        more. Until then a PING's answer that came while the process was frozen past the answer's wait lost to the
        wait's end on resume (uvloop runs its timers before it reads the sockets), and the last read (``wait`` 0) found
        nothing read yet: the connection was taken for silent and dropped, every subscription of the instance failed
        and subscribed again, resyncing its sockets (``tests/test_freeze.py``, 3 freezes of 3)."""
        try:
            async with timeout_unheld(wait):
                response = await pubsub.parse_response(block=True)  # our wait, not redis-py's: the connection kept
        except TimeoutError:
            return None
        if response is None:
            return None
        self._heard, self._asked = asyncio.get_running_loop().time(), None  # the path carries bytes
        if response == PROBE or response == ["pong", PROBE]:  # RESP3, RESP2
            return None
        return await pubsub.handle_message(response)  # type: ignore[no-untyped-call, no-any-return]  # untyped in redis-py

    def _confirmed(self, name: str) -> None:
        waiting = self._confirming.get(name)
        if waiting:
            future = waiting.popleft()
            if not waiting:
                del self._confirming[name]
            if not future.done():
                future.set_result(None)
            return
        for subscription in self._subscriptions:  # confirmed anew after a reconnection: events may have been missed
            subscription.missed()

    def _deliver(self, channel: str, data: str, by_pattern: bool) -> None:
        if channel == EVENTS_CHANNEL:
            takers = list(self._subscriptions)
        elif by_pattern:
            takers = [s for s in self._subscriptions if s.everything]
        else:  # a conversation's own channel: its followers not already given it by the pattern
            conversation_id = channel.removeprefix(CONVERSATION_EVENTS)
            takers = [s for s in self._subscriptions if not s.everything and conversation_id in s.followed]
        if not takers:  # nobody here wants it (any more): not even decoded
            return
        for event in self._decoded(data):
            for subscription in takers:
                subscription.deliver(event)

    def _decoded(self, data: str) -> list[Event]:
        """The event, or the events of a batch published together (a JSON list, in order), decoded once when its
        conversation's channel and the pattern both brought it. One this version does not know is left out."""
        if self._last is not None and self._last[0] == data:
            return self._last[1]
        try:
            found = json.loads(data)
            events = [decode(one) for one in (found if isinstance(found, list) else [found])]
        except (ValueError, KeyError, TypeError) as exc:
            log.error("redis events: an event that cannot be read was skipped (%s)", type(exc).__name__)
            events = []
        known = [event for event in events if event is not None]  # None: a type this version does not know
        self._last = (data, known)
        return known

    def _fail(self, error: StoreError) -> None:
        for subscription in self._subscriptions:
            subscription.fail(error)
        self._subscriptions.clear()  # the next subscribe opens a new connection (the reader is done)


class SharedSubscription:
    """One consumer's buffer of the process's events, and what it follows."""

    def __init__(self, events: RedisEvents) -> None:
        self._events = events
        self.everything = False
        self.followed: set[str] = set()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._error: StoreError | None = None
        self._missed = False
        self._resync_last = False  # the last event queued is a Resync: a burst of confirmations gives one
        self._closed = False

    async def follow(self, conversation_id: str) -> None:
        if self._closed:
            return
        if conversation_id in self.followed:  # asked for already: returns once it is confirmed
            await self._events.settled(CONVERSATION_EVENTS + conversation_id)
            return
        self.followed.add(conversation_id)  # before Redis confirms: what arrives after it is this one's
        try:
            await self._events.want(CONVERSATION_EVENTS + conversation_id)
        except BaseException:
            self.followed.discard(conversation_id)
            raise

    async def unfollow(self, conversation_id: str) -> None:
        if conversation_id in self.followed and not self._closed:
            self.followed.discard(conversation_id)
            await self._events.unwant(CONVERSATION_EVENTS + conversation_id)

    async def follow_all(self, on: bool) -> None:
        if self._closed:
            return
        if on == self.everything:
            if on:
                await self._events.settled(ALL_CONVERSATIONS)
            return
        self.everything = on
        if not on:
            await self._events.unwant(ALL_CONVERSATIONS)
            return
        try:
            await self._events.want(ALL_CONVERSATIONS)
        except BaseException:
            self.everything = False
            raise

    def deliver(self, event: Event) -> None:
        if self._queue.qsize() >= SUBSCRIBER_BUFFER:
            self._queue.get_nowait()  # a stalled reader loses the oldest events, never the gateway's memory…
            self._missed = True  # …and is told so, to reload from the store
        self._queue.put_nowait(event)
        self._resync_last = isinstance(event, Resync)

    def missed(self) -> None:
        if not self._resync_last:
            self.deliver(Resync())

    def fail(self, error: StoreError) -> None:
        self._error = error
        self._queue.put_nowait(None)  # wakes a reader waiting in __anext__

    def end(self) -> None:
        self._closed = True
        self._queue.put_nowait(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._error is not None:  # one failure fans out to every subscription: each raises its own copy, so
                # its traceback holds this reader's frames only (a shared object's would pile up every task's, and
                # the supervisor would name another worker's place)
                raise copy.copy(self._error).with_traceback(None) from self._error.__cause__
            if self._closed:
                raise StopAsyncIteration
            if self._missed:
                self._missed = False
                return Resync()
            event = await self._queue.get()
            if self._queue.empty():
                self._resync_last = False
            if event is not None:
                return event

    async def aclose(self) -> None:
        if not self._closed:
            self.end()
            await self._events._left(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
