"""Sending the steps of an operation over several slots in order, on one Redis or on a Cluster.

On one Redis (standalone, or a Cluster reached through one node that owns every slot), a pipeline's commands run
in the order they were sent, on one connection: a crash leaves a prefix of them done, which the store's order of
steps makes safe (:mod:`gateway.store.redis`). A Cluster client's pipeline sends each node its share at once, so
commands to different nodes would run in any order: with a Cluster client the steps are sent one by one instead.
"""

from __future__ import annotations

from collections.abc import Callable
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


class ordered:  # used as a function: ``async with ordered(client) as pipe``
    """A pipeline whose commands run in the order they were queued, whatever the client.

    A class, not an ``asynccontextmanager``: it is entered about eleven times a message, and a generator-based
    context manager cost each entry an async generator, its registration with the loop and two ``anext`` (about
    9 µs; bench/README.md, "Twenty-fourth pass"). Whether the client is a Cluster's is asked once per client class:
    redis-py's clients are Protocol classes, whose ``isinstance`` is slow Python."""

    __slots__ = ("_pipe",)

    def __init__(self, client: Redis) -> None:
        self._pipe: Pipeline = (
            cast(Pipeline, _InOrder(client)) if _clustered(client) else client.pipeline(transaction=False)
        )

    async def __aenter__(self) -> Pipeline:
        return self._pipe

    async def __aexit__(self, *exc: object) -> None:
        if not isinstance(self._pipe, _InOrder):
            await self._pipe.reset()  # type: ignore[no-untyped-call]  # redis-py; as ``Pipeline.__aexit__``


_CLUSTERED: dict[type, bool] = {}


def _clustered(client: object) -> bool:
    """A Cluster client (which passes for a Redis one: ``RedisStore.open``), remembered by class."""
    kind = type(client)
    found = _CLUSTERED.get(kind)
    if found is None:
        found = _CLUSTERED[kind] = isinstance(client, RedisCluster)
    return found
