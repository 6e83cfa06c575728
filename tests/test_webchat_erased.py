"""The web chat after an erasure, under the faults of real life (the real app on SQLite and a real Redis, raw
websockets as the page's): a message whose ack was lost sent again after the erasure, an old page reconnecting
with its token and the erased conversation, a second tab of the same browser.

Until 2026-12-07 a page whose socket dropped before the erasure said hello with its token and the erased
conversation, and was given a new conversation: the words it had not seen acknowledged went into it, stored again
under a new conversation (and the bot greeted the erased young person again). Now a hello naming a conversation
that no longer exists gets that conversation's end (``status`` ``closed``, nothing of it), nothing opened, and a
message then gets ``ended``, as on a socket that saw the erasure live."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.erasure import EPOCH, FAR
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import STORES, on_store, redis_url
from tests.test_webchat import hello, receive_until, say

__all__ = ["redis_url"]  # a fixture used below

SECRET = "personne ne sait que je dors dehors"
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(params=STORES)
async def chat(request: pytest.FixtureRequest, settings: Settings, make_client: AppFactory) -> Client:
    return await make_client(on_store(request, settings))


async def reconnect(ws: aiohttp.ClientWebSocketResponse, token: str, conversation: str | None) -> dict[str, Any]:
    """The page's hello after a reconnection: its token and the conversation it follows (chat.js)."""
    await ws.send_json({"type": "hello", "token": token, "conversation": conversation, "language": "fr"})
    return (await receive_until(ws, lambda f: f["type"] == "session"))[-1]


async def sent_again(ws: aiohttp.ClientWebSocketResponse, message_id: str, text: str) -> dict[str, Any]:
    """A message the page sends again after its session (it never saw its ack): the server's answer to it."""
    await ws.send_json({"type": "message", "id": message_id, "text": text})
    answers = await receive_until(ws, lambda f: f.get("id") == message_id or f["type"] == "error")
    return answers[-1]


async def everything(client: Client) -> list[Any]:
    return await client.app[STORE].list_conversations(EPOCH, FAR)


async def stored_texts(client: Client) -> list[str]:
    store = client.app[STORE]
    return [e.text for c in await everything(client) for e in await store.transcript(c.id)]


async def supervisor_erases(client: Client, conversation_id: str) -> None:
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    erased = await client.post(f"/api/conversations/{conversation_id}/erase", json={"confirm": True})
    assert erased.status == 200, await erased.text()


async def gone(client: Client, conversation_id: str) -> None:
    """Wait for the erasure to have reached the conversation's record (its last step)."""
    async with asyncio.timeout(20):
        while await client.app[STORE].get_conversation(conversation_id) is not None:
            await asyncio.sleep(0.05)


async def test_a_message_whose_ack_was_lost_sent_again_after_a_supervisors_erasure_is_not_stored(
    chat: Client,
) -> None:
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)  # processed; the page never saw this ack (the socket dropped)
    await supervisor_erases(chat, session["conversation"])
    async with chat.ws_connect("/chat/ws") as ws:
        again = await reconnect(ws, session["token"], session["conversation"])
        assert again["status"] == "closed" and again["history"] == []  # before: "bot", a new conversation greeted
        answer = await sent_again(ws, "m1", SECRET)
    assert answer["type"] == "error" and answer["code"] == "ended"
    assert await everything(chat) == []  # before: a new conversation holding the erased words
    async with chat.ws_connect("/chat/ws") as ws:  # "Nouvelle conversation": a fresh start, knowingly
        fresh = await reconnect(ws, session["token"], None)
    assert fresh["status"] == "bot" and fresh["conversation"] != session["conversation"]
    assert SECRET not in await stored_texts(chat)


async def test_the_confirming_yes_sent_again_after_the_young_persons_erasure_opens_nothing(chat: Client) -> None:
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
        await say(ws, "m2", "Efface mes données stp")
        await ws.send_json({"type": "message", "id": "m3", "text": "oui"})  # the socket drops before any answer
    await gone(chat, session["conversation"])
    async with chat.ws_connect("/chat/ws") as ws:
        again = await reconnect(ws, session["token"], session["conversation"])
        assert again["status"] == "closed" and again["history"] == []
        answers = [await sent_again(ws, "m3", "oui"), await sent_again(ws, "m4", SECRET)]
    assert [a.get("code") for a in answers] == ["ended", "ended"]
    assert await everything(chat) == []


async def test_an_old_page_of_an_erased_conversation_reads_nothing_of_it(chat: Client) -> None:
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
    await supervisor_erases(chat, session["conversation"])
    image = await chat.post("/chat/upload", data=b"\x89PNG\r\n\x1a\n", headers={
        "X-Chat-Token": session["token"], "X-Upload-Id": "u1", "Content-Type": "image/png"})  # fmt: skip
    assert image.status == 409 and (await image.json()) == {"error": "ended"}
    async with chat.ws_connect("/chat/ws") as ws:
        again = await reconnect(ws, session["token"], session["conversation"])
        await ws.send_json({"type": "typing"})
        await ws.send_json({"type": "receipt", "status": "read", "ids": ["x"]})
        await ws.send_json({"type": "end"})
        assert (await sent_again(ws, "m9", "là ?"))["code"] == "ended"
    assert SECRET not in str(again) and again["status"] == "closed"
    assert await everything(chat) == []


async def test_the_other_tab_of_an_erasing_page_is_told_and_its_unsent_words_open_nothing(chat: Client) -> None:
    async with chat.ws_connect("/chat/ws") as first, chat.ws_connect("/chat/ws") as second:
        session = await hello(first)
        await reconnect(second, session["token"], session["conversation"])
        await say(first, "m1", SECRET)
        await say(first, "m2", "Efface mes données stp")
        await first.send_json({"type": "message", "id": "m3", "text": "oui"})
        await receive_until(second, lambda f: f["type"] == "status" and f["status"] == "closed")
        await gone(chat, session["conversation"])  # one sent while it is under way: not covered here
        assert (await sent_again(second, "t1", "tu es là ?"))["code"] == "ended"  # typed in the other tab
    async with chat.ws_connect("/chat/ws") as first:  # the erasing tab: "Nouvelle conversation"
        fresh = await reconnect(first, session["token"], None)
    async with chat.ws_connect("/chat/ws") as second:  # the other tab's socket had dropped: it comes back
        again = await reconnect(second, session["token"], session["conversation"])
        assert again["status"] == "closed" and again["history"] == []  # before: the new conversation resumed
        assert (await sent_again(second, "t1", "tu es là ?"))["code"] == "ended"
    [conversation] = await everything(chat)
    assert conversation.id == fresh["conversation"]
    texts = await stored_texts(chat)
    assert "tu es là ?" not in texts and SECRET not in texts
