"""A Redis at its ``maxclients`` (a managed plan's cap, reached by the instances' pools together): a connection the
pool opens is answered ``ERR max number of clients reached`` and closed, which redis-py raises as a plain
ConnectionError. Webhooks that meet it are answered 503 (never 500, the provider redelivers), the workers go on,
and once connections are free again every message is processed once and every reply sent once. Until 2026-12-07
the failures were named ``ConnectionError`` (``gateway_store_failures_total``'s label, the outage log's lines,
``/readyz``'s ``store_error``), as a network outage is: nothing told the operator to look at ``maxclients``.

The test's own redis-server, its cap lowered to the connections already open once the app is up (the pool's,
the pub/sub one's, the test's own), then a burst of webhooks that needs more.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis

from gateway.app import METRICS
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory, Clock, outbox_drained
from tests.redis_messenger import post_message
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_store_outage_log import on_redis_with_messenger

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis

BURST = 200  # webhooks at once: more batches out at once than the connections already open
TEXT = "bonjour"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not condition():
            await asyncio.sleep(0.05)


def failures_by_class(metrics: Metrics) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "gateway_store_failures_total":
                found[sample.labels["error"]] += sample.value
    return dict(found)


def sent_to(graph: FakeGraphAPI) -> dict[str, list[str]]:
    """The texts the fake Graph API accepted, by recipient, in order."""
    sent: dict[str, list[str]] = defaultdict(list)
    for request in graph.requests:
        if request.path.endswith("/me/messages") and request.status == 200 and "message" in request.body:
            sent[request.body["recipient"]["id"]].append(request.body["message"].get("text", ""))
    return sent


async def test_a_redis_at_its_maxclients_is_named_so_and_loses_nothing(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, clock: Clock
) -> None:
    client = await make_client(on_redis_with_messenger(settings, own_redis, graph))
    metrics = client.app[METRICS]
    assert await post_message(client, "psid-reference", TEXT, "m-reference") == 200
    await outbox_drained(client)
    expected = sent_to(graph)["psid-reference"]
    assert expected
    server = redis.Redis(port=own_redis.port)
    try:
        server.config_set("maxclients", str(server.info("clients")["connected_clients"]))  # none more
        statuses = await asyncio.gather(*(post_message(client, f"psid-{n}", TEXT, f"m-{n}") for n in range(BURST)))
        assert set(statuses) <= {200, 503}, statuses  # never a 500, never an ack for what was not written
        refused = [n for n, status in enumerate(statuses) if status == 503]
        await until(lambda: bool(failures_by_class(metrics)))
        named = failures_by_class(metrics)
        assert set(named) == {"MaxClientsReached"}, named  # until 2026-12-07: ConnectionError, as a network's
        assert refused, "the burst never needed another connection"
        # /readyz tells it, still ready: its PING rides an open connection, and the cap is every instance's (each
        # taken out of the balancer at once would be worse). Until 2026-12-07 it said `store: ok` and nothing else.
        answer = await client.get("/readyz")
        body = await answer.json()
        assert (answer.status, body["ready"], body["store"]) == (200, True, "ok") or body.get("store_error") == (
            "MaxClientsReached"  # its own PING may have needed a new connection at the cap: said so, then
        ), body
        assert body.get("store_last_failure", {}).get("error") == "MaxClientsReached", body
    finally:
        server.config_set("maxclients", "10000")
        server.close()
    for n in refused:  # the provider's redeliveries, once connections are free
        assert await post_message(client, f"psid-{n}", TEXT, f"m-{n}") == 200

    # processed, those whose processing met the cap after their acknowledgement retried by the inbox, after its
    # backoff on the app's clock (the test's: moved a second a look, 60 s at most, the inbox's longest backoff)
    def replied() -> bool:
        if clock.now < until_at:
            clock.advance(seconds=1)
        return all(len(sent_to(graph)[f"psid-{n}"]) >= len(expected) for n in range(BURST))

    until_at = clock.now + timedelta(seconds=60)
    await until(replied)
    await outbox_drained(client, timeout=60)
    sent = sent_to(graph)
    assert {n: sent[f"psid-{n}"] for n in range(BURST) if sent[f"psid-{n}"] != expected} == {}  # once each
    assert (await client.get("/readyz")).status == 200
