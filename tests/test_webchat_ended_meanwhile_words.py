"""A young person's message crossing the listener's close: the listener writes "appelle le 119 maintenant" and closes
while the page's message waits for the conversation's lock (``EndedMeanwhile``): the message is taken in a NEW
conversation, which the socket then follows (``ChatSession._deliver``: ``_follow``, the hub's ``attach`` detaching it
from the ended one). The page is shown, before anything of the new conversation, the listener's last words, the
goodbye with where to turn, and the end (status ``closed``) of the conversation it followed, each entry once.

The real app on SQLite and on a real Redis, raw websockets as the page's, the console's real requests; the store
wrapped by :class:`tests.store_holds.Holds` (the real store, nothing of the gateway patched): the close runs at the
message's ``locked_active``, and, in the ``forwarder_slow`` variant, the web chat's forwarder is held at its read of
another conversation's status (a listener taking a second young person's conversation just before, the store slow to
answer that one read), so that the ended conversation's events are still behind it when the socket follows the new
one. Until 2026-12-07 that variant failed: the page's socket was detached from the ended conversation before its
events were forwarded, and they went to no socket ("no last words, no goodbye, no end before the new conversation");
the page followed the new conversation, the bot greeting it, and never showed where to turn.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import STORES, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say
from tests.test_webchat_away_close import GOODBYE, LAST_WORDS
from tests.test_webchat_hello_erased_meanwhile import _after

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]


class ClosingFirst:
    """The store (:class:`Holds` on the real one, or the real one); the first ``locked_active`` of :attr:`sender` (a
    web chat message's or image's) runs :attr:`first` before asking for the conversation's lock: another writer (a
    listener's close) got there first. Shared by tests/e2e/test_chat_follows_next.py and its image twin."""

    def __init__(self, store: Holds | Store) -> None:
        self._store = store
        self.sender = ""
        self.first: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name != "locked_active":
            return found

        def locked_active(channel: ChannelName, sender: str, *args: Any, **kwargs: Any) -> Any:
            if sender != self.sender or self.first is None:
                return found(channel, sender, *args, **kwargs)
            first, self.first = self.first, None
            return _after(first, found(channel, sender, *args, **kwargs))

        return locked_active


def _texts(frame: dict[str, Any]) -> list[tuple[str, str]]:
    """The entries a frame carries: (id, text)."""
    if frame["type"] == "entry":
        return [(frame["entry"]["id"], frame["entry"]["text"])]
    listed = frame.get("entries", frame.get("history", [])) if frame["type"] in ("resync", "session") else []
    return [(e["id"], e["text"]) for e in listed]


@pytest.mark.parametrize("forwarder_slow", [False, True], ids=["forwarder_on_time", "forwarder_slow"])
@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_message_crossing_the_close_shows_the_last_words_and_the_end_before_the_new_conversation(
    holds: tuple[Settings, Holds], make_client: AppFactory, forwarder_slow: bool
) -> None:
    settings, store = holds
    closing = ClosingFirst(store)
    chat = await make_client(settings, store=cast(Store, closing))
    await add_listener(chat, "anne")
    await login(chat, "anne")
    async with chat.ws_connect("/chat/ws") as other, chat.ws_connect("/chat/ws") as page:
        other_session = await hello(other)  # another young person's page on this instance, waiting in line
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(other, f"o{number}", answer)
        session = await hello(page)
        token, ended = session["token"], session["conversation"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(page, f"m{number}", answer)
        taken = await chat.post(f"/api/conversations/{ended}/take", json={})
        assert taken.status == 200, await taken.text()
        await receive_until(page, lambda f: f["type"] == "status" and f["status"] == "with_listener")

        async def listener_writes_and_closes() -> None:
            if forwarder_slow:  # the forwarder held at its read of the other conversation's status, taken now
                store.hold("get_conversation", lambda cid, *_, **__: cid == other_session["conversation"]
                           and asyncio.current_task() is not None
                           and asyncio.current_task().get_name() == "webchat-events")  # fmt: skip
                other_taken = await chat.post(f"/api/conversations/{other_session['conversation']}/take", json={})
                assert other_taken.status == 200, await other_taken.text()
                async with asyncio.timeout(20):
                    await store.reached.wait()
            sent = await chat.post(f"/api/conversations/{ended}/messages", json={"text": LAST_WORDS})
            assert sent.status == 201, await sent.text()
            closed = await chat.post(f"/api/conversations/{ended}/close", json={"outcome": "cyberbullying"})
            assert closed.status == 200, await closed.text()

        closing.sender, closing.first = token, listener_writes_and_closes
        await page.send_json({"type": "message", "id": "late", "text": "tu es encore là ?"})
        frames = await receive_until(page, lambda f: f == {"type": "ack", "id": "late"})
        assert closing.first is None  # the close came as the message waited for its lock
        store.go.set()  # the forwarder goes on: the ended conversation's events reach no socket of the page now
        await page.send_json({"type": "message", "id": "after", "text": "merci"})
        frames += await receive_until(page, lambda f: f == {"type": "ack", "id": "after"})

    following = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert following is not None and following.id != ended  # the message was taken in a new conversation
    new_at = next(i for i, f in enumerate(frames) if f["type"] == "resync" and f["conversation"] == following.id)
    before = frames[:new_at]
    texts = [text for frame in before for _, text in _texts(frame)]
    closed_told = any(
        f["type"] in ("status", "resync") and f["status"] == "closed" and f.get("conversation", ended) == ended
        for f in before
    )
    assert LAST_WORDS in texts and any(GOODBYE in t for t in texts) and closed_told, (
        f"before the new conversation: last words {LAST_WORDS in texts}, goodbye {any(GOODBYE in t for t in texts)},"
        f" end {closed_told}"
    )
    assert texts.index(LAST_WORDS) < next(i for i, t in enumerate(texts) if GOODBYE in t)
    twice = [i for i, n in Counter(i for frame in frames for i, _ in _texts(frame)).items() if n > 1]
    assert not twice, f"entries sent twice to the page: {len(twice)}"
