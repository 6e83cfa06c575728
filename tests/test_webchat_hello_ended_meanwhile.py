"""A page's hello resuming its conversation while another tab's "Terminer" ends it: the hello's guards found it open
(``ChatSession._refuse_hello``: a resume, not asked of the new-chat limits), then the end took the conversation's lock
first. The hello, given the lock after, is one after that end: the sender's next conversation opens only within the
new-chat limits (``Gate.new_chat``), as a message whose conversation ended while it waited for the lock
(``EndedMeanwhile``, ``tests/test_webchat_ended_race.py``). Until 2026-12-07 (evening) the hello went on to
``active_conversation``: a new conversation opened past every limit, two tabs racing "Terminer" against a hello
opening chats past the hourly limits.

The real app on SQLite; its store wrapped by :class:`ErasingFirst` (the real store, nothing of the gateway patched),
which writes the end (the store's own step, as "Terminer" writes it) just before the hello's start asks for the
conversation's lock.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from gateway.clock import utcnow
from gateway.conversation import Status
from gateway.crypto import DataKeys
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.conftest import AppFactory
from tests.test_webchat import hello, receive_until, say
from tests.test_webchat_hello_erased_meanwhile import ErasingFirst


async def _resumed_after_an_end(
    make_client: AppFactory, settings: Settings, limit: str
) -> tuple[ErasingFirst, str, str, list[dict[str, object]]]:
    store = ErasingFirst(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    chat = await make_client(settings.replace(limit_chats_per_browser=limit), store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "bonjour")
    token, first = session["token"], session["conversation"]

    async def another_tab_ends(conversation_id: str) -> None:
        current = await store.get_conversation(conversation_id)
        assert current is not None and current.active
        await store.save_conversation(replace(current, status=Status.CLOSED, closed_at=utcnow()))

    store.target, store.first = first, another_tab_ends
    async with chat.ws_connect("/chat/ws") as ws:  # the page comes back, its hello resuming the conversation
        await ws.send_json({"type": "hello", "token": token, "language": "fr"})
        frames = await receive_until(ws, lambda f: f["type"] in ("session", "refused"))
    assert store.first is None  # the end came between the hello's guards and its lock
    return store, token, first, frames


async def test_a_hello_whose_conversation_ends_before_its_lock_opens_the_next_one_only_within_the_limits(
    make_client: AppFactory, settings: Settings
) -> None:
    """The browser's one chat of the hour was the one that ended: the hello is refused (its notice), nothing opened.
    Before: a second conversation opened and greeted, past the limit."""
    store, token, _, frames = await _resumed_after_an_end(make_client, settings, "1/hour")
    opened = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert opened is None, f"a conversation opened past the limit ({frames[-1]['type']})"
    assert frames[-1] == {"type": "refused", "id": None, "reason": "rate_limited"}, frames[-1]


async def test_a_hello_whose_conversation_ends_before_its_lock_opens_the_next_one_within_the_limits(
    make_client: AppFactory, settings: Settings
) -> None:
    """Within the limits (2 an hour: the first hello, then this one's next conversation) the page follows the next
    conversation, greeted once, marked with its client network as a page's is."""
    store, token, first, frames = await _resumed_after_an_end(make_client, settings, "2/hour")
    opened = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert opened is not None and opened.id != first and opened.client is not None
    assert frames[-1]["type"] == "session" and frames[-1]["conversation"] == opened.id


class EndingAtOpening:
    """The real store; :attr:`target` is ended (another tab's "Terminer", written as the store's own step) at the
    first step of the hello's opening that reaches the store after its guards: ``active_conversation`` of
    :attr:`sender` (the key's look-up before 2026-12-07 (evening)) or ``keep_opening`` (after)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.sender, self.target = "", ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _end(self) -> None:
        target, self.target = self.target, ""
        current = await self._store.get_conversation(target)
        assert current is not None and current.active
        await self._store.save_conversation(replace(current, status=Status.CLOSED, closed_at=utcnow()))

    async def active_conversation(self, channel: ChannelName, sender: str, *args: Any, **kwargs: Any) -> Any:
        if self.target and sender == self.sender:
            await self._end()
        return await self._store.active_conversation(channel, sender, *args, **kwargs)

    async def keep_opening(self, opening: str, conversation_id: str) -> None:
        if self.target:
            await self._end()
        await self._store.keep_opening(opening, conversation_id)


async def test_a_page_with_its_opening_key_whose_conversation_ends_before_it_is_kept_opens_nothing_past_the_limits(
    make_client: AppFactory, settings: Settings
) -> None:
    """A page that never got its token (its opening key only) resumes the conversation the key opened; that one ends
    before the hello keeps the key for it (``ChatSession._open``'s ``active_conversation``): the browser's one chat
    of the hour was that one, nothing opens. Before: the key's ``active_conversation`` opened a second one past the
    limit, before the hello's start saw the end."""
    store = EndingAtOpening(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    chat = await make_client(settings.replace(limit_chats_per_browser="1/hour"), store=cast(Store, store))
    opening = {"type": "hello", "token": None, "opening": "k3Y-drawn_once-by-the-page-0123", "language": "fr"}
    async with chat.ws_connect("/chat/ws") as ws:
        await ws.send_json(opening)
        session = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]
    store.sender, store.target = session["token"], session["conversation"]
    async with chat.ws_connect("/chat/ws") as ws:  # the page loaded again: its key only
        await ws.send_json(opening)
        frames = await receive_until(ws, lambda f: f["type"] in ("session", "refused"))
    assert store.target == ""  # ended between the hello's guards and its opening
    opened = await store.find_active_conversation(ChannelName.WEBCHAT, session["token"])
    assert opened is None, f"a conversation opened past the limit ({frames[-1]['type']})"
    assert frames[-1] == {"type": "refused", "id": None, "reason": "rate_limited"}, frames[-1]
