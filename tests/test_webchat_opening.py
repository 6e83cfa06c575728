"""A web chat socket's opening loses nothing: what the forwarding brings while the socket reads its history (a listener
taking the conversation and answering right as the young person's phone reconnects) reaches it after its ``session``
frame, once, in order (docs/guarantees.md, issue 8).

The window is widened by a store double (tests/store_holds.py's :class:`Holds`), not by patching: the history read of
the reconnecting socket is made at once and handed back only when the test says. Meanwhile the listener takes the
conversation and answers, and the test waits until this instance's forwarding has gone past those events: another young
person's chat on the same instance gets an entry published after them (the forwarding hands out one subscription's
events in order). Only then is the history handed back. The other opening (a message starting a new conversation, which
the socket then follows from its start) is held the same way, at the gate's look for an open conversation.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from gateway.conversation import Conversation
from gateway.events import Typing
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.sockets import QUEUE_LIMIT
from gateway.store import Author, Store
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import redis_url, store_url  # an empty store: SQLite, the session's Redis
from tests.store_holds import Holds, holds
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below


def hold_read(store: Holds, method: str, argument: str, *, read_first: bool) -> None:
    """One read (a method, and its last argument) held until :attr:`Holds.go` is set (:attr:`Holds.reached` says it
    was asked for), and made either at once (``read_first``: an answer still on its way while events are published)
    or once released (it finds them)."""
    store.hold(method, lambda *args, **kwargs: args[-1] == argument, after=read_first)


def page(frames: list[dict[str, Any]]) -> tuple[list[str], str | None, list[str]]:
    """What chat.js shows after these frames: the entries' ids in the order shown (each once), the status, and
    the ids the server sent more than once."""
    shown: list[str] = []
    twice: list[str] = []
    status: str | None = None
    for frame in frames:
        entries = {"session": "history", "resync": "entries"}.get(frame["type"])
        batch = frame[entries] if entries else [frame["entry"]] if frame["type"] == "entry" else []
        for entry in batch:
            (twice if entry["id"] in shown else shown).append(entry["id"])
        status = frame.get("status", status) if frame["type"] in ("session", "status", "resync") else status
    return shown, status, twice


async def queued_with_a_listener_logged_in(client: TestClient[Any, Any], store: Holds) -> tuple[str, Conversation]:
    """A young person's chat walked to the queue (the phone then gone: its token, its conversation), and the
    listener anne logged in."""
    async with client.ws_connect("/chat/ws") as phone:
        token = (await hello(phone))["token"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(phone, f"m{number}", answer)
    conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    await add_listener(client, "anne")
    await login(client, "anne")
    return token, conversation


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
@pytest.mark.parametrize("read", ["before", "after"])
async def test_a_listener_answering_while_the_page_reads_its_history_is_shown_once(
    holds: tuple[Settings, Holds], make_client: AppFactory, read: str
) -> None:  # holds first: the app (which closes the store) stops before the fixture closes it again
    """``before``: the history was read before the listener's events (they must follow the session frame);
    ``after``: it finds them, while the forwarding brought them already (they must not come twice)."""
    settings, store = holds
    client = await make_client(settings, store=cast(Store, store))
    token, conversation = await queued_with_a_listener_logged_in(client, store)
    async with client.ws_connect("/chat/ws") as other, client.ws_connect("/chat/ws") as phone:
        await hello(other)  # another young person's chat on this instance: it does not follow the conversation
        hold_read(store, "transcript", conversation.id, read_first=read == "before")
        await phone.send_json({"type": "hello", "token": token, "language": "fr"})  # the phone is back
        async with asyncio.timeout(10):
            await store.reached.wait()  # its history is read: what follows is not in it
        taken = await client.post(f"/api/conversations/{conversation.id}/take", json={})
        assert taken.status == 200
        sent = await client.post(f"/api/conversations/{conversation.id}/messages", json={"text": "Je suis là."})
        assert sent.status == 201
        # published after the listener's events: once the other chat has it, the forwarding went past them
        await other.send_json({"type": "message", "id": "o1", "text": "2"})
        await receive_until(other, lambda f: f["type"] == "entry" and f["entry"]["author"] == "user")
        store.go.set()
        frames = await receive_until(phone, lambda f: f["type"] == "session")
        assert len(frames) == 1, frames  # the session frame comes first
        later = await client.post(f"/api/conversations/{conversation.id}/messages", json={"text": "Tu es là ?"})
        assert later.status == 201
        await receive_until(phone, lambda f: f["type"] == "entry" and f["entry"]["text"] == "Tu es là ?", frames=frames)
    transcript = await store.transcript(conversation.id)
    visible = [e for e in transcript if e.author not in (Author.NOTE, Author.SYSTEM)]
    shown, status, twice = page(frames)
    missing = [f"{e.author.value}: {e.text}" for e in visible if e.id not in shown]
    assert missing == [], "the page lacks what was published while its history was read"
    assert shown == [e.id for e in visible]  # in order
    assert status == "with_listener"
    assert twice == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_message_that_starts_a_new_conversation_gets_it_whole_once(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The socket's conversation closes while its message is on its way (a listener closing it): the message
    starts a new one, which the socket follows from its start (a ``resync`` frame with every entry), each once."""
    settings, store = holds
    client = await make_client(settings, store=cast(Store, store))
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/chat/ws") as phone:
        token = (await hello(phone))["token"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(phone, f"m{number}", answer)
        first = await store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert first is not None
        hold_read(store, "find_active_conversation", token, read_first=False)  # the gate's look for an open one
        await phone.send_json({"type": "message", "id": "late", "text": "Bonjour"})
        async with asyncio.timeout(10):
            await store.reached.wait()  # the message passed the "ended?" check: the listener closes it now
        assert (await client.post(f"/api/conversations/{first.id}/take", json={})).status == 200
        closed = await client.post(f"/api/conversations/{first.id}/close", json={"outcome": "cyberbullying"})
        assert closed.status == 200
        store.go.set()
        frames = await receive_until(phone, lambda f: f == {"type": "ack", "id": "late"}, limit=100)
    second = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert second is not None and second.id != first.id
    visible = [e.id for e in await store.transcript(second.id) if e.author not in (Author.NOTE, Author.SYSTEM)]
    assert visible, "the new conversation has the message"
    resyncs = [f for f in frames if f["type"] == "resync" and f["conversation"] == second.id]  # the ended one's
    assert len(resyncs) == 1 and [e["id"] for e in resyncs[0]["entries"]] == visible  # end came first (show_ended)
    entries = [f["entry"]["id"] for f in frames if f["type"] == "entry"]
    assert not set(entries) & set(visible), "an entry of the new conversation sent twice"


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_a_page_whose_conversation_is_taken_between_its_status_and_its_position_is_told_the_truth(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """The session frame's status is read (queued), then its place in the queue: a listener taking it between the
    two reads left ``queued`` with ``position: null`` (the page showed "position ?"). The position's read is held
    and made after the take."""
    settings, store = holds
    client = await make_client(settings, store=cast(Store, store))
    token, conversation = await queued_with_a_listener_logged_in(client, store)
    async with client.ws_connect("/chat/ws") as phone:
        hold_read(store, "position", conversation.id, read_first=False)
        await phone.send_json({"type": "hello", "token": token, "language": "fr"})  # the phone is back
        async with asyncio.timeout(10):
            await store.reached.wait()  # its status was read: queued
        taken = await client.post(f"/api/conversations/{conversation.id}/take", json={})
        assert taken.status == 200
        store.go.set()
        session = (await receive_until(phone, lambda f: f["type"] == "session"))[-1]
    assert (session["status"], session.get("position")) == ("with_listener", None)
    assert "position" not in session


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_frames_held_while_a_socket_opens_are_bounded_like_its_queue(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """While the reconnecting page's history is read (held here), its conversation's events are kept for it: as
    many as its writer's queue holds (256 frames) with the session frame; one more and the socket is dropped as a
    reader that stopped reading is (``queue_full``), at once, not after the read. The page then reconnects."""
    settings, store = holds
    client = await make_client(settings, store=cast(Store, store))
    async with client.ws_connect("/chat/ws") as phone:
        token = (await hello(phone))["token"]
    conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    async with client.ws_connect("/chat/ws") as phone:
        hold_read(store, "transcript", conversation.id, read_first=True)
        await phone.send_json({"type": "hello", "token": token, "language": "fr"})
        async with asyncio.timeout(10):
            await store.reached.wait()
        for _ in range(QUEUE_LIMIT):  # a listener typing, as another instance publishes it
            await store.publish(Typing(conversation.id, "listener"))
        closed = await phone.receive(timeout=10)  # while the read is still held
        assert closed.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR), closed
        store.go.set()
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert any(line.startswith('gateway_socket_drops_total{reason="queue_full",surface="webchat"} 1') for line in
               metrics), [line for line in metrics if "socket_drops" in line]  # fmt: skip
    async with client.ws_connect("/chat/ws") as phone:  # the page reconnects: its session, whole
        assert (await hello(phone, token))["token"] == token
