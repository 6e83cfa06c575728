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
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import METRICS, STORE, create_app
from gateway.clock import utcnow
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Delivery
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory, add_listener, login, outbox_drained
from tests.losing_proxy import LosingProxy, losing_proxy
from tests.redis_messenger import SECRET, post_message
from tests.test_faults import redis_server
from tests.test_redis_restart import Frames
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

pytestmark = pytest.mark.redis

# GATEWAY_REDIS_SOCKET_TIMEOUT and GATEWAY_REDIS_HEALTH_CHECK_SECONDS here: a timeout of 2 s failed a login now and
# then before any silence on a loaded machine (two apps, the proxy and the test in one event loop); 5 s is the default
TIMEOUT, QUIET = 4.0, 1.0
# the alert checks' period (10 s in production, ``create_app(watch_seconds=...)``): the silence is theirs to notice
# within a period and a socket timeout, so the test waits for one period, not for production's
WATCH = 1.0
BOUND = 30.0  # seconds for a wait on a condition: a safety net on a busy machine, far above what each takes
# Every part that waits on Redis, by the name its failures are counted under (``gateway_store_failures_total{part}``;
# the alert checks poll every WATCH s, the notices every 1.5 s here, the others every 0.05 s or wait on the events)
PARTS = ("inbox", "outbox", "timers", "alerts", "notices", "console_sessions", "webchat_forwarding",
         "console_forwarding", "presence", "presence_beat", "typing")  # fmt: skip
# workers that wait for the store, the outage counted under their part (since 2026-12-07; presence and typing,
# restarted by the supervisor before: tests/test_subscribers_outage.py)
WAITING = ("notices", "console-sessions", "presence", "typing")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


@pytest.fixture
async def proxy(own_redis: str) -> AsyncIterator[LosingProxy]:
    async with losing_proxy(own_redis) as silenced:
        yield silenced


def silent_settings(settings: Settings, store: str) -> Settings:
    return settings.replace(store=store, redis_socket_timeout=TIMEOUT, redis_health_check_seconds=QUIET,
                            understanding="off")  # fmt: skip


def restarts(client: Any, worker: str) -> float:
    found = client.app[METRICS].registry.get_sample_value("gateway_worker_restarts_total", {"worker": worker})
    return found or 0.0


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


@pytest.mark.parametrize("forget", [True, False], ids=["connections-forgotten", "connections-kept"])
async def test_sockets_open_before_a_silent_path_get_the_events_again_once_it_is_back(
    make_client: AppFactory, settings: Settings, own_redis: str, proxy: LosingProxy, forget: bool
) -> None:
    """A web chat page and a console open on an instance whose path to Redis goes silent: the instance's events
    connection is found silent (a PING unanswered) and dropped; once the path is back, both sockets are told to
    resynchronise (the page's resync shows the listener's reply written meanwhile on the other instance) and get
    the next events live. The path comes back with the connections open during the silence forgotten (a NAT's
    state lost, Redis's side dropped meanwhile) or kept (a short partition, a Redis host frozen then thawed: what
    waited is delivered late). Before, the events reader waited on a forgotten connection for ever: neither socket
    got anything again until a restart, and nothing said so."""
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
            proxy.resume(forget=forget)
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


async def test_every_part_notices_a_silent_path_within_its_bounds_and_says_so(
    make_client: AppFactory, settings: Settings, proxy: LosingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Every part that waits on Redis meets the silence as a failure within its bound (its poll, then a socket
    timeout or two; the events' consumers after the quiet and a PING's socket timeout), counted under its name; the
    outage is said once by the error's class; the workers that wait for the store are never restarted;
    ``/readyz`` answers 503 naming the store unreachable and the parts waiting for it. Once the path is back, the
    store answers and nothing waits any more. Before, the events' consumers (the web chat's and the console's
    forwarding, presence, the typing relay) waited for ever, counted nothing, and ``/readyz`` said nothing of them."""
    caplog.set_level(logging.INFO)
    one = await make_client(silent_settings(settings, proxy.url), watch_seconds=WATCH)
    await add_listener(one, "sam", supervisor=True)
    await login(one, "sam")
    loop = asyncio.get_running_loop()
    async with one.ws_connect("/chat/ws") as chat, one.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        await hello(chat)
        await say(chat, "m0", "2")
        frames = Frames(console)  # read as it comes: the console's pings answered through the silence
        try:
            proxy.blackhole()
            start, noticed = loop.time(), {}
            while len(noticed) < len(PARTS):
                noticed |= {part: loop.time() - start for part in PARTS if part not in noticed and failures(one, part)}
                if loop.time() - start > BOUND:
                    pytest.fail(f"not within {BOUND:.0f} s: {sorted(set(PARTS) - set(noticed))} noticing the silence")
                await asyncio.sleep(0.02)
            answer = await one.get("/readyz")
            body = await answer.json()
            assert answer.status == 503 and body["store"] == "unreachable", body
            assert {"webchat_forwarding", "console_forwarding"} <= set(body.get("store_waiting", [])), body
            assert not any(restarts(one, worker) for worker in WAITING), {w: restarts(one, w) for w in WAITING}
            said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert any(m.startswith("alert: the store is unreachable") and "met TimeoutError" in m for m in said), said
            proxy.resume(forget=True)
            back = loop.time()
            while body.get("store") != "ok" or "store_waiting" in body:
                assert loop.time() - back < BOUND, f"not within {BOUND:.0f} s: the store back, nothing waiting: {body}"
                await asyncio.sleep(0.05)
                body = await (await one.get("/readyz")).json()
            recovered = loop.time() - back
        finally:
            await frames.close()
    figures = ", ".join(f"{part} {seconds:.2f} s" for part, seconds in sorted(noticed.items(), key=lambda i: i[1]))
    print(f"silent path noticed by: {figures}; the store back and nothing waiting {recovered:.2f} s after")


PEOPLE, LEASE = 3, 3  # Messenger conversations; GATEWAY_OUTBOX_LEASE_SECONDS here
WALK = ["Bonjour", "Non", "Français"]  # each person's messages (the second's replies in flight as the path goes silent)


async def replies_sent(client: Any, psid: str) -> list[str] | None:
    """The bot's replies to ``psid`` once every one is recorded sent (else None)."""
    conversation = await client.app[STORE].find_active_conversation(ChannelName.MESSENGER, psid)
    if conversation is None:
        return None
    entries = [e for e in await client.app[STORE].transcript(conversation.id) if e.author is Author.BOT]
    return [e.text for e in entries] if all(e.delivery is Delivery.SENT for e in entries) else None


async def eventually_sent(client: Any, psid: str) -> list[str]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (texts := await replies_sent(client, psid)) is None:
        assert loop.time() - start < BOUND, f"not within {BOUND:.0f} s: every reply to {psid} recorded sent"
        await asyncio.sleep(0.05)
    return texts


def once_repeated(sent: list[str]) -> tuple[list[str], int]:
    """What the provider was sent with each immediate repeat taken out, and how many were."""
    kept: list[str] = []
    for text in sent:
        if not kept or kept[-1] != text:
            kept.append(text)
    return kept, len(sent) - len(kept)


async def test_a_silent_path_longer_than_the_outbox_lease_loses_no_message_and_repeats_a_reply_at_most_once(
    aiohttp_client: Any, settings: Settings, graph: FakeGraphAPI, proxy: LosingProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Replies held by the provider as the path goes silent: the provider accepts them, their records meet the
    silence for as long as their leases hold, then are given up to the next worker (docs/architecture.md, the
    outbox's lease). Webhooks meanwhile are answered 503 within a few socket timeouts (never acknowledged, so the
    provider sends them again). Once the path is back: every message acknowledged is processed once, every reply
    reaches the provider in order, and a reply is sent twice only if it was in flight as the silence began (one per
    conversation at most: a run's replies are each recorded before the next goes out). Until 2026-12-02 one was
    sent three times in about one run in four under load: a claim made during the silence, held by its idle
    connection's PING for a socket timeout (longer than the lease here), reached Redis after its own lease's end,
    and its replies went out while the next claim took them too (``tests/test_outbox_late_claim.py``)."""
    caplog.set_level(logging.INFO)
    configured = silent_settings(settings, proxy.url).replace(
        messenger_app_secret=SECRET, messenger_verify_token="verify", messenger_page_access_token="page-token",
        messenger_api_url=graph.url + "/v23.0", outbox_lease_seconds=LEASE, inbound_claim_seconds=2,
        dev_always_open=1,
    )  # fmt: skip
    # the wall clock (the other tests' is frozen): leases end as they do in production
    client = await aiohttp_client(await create_app(configured, clock=utcnow, worker_poll_seconds=0.05))
    people = [f"74{n:014d}" for n in range(PEOPLE)]
    loop = asyncio.get_running_loop()
    for psid in people:
        assert await post_message(client, psid, WALK[0], f"m-{psid}-0") == 200
    for psid in people:
        await eventually_sent(client, psid)
    graph.stall()  # the next replies wait at the provider, unanswered
    for psid in people:
        assert await post_message(client, psid, WALK[1], f"m-{psid}-1") == 200
    await graph.wait_held(PEOPLE, timeout=BOUND)
    proxy.blackhole()
    silent = loop.time()
    graph.resume()  # the provider takes what it held: the records of those sends meet the silence

    def given_up() -> int:
        return sum("given up to the next worker" in r.getMessage() for r in caplog.records)

    await until(lambda: given_up() >= PEOPLE, "each record of a send given up once its lease is over")
    started = loop.time()  # a webhook from each meanwhile: refused, never acknowledged
    refused = await asyncio.gather(*(post_message(client, psid, WALK[2], f"m-{psid}-2") for psid in people))
    assert refused == [503] * PEOPLE
    answered = loop.time() - started
    proxy.resume(forget=True)
    silence = loop.time() - silent
    back = loop.time()
    for psid in people:  # the provider sends the refused webhook again until it is acknowledged
        while await post_message(client, psid, WALK[2], f"m-{psid}-2") != 200:
            assert loop.time() - back < BOUND, f"not within {BOUND:.0f} s: a webhook acknowledged again"
            await asyncio.sleep(0.1)
    recorded = {psid: await eventually_sent(client, psid) for psid in people}
    recovered = loop.time() - back
    await outbox_drained(client)  # a stray resend would be sent by now
    repeats = 0
    for psid in people:
        conversation = await client.app[STORE].find_active_conversation(ChannelName.MESSENGER, psid)
        assert conversation is not None
        said = [e.text for e in await client.app[STORE].transcript(conversation.id) if e.author is Author.USER]
        assert said == WALK  # nothing acknowledged lost, nothing processed twice
        sent = [r.body["message"]["text"] for r in graph.accepted() if r.body["recipient"]["id"] == psid]
        kept, repeated = once_repeated(sent)
        assert kept == recorded[psid]  # every reply, in order
        assert repeated <= 1  # the send in flight as the silence began, at most
        repeats += repeated
    print(
        f"silent path of {silence:.1f} s (lease {LEASE} s): webhooks refused in {answered:.2f} s, every"
        f" reply recorded {recovered:.2f} s after the path came back, {repeats} of {PEOPLE} in-flight sends repeated"
    )
