"""The inbox worker in the running app (SQLite): an inbound message that keeps failing is set aside after its
tries, kept in the store (never dropped), counted, logged and shown by /readyz, and its sender's next messages go
on. The failing item is put straight into the store, as a newer gateway sharing it would (a channel this version
does not know)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.inbox import inbound_to_dict, sender_key
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, InboxItem
from tests.conftest import Clock
from tests.e2e.channel_support import eventually

Client = TestClient[web.Request, web.Application]


async def test_an_inbound_message_failing_again_and_again_is_set_aside_and_kept(
    client: Client, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = client.app[STORE]
    later = Inbound(ChannelName.WEBCHAT, "session-token-1", "m2", "bonjour")
    key = sender_key(later)
    newer = {"channel": "carrier-pigeon", "sender": "session-token-1", "message_id": "m1", "text": "coucou"}
    await store.inbox_put([InboxItem("from-a-newer-version", key, newer, clock()),
                           InboxItem("m2", key, inbound_to_dict(later), clock())])  # fmt: skip

    async def set_aside() -> bool:
        clock.advance(seconds=61)  # past any backoff: the worker tries again at its next poll
        return await store.inbox_set_aside_count() == 1

    await eventually(set_aside)

    async def next_one_processed() -> bool:
        conversation = await store.find_active_conversation(ChannelName.WEBCHAT, "session-token-1")
        return conversation is not None and not await store.inbox_waiting(key) and any(
            e.author is Author.USER and e.text == "bonjour" for e in await store.transcript(conversation.id)
        )

    await eventually(next_one_processed)  # the sender's next message was not held behind it
    assert await store.inbox_set_aside_count() == 1  # still kept
    logged = [r.getMessage() for r in caplog.records if "from-a-newer-version" in r.getMessage()]
    assert any("set aside after 10 attempts" in line and "kept" in line for line in logged)
    assert "coucou" not in caplog.text  # never the message's text
    ready = await client.get("/readyz")
    assert (await ready.json())["inbox_set_aside"] == 1
    assert "gateway_inbox_set_aside 1.0" in await (await client.get("/metrics")).text()
