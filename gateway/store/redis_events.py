"""The Redis store's events: one pub/sub connection per process, fanned out to every subscription in it.

Each gateway instance runs several consumers of the events (the web chat's forwarding, the console's, presence,
the typing relay). With a pub/sub connection each, Redis sent every event to an instance once per consumer and
each decoded the JSON again: under load that was a tenth of the gateway's CPU per message. Here one reader task
holds the instance's only subscription to ``hg:events``, decodes each event once and hands it to every local
subscription's bounded buffer (frozen events: subscribers share them).

What a consumer sees is what it saw with a connection of its own:

* events published after :meth:`RedisEvents.subscribe` returned, in order (the first subscription waits for
  Redis to confirm the channel; later ones join a confirmed one);
* :class:`~gateway.events.Resync` when events may have been missed: redis-py restored the lost connection and
  Redis confirmed the subscription anew, or this subscriber read so slowly that its oldest events were dropped
  (``SUBSCRIBER_BUFFER``, as in-process);
* StoreError when the connection fails for good: every subscription fails with it (their supervised consumers
  restart and subscribe again, which opens a new connection); the reader does not outlive it.

When the last subscription closes, the connection is closed too. A malformed event is skipped and logged by class,
never given to anyone (it named no text).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Self

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from gateway.errors import StoreError
from gateway.events import Event, Resync, decode
from gateway.store.local import SUBSCRIBER_BUFFER
from gateway.supervisor import where

log = logging.getLogger(__name__)
CONFIRM_SECONDS = 10.0


async def _confirmed(pubsub: PubSub) -> None:
    """Return once Redis confirms the subscription (messages before it are none of ours)."""
    confirmed = False
    while not confirmed:
        message = await pubsub.get_message(timeout=1.0)
        confirmed = message is not None and message.get("type") == "subscribe"


class RedisEvents:
    """The process's subscription to one pub/sub channel, shared by every :meth:`subscribe`."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis, self._channel = redis, channel
        self._subscriptions: set[SharedSubscription] = set()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()

    async def subscribe(self) -> SharedSubscription:
        async with self._changing:
            if self._reader is None or self._reader.done():
                await self._stop()
                pubsub = self._redis.pubsub()
                try:
                    await pubsub.subscribe(self._channel)
                    async with asyncio.timeout(CONFIRM_SECONDS):
                        await _confirmed(pubsub)
                except BaseException:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
                    raise
                self._pubsub = pubsub
                self._reader = asyncio.create_task(self._read(pubsub))
            subscription = SharedSubscription(self)
            self._subscriptions.add(subscription)
            return subscription

    async def close(self) -> None:
        """The store closes: every subscription ends (StopAsyncIteration), the connection is closed."""
        async with self._changing:
            for subscription in list(self._subscriptions):
                subscription.end()
            self._subscriptions.clear()
            await self._stop()

    async def _left(self, subscription: SharedSubscription) -> None:
        async with self._changing:
            self._subscriptions.discard(subscription)
            if not self._subscriptions:
                await self._stop()

    async def _stop(self) -> None:
        reader, pubsub = self._reader, self._pubsub
        self._reader = self._pubsub = None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "subscribe":  # confirmed anew after a reconnection: events may have been missed
                    self._fan_out(Resync())
                elif kind == "message":
                    try:
                        event = decode(json.loads(message["data"]))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.error("redis events: an event that cannot be read was skipped (%s)", type(exc).__name__)
                        continue
                    if event is not None:  # a type this version does not know (rolling deploy)
                        self._fan_out(event)
        except RedisError as error:
            self._fail(StoreError(f"redis: {type(error).__name__}: {error}"))
        except Exception as exc:  # a bug: every consumer restarts rather than waiting forever
            log.error("redis events: the reader failed with %s at %s", type(exc).__name__, where(exc))
            self._fail(StoreError(f"the events reader failed ({type(exc).__name__})"))

    def _fan_out(self, event: Event) -> None:
        for subscription in self._subscriptions:
            subscription.deliver(event)

    def _fail(self, error: StoreError) -> None:
        for subscription in self._subscriptions:
            subscription.fail(error)
        self._subscriptions.clear()  # the next subscribe opens a new connection (the reader is done)


class SharedSubscription:
    """One consumer's buffer of the process's events."""

    def __init__(self, events: RedisEvents) -> None:
        self._events = events
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._error: StoreError | None = None
        self._missed = False
        self._closed = False

    def deliver(self, event: Event) -> None:
        if self._queue.qsize() >= SUBSCRIBER_BUFFER:
            self._queue.get_nowait()  # a stalled reader loses the oldest events, never the gateway's memory…
            self._missed = True  # …and is told so, to reload from the store
        self._queue.put_nowait(event)

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
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            if self._missed:
                self._missed = False
                return Resync()
            event = await self._queue.get()
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
