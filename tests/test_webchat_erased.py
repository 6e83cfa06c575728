"""The web chat after an erasure, under the faults of real life (the real app on SQLite and a real Redis, raw
websockets as the page's): a message whose ack was lost sent again after the erasure, an old page reconnecting
with its token and the erased conversation, a second tab of the same browser.

Until 2026-12-07 a page whose socket dropped before the erasure said hello with its token and the erased
conversation, and was given a new conversation: the words it had not seen acknowledged went into it, stored again
under a new conversation (and the bot greeted the erased young person again). Now a hello naming a conversation
that no longer exists gets that conversation's end (``status`` ``closed``, nothing of it), nothing opened, and a
message then gets ``ended``, as on a socket that saw the erasure live. So does a message sent while the erasure is
under way (it passed the page's look at its conversation, then waited for the conversation's lock the erasure
held): until 2026-12-07 it found no conversation once the lock was free, opened a new one, was stored in it and
acknowledged, and the bot greeted the erased young person again.

A conversation the store lost without an erasure (a Redis failover; here its record deleted by the store's own step)
is not answered so: the erasure marks the conversations it erases (``KeyedHash.erased_conversation``), and a page
naming one the store lacks, unmarked, gets a conversation that works, its words taken in it.

The erasure is held by the store double of tests/store_holds.py (:class:`Holds`: the real store, nothing of the
gateway patched) at its last step for the conversation, under its lock, its record not yet deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.erasure import EPOCH, FAR
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import STORES, on_store, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_uploads import photo
from tests.test_webchat import hello, receive_until, say

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below

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
        await gone(chat, session["conversation"])  # one sent while it is under way: the tests at the end
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


async def _young_person_erases(ws: aiohttp.ClientWebSocketResponse) -> None:
    await say(ws, "e1", "Efface mes données stp")
    await say(ws, "e2", "oui")  # acknowledged once the erasure is done


@pytest.mark.parametrize("store_url", STORES, indirect=True)
@pytest.mark.parametrize("who", ["supervisor", "young person"])
async def test_a_message_sent_while_its_conversation_is_being_erased_opens_nothing(
    holds: tuple[Settings, Holds], make_client: AppFactory, who: str
) -> None:  # holds first: the app (which closes the store) stops before the fixture closes it again
    """The page follows the conversation; the erasure (a supervisor's, or the young person's own in another tab)
    holds its lock, its record still there; the page sends a message then, which waits for the lock."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as eraser, chat.ws_connect("/chat/ws") as page:
        session = await hello(eraser)
        await reconnect(page, session["token"], session["conversation"])  # the other tab
        await say(eraser, "m1", SECRET)
        store.hold("erase_conversation", session["conversation"])
        erasure = asyncio.create_task(
            supervisor_erases(chat, session["conversation"]) if who == "supervisor" else _young_person_erases(eraser)
        )
        async with asyncio.timeout(20):
            await store.reached.wait()  # under the conversation's lock, its record not deleted yet
        locking = store.told("locked_active")  # a message's turn under the lock
        await page.send_json({"type": "message", "id": "t1", "text": "tu es là ?"})
        async with asyncio.timeout(20):
            await locking.wait()  # past the page's look at its conversation: waiting for its lock
        store.go.set()
        await erasure
        answers = await receive_until(page, lambda f: f.get("id") == "t1" or f["type"] == "error")
    assert answers[-1].get("code") == "ended", answers[-1]  # before: {'type': 'ack', 'id': 't1'}
    assert await everything(chat) == []  # before: a new conversation holding "tu es là ?", the bot's greeting
    async with chat.ws_connect("/chat/ws") as page:  # "Nouvelle conversation": a fresh start, knowingly
        fresh = await reconnect(page, session["token"], None)
        assert fresh["status"] == "bot" and fresh["history"] != []
        await say(page, "t1", "tu es là ?")  # the words put back in the box, sent again: taken now
    [conversation] = await everything(chat)
    assert conversation.id == fresh["conversation"] != session["conversation"]
    assert SECRET not in await stored_texts(chat)


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_an_image_sent_while_its_conversation_is_being_erased_opens_nothing(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The same for the page's image (``POST /chat/upload``): it found the conversation open, then waited for its
    lock while a supervisor's erasure held it."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
        await say(page, "m1", SECRET)
    store.hold("erase_conversation", session["conversation"])
    erasure = asyncio.create_task(supervisor_erases(chat, session["conversation"]))
    async with asyncio.timeout(20):
        await store.reached.wait()
    locking = store.told("locked_active")  # the image's turn under the lock
    headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
    image = asyncio.create_task(chat.post("/chat/upload", data=photo(), headers=headers))
    async with asyncio.timeout(20):
        await locking.wait()
    store.go.set()
    await erasure
    answer = await image
    assert (answer.status, await answer.json()) == (409, {"error": "ended"})  # before: 201, a new conversation
    assert await everything(chat) == []


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_an_image_kept_just_after_its_conversation_was_erased_is_not_left_behind(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The image found the conversation open and was cleaned; the erasure went through before the image was kept
    (``put_upload`` held meanwhile): it is refused (409 ``ended``) and not kept under the erased conversation."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
        await say(page, "m1", SECRET)
    store.hold("put_upload", session["conversation"])
    headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
    image = asyncio.create_task(chat.post("/chat/upload", data=photo(), headers=headers))
    async with asyncio.timeout(20):
        await store.reached.wait()
    await supervisor_erases(chat, session["conversation"])
    store.go.set()
    answer = await image
    assert (answer.status, await answer.json()) == (409, {"error": "ended"})
    kept = f"{session['conversation']}/{hashlib.sha256(b'u1').hexdigest()[:32]}"  # gateway/uploads.py's key
    assert await store.get_upload(kept) is None  # before: the erased young person's image kept, for good
    assert await everything(chat) == []


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_an_image_of_an_erased_conversation_goes_into_no_newer_one(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The image was being kept while a supervisor erased its conversation and another tab of the browser pressed
    "Nouvelle conversation": the image goes into no conversation (409 ``ended``, not kept). Until 2026-12-07 it went
    into the new one (201): a picture sent before the erasure stored again under the young person's next
    conversation, as a message would have in that window."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
        await say(page, "m1", SECRET)
    store.hold("put_upload", session["conversation"])
    headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
    image = asyncio.create_task(chat.post("/chat/upload", data=photo(), headers=headers))
    async with asyncio.timeout(20):
        await store.reached.wait()
    await supervisor_erases(chat, session["conversation"])
    async with chat.ws_connect("/chat/ws") as other_tab:  # "Nouvelle conversation": a hello without the conversation
        newer = await hello(other_tab, session["token"])
    assert newer["conversation"] != session["conversation"] and newer["status"] != "closed"
    store.go.set()
    answer = await image
    assert (answer.status, await answer.json()) == (409, {"error": "ended"})
    entries = await chat.app[STORE].transcript(newer["conversation"])
    assert [e for e in entries if e.attachments] == []  # before: the erased conversation's image in the new one
    kept = f"{session['conversation']}/{hashlib.sha256(b'u1').hexdigest()[:32]}"
    assert await store.get_upload(kept) is None


async def test_a_page_whose_conversation_was_lost_not_erased_is_not_told_it_ended(chat: Client) -> None:
    """The store no longer has the page's conversation, and no erasure took it: lost (a Redis failover with
    ``GATEWAY_REDIS_REPLICA_ACKS=0`` loses a conversation just opened; here its record deleted by hand, the store's
    step alone, nothing of the erasure's). The page's hello is answered as before 2026-12-07 morning: a conversation
    that works, the words it still had to send taken in it. Until the erasure's marker (``KeyedHash.
    erased_conversation``) it was told ``closed`` as after an erasure: the young person told their conversation had
    ended, nobody having ended it, their words left in the message box."""
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "bonjour")
    await chat.app[STORE].erase_conversation(session["conversation"])  # lost: no erasure, no marker
    async with chat.ws_connect("/chat/ws") as ws:
        again = await reconnect(ws, session["token"], session["conversation"])
        assert again["status"] != "closed", again  # before: 'closed', nothing opened
        assert again["conversation"] != session["conversation"]
        answer = await sent_again(ws, "m2", SECRET)  # written while the socket was down: never reached the server
    assert answer == {"type": "ack", "id": "m2"}
    assert [c.id for c in await everything(chat)] == [again["conversation"]]
    assert SECRET in await stored_texts(chat)


async def test_a_message_of_a_page_whose_conversation_was_lost_goes_into_a_new_one(chat: Client) -> None:
    """The same loss under an open socket: the page's next message is taken in a new conversation (its first
    frames sent to the page, a ``resync``), not answered ``ended``; before, the store's missing record was read as
    an erasure."""
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "bonjour")
        await chat.app[STORE].erase_conversation(session["conversation"])  # lost: no erasure, no marker
        await ws.send_json({"type": "message", "id": "m2", "text": SECRET})
        frames = await receive_until(ws, lambda f: f.get("id") == "m2" or f["type"] == "error")
        assert frames[-1] == {"type": "ack", "id": "m2"}, frames[-1]  # before: {'type': 'error', 'code': 'ended'…}
    [resync] = [f for f in frames if f["type"] == "resync"]  # sent before the ack (WebChatHub.opened)
    [conversation] = await everything(chat)
    assert conversation.id == resync["conversation"] != session["conversation"]
    assert SECRET in await stored_texts(chat)


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_whose_conversation_is_lost_while_it_waits_for_its_lock_goes_into_a_new_one(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The message passed the page's look at its conversation, then waited for the conversation's lock (held here
    by the test); the record went meanwhile without an erasure (lost): the store's check of the message's
    conversation (``locked_active``'s ``only``) finds it gone, no erasure's marker: the message is taken in a new
    conversation, as a hello after that loss would, not answered ``ended``."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
        await say(page, "m1", "bonjour")
        async with store.lock(session["conversation"]):
            store.reached.set()  # the test holds the conversation's lock
            locking = store.told("locked_active")  # a message's turn under the lock
            await page.send_json({"type": "message", "id": "m2", "text": SECRET})
            async with asyncio.timeout(20):
                await locking.wait()  # past the page's look at its conversation: waiting for its lock
            await store.erase_conversation(session["conversation"])  # lost: the store's step alone, no marker
        frames = await receive_until(page, lambda f: f.get("id") == "m2" or f["type"] == "error")
    assert frames[-1] == {"type": "ack", "id": "m2"}, frames[-1]  # before: {'type': 'error', 'code': 'ended'…}
    [conversation] = await everything(chat)
    assert conversation.id != session["conversation"]
    assert SECRET in await stored_texts(chat)


async def _lost_while_waiting(chat: Client, store: Holds, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A page's conversation lost (no erasure's marker) while its message ``m2`` waits for the conversation's lock:
    the page's session and what the server answered the message."""
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
        await say(page, "m1", "bonjour")
        async with store.lock(session["conversation"]):
            store.reached.set()  # the test holds the conversation's lock
            locking = store.told("locked_active")  # the message's turn under the lock
            await page.send_json({"type": "message", "id": "m2", "text": text})
            async with asyncio.timeout(20):
                await locking.wait()  # past the page's look (and the gate's): its conversation still there
            await store.erase_conversation(session["conversation"])  # lost: the store's step alone, no marker
        frames = await receive_until(page, lambda f: f.get("id") == "m2" or f["type"] == "error")
    return session, frames


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_whose_conversation_is_lost_while_it_waits_opens_a_new_one_only_within_the_limits(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The message taken in a new conversation after its own was lost is a page's first message: the new-chat
    guards (``Gate.new_chat``) are asked, as for a hello or a held socket's first message. Here the browser's one
    chat of the hour was the lost one: refused (``refused``, the notice), nothing opened, the page keeps the words.
    Until 2026-12-07 the guards were asked only when the loss was seen before the message went to the dispatcher:
    lost while it waited for its lock, a new conversation was opened past every limit (an ``ack``)."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="1/hour"), store=cast(Store, store))
    _, frames = await _lost_while_waiting(chat, store, "tu es encore là ?")
    [refused] = [f for f in frames if f["type"] == "refused"]  # before: an ack
    # its rate's window end told (since 2026-12-07 night; before, no retry_after); the browser's own: no "limit"
    assert refused == {
        "type": "refused",
        "id": "m2",
        "reason": "rate_limited",
        "retry_after": refused.get("retry_after"),
    }
    assert isinstance(refused["retry_after"], int), refused
    assert await everything(chat) == []  # before: a new conversation, past the browser's limit


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_risky_message_whose_conversation_is_lost_while_it_waits_opens_a_new_one_past_the_limits(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Escalate, never silence: the same message reading a risk opens the new conversation the limits refuse."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="1/hour"), store=cast(Store, store))
    session, frames = await _lost_while_waiting(chat, store, "je veux mourir")
    assert frames[-1] == {"type": "ack", "id": "m2"}, frames[-1]
    [conversation] = await everything(chat)
    assert conversation.id != session["conversation"]


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_whose_conversation_is_lost_while_it_waits_refused_by_the_networks_rate_says_when_and_why(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Refused by the client network's rate of new chats (``chats_per_address``: the lost one was the hour's), the
    message's ``refused`` frame says when that window ends and that it is the network's (``retry_after``, ``"limit":
    "network"``), as a page's first message's does: chat.js waits for the window, then tries it by itself. Until
    2026-12-07 (night) ``ChatSession._refuse_first`` kept the reason alone: no ``retry_after``, no ``limit``, and
    the message waited for "Réessayer" for good."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_address="1/hour"), store=cast(Store, store))
    _, frames = await _lost_while_waiting(chat, store, "tu es encore là ?")
    [refused] = [f for f in frames if f["type"] == "refused"]
    # before: {'type': 'refused', 'id': 'm2', 'reason': 'rate_limited'}
    assert {k: v for k, v in refused.items() if k != "retry_after"} == {
        "type": "refused", "id": "m2", "reason": "rate_limited", "limit": "network"
    }, refused  # fmt: skip
    assert isinstance(refused.get("retry_after"), int) and 0 < refused["retry_after"] <= 3600, refused
