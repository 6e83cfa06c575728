"""A listener logged in twice (the desk's computer and a phone, two browsers) who logs out of one keeps the
conversations they hold: they still answer them from the other, which stays logged in. Only a logout that leaves no
live session gives them back to the queue (nobody else may answer them then).

The real app, on SQLite and on the session's Redis.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from tests.conftest import AppFactory, Clock, add_listener
from tests.console.conftest import other_session
from tests.store.conftest import STORES, on_store, redis_url
from tests.test_timers import conversation_of, start
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_url"]  # a fixture used through on_store

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


async def test_logging_out_of_one_browser_keeps_what_the_other_answers(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    client = await make_client(store_settings)
    await add_listener(client, "anne")
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    desk, phone = await other_session(client, "anne"), await other_session(client, "anne")
    try:
        assert (await desk.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
        assert (await phone.delete("/api/session", json={})).status == 204  # the phone logs out
        assert (await desk.get("/api/me")).status == 200  # the desk is still logged in
        queue = await (await desk.get("/api/queue")).json()
        assert [c["id"] for c in queue["mine"]] == [conversation.id], "taken from the listener still answering it"
        reply = await desk.post(f"/api/conversations/{conversation.id}/messages", json={"text": "Je suis là."})
        assert reply.status == 201
        assert (await desk.delete("/api/session", json={})).status == 204  # the last session: given back
        record = await client.app[STORE].get_conversation(conversation.id)
        assert record is not None and record.status == Status.QUEUED and record.listener is None
    finally:
        await desk.close()
        await phone.close()
