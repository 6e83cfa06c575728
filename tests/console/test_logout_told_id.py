"""A listener's logout hands back what they hold, the young person told first that their listener is gone: that
message's id derives from the hold (as the automatic hand-back's does, ``_hold_key``), so a logout tried again after
a Redis cut in the middle writes the same entry and outbox item, which the store ignores: sent once, never twice nor
lost. Until 2026-12-06 it had a random id. The real app on SQLite, the test's clock (the line open)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.ids import derived_id
from gateway.store import Author
from tests.conftest import Clock, add_listener, login
from tests.test_timers import conversation_of, start
from tests.test_webchat import WALK_TO_QUEUE

Client = TestClient  # type: ignore[type-arg]


async def test_a_logouts_listener_gone_message_has_an_id_derived_from_the_hold(client: Client, clock: Clock) -> None:
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
    held = await client.app[STORE].get_conversation(conversation.id)
    assert held is not None and held.taken_at is not None
    hold = f"handback:{held.id}:anne:{held.taken_at.isoformat()}"  # actions._hold_key, this hold's
    assert (await client.delete("/api/session", json={})).status == 204

    transcript = await client.app[STORE].transcript(conversation.id)
    [told] = [e for e in transcript if e.author == Author.BOT and "déconnecté·e" in e.text]
    assert told.id == derived_id(hold, 1)
