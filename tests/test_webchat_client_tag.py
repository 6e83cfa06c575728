"""A web chat conversation opened by a message or an image is marked with its client network (``Conversation.client``,
a keyed hash: what the network's cap of open conversations counts, ``Gate.new_chat``) by the opening message's own
commit (``Inbound.client``), on SQLite, a real Redis and a Redis Cluster.

Until 2026-12-07 the mark was a second write after that commit (``webchat._mark_client``; the image's
``Uploads._next_one`` between the opening and the image): an instance dying between the two left the conversation
out of its network's count until the page's next hello (and for good if the page never came back). The death is the
store double of tests/store_holds.py (:class:`Holds`: the real store, nothing of the gateway patched), armed by
:func:`dies_adding_the_mark`: a save of a record that only adds the client mark (no processed mark with it: not a
message's commit) fails as a reset connection does, the writes before it made.
"""

from __future__ import annotations

from typing import Any, cast

import aiohttp

from gateway.app import STORE
from gateway.conversation import Conversation
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import DoneMark, Store
from tests.conftest import AppFactory
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_uploads_ended import image_while_ended
from tests.test_webchat import hello
from tests.test_webchat_ended_race import _ended_while_waiting
from tests.test_webchat_erased import everything

__all__ = ["holds", "redis_cluster_url", "redis_url", "store_url"]  # fixtures used below


def dies_adding_the_mark(store: Holds) -> None:
    """From the hold on (past the page's hello: :attr:`Holds.reached`), a ``save_conversation`` with no processed
    mark that adds the client mark to a stored record fails (StoreError, counted in :attr:`Holds.failed`): the
    instance dead between the opening write and the mark."""

    async def adds_the_mark(conversation: Conversation, done: DoneMark | None = None, **kwargs: Any) -> bool:
        if not store.reached.is_set() or done is not None or conversation.client is None:
            return False
        stored = await store.real.get_conversation(conversation.id)
        return stored is not None and stored.client is None  # this save adds the mark

    store.fail("save_conversation", adds_the_mark, times=None)


async def counted(chat: Any, token: str) -> tuple[str, int]:
    """The id of the token's open conversation and how many open ones its client network's cap counts."""
    following = await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
    assert following is not None
    assert following.client is not None, "the conversation is not marked with its client network"
    return following.id, await chat.app[STORE].open_conversations_of_client(following.client)


async def test_a_conversation_a_message_opens_is_marked_with_its_network_by_the_messages_commit(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """A page's conversation ended while its message waited (another tab's "Terminer"): the message opens the next
    one (within the limits), the instance dying right after that message's commit. Before: the next one unmarked
    (the second write, ``_mark_client``, never made), its network's cap counting 0 open conversations."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="2/hour"), store=cast(Store, store))
    dies_adding_the_mark(store)  # from the hold on: after the hello's greeting (its own mark goes with it)
    answer: dict[str, Any] | None = None
    try:
        _, frames = await _ended_while_waiting(chat, store, "tu es encore là ?")
        answer = frames[-1]
    except aiohttp.WSMessageTypeError:  # before: the socket closed (1013) by the failed mark, after the commit
        pass
    [token] = {c.sender for c in await everything(chat)}
    _, open_ones = await counted(chat, token)
    assert len(await everything(chat)) == 2 and open_ones == 1
    assert (answer, store.failed["save_conversation"]) == ({"type": "ack", "id": "m2"}, 0)


async def test_a_conversation_an_image_opens_is_marked_with_its_network_by_the_images_commit(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    """An image whose conversation ended meanwhile opens the next one (within the limits), the instance dying
    between that opening and the image's commit's neighbour, the mark. Before: 503, the next one left unmarked
    (its network's cap counting 0 open conversations) with no image in it."""
    settings, store = holds
    chat = await make_client(settings.replace(limit_chats_per_browser="2/hour"), store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
    old = session["conversation"]
    image = await image_while_ended(chat, store, session)
    dies_adding_the_mark(store)
    store.go.set()
    answer = await image
    following, open_ones = await counted(chat, session["token"])
    assert following != old and open_ones == 1
    assert (answer.status, store.failed["save_conversation"]) == (201, 0)
