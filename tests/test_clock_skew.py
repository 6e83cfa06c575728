"""Two instances on one Redis whose clocks disagree (NTP broken on one host): the times one writes (a lease's end, a
timer's due time) are read by the other against its own clock. Each instance's clock is set on Redis's ``TIME``
(``gateway/clock.py``, ``Aligned``): they agree to a round trip, whatever their hosts' clocks say.

Real apps on the session's Redis, real time; one host's clock runs ``SKEW`` ahead (an injected clock: a dependency)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import DISPATCHER, METRICS, STORE, create_app
from gateway.clock import utcnow
from gateway.conversation import Status
from gateway.errors import InboundBusy
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound, Outbound
from gateway.settings import Settings
from gateway.store import Author, OutboxItem, OutboxStatus, TimerKind
from gateway.store import redis_keys as K
from gateway.store.codec import encode_outbound
from gateway.testing import BOT_TOKEN, FakeTelegramAPI
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)
from tests.test_webchat import WALK_TO_QUEUE, hello, say

pytestmark = pytest.mark.redis

SKEW = timedelta(seconds=30)
Client = TestClient[web.Request, web.Application]


def ahead() -> datetime:
    """A host whose clock runs ``SKEW`` ahead of the others' (and of Redis's)."""
    return utcnow() + SKEW


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.02)


@pytest.fixture
def shared(settings: Settings, redis_url: str, telegram: FakeTelegramAPI) -> Settings:  # noqa: F811
    return settings.replace(store=emptied(redis_url), understanding="off", telegram_api_url=telegram.url,
                            telegram_bot_token=BOT_TOKEN, telegram_webhook_secret="s" * 32)  # fmt: skip


async def app(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: Callable[[], datetime]
) -> Client:
    return await aiohttp_client(await create_app(settings, clock=clock, worker_poll_seconds=0.05))


async def test_an_instance_whose_clock_runs_ahead_does_not_send_a_reply_another_is_sending(
    aiohttp_client: Callable[..., Awaitable[Client]], shared: Settings, telegram: FakeTelegramAPI
) -> None:
    """Until 2026-12-07 the second instance, its clock 30 s ahead, read the first one's lease (15 s from the first's
    now) as lapsed and sent the reply again while the first was still sending it: the young person had it twice."""
    first = await app(aiohttp_client, shared, utcnow)
    store = first.app[STORE]
    telegram.stall(only="Bonjour")  # the provider takes its time over the reply: the first instance sends it
    message = Outbound("r1", "c1", ChannelName.TELEGRAM, "424242", "Bonjour")
    await store.outbox_put(OutboxItem("r1", "c1", encode_outbound(message), created_at=utcnow()))
    await telegram.wait_held(1)
    second = await app(aiohttp_client, shared, ahead)
    deadline = time.monotonic() + 3  # 60 of the second instance's polls: a bound on an absence, not a timing guess
    while len(telegram.requests_to(telegram.send_endpoint)) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    telegram.resume()

    async def recorded() -> bool:
        found = await store.outbox_get("c1", "r1")
        return found is not None and found.status == OutboxStatus.SENT

    await until(recorded)
    assert len(telegram.requests_to(telegram.send_endpoint)) == 1  # once
    skew = second.app[METRICS].registry.get_sample_value("gateway_clock_skew_seconds")
    assert skew is not None and 29 < skew < 31  # told: the host's clock is 30 s ahead of Redis's
    ready = await (await second.get("/readyz")).json()
    assert (
        29 < ready["clock_skew_seconds"] < 31 and "clock_skew_seconds" not in await (await first.get("/readyz")).json()
    )


async def test_an_instance_whose_clock_runs_ahead_does_not_mark_a_page_gone_early(
    aiohttp_client: Callable[..., Awaitable[Client]], shared: Settings
) -> None:
    """A web chat socket closes on the first instance, which arms the "young person gone" timer 90 s on. Until
    2026-12-07 the second instance, its clock 120 s ahead, fired it at once: the listeners were told nobody reads
    while the young person's page was only reconnecting."""
    settings = shared.replace(dev_always_open=True)  # the walk to the queue, whatever today's hours
    first = await app(aiohttp_client, settings, utcnow)
    store = first.app[STORE]
    async with first.ws_connect("/chat/ws") as chat:
        token = (await hello(chat))["token"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(chat, f"m{number}", answer)
    found = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert found is not None and found.status == Status.QUEUED

    async def armed() -> bool:
        due = await store.due_timers(utcnow() + timedelta(days=1))
        return any(t.conversation_id == found.id and t.kind == TimerKind.WEBCHAT_GONE for t in due)

    await until(armed)
    await app(aiohttp_client, settings, lambda: utcnow() + timedelta(seconds=120))
    deadline = time.monotonic() + 3  # 60 of the second instance's polls: a bound on an absence, not a timing guess
    while time.monotonic() < deadline:
        conversation = await store.get_conversation(found.id)
        assert conversation is not None and conversation.left_how is None, "marked gone 90 s early"
        await asyncio.sleep(0.05)
    assert await armed()  # still due, for when its 90 s are over


async def test_an_instance_whose_clock_runs_ahead_does_not_take_over_a_message_another_is_processing(
    aiohttp_client: Callable[..., Awaitable[Client]],
    shared: Settings,
    redis_url: str,  # noqa: F811
) -> None:
    """The first instance has claimed a young person's message and waits for its conversation's lock (held here: a
    listener's action, a slow save); the provider redelivers the message to the second instance, its clock 30 s
    ahead. Until 2026-12-07 the store's claim read the host's clock, not the app's (aligned on Redis's ``TIME``):
    the second read the first's lease (2 s on) as lapsed and took the message over, so the first, once it had the
    lock, found the claim somebody else's and answered "retry later" (InboundBusy) for a message it was processing,
    the work made twice. Now the second waits its ``claim_seconds`` for the live owner, then answers "retry later",
    and the first records the message (once)."""
    settings = shared.replace(inbound_claim_seconds=2.0)
    first = await app(aiohttp_client, settings, utcnow)
    store = first.app[STORE]
    assert await first.app[DISPATCHER].handle_inbound(Inbound(ChannelName.TELEGRAM, "424242", "m0", "bonjour"))
    found = await store.find_active_conversation(ChannelName.TELEGRAM, "424242")
    assert found is not None
    second = await app(aiohttp_client, settings, ahead)
    message = Inbound(ChannelName.TELEGRAM, "424242", "m1", "oui")
    taken, let_go = asyncio.Event(), asyncio.Event()

    async def hold() -> None:  # its own task: the lock's context is not the dispatchers' tasks'
        async with store.lock(found.id, timeout=30):
            taken.set()
            await let_go.wait()

    holder = asyncio.create_task(hold())
    await taken.wait()
    processing = asyncio.create_task(first.app[DISPATCHER].handle_inbound(message))
    raw = aioredis.Redis.from_url(redis_url)
    try:

        async def waiting_for_the_lock() -> bool:  # its claim names the conversation: it rode with the lock's try
            value = await raw.get(K.seen_claim(inbound_key(message)))
            return value is not None and f":{found.id}:".encode() in value

        await until(waiting_for_the_lock)
    finally:
        await raw.aclose()
    redelivered = asyncio.create_task(second.app[DISPATCHER].handle_inbound(message))
    await asyncio.wait({redelivered}, timeout=6)  # 3 times its claim_seconds (within the lock's 10 s): a bound
    let_go.set()
    await holder
    assert await processing  # the first one processed it
    assert redelivered.done(), "the second instance took over the claim the first one holds"
    with pytest.raises(InboundBusy):
        await redelivered
    said = [e for e in await store.transcript(found.id) if e.author == Author.USER and e.text == "oui"]
    assert len(said) == 1
