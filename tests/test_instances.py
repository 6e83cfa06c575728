"""Two gateway instances on one real Redis: what production with several instances relies on.

A conversation started on one instance continues on the other; a message delivered to both is processed once;
a listener connected to one instance takes a conversation queued through the other and answers it; two listeners on
two instances taking the same conversation at once: one gets it, the young person is told once.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, receive_until, say

pytestmark = pytest.mark.redis

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def redis_settings(settings: Settings, redis_url: str) -> Settings:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return settings.replace(store=redis_url)


async def test_a_conversation_moves_between_instances(make_client: AppFactory, redis_settings: Settings) -> None:
    one, two = await make_client(redis_settings), await make_client(redis_settings)
    async with one.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        await say(ws, "m0", WALK_TO_QUEUE[0])
    async with two.ws_connect("/chat/ws") as ws:
        session = await hello(ws, token)
        frames = await say(ws, "m1", WALK_TO_QUEUE[1])
    assert [e["author"] for e in session["history"]].count("user") == 1
    assert any("âge" in t.lower() for t in bot_texts(frames))


async def test_the_same_message_on_two_instances_is_processed_once(
    make_client: AppFactory, redis_settings: Settings
) -> None:
    one, two = await make_client(redis_settings), await make_client(redis_settings)
    async with one.ws_connect("/chat/ws") as ws_one, two.ws_connect("/chat/ws") as ws_two:
        token = (await hello(ws_one))["token"]
        await hello(ws_two, token)
        await asyncio.gather(
            ws_one.send_json({"type": "message", "id": "twice", "text": "2"}),
            ws_two.send_json({"type": "message", "id": "twice", "text": "2"}),
        )
        await receive_until(ws_one, lambda f: f == {"type": "ack", "id": "twice"})
        await receive_until(ws_two, lambda f: f == {"type": "ack", "id": "twice"})
    store = one.app[STORE]
    conversation = (await store.conversations_by_status(Status.BOT))[0]
    entries = await store.transcript(conversation.id)
    assert [e.author.value for e in entries].count("user") == 1
    assert sum("anglais" in e.text for e in entries if e.author.value == "bot") == 1


async def test_a_listener_on_one_instance_answers_a_chat_on_the_other(
    make_client: AppFactory, redis_settings: Settings
) -> None:
    chat, console = await make_client(redis_settings), await make_client(redis_settings)
    async with chat.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        await add_listener(console, "anne")
        await login(console, "anne")
        waiting = (await (await console.get("/api/queue")).json())["waiting"]
        assert len(waiting) == 1
        conversation = waiting[0]["id"]
        assert (await console.post(f"/api/conversations/{conversation}/take", json={})).status == 200
        sent = await console.post(f"/api/conversations/{conversation}/messages", json={"text": "Je suis là."})
        assert sent.status == 201
        frames = await receive_until(
            ws, lambda f: f["type"] == "entry" and f["entry"]["author"] == "listener", limit=100
        )
    assert frames[-1]["entry"]["text"] == "Je suis là."


async def test_listeners_online_are_counted_across_instances(make_client: AppFactory, redis_settings: Settings) -> None:
    one, two = await make_client(redis_settings), await make_client(redis_settings)
    await add_listener(one, "anne")
    await login(one, "anne")
    await login(two, "anne")  # the same listener in a second tab, on the other instance

    async def online(client: Client, expected: int) -> None:
        for _ in range(200):
            text = await (await client.get("/metrics")).text()
            if f"gateway_listeners_online {float(expected)}" in text:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"listeners online never became {expected}")

    async with one.ws_connect("/api/events") as events:
        await events.receive_json(timeout=10)  # hello
        await online(two, 1)
        async with two.ws_connect("/api/events") as second_tab:
            await second_tab.receive_json(timeout=10)
            await online(one, 1)  # one person, two tabs, two instances: counted once
            await online(two, 1)
    await online(one, 0)
    await online(two, 0)


async def test_sockets_on_one_instance_get_the_events_of_conversations_processed_on_the_other(
    make_client: AppFactory, redis_settings: Settings
) -> None:
    """Each instance is sent only the events its sockets need (store/redis_events.py): a console socket, the first
    on its instance, and a web chat socket following a conversation both get what another instance produced."""
    one, two = await make_client(redis_settings), await make_client(redis_settings)
    await add_listener(two, "anne", supervisor=True)  # a supervisor's console shows a conversation still in the bot
    await login(two, "anne")
    async with one.ws_connect("/chat/ws") as chat_one:
        token = (await hello(chat_one))["token"]
        async with two.ws_connect("/api/events") as console, two.ws_connect("/chat/ws") as chat_two:
            await receive_until(console, lambda f: f["type"] == "hello")
            await hello(chat_two, token)  # the same conversation, followed on instance two
            await say(chat_one, "m0", WALK_TO_QUEUE[0])  # processed on instance one
            frames = await receive_until(
                chat_two, lambda f: f["type"] == "entry" and f["entry"]["author"] == "bot", limit=100
            )
            assert any(f["type"] == "entry" and f["entry"]["author"] == "user" for f in frames)
            seen = await receive_until(
                console, lambda f: f["type"] == "entry" and f["entry"]["author"] == "bot", limit=100
            )
            assert {f["entry"]["author"] for f in seen if f["type"] == "entry"} >= {"user", "bot"}


async def test_two_listeners_on_two_instances_taking_at_once_one_gets_it_and_the_young_person_is_told_once(
    make_client: AppFactory, redis_settings: Settings
) -> None:
    one, two = await make_client(redis_settings), await make_client(redis_settings)
    async with one.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
    await add_listener(one, "anne")
    await add_listener(one, "bruno")
    await login(one, "anne")
    await login(two, "bruno")
    [waiting] = (await (await one.get("/api/queue")).json())["waiting"]
    path = f"/api/conversations/{waiting['id']}/take"
    answers = await asyncio.gather(one.post(path, json={}), two.post(path, json={}))
    assert sorted(a.status for a in answers) == [200, 409]
    [lost] = [await a.json() for a in answers if a.status == 409]
    assert lost["error"] == "taken"
    winner = "anne" if answers[0].status == 200 else "bruno"
    conversation = await one.app[STORE].get_conversation(waiting["id"])
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.WITH_LISTENER, winner)
    entries = await one.app[STORE].transcript(waiting["id"])
    assert sum("vient de te rejoindre" in e.text for e in entries) == 1
    assert [await one.app[STORE].held_by(name) for name in ("anne", "bruno")].count(1) == 1
