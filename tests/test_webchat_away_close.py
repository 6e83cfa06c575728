"""A young person's page away (a phone dropping, asleep) while a listener writes "appelle le 119 maintenant" and then
closes the conversation: its next hello, naming its conversation as chat.js does, is shown the end with the listener's
last words and the goodbye. Every message recorded for the young person reaches the page, live or at its next
connection, after a close too.

* On one instance (SQLite), and on two instances on one Redis, the page's instance gone meanwhile (its socket closed
  with it, the page coming back on the other): passed before 2026-12-07 too.
* The close made between the hello's read of its conversation and the hello's opening (the hello's guards, or its
  lock): until 2026-12-07 the hello opened a NEW conversation, greeted by the bot, and the page, following that one,
  never showed the listener's last words nor the goodbye with the numbers (``ChatSession._refuse_hello``).
* A hello that does not name its conversation (bench/chaos_webchat.py's client until 2026-12-07, not chat.js) opens a
  new conversation after an end, as a returning browser's: the page is not shown the ended one. That is what the
  console soak's page (bench/README.md, "console soaked", S2) met: its conversation closed while it was away.

The real app, nothing of the gateway patched; the race made by :class:`ErasingFirst` (the real store, its first
``locked_batch`` of the conversation running the close first).
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Status
from gateway.crypto import DataKeys
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import redis_url
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say
from tests.test_webchat_hello_erased_meanwhile import ErasingFirst

__all__ = ["redis_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]
LAST_WORDS = "Si tu es en danger, appelle le 119 maintenant."
GOODBYE = "La conversation est terminée."  # flows.yaml's ended, in French


async def queued_page(chat: Client) -> tuple[str, str]:
    """A young person's page walked to the queue, then gone (its socket closed): its token and conversation."""
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
    return session["token"], session["conversation"]


async def take(console: Client, conversation_id: str) -> None:
    await add_listener(console, "anne")
    await login(console, "anne")
    taken = await console.post(f"/api/conversations/{conversation_id}/take", json={})
    assert taken.status == 200, await taken.text()


async def write_and_close(console: Client, conversation_id: str) -> None:
    """Anne's last words, then her close."""
    sent = await console.post(f"/api/conversations/{conversation_id}/messages", json={"text": LAST_WORDS})
    assert sent.status == 201, await sent.text()
    closed = await console.post(f"/api/conversations/{conversation_id}/close", json={"outcome": "cyberbullying"})
    assert closed.status == 200, await closed.text()


async def back(chat: Client, token: str, conversation_id: str | None) -> dict[str, Any]:
    """The page back: chat.js's hello (its token and the conversation it follows); its session frame."""
    async with chat.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": token, "conversation": conversation_id, "language": "fr"})
        return (await receive_until(ws, lambda f: f["type"] in ("session", "refused")))[-1]


def shown_end(session: dict[str, Any], conversation_id: str) -> None:
    assert session["type"] == "session", session
    texts = [e["text"] for e in session["history"]]
    assert (session["conversation"], session["status"]) == (conversation_id, "closed"), (
        f"the page follows {'another' if session['conversation'] != conversation_id else 'its'} conversation,"
        f" {session['status']}: {len(texts)} entries, the listener's last words {LAST_WORDS in texts}"
    )
    assert LAST_WORDS in texts and any(GOODBYE in t for t in texts)
    assert texts.index(LAST_WORDS) < next(i for i, t in enumerate(texts) if GOODBYE in t)


async def test_a_page_away_while_a_listener_writes_and_closes_is_shown_both_at_its_hello(client: Client) -> None:
    token, conversation_id = await queued_page(client)
    await take(client, conversation_id)
    await write_and_close(client, conversation_id)
    shown_end(await back(client, token, conversation_id), conversation_id)
    assert await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token) is None  # nothing opened


async def test_a_hello_naming_no_conversation_after_the_close_opens_a_new_one(client: Client) -> None:
    """The console soak's page (bench/chaos_webchat.py's client names no conversation in its hello): after the close,
    its hello is a returning browser's, a new conversation greeted, the ended one's last three entries (the listener
    joining, her words, the goodbye) in no frame it gets. chat.js names its conversation: shown the end."""
    token, conversation_id = await queued_page(client)
    await take(client, conversation_id)
    await write_and_close(client, conversation_id)
    session = await back(client, token, None)
    assert session["conversation"] != conversation_id and session["status"] == "bot"
    assert not any(LAST_WORDS in e["text"] or GOODBYE in e["text"] for e in session["history"])


@pytest.fixture
def on_redis(settings: Settings, redis_url: str) -> Settings:
    connection = redis.Redis.from_url(redis_url)
    try:
        connection.flushdb()
    finally:
        connection.close()
    return settings.replace(store=redis_url)


@pytest.mark.redis
async def test_the_pages_instance_gone_the_page_back_on_the_other_is_shown_both(
    make_client: AppFactory, on_redis: Settings
) -> None:
    """The page on one instance, the listener on the other; the page's instance stops (its socket with it), the
    listener writes and closes; the page comes back on the instance left."""
    one, two = await make_client(on_redis), await make_client(on_redis)
    ws = await one.ws_connect("/chat/ws")
    session = await hello(ws)
    for number, answer in enumerate(WALK_TO_QUEUE):
        await say(ws, f"m{number}", answer)
    token, conversation_id = session["token"], session["conversation"]
    await take(two, conversation_id)
    await one.close()  # the page's instance gone: its socket with it
    await ws.close()
    await write_and_close(two, conversation_id)
    shown_end(await back(two, token, conversation_id), conversation_id)


@pytest.mark.parametrize("at", ["guards", "lock"])
async def test_a_close_made_as_the_page_says_hello_is_shown_it_not_a_new_conversation(
    make_client: AppFactory, settings: Settings, at: str
) -> None:
    """The page's hello reads its conversation open, then the listener's close lands: before the hello's guards
    look for the token's open conversation (``guards``: none found, a new chat asked) or after them, before its
    opening's lock (``lock``: ``EndedMeanwhile``). The page is shown the end, its last words and goodbye, and nothing
    opens. Before: a new conversation, greeted ("guards": session frame of another conversation, status bot)."""
    store = ErasingFirst(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    chat = await make_client(settings, store=cast(Store, store))
    token, conversation_id = await queued_page(chat)
    await take(chat, conversation_id)
    sent = await chat.post(f"/api/conversations/{conversation_id}/messages", json={"text": LAST_WORDS})
    assert sent.status == 201

    async def listener_closes(_: str) -> None:
        closed = await chat.post(f"/api/conversations/{conversation_id}/close", json={"outcome": "cyberbullying"})
        assert closed.status == 200, await closed.text()

    if at == "lock":
        store.target, store.first = conversation_id, listener_closes
        session = await back(chat, token, conversation_id)
        assert store.first is None  # the close came between the hello's guards and its lock
    else:
        session = await back_closing_before_the_guards(chat, store, token, conversation_id, listener_closes)
    shown_end(session, conversation_id)
    assert await store.find_active_conversation(ChannelName.WEBCHAT, token) is None  # nothing opened
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status is Status.CLOSED


async def back_closing_before_the_guards(
    chat: Client, store: ErasingFirst, token: str, conversation_id: str, close: Any
) -> dict[str, Any]:
    """The page's hello, the close made once the hello has read its conversation (still open) and before its guards
    look for the token's open conversation (``find_active_conversation``: a store call of the hello only here)."""
    real = store._store
    calls = {"closed": False}

    class ClosingAtGuards:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def find_active_conversation(self, channel: ChannelName, sender: str) -> Any:
            if not calls["closed"] and sender == token:
                calls["closed"] = True
                await close(conversation_id)
            return await real.find_active_conversation(channel, sender)

    store._store = cast(Store, ClosingAtGuards())
    try:
        session = await back(chat, token, conversation_id)
    finally:
        store._store = real
    assert calls["closed"]
    return session
