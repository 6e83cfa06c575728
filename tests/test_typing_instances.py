"""Two instances on one Redis: a listener's typing reaches the young person's app once, not once per instance.

Every instance hears the console's ``typing`` events (they are for every instance's web chat and console sockets),
and each ran the typing relay: with N instances the provider got N identical ``sender_action: typing_on`` calls.
Two real aiohttp servers from the app factory share the session's Redis, with a fake Graph API counting calls; the
listener's keystrokes reach either instance, as through a load balancer. Each instance counts what it did with an
event (``gateway_typing_indicators``: shown, elsewhere, failed), so the test knows when both have dealt with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from gateway.app import STORE, create_app
from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store
from gateway.testing import FakeGraphAPI
from tests.conftest import add_listener, login
from tests.e2e.channel_support import Client, RunningClock, eventually
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url

__all__ = ["messenger_on_redis", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis


async def held_by_anne(store: Store, sender: str) -> str:
    conversation = Conversation.start(ChannelName.MESSENGER, sender, datetime.now(UTC))
    conversation.status, conversation.listener = Status.WITH_LISTENER, "anne"
    await store.save_conversation(conversation)
    return conversation.id


async def outcomes(client: Client) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    prefix = 'gateway_typing_indicators_total{outcome="'
    counts = {"shown": 0.0, "elsewhere": 0.0, "failed": 0.0}
    for line in text.splitlines():
        if line.startswith(prefix):
            label, value = line.removeprefix(prefix).split('"} ')
            counts[label] = float(value)
    return counts


async def test_a_listener_typing_shows_one_indicator_whatever_the_number_of_instances(
    aiohttp_client: Callable[..., Awaitable[Client]], messenger_on_redis: Settings, graph: FakeGraphAPI
) -> None:
    settings = messenger_on_redis
    a = await aiohttp_client(await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05))
    b = await aiohttp_client(await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05))
    store = a.app[STORE]
    warm, zoe = await held_by_anne(store, "psid-warm"), await held_by_anne(store, "psid-zoe")
    await add_listener(a, "anne")
    await login(a, "anne")
    await login(b, "anne")

    async def typing(client: Client, conversation_id: str) -> None:
        assert (await client.post(f"/api/conversations/{conversation_id}/typing", json={})).status == 204

    async def dealt_with(client: Client, count: float) -> bool:
        return sum((await outcomes(client)).values()) >= count

    async def both_listening() -> bool:  # each relay has subscribed (it counted a warm-up keystroke)
        await typing(a, warm)
        for _ in range(10):  # half a second to count it before typing again: a listener may type 60 times a minute
            if await dealt_with(a, 1) and await dealt_with(b, 1):
                return True
            await asyncio.sleep(0.05)
        return False

    await eventually(both_listening)
    before = {name: await outcomes(client) for name, client in (("a", a), ("b", b))}
    await typing(a, zoe)  # two keystrokes, through the balancer to each instance
    await typing(b, zoe)

    async def both_dealt_with_it() -> bool:
        return await dealt_with(a, sum(before["a"].values()) + 1) and await dealt_with(b, sum(before["b"].values()) + 1)

    await eventually(both_dealt_with_it)
    shown = [r.body for r in graph.accepted() if "sender_action" in r.body and r.body["recipient"]["id"] == "psid-zoe"]
    assert shown == [{"recipient": {"id": "psid-zoe"}, "sender_action": "typing_on"}]
    after = {"a": await outcomes(a), "b": await outcomes(b)}
    added = {o: sum(after[i][o] - before[i][o] for i in "ab") for o in ("shown", "elsewhere", "failed")}
    assert added == {"shown": 1, "elsewhere": 1, "failed": 0}
