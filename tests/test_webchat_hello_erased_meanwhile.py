"""A page's hello resuming its conversation while a supervisor's erasure of it runs: the hello's guards found it
(``ChatSession._refuse_hello``: its record there, no erasure's mark), then the erasure took the conversation's lock
first and removed it. The hello, given the lock after, opens nothing: the erased young person is not greeted by the
bot in a new conversation (as a message waiting for that lock is refused, ``locked_active``). Until 2026-12-07 (the
resumed hello's one lock, ``Dispatcher.start_conversation``'s ``known``) it went on, the record gone, to
``active_conversation``: a new conversation opened and greeted for the token of the person just erased. The page is
told its conversation ended, as a page coming back after the erasure is (``ChatSession._show_gone``).

The real app on SQLite; its store wrapped by :class:`ErasingFirst` (the real store, nothing of the gateway patched),
which runs the supervisor's erasure (the console's "Effacer", a real request) just before the hello's start asks for
the conversation's lock: the order a busy line gives.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from gateway.app import STORE
from gateway.crypto import DataKeys
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Store, open_store
from tests.conftest import AppFactory, add_listener, login
from tests.test_webchat import hello, receive_until, say


class ErasingFirst:
    """The real store; the first ``locked_batch`` of :attr:`target` (empty: of any conversation) runs :attr:`first`
    with the conversation's id before asking for the lock."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.target = ""
        self.first: Callable[[str], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name != "locked_batch":
            return found

        def locked_batch(conversation_id: str, *args: Any, **kwargs: Any) -> Any:
            if (self.target and conversation_id != self.target) or self.first is None:
                return found(conversation_id, *args, **kwargs)
            first, self.first = self.first, None
            return _after(functools.partial(first, conversation_id), found(conversation_id, *args, **kwargs))

        return locked_batch


@contextlib.asynccontextmanager
async def _after(first: Callable[[], Awaitable[None]], locked: Any) -> AsyncIterator[Any]:
    await first()
    async with locked as held:
        yield held


async def test_a_hello_given_the_lock_after_an_erasure_of_its_conversation_opens_nothing(
    make_client: AppFactory, settings: Settings
) -> None:
    store = ErasingFirst(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    chat = await make_client(settings, store=cast(Store, store))
    await add_listener(chat, "sam", supervisor=True)
    await login(chat, "sam")
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "je veux parler")
    token, erased = session["token"], session["conversation"]
    answers: list[int] = []

    async def supervisor_erases(_: str) -> None:
        answer = await chat.post(f"/api/conversations/{erased}/erase", json={"confirm": True})
        answers.append(answer.status)

    store.target, store.first = erased, supervisor_erases
    async with chat.ws_connect("/chat/ws") as ws:  # the page comes back, its hello resuming the conversation
        await ws.send_json({"type": "hello", "token": token, "conversation": erased, "language": "fr"})
        back = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]
    assert answers == [200]
    assert store.first is None  # the erasure ran between the hello's guards and its lock
    real = chat.app[STORE]
    opened = await real.find_active_conversation(ChannelName.WEBCHAT, token)
    greeted = [] if opened is None else [e for e in await real.transcript(opened.id) if e.author is Author.BOT]
    assert (opened, greeted) == (None, []), (
        f"a new conversation opened for the erased person, {len(greeted)} greeting(s)"
    )
    assert (back["conversation"], back["status"], back["history"]) == (erased, "closed", [])  # told it ended


async def test_a_new_conversation_erased_before_its_greeting_is_not_saved_again(
    make_client: AppFactory, settings: Settings
) -> None:
    """A page's first hello: ``active_conversation`` opened its conversation (its record saved, not greeted yet), then
    a supervisor's erasure of it took the conversation's lock first (the console lists it at once). The hello, given
    the lock after, finds the record gone and the erasure's mark kept: nothing is saved, nobody greeted, the page told
    its conversation ended. Until 2026-12-07 (evening) ``_started`` greeted the copy read before the lock and saved
    it: the erased record brought back, with the bot's greeting in it."""
    store = ErasingFirst(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    chat = await make_client(settings, store=cast(Store, store))
    await add_listener(chat, "sam", supervisor=True)
    await login(chat, "sam")
    answers: list[int] = []

    async def supervisor_erases(conversation_id: str) -> None:
        answer = await chat.post(f"/api/conversations/{conversation_id}/erase", json={"confirm": True})
        answers.append(answer.status)

    store.first = supervisor_erases  # the first conversation whose lock is asked for: this page's new one
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
    assert answers == [200]
    real = chat.app[STORE]
    erased = session["conversation"]
    back = await real.get_conversation(erased)
    greeted = [e for e in await real.transcript(erased) if e.author is Author.BOT]
    assert (back, greeted) == (None, []), (
        f"the erased record saved again ({back is not None}), {len(greeted)} greeting(s)"
    )
    assert await real.find_active_conversation(ChannelName.WEBCHAT, session["token"]) is None
    assert (session["status"], session["history"]) == ("closed", [])  # told it ended
