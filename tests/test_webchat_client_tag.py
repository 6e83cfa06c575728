"""A web chat conversation opened by a message or an image is marked with its client network (``Conversation.client``,
a keyed hash: what the network's cap of open conversations counts, ``Gate.new_chat``) by the opening message's own
commit (``Inbound.client``), on SQLite, a real Redis and a Redis Cluster.

Until 2026-12-07 the mark was a second write after that commit (``webchat._mark_client``; the image's
``Uploads._next_one`` between the opening and the image): an instance dying between the two left the conversation
out of its network's count until the page's next hello (and for good if the page never came back). The death is the
store double :class:`Dying` (the real store, nothing of the gateway patched): once armed, a save of a record that
only adds the client mark (no processed mark with it: not a message's commit) fails as a reset connection does, the
writes before it made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

from gateway.app import STORE
from gateway.conversation import Conversation
from gateway.crypto import DataKeys
from gateway.errors import StoreError
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import DoneMark, Store, open_store
from tests.conftest import AppFactory
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_uploads import photo
from tests.test_uploads_ended import ended
from tests.test_webchat import hello
from tests.test_webchat_ended_race import _ended_while_waiting
from tests.test_webchat_erased import Erasing, everything

__all__ = ["redis_cluster_url", "redis_url", "store_url"]  # fixtures used below


class Dying(Erasing):
    """:class:`Erasing`, and once :attr:`armed` and holding (past the page's hello), a ``save_conversation`` with no
    processed mark that adds the client mark to a stored record fails (StoreError): the instance dead between the
    opening write and the mark."""

    armed = False
    deaths = 0

    def __getattr__(self, name: str) -> Any:
        found = super().__getattr__(name)
        if name != "save_conversation":
            return found

        async def save_conversation(conversation: Conversation, done: DoneMark | None = None, **kwargs: Any) -> Any:
            if self.armed and self.holding.is_set() and done is None and conversation.client is not None:
                stored = await self._store.get_conversation(conversation.id)
                if stored is not None and stored.client is None:  # this save adds the mark
                    self.deaths += 1
                    raise StoreError("the connection to the store was reset")
            return await found(conversation, done=done, **kwargs)

        return save_conversation


@pytest.fixture
async def dying(store_url: str, settings: Settings) -> AsyncIterator[tuple[Settings, Dying]]:
    settings = settings.replace(store=store_url)
    store = await open_store(settings.store, keys=DataKeys.from_settings(settings))
    try:
        yield settings, Dying(store)
    finally:
        await store.close()


async def counted(chat: Any, token: str) -> tuple[str, int]:
    """The id of the token's open conversation and how many open ones its client network's cap counts."""
    following = await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
    assert following is not None
    assert following.client is not None, "the conversation is not marked with its client network"
    return following.id, await chat.app[STORE].open_conversations_of_client(following.client)


async def test_a_conversation_a_message_opens_is_marked_with_its_network_by_the_messages_commit(
    dying: tuple[Settings, Dying], make_client: AppFactory
) -> None:
    """A page's conversation ended while its message waited (another tab's "Terminer"): the message opens the next
    one (within the limits), the instance dying right after that message's commit. Before: the next one unmarked
    (the second write, ``_mark_client``, never made), its network's cap counting 0 open conversations."""
    settings, store = dying
    chat = await make_client(settings.replace(limit_chats_per_browser="2/hour"), store=cast(Store, store))
    store.armed = True  # from the hold on: after the hello's greeting (its own mark goes with it)
    answer: dict[str, Any] | None = None
    try:
        _, frames = await _ended_while_waiting(chat, store, "tu es encore là ?")
        answer = frames[-1]
    except aiohttp.WSMessageTypeError:  # before: the socket closed (1013) by the failed mark, after the commit
        pass
    [token] = {c.sender for c in await everything(chat)}
    _, open_ones = await counted(chat, token)
    assert len(await everything(chat)) == 2 and open_ones == 1
    assert (answer, store.deaths) == ({"type": "ack", "id": "m2"}, 0)


async def test_a_conversation_an_image_opens_is_marked_with_its_network_by_the_images_commit(
    dying: tuple[Settings, Dying], make_client: AppFactory
) -> None:
    """An image whose conversation ended meanwhile opens the next one (within the limits), the instance dying
    between that opening and the image's commit's neighbour, the mark. Before: 503, the next one left unmarked
    (its network's cap counting 0 open conversations) with no image in it."""
    settings, store = dying
    chat = await make_client(settings.replace(limit_chats_per_browser="2/hour"), store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
    old = session["conversation"]
    store.hold("put_upload", old)
    headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
    image = asyncio.create_task(chat.post("/chat/upload", data=photo(), headers=headers))
    async with asyncio.timeout(20):
        await store.holding.wait()
    async with chat.ws_connect("/chat/ws") as other_tab:
        await hello(other_tab, session["token"])
        await other_tab.send_json({"type": "end"})
        await ended(chat, old)
    store.armed = True
    store.go_on.set()
    answer = await image
    following, open_ones = await counted(chat, session["token"])
    assert following != old and open_ones == 1
    assert (answer.status, store.deaths) == (201, 0)
