"""The web chat after an erasure cut short (on SQLite, Redis and a Redis Cluster): the erasure marked the conversation
erased (``KeyedHash.erased_conversation``, its first step, before anything of it goes), then was cut before the
record's deletion, the store's last step (the instance killed, the connection to Redis reset). On a Cluster the
mark and the record live in different slots: no script can write one and delete the other at once, so this state
is one a cut leaves, and the store's deletions there go one by one (``redis_steps.ordered``): the conversation's
active key may be gone with its record still there.

A page coming back then names a conversation whose record is still there, marked erased. It is told it ended, as
after the whole erasure (``ChatSession._show_gone``): nothing of it shown, nothing it sends again stored. Until
2026-12-07 the mark was read only once the record was gone: the page's hello resumed the conversation being erased
(its history shown, the young person's words sent again stored in it) or, its active key deleted already, opened a
new one (the bot greeting the erased young person again, their words stored in it). The supervisor's "Effacer"
sent again finishes the erasure (``test_erasure_cut``): nothing of the person left.

The cut: the store double of tests/store_holds.py (:class:`Holds`: the real store, nothing of the gateway patched)
raising at the store's deletion of the conversation as a reset connection does, its writes before it made (its
``fail``); on one Redis, the real cut of ``tests/cutting_proxy.py`` just before the record's DEL (its active key
deleted already).
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from gateway import leaving
from gateway.app import STORE, WEBCHAT
from gateway.clock import utcnow
from gateway.erasure import FAR
from gateway.settings import Settings
from gateway.store import Store, TimerKind
from gateway.store import redis_keys as K
from tests.conftest import AppFactory, add_listener, login
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import emptied, redis_cluster_url, redis_url, store_url
from tests.store_holds import Holds, holds, open_holds
from tests.test_uploads import photo
from tests.test_webchat import hello, receive_until, say
from tests.test_webchat_erased import (
    SECRET,
    Client,
    everything,
    reconnect,
    sent_again,
    stored_texts,
)

__all__ = ["holds", "redis_cluster_url", "redis_url", "store_url"]  # fixtures used below

AGAIN = "tu es là ? je t'écris encore"
DEL = b"\r\nDEL\r\n"


async def erase(client: Client, conversation_id: str) -> int:
    """Sam, a supervisor, presses "Effacer" (logged in once): the answer's status."""
    if not getattr(client, "sam", False):
        await add_listener(client, "sam", supervisor=True)
        await login(client, "sam")
        client.sam = True  # type: ignore[attr-defined]
    answer = await client.post(f"/api/conversations/{conversation_id}/erase", json={"confirm": True})
    return answer.status


async def page_comes_back(chat: Client, token: str, conversation_id: str) -> None:
    """The page whose socket dropped before the erasure: its hello names the conversation, then it sends again
    what it never saw acknowledged. Told it ended; nothing of it shown, nothing stored."""
    async with chat.ws_connect("/chat/ws") as ws:
        again = await reconnect(ws, token, conversation_id)
        assert (again["status"], again["history"]) == ("closed", []), again  # before: resumed, or a new one greeted
        assert again["conversation"] == conversation_id
        answer = await sent_again(ws, "t1", AGAIN)
    assert answer.get("code") == "ended", answer  # before: {'type': 'ack', 'id': 't1'}
    assert AGAIN not in await stored_texts(chat)


async def test_a_page_back_after_an_erasure_cut_before_its_record_is_told_it_ended(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:  # holds first: the app (which closes the store) stops before the fixture closes it again
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
    store.fail("erase_conversation", session["conversation"])
    assert await erase(chat, session["conversation"]) == 503
    assert store.failed["erase_conversation"] == 1
    assert await chat.app[STORE].get_conversation(session["conversation"]) is not None  # the cut left it
    await page_comes_back(chat, session["token"], session["conversation"])
    assert await erase(chat, session["conversation"]) == 200  # sent again: finished
    assert await everything(chat) == []
    assert SECRET not in await stored_texts(chat)


@pytest.mark.redis
async def test_a_page_back_after_an_erasure_cut_between_its_active_key_and_its_record_is_told_it_ended(
    redis_url: str, settings: Settings, make_client: AppFactory
) -> None:
    """The real cut on one Redis (a Cluster's deletions go one by one: there a reset lands between any two): the
    conversation's active key deleted, its record not. Before: the hello found the record, no active conversation
    for the token, and opened a new one, the bot greeting the erased young person, their words stored in it."""
    async with cutting_proxy(emptied(redis_url)) as proxy:
        chat = await make_client(settings.replace(store=proxy.url), worker_poll_seconds=3600)
        async with chat.ws_connect("/chat/ws") as ws, chat.ws_connect("/chat/ws") as other_tab:
            session = await hello(ws)
            await reconnect(other_tab, session["token"], session["conversation"])
            await say(ws, "m1", SECRET)
            proxy.cut_before(DEL, K.conversation(session["conversation"]).encode())
            assert await erase(chat, session["conversation"]) == 503
            assert proxy.cut == 1
            kept = await chat.app[STORE].get_conversation(session["conversation"])
            assert kept is not None and kept.active
            assert await chat.app[STORE].find_active_conversation(kept.channel, kept.sender) is None  # key gone
            answer = await sent_again(other_tab, "t2", AGAIN)  # in flight as the erasure's "closed" came
        assert answer.get("code") == "ended", answer  # before: {'type': 'ack', 'id': 't2'}, in a new conversation
        await page_comes_back(chat, session["token"], session["conversation"])
        assert [c.id for c in await everything(chat)] == [session["conversation"]]  # before: a new one too
        assert await erase(chat, session["conversation"]) == 200
        assert await everything(chat) == []


async def test_a_new_conversation_after_an_erasure_cut_before_its_record_finishes_it_and_opens_a_new_one(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """ "Nouvelle conversation" (a hello with the token, naming no conversation) after an erasure cut before the
    record, the token's active key still there. Before: the hello resumed the conversation being erased, its
    history shown (the erased young person's words), the new one never opened."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
    store.fail("erase_conversation", session["conversation"])
    assert await erase(chat, session["conversation"]) == 503
    async with chat.ws_connect("/chat/ws") as ws:
        fresh = await hello(ws, session["token"])
        assert fresh["conversation"] != session["conversation"]  # before: the erased one resumed
        assert SECRET not in [e["text"] for e in fresh["history"]]
        await say(ws, "m2", AGAIN)
    assert [c.id for c in await everything(chat)] == [fresh["conversation"]]  # the erasure finished
    assert SECRET not in await stored_texts(chat)
    assert AGAIN in await stored_texts(chat)
    erasures = [e for e in await chat.app[STORE].audit_log(20) if e.action == "erase"]
    # once, naming who asked (listed since 2026-12-07; before, actor "gateway", "finished when its web chat page
    # came back")
    assert [e.actor for e in erasures] == ["sam"]
    assert erasures[0].detail.startswith("1 conversation(s), ")
    assert erasures[0].detail.endswith("(asked to a supervisor)")
    assert await erase(chat, session["conversation"]) == 404  # nothing left of it


async def test_a_page_that_never_got_its_session_after_an_erasure_cut_gets_a_new_conversation(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """A page without a token whose opening key opened the conversation (``_opened_by``), back after an erasure of
    it cut before the record. Before: it was given that conversation again, its history and its token."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    opening = {"type": "hello", "token": None, "opening": "opening-key-of-the-page-0003", "language": "fr"}
    async with chat.ws_connect("/chat/ws") as ws:
        await ws.send_json(opening)
        first = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]
        await say(ws, "m1", SECRET)
    store.fail("erase_conversation", first["conversation"])
    assert await erase(chat, first["conversation"]) == 503
    async with chat.ws_connect("/chat/ws") as ws:
        await ws.send_json(opening)
        again = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]
    assert again["conversation"] != first["conversation"]  # before: the erased one, with its history
    assert again["token"] != first["token"]
    assert SECRET not in [e["text"] for e in again["history"]]
    assert [c.id for c in await everything(chat)] == [again["conversation"]]
    assert SECRET not in await stored_texts(chat)


@pytest.mark.redis
async def test_an_image_that_found_its_conversation_open_opens_nothing_after_its_erasure_was_cut_before_the_record(
    redis_url: str, settings: Settings, make_client: AppFactory
) -> None:
    """The page's image (``POST /chat/upload``) found its conversation open, then was kept (``put_upload``, held by
    the store double ``Holds``) while a supervisor's erasure was cut on one Redis between the conversation's active
    key and its record (``tests/cutting_proxy.py``). Its message names the conversation (``Inbound.written_in``): the
    store's check (``locked_active(only=...)``) reads the erasure's mark, as for an erasure completed: 409 ``ended``,
    nothing opened. Before: only the record was read, still there: a new conversation opened with the image, the bot
    greeting the erased young person again."""
    async with cutting_proxy(emptied(redis_url)) as proxy:
        settings = settings.replace(store=proxy.url)
        store = await open_holds(settings)  # the app closes it
        chat = await make_client(settings, store=cast(Store, store), worker_poll_seconds=3600)
        async with chat.ws_connect("/chat/ws") as page:
            session = await hello(page)
            await say(page, "m1", SECRET)
        store.hold("put_upload", session["conversation"])
        headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
        image = asyncio.create_task(chat.post("/chat/upload", data=photo(), headers=headers))
        async with asyncio.timeout(20):
            await store.reached.wait()
        proxy.cut_before(DEL, K.conversation(session["conversation"]).encode())
        assert await erase(chat, session["conversation"]) == 503
        assert proxy.cut == 1
        store.go.set()
        answer = await image
        assert (answer.status, await answer.json()) == (409, {"error": "ended"})  # before: (201, {'id': 'u1'})
        assert [c.id for c in await everything(chat)] == [session["conversation"]]  # before: a new one too
        assert await erase(chat, session["conversation"]) == 200
        assert await everything(chat) == []


async def test_a_message_from_a_page_still_open_after_an_erasure_cut_before_its_record_is_written_nowhere(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The page stayed open through the erasure, cut before the record with the token's active key kept (the
    address read by the message still names the conversation): a message it sends then (written before the
    erasure's "closed" reached it) is answered ``ended``, its words left in the page's box, stored nowhere. The
    store reads the erasure's mark kept with the conversation (``store.erasing``) with the record, in the lock's own
    script or hop: no read more a message. Before: acknowledged and stored in the conversation being erased, its
    words kept until the erasure was finished."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
        store.fail("erase_conversation", session["conversation"])
        assert await erase(chat, session["conversation"]) == 503
        kept = await chat.app[STORE].get_conversation(session["conversation"])
        assert kept is not None and kept.active  # the cut left it, its address too
        assert await chat.app[STORE].find_active_conversation(kept.channel, kept.sender) is not None
        answer = await sent_again(ws, "m2", AGAIN)
    assert answer.get("code") == "ended", answer  # before: {'type': 'ack', 'id': 'm2'}
    assert AGAIN not in await stored_texts(chat)  # before: stored in the conversation being erased
    assert [c.id for c in await everything(chat)] == [session["conversation"]]  # nothing opened
    assert await erase(chat, session["conversation"]) == 200
    assert await everything(chat) == []


async def test_a_page_closing_after_an_erasure_cut_before_its_record_arms_no_gone_timer(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The socket-close path (``leaving.socket_closed``, which ``WebChatHub.arm_gone`` runs) of an instance whose
    page followed the conversation without its ``Erased`` event (another instance's socket, an event lost with a
    subscription): after an erasure cut before the record, it arms no gone timer on it, as on one erased whole. Read
    under the lock with the record (``store.erasing``: Redis the lock's script, no command more). Before: a timer
    armed, which 90 s later marked the page gone in the conversation being erased (a system entry written in it)."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
    conversation_id = session["conversation"]
    real, hub = chat.app[STORE], chat.app[WEBCHAT]
    async with asyncio.timeout(20):  # this page's own timer armed (before the erasure: the erasure deletes it)
        while conversation_id in hub.arming:
            await asyncio.sleep(0.01)
    store.fail("erase_conversation", conversation_id)
    assert await erase(chat, conversation_id) == 503
    assert await real.get_conversation(conversation_id) is not None  # the cut left it
    await real.cancel_timers(conversation_id, TimerKind.WEBCHAT_GONE)  # as after its erasure's own deletion
    await leaving.socket_closed(real, conversation_id, utcnow())
    timers = [t for t in await real.due_timers(FAR) if t.conversation_id == conversation_id]
    assert [t for t in timers if t.kind is TimerKind.WEBCHAT_GONE] == []  # before: one, due in 90 s
    assert await erase(chat, conversation_id) == 200
    assert await everything(chat) == []
