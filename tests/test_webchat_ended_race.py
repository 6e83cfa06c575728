"""A web chat message or image whose conversation ENDED (not erased) while it waited for the conversation's lock (the
real app on SQLite and a real Redis, raw websockets and uploads as the page's): taken in the sender's next
conversation, which it opens only within the new-chat limits (``Gate.new_chat``: per browser, per client network, the
network's cap of open ones), a risky message opening it all the same (escalate, never silence).

Until 2026-12-07 the store opened that next conversation under the lock with no limit asked: a troll with two tabs
raced "Terminer" against a message (or an image) to open conversations past the hourly limits. The lost case (a
failover, no erasure's mark) is tests/test_webchat_erased.py's; the image kept with the next one within the limits,
tests/test_uploads_ended.py's.

The end is held by the store double of tests/store_holds.py (:class:`Holds`: the real store, nothing of the gateway
patched): the test holds the conversation's lock while the message waits for it, and writes the end there
(the store's own step, as "Terminer" writes it under that lock), or holds the image at its ``put_upload`` while
another tab presses "Terminer".
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.clock import utcnow
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory
from tests.store.conftest import STORES, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_uploads_ended import image_while_ended
from tests.test_webchat import hello, receive_until, say
from tests.test_webchat_erased import everything

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]


async def _ended_while_waiting(chat: Client, store: Holds, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A page's conversation ended (closed, kept) while its message ``m2`` waits for the conversation's lock: the
    page's session and what the server answered the message."""
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
        await say(page, "m1", "bonjour")
        async with store.lock(session["conversation"]):
            store.reached.set()  # the test holds the conversation's lock
            locking = store.told("locked_active")  # the message's turn under the lock
            await page.send_json({"type": "message", "id": "m2", "text": text})
            async with asyncio.timeout(20):
                await locking.wait()  # past the page's look (and the gate's): its conversation still open
            current = await store.get_conversation(session["conversation"])
            assert current is not None
            closed = replace(current, status=Status.CLOSED, closed_at=utcnow())
            await store.save_conversation(closed)  # "Terminer" in another tab: written under this lock
        frames = await receive_until(page, lambda f: f.get("id") == "m2" or f["type"] == "error")
    return session, frames


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_whose_conversation_ends_while_it_waits_opens_the_next_one_only_within_the_limits(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The browser's one chat of the hour was the one that ended: the message is refused (``refused``, the notice),
    nothing opened, the page keeps the words. Until 2026-12-07 the store opened the next conversation for it under
    the lock, past every limit (an ``ack``)."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="1/hour"), store=cast(Store, store))
    session, frames = await _ended_while_waiting(chat, store, "tu es encore là ?")
    [refused] = [f for f in frames if f["type"] == "refused"]  # before: an ack
    # its rate's window end told (since 2026-12-07 night; before, no retry_after); the browser's own: no "limit"
    assert refused == {
        "type": "refused",
        "id": "m2",
        "reason": "rate_limited",
        "retry_after": refused.get("retry_after"),
    }
    assert isinstance(refused["retry_after"], int), refused
    assert [c.id for c in await everything(chat)] == [session["conversation"]]  # before: a second one
    assert await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"]) is None


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_risky_message_whose_conversation_ends_while_it_waits_opens_the_next_one_past_the_limits(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Escalate, never silence: the same message reading a risk opens the next conversation the limits refuse."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="1/hour"), store=cast(Store, store))
    session, frames = await _ended_while_waiting(chat, store, "je veux mourir")
    assert frames[-1] == {"type": "ack", "id": "m2"}, frames[-1]
    following = await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"])
    assert following is not None and following.id != session["conversation"]
    # the page follows the next one (after the ended one's end: a ``resync`` frame naming it, ``show_ended``)
    [resync] = [f for f in frames if f["type"] == "resync" and f["conversation"] != session["conversation"]]
    assert resync["conversation"] == following.id


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_whose_conversation_ends_while_it_waits_counts_once_against_the_limits(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Within the limits (2 an hour for the browser: the first hello, then this message's next conversation) the
    message is taken in the next one: its ``new_chat`` asked once (twice, the second would be the hour's third, and
    refuse it), the next one marked with its client network (counted in that network's cap of open ones)."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="2/hour"), store=cast(Store, store))
    session, frames = await _ended_while_waiting(chat, store, "tu es encore là ?")
    assert frames[-1] == {"type": "ack", "id": "m2"}, frames[-1]
    following = await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"])
    assert following is not None and following.id != session["conversation"]
    assert following.client is not None


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_an_image_whose_conversation_ends_meanwhile_opens_the_next_one_only_within_the_limits(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The image found the conversation open; another tab pressed "Terminer" before the image reached the lock; the
    browser's one chat of the hour was that one: 409 ``ended`` (an upload opens nothing beyond the limits), nothing
    opened. Until 2026-12-07 it opened the next conversation past the limits (201)."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="1/hour"), store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
    old = session["conversation"]
    image = await image_while_ended(chat, store, session)  # "Terminer" in another tab (its hello: not counted)
    store.go.set()
    answer = await image
    assert (answer.status, await answer.json()) == (409, {"error": "ended"})  # before: 201, a second conversation
    assert [c.id for c in await everything(chat)] == [old]
    assert await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"]) is None


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_an_image_whose_conversation_ends_meanwhile_opens_the_next_one_within_the_limits_counted(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Within the limits (2 an hour for the browser) the image goes into the next conversation (201, its file there:
    tests/test_uploads_ended.py), which is marked with the client's network as a page's is, so its network's cap of
    open ones counts it. Until 2026-12-07 the store opened it unmarked: the cap never counted it."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="2/hour"), store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
    old = session["conversation"]
    image = await image_while_ended(chat, store, session)  # "Terminer" in another tab (its hello: not counted)
    store.go.set()
    answer = await image
    assert answer.status == 201
    following = await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"])
    assert following is not None and following.id != old
    assert await answer.json() == {"id": "u1", "conversation": following.id}
    assert following.client is not None  # before: None, outside its network's cap
    images = [a for e in await chat.app[STORE].transcript(following.id) for a in e.attachments]
    assert [(a.url or "").startswith(f"upload:{following.id}/") for a in images] == [True]


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_whose_conversation_ends_while_it_waits_refused_by_the_networks_rate_says_when_and_why(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """Refused by the client network's rate of new chats (``chats_per_address``: the ended one was the hour's), the
    message's ``refused`` frame says when that window ends and that it is the network's (``retry_after``, ``"limit":
    "network"``), as a page's first message's does. The page showing the end tries nothing by itself (chat.js's
    ``heldRetry`` stops at an end): the message waits in its box for "Nouvelle conversation" or "Réessayer", and
    the frame is what any later try reads. Until 2026-12-07 (night) ``ChatSession._refuse_first`` kept the reason
    alone: no ``retry_after``, no ``limit``."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_address="1/hour"), store=cast(Store, store))
    _, frames = await _ended_while_waiting(chat, store, "tu es encore là ?")
    [refused] = [f for f in frames if f["type"] == "refused"]
    # before: {'type': 'refused', 'id': 'm2', 'reason': 'rate_limited'}
    assert {k: v for k, v in refused.items() if k != "retry_after"} == {
        "type": "refused", "id": "m2", "reason": "rate_limited", "limit": "network"
    }, refused  # fmt: skip
    assert isinstance(refused.get("retry_after"), int) and 0 < refused["retry_after"] <= 3600, refused
