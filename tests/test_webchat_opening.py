"""A web chat socket's opening loses nothing: what the forwarding brings while the socket reads its history (a
listener taking the conversation and answering right as the young person's phone reconnects) reaches it after
its ``session`` frame, once, in order (docs/guarantees.md, issue 8).

The window is widened by a store double, not by patching: the history read of the reconnecting socket is made at
once and handed back only when the test says. Meanwhile the listener takes the conversation and answers, and the
test waits until this instance's forwarding has gone past those events: another young person's chat on the same
instance gets an entry published after them (the forwarding hands out one subscription's events in order). Only
then is the history handed back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from gateway.crypto import DataKeys
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Store, TranscriptEntry, open_store
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import redis_url, store_url  # noqa: F401  (an empty store: SQLite, the session's Redis)
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say


class HeldHistory:
    """The real store, except that one transcript read, once armed for a conversation, is held until
    :attr:`release` is set (:attr:`reading` says it was asked for), and made either at once (``read_first``: an
    answer still on its way while events are published) or once released (it finds them)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._armed: str | None = None
        self.read_first = True
        self.reading, self.release = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def hold(self, conversation_id: str) -> None:
        self._armed = conversation_id

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        if conversation_id != self._armed:
            return await self._store.transcript(conversation_id)
        self._armed = None
        entries = await self._store.transcript(conversation_id) if self.read_first else []
        self.reading.set()
        await self.release.wait()
        return entries if self.read_first else await self._store.transcript(conversation_id)


@pytest.fixture
async def held(store_url: str, settings: Settings) -> AsyncIterator[tuple[Settings, HeldHistory]]:  # noqa: F811
    settings = settings.replace(store=store_url)
    store = await open_store(settings.store, keys=DataKeys.from_settings(settings))
    try:
        yield settings, HeldHistory(store)
    finally:
        await store.close()


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


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
@pytest.mark.parametrize("read", ["before", "after"])
async def test_a_listener_answering_while_the_page_reads_its_history_is_shown_once(
    held: tuple[Settings, HeldHistory], make_client: AppFactory, read: str
) -> None:  # held first: the app (which closes the store) stops before the fixture closes it again
    """``before``: the history was read before the listener's events (they must follow the session frame);
    ``after``: it finds them, while the forwarding brought them already (they must not come twice)."""
    settings, store = held
    store.read_first = read == "before"
    client = await make_client(settings, store=cast(Store, store))
    async with client.ws_connect("/chat/ws") as phone:
        token = (await hello(phone))["token"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(phone, f"m{number}", answer)
    conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/chat/ws") as other, client.ws_connect("/chat/ws") as phone:
        await hello(other)  # another young person's chat on this instance: it does not follow the conversation
        store.hold(conversation.id)
        await phone.send_json({"type": "hello", "token": token, "language": "fr"})  # the phone is back
        async with asyncio.timeout(10):
            await store.reading.wait()  # its history is read: what follows is not in it
        taken = await client.post(f"/api/conversations/{conversation.id}/take", json={})
        assert taken.status == 200
        sent = await client.post(f"/api/conversations/{conversation.id}/messages", json={"text": "Je suis là."})
        assert sent.status == 201
        # published after the listener's events: once the other chat has it, the forwarding went past them
        await other.send_json({"type": "message", "id": "o1", "text": "2"})
        await receive_until(other, lambda f: f["type"] == "entry" and f["entry"]["author"] == "user")
        store.release.set()
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
