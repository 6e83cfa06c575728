"""Sending the steps of an operation over several slots in order, on one Redis or on a Cluster.

On one Redis (standalone, or a Cluster reached through one node that owns every slot), a pipeline's commands run
in the order they were sent, on one connection: a crash leaves a prefix of them done, which the store's order of
steps makes safe (:mod:`gateway.store.redis`). A Cluster client's pipeline sends each node its share at once, so
commands to different nodes would run in any order: with a Cluster client the steps are sent one by one instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster


class _InOrder:
    """Records the commands queued on it like a pipeline; ``execute`` runs them one after the other."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def queue(*args: Any, **kwargs: Any) -> None:
            self._calls.append((name, args, kwargs))

        return queue

    def __len__(self) -> int:
        return len(self._calls)

    async def execute(self) -> list[Any]:
        answers = []
        for name, args, kwargs in self._calls:
            answers.append(await getattr(self._client, name)(*args, **kwargs))
        self._calls.clear()
        return answers


@asynccontextmanager
async def ordered(client: Redis) -> AsyncIterator[Pipeline]:
    """A pipeline whose commands run in the order they were queued, whatever the client."""
    if isinstance(client, RedisCluster):  # a Cluster client passes for a Redis one (``RedisStore.open``)
        yield cast(Pipeline, _InOrder(client))
        return
    async with client.pipeline(transaction=False) as pipe:
        yield pipe
