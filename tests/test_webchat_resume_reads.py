"""A web chat page's hello that resumes its conversation looks the token's conversation up once and takes one lock:
``Dispatcher.start_conversation`` resumes the one the hello's guards found (``known``), and the page's return
(``leaving.came_back``) and the client's mark are made under the lock it resumes with. Until 2026-12-07 each resumed
hello looked it up twice (``_refuse_hello``'s ``find_active_conversation``, then ``start_conversation``'s
``active_conversation``), read its record three times and took two locks (the start's, then
``leaving.returned``'s): ~16 round trips one after another, multiplied by the ~1,000 pages of a killed instance
coming back to the survivor at once.

The real app on SQLite; its store's calls counted by a counting double of those methods (the store's own code runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Status
from gateway.messages import ChannelName
from tests.test_webchat import hello, say

COUNTED = ("find_active_conversation", "active_conversation", "get_conversation", "lock", "save_conversation")


def counting(store: Any, calls: Counter[str]) -> Callable[[], None]:
    """Each of ``COUNTED`` counted as the store is called; what undoes it."""
    originals = {name: getattr(store, name) for name in COUNTED}

    def counted(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return originals[name](*args, **kwargs)

        return call

    for name in COUNTED:
        setattr(store, name, counted(name))
    return lambda: [setattr(store, name, original) for name, original in originals.items()] and None


async def test_a_resumed_hello_looks_its_conversation_up_once_under_one_lock(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    """A page comes back (token and conversation, as after its instance died; another tab of it open, whose close
    would arm a timer while counted): the token looked up once, one lock, one save; its session is its conversation,
    its history whole (before: looked up twice, two locks; the record read 6 times, now 5)."""
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as earlier:  # open throughout: its close is not counted
        first = await hello(earlier)
        await say(earlier, "m1", "Oui, maintenant")
        calls: Counter[str] = Counter()
        undo = counting(store, calls)
        async with client.ws_connect("/chat/ws") as page:
            try:
                await page.send_json({"type": "hello", "token": first["token"],
                                      "conversation": first["conversation"], "language": "fr"})  # fmt: skip
                frames = [await page.receive_json(timeout=10)]
                while frames[-1]["type"] != "session":
                    frames.append(await page.receive_json(timeout=10))
            finally:
                undo()  # before either socket closes (each close arms its gone timer under the lock)
    session = frames[-1]
    assert session["conversation"] == first["conversation"] and session["token"] == first["token"]
    assert len(session["history"]) > len(first["history"])  # the message and its reply are there
    looked_up = calls["find_active_conversation"] + calls["active_conversation"]
    assert (looked_up, calls["lock"], calls["save_conversation"]) == (1, 1, 1), dict(calls)
    assert calls["get_conversation"] <= 5, dict(calls)  # before: 6 (the start's, then the return's under its lock)


async def test_a_page_gone_comes_back_under_the_one_lock(client: TestClient) -> None:  # type: ignore[type-arg]
    """A conversation marked gone (its page away past the timer) whose page comes back: the mark lifted, the page's
    return dated, its client kept, in the one save of the resumed hello."""
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as page:
        first = await hello(page)
    conversation = await store.find_active_conversation(ChannelName.WEBCHAT, first["token"])
    assert conversation is not None and conversation.client is not None and conversation.status is Status.BOT
    conversation.left_at, conversation.left_how = conversation.created_at, "gone"
    await store.save_conversation(conversation)
    async with client.ws_connect("/chat/ws") as page:
        await hello(page, first["token"])
    back = await store.get_conversation(conversation.id)
    assert back is not None and back.left_how is None and back.left_at is None
    assert back.page_opened_at is not None and back.client == conversation.client
    assert any(e.system is not None and e.system.code == "left.back" for e in await store.transcript(back.id))
