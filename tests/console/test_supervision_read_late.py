"""The supervision board's "Risques lus après la fin" through the real app: a conversation ended before the model
read the risk in its message (``Dispatcher._late_after_end``: the young person told where to turn) is listed for
the supervisors, by pseudonym with its flagged messages (never their text nor the sender), openable as an ended
conversation is, until a supervisor marks it seen (audited); listeners never see the list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.store import READ_LATE_HOURS
from tests.conftest import Clock
from tests.console.conftest import other_session
from tests.test_webchat import say


async def test_an_ended_conversation_with_a_risk_read_late_is_on_the_board_until_seen(
    client: TestClient,
    queued: Any,
    clock: Clock,  # type: ignore[type-arg]
) -> None:
    ws, conversation_id = queued
    store = client.app[STORE]
    for path in ("/api/supervision/read-late", f"/api/supervision/read-late/{conversation_id}/seen"):
        response = await (client.get(path) if path.endswith("late") else client.post(path, json={}))
        assert response.status == 403 and (await response.json())["error"] == "supervisors_only", path
    assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200
    await say(ws, "risky", "il a un couteau il arrive")
    closed = await client.post(f"/api/conversations/{conversation_id}/close", json={"outcome": "cyberbullying"})
    assert closed.status == 200
    await store.note_read_late(conversation_id, clock.now)  # as the dispatcher's late reading after the end
    sam = await other_session(client, "sam")
    try:
        [shown] = (await (await sam.get("/api/supervision/read-late")).json())["read_late"]
        opened = await sam.get(f"/api/conversations/{conversation_id}")  # opened as an ended conversation is
        assert opened.status == 200 and (await opened.json())["status"] == "closed"
        seen = await sam.post(f"/api/supervision/read-late/{conversation_id}/seen", json={})
        again = await sam.post(f"/api/supervision/read-late/{conversation_id}/seen", json={})
        after = (await (await sam.get("/api/supervision/read-late")).json())["read_late"]
        await store.note_read_late(conversation_id, clock.now)
        clock.now += timedelta(hours=READ_LATE_HOURS, seconds=1)
        old = (await (await sam.get("/api/supervision/read-late")).json())["read_late"]
    finally:
        await sam.close()
    assert shown["id"] == conversation_id and shown["status"] == "closed" and shown["pseudonym"]
    assert shown["flag"]["risk"] == "imminent_danger" and shown["closed_at"]
    [message] = shown["messages"]
    assert set(message) == {"id", "at", "flag"}  # never the text
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.sender and conversation.sender not in str(shown)
    assert "summary" not in shown and "couteau il arrive" not in str(shown)
    assert seen.status == 200 and again.status == 404 and after == []
    assert old == []  # older than READ_LATE_HOURS: off the board
    audited = [e for e in await store.audit_log(50) if e.action == "read_late_seen"]
    assert [(e.actor, e.subject) for e in audited] == [("sam", conversation_id)]
