"""The path to Redis goes silent (a partition, a NAT or load balancer that forgot the connections, a Redis host
frozen): no close, no reset, nothing comes. Every part of the gateway that waits on Redis notices within a bound
(``GATEWAY_REDIS_SOCKET_TIMEOUT`` for an answer, ``GATEWAY_REDIS_HEALTH_CHECK_SECONDS`` of quiet on the events
connection before it is asked a PING), says so, and recovers once the path is back, without a restart.

The path is made silent by a proxy between the gateway and a redis-server of the test's own
(``tests/losing_proxy.py``'s ``blackhole``); when it comes back, the connections open during the silence stay silent
for good (``resume(forget=True)``: what Redis dropped meanwhile, or a NAT forgot), so only a gateway that asks finds
out. A second instance, whose path to Redis stays whole, is where the conversation goes on meanwhile. The bounds
are the settings' (short here), never a patch of the code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import METRICS
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.losing_proxy import LosingProxy, losing_proxy
from tests.test_faults import redis_server
from tests.test_redis_restart import Frames
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

pytestmark = pytest.mark.redis

TIMEOUT, QUIET = 0.5, 0.5  # GATEWAY_REDIS_SOCKET_TIMEOUT and GATEWAY_REDIS_HEALTH_CHECK_SECONDS here
BOUND = 30.0  # seconds for a wait on a condition: a safety net on a busy machine, far above what each takes


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture
async def proxy(own_redis: str) -> AsyncIterator[LosingProxy]:
    async with losing_proxy(own_redis) as silenced:
        yield silenced


def silent_settings(settings: Settings, store: str) -> Settings:
    return settings.replace(store=store, redis_socket_timeout=TIMEOUT, redis_health_check_seconds=QUIET)


def failures(client: Any, part: str) -> float:
    """``gateway_store_failures_total`` of one part, every error class summed."""
    total = 0.0
    for metric in client.app[METRICS].registry.collect():
        for sample in metric.samples:
            if sample.name == "gateway_store_failures_total" and sample.labels.get("part") == part:
                total += sample.value
    return total


async def until(predicate: Any, what: str) -> float:
    """Seconds until ``predicate()`` holds (polled); fails naming ``what`` after :data:`BOUND`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > BOUND:
            pytest.fail(f"not within {BOUND:.0f} s: {what}")
        await asyncio.sleep(0.02)
    return loop.time() - start


def listener_said(text: str) -> Any:
    def said(frame: dict[str, Any]) -> bool:
        entries = [frame.get("entry")] if frame["type"] == "entry" else frame.get("entries", [])
        return any(isinstance(e, dict) and e.get("author") == "listener" and e.get("text") == text for e in entries)

    return said


async def test_sockets_open_before_a_silent_path_get_the_events_again_once_it_is_back(
    make_client: AppFactory, settings: Settings, own_redis: str, proxy: LosingProxy
) -> None:
    """A web chat page and a console open on an instance whose path to Redis goes silent: the instance's events
    connection is found silent (a PING unanswered) and dropped; once the path is back, both sockets are told to
    resynchronise (the page's resync shows the listener's reply written meanwhile on the other instance) and get
    the next events live. Before, the events reader waited on the silent connection for ever: neither socket got
    anything again until a restart, and nothing said so."""
    one = await make_client(silent_settings(settings, proxy.url))
    two = await make_client(settings.replace(store=own_redis))  # another instance: its path stays whole
    await add_listener(two, "anne")
    await add_listener(two, "sam", supervisor=True)
    await login(two, "anne")
    await login(one, "sam")
    loop = asyncio.get_running_loop()
    async with one.ws_connect("/chat/ws") as chat, one.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        await hello(chat)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(chat, f"m{number}", answer)
        [waiting] = (await (await two.get("/api/queue")).json())["waiting"]
        conversation = waiting["id"]
        chat_frames, console_frames = Frames(chat), Frames(console)
        try:
            proxy.blackhole()
            noticed = await until(lambda: failures(one, "webchat_forwarding") and failures(one, "console_forwarding"),
                                  "the web chat's and the console's forwarding noticing the silence")  # fmt: skip
            assert (await two.post(f"/api/conversations/{conversation}/take", json={})).status == 200
            sent = await two.post(f"/api/conversations/{conversation}/messages", json={"text": "Je suis là."})
            assert sent.status == 201
            proxy.resume(forget=True)
            back = loop.time()
            async with asyncio.timeout(BOUND):
                await chat_frames.until(listener_said("Je suis là."))  # the page's resync shows it
                await console_frames.until(lambda f: f["type"] == "resync")
            recovered = loop.time() - back
            sent = await two.post(f"/api/conversations/{conversation}/messages", json={"text": "Encore là."})
            assert sent.status == 201
            async with asyncio.timeout(BOUND):
                await chat_frames.until(listener_said("Encore là."))  # live again
                await console_frames.until(listener_said("Encore là."))
        finally:
            await chat_frames.close()
            await console_frames.close()
    print(f"silent path: forwarding noticed in {noticed:.2f} s, sockets resynchronised {recovered:.2f} s after")
