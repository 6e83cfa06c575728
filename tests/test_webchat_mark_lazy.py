"""A web chat message computes its conversation's erasure mark (``Dispatcher.erased_mark``, an HMAC:
``KeyedHash.erased_conversation``) only when the store reads it: on ``locked_active``'s ``only`` path (its page's
conversation no longer the sender's open one), never for a message whose conversation is open. Until 2026-12-07 every
web chat message computed it, read or not.

The real app on SQLite; the app's mark counted where the app wires it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import DISPATCHER, STORE
from gateway.conversation import Status
from gateway.errors import EndedMeanwhile
from gateway.messages import ChannelName, Inbound
from tests.test_webchat import hello, say


async def test_a_web_chat_message_computes_the_erasure_mark_only_when_the_store_reads_it(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    """Three messages in the page's open conversation: no mark computed (before: three). Its conversation ended
    while a message written in it waited for its lock (its record left, not erased): the store's ``only`` path reads
    the mark, computed once."""
    dispatcher, store = client.app[DISPATCHER], client.app[STORE]
    mark = dispatcher.erased_mark
    assert mark is not None
    asked: list[str] = []

    def counted(conversation_id: str) -> str:
        asked.append(conversation_id)
        return mark(conversation_id)

    dispatcher.erased_mark = counted
    async with client.ws_connect("/chat/ws") as chat:
        token = (await hello(chat))["token"]
        for number in range(3):
            await say(chat, f"m{number}", "bonjour")
        assert asked == []
        conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert conversation is not None
    # ended while a message written in it waited for its lock (its record left, not erased): the store's ``only``
    # path reads the mark, computed once, and the message opens nothing (the page's socket asks the limits first)
    await store.save_conversation(replace(conversation, status=Status.CLOSED))
    with pytest.raises(EndedMeanwhile):
        await dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, token, "m9", "tu es là ?",
                                                written_in=conversation.id))  # fmt: skip
    assert asked == [conversation.id]
