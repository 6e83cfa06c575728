"""Acknowledged once replicated: ``GATEWAY_REDIS_REPLICA_ACKS`` (docs/configuration.md, docs/deployment.md).

Redis replicates asynchronously: a webhook answered 200 just before the primary dies may be missing from the
replica a failover promotes, and the provider never sends it again. With ``replicas`` > 0, a webhook (and a web
chat message) is acknowledged only once everything it wrote reached that many replicas: :meth:`ReplicaAcks.confirm`
returns once a ``WAIT replicas timeout`` covers the caller's writes, else raises :class:`ReplicasBehind` (answered
503, the provider redelivers; the web chat's socket closes with 1013 and the page sends the message again).

``WAIT`` counts the writes of its own connection only (the offset of that connection's last write): the store's
writes go through the command batcher on whatever connection a batch took (``redis_batch.py``, where ``WAIT`` is
among the commands never batched: it holds its connection until the replicas answer, every caller of its batch
with it). So each round is a write of its own (``SET`` of :data:`MARK`) then the ``WAIT``, one round trip on a
connection of the pool: Redis replicates in one stream, in order, so a replica that has the mark has every write
answered before it was made, the callers' of the round among them. Rounds are one at a time: callers arriving while
one is out join the next (group commit), so under load one round covers every webhook answered meanwhile, not one
each (bench/README.md and docs/deployment.md give the cost).

The outcome of each caller is counted (``on_outcome``: ``gateway_replica_acks_total{outcome}``); the first round
refused after confirmed ones logs one ERROR line (``alert: acknowledgements held…``), the first confirmed after
refused ones one INFO line (``alert over: …``): no text, no id, no sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gateway.errors import ReplicasBehind
from gateway.store.redis_keys import PREFIX

log = logging.getLogger(__name__)

MARK = PREFIX + "replicated"  # written by each round: the write its WAIT covers (and every earlier one with it)


@dataclass(slots=True)
class _Round:
    """One ``SET`` and ``WAIT``: its callers wait on ``done``."""

    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    callers: int = 0


class ReplicaAcks:
    """``replicas`` replicas confirming every write made before :meth:`confirm`, within ``timeout`` seconds."""

    def __init__(
        self, client: Redis, replicas: int, timeout: float, on_outcome: Callable[[bool, int], None] | None = None
    ) -> None:
        """``client``: not the batcher's face (``WAIT`` on its own connection); ``on_outcome(confirmed, callers)``
        once a round: whether it was confirmed, and for how many callers."""
        self._client, self.replicas, self.timeout = client, replicas, timeout
        self._on_outcome = on_outcome
        self._next: _Round | None = None  # the round that callers join: not sent yet
        self._one = asyncio.Lock()  # one round out at a time
        self._rounds: set[asyncio.Task[None]] = set()
        self._behind_since: float | None = None  # the loop's time of the first refused round of a stretch

    async def confirm(self) -> None:
        """Once every write this process made before the call reached ``replicas`` replicas; ReplicasBehind when
        they did not confirm within ``timeout`` (the primary has the writes), StoreError-like redis-py errors as
        the store's other calls (the caller maps them)."""
        if self._next is None:
            self._next = _Round()
            self._next.done.add_done_callback(_retrieved)
            task = asyncio.create_task(self._round(self._next))
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)
        self._next.callers += 1
        await asyncio.shield(self._next.done)  # one caller gone does not stop the round of the others

    async def _round(self, taken: _Round) -> None:
        round_ = taken.done
        async with self._one:
            if self._next is taken:  # from now on, callers join the next round: this one's mark may precede them
                self._next = None
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.set(MARK, "", px=60_000)
                    pipe.wait(self.replicas, max(1, round(self.timeout * 1000)))
                    _, acked = await pipe.execute()
            except BaseException as error:
                round_.set_exception(error)
                if not isinstance(error, Exception):
                    raise
                return
            confirmed = int(acked) >= self.replicas
            self._said(confirmed, int(acked))
            if self._on_outcome is not None:
                self._on_outcome(confirmed, taken.callers)
            if confirmed:
                round_.set_result(None)
            else:
                round_.set_exception(ReplicasBehind(f"{acked} of {self.replicas} replicas in {self.timeout:g} s"))

    def _said(self, confirmed: bool, acked: int) -> None:
        now = asyncio.get_running_loop().time()
        if not confirmed and self._behind_since is None:
            self._behind_since = now
            log.error("alert: acknowledgements held: %d of %d Redis replicas confirmed the writes within %g s;"
                      " webhooks are answered 503 (redelivered) until they do, counted in gateway_replica_acks_total",
                      acked, self.replicas, self.timeout)  # fmt: skip
        elif confirmed and self._behind_since is not None:
            log.info("alert over: the Redis replicas confirm the writes again after %.0f s", now - self._behind_since)
            self._behind_since = None

    @property
    def behind(self) -> bool:
        """The last round was not confirmed."""
        return self._behind_since is not None

    async def close(self) -> None:
        for task in list(self._rounds):
            task.cancel()
        await asyncio.gather(*self._rounds, return_exceptions=True)


def _retrieved(round_: asyncio.Future[None]) -> None:
    """A round's error is its callers'; none left (all cancelled), it is not an unretrieved exception."""
    if not round_.cancelled():
        round_.exception()
