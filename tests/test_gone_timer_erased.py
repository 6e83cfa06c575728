"""No "page gone" timer is armed on a web chat conversation being erased: its erasure under way on another instance
(or cut short), its ``Erased`` event not arrived here yet. Until 2026-12-07 the socket leaving it armed one all the
same: on a hello answered as erased (``ChatSession._show_gone``), the conversation the socket followed; on a socket
closing while the erasure held the conversation's lock, the erased conversation, its timer naming it until it fired.

The real app on SQLite; the erasure's steps made by the test as the eraser makes them (its mark, the record's
deletion under the conversation's lock), its event never published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from aiohttp.test_utils import TestClient

from gateway.app import GATE, STORE, WEBCHAT
from gateway.clock import utcnow
from gateway.errors import StoreError
from gateway.messages import ChannelName
from gateway.store import TimerKind
from tests.conftest import Clock
from tests.test_webchat import hello, receive_until, say


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not condition():
            await asyncio.sleep(0.01)


async def gone_timers(client: TestClient, clock: Clock, conversation_id: str) -> int:  # type: ignore[type-arg]
    due = await client.app[STORE].due_timers(clock.now + timedelta(days=1))
    return sum(1 for t in due if t.conversation_id == conversation_id and t.kind == TimerKind.WEBCHAT_GONE)


async def test_a_hello_answered_as_erased_arms_no_timer_on_the_conversation_being_erased(
    client: TestClient,  # type: ignore[type-arg]
    clock: Clock,
) -> None:
    """A page's socket follows its conversation; another instance's erasure of it has written its mark (its first
    step), the record still there; the page's hello naming it is answered ``closed``, and no gone timer is armed on
    it. Before: the socket left it as a closing one does, a timer armed."""
    store, hub = client.app[STORE], client.app[WEBCHAT]
    async with client.ws_connect("/chat/ws") as chat:
        token = (await hello(chat))["token"]
        await say(chat, "m1", "bonjour")
        conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert conversation is not None
        await store.keep_erased(client.app[GATE].keyed.erased_conversation(conversation.id), utcnow(), 3600)
        await chat.send_json({"type": "hello", "token": token, "conversation": conversation.id, "language": "fr"})
        session = (await receive_until(chat, lambda f: f["type"] == "session"))[-1]
        assert session["status"] == "closed"
        await until(lambda: conversation.id not in hub.arming)
        assert await gone_timers(client, clock, conversation.id) == 0


async def test_a_socket_closing_while_its_conversation_is_erased_arms_no_timer(
    client: TestClient,  # type: ignore[type-arg]
    clock: Clock,
) -> None:
    """A page's socket closes while the erasure holds its conversation's lock (its mark written, the record being
    deleted): the gone timer waits for the lock, then finds the record gone and arms nothing. Before: armed on the
    erased conversation's id."""
    store, hub = client.app[STORE], client.app[WEBCHAT]
    chat = await client.ws_connect("/chat/ws")
    token = (await hello(chat))["token"]
    await say(chat, "m1", "bonjour")
    conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    async with store.lock(conversation.id):  # the erasure's ``_erase_one``
        await store.keep_erased(client.app[GATE].keyed.erased_conversation(conversation.id), utcnow(), 3600)
        await chat.close()
        await until(lambda: conversation.id in hub.arming)  # waiting for the lock
        await store.erase_conversation(conversation.id)
    await until(lambda: conversation.id not in hub.arming)
    assert await gone_timers(client, clock, conversation.id) == 0


async def test_a_hello_answered_as_erased_arms_the_timer_of_the_conversation_left_when_its_mark_is_unread(
    client: TestClient,  # type: ignore[type-arg]
    clock: Clock,
) -> None:
    """A socket follows conversation A; a second hello on it names conversation B, erased: answered ``closed``, the
    socket leaves A, and A's erasure's mark is read to decide on its gone timer. That read failing (the store down a
    moment) is taken as "not erased": A's timer is armed (``arm_gone`` tries until the store answers; a timer on a
    conversation erased meanwhile does nothing when it fires). Until 2026-12-07 (evening) the StoreError ended the
    hello and no timer was ever armed for A: a young person gone for good never had their conversation closed."""
    store, hub, keyed = client.app[STORE], client.app[WEBCHAT], client.app[GATE].keyed
    async with client.ws_connect("/chat/ws") as other:  # B: begun, then erased
        other_token = (await hello(other))["token"]
        await say(other, "b1", "bonjour")
        erased = await store.find_active_conversation(ChannelName.WEBCHAT, other_token)
        assert erased is not None
    await store.keep_erased(keyed.erased_conversation(erased.id), utcnow(), 3600)
    await store.erase_conversation(erased.id)
    async with client.ws_connect("/chat/ws") as chat:  # A
        token = (await hello(chat))["token"]
        await say(chat, "a1", "bonjour")
        followed = await store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert followed is not None
        unreadable, read = keyed.erased_conversation(followed.id), store.erased_at

        async def erased_at(mark: str) -> object:  # the store failing on A's mark only (a fault, not the code tested)
            if mark == unreadable:
                raise StoreError("redis: ConnectionError")
            return await read(mark)

        store.erased_at = erased_at
        try:
            await chat.send_json({"type": "hello", "token": other_token, "conversation": erased.id, "language": "fr"})
            session = (await receive_until(chat, lambda f: f["type"] == "session"))[-1]
            assert session["status"] == "closed"  # before: the socket closed on the StoreError, no session frame
        finally:
            del store.erased_at
        await until(lambda: followed.id not in hub.arming)
        assert await gone_timers(client, clock, followed.id) == 1
