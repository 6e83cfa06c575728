"""A young person who writes words of danger while a listener holds the conversation (the bot says nothing then,
docs/flows.md) and is then given back to the queue (the listener gone without logging out: a tab killed, a laptop
lid closed; or a listener's own hand-back) waits at the priority those words call for, first in line before the
calmer ones, as a message read while waiting would have put them; never back at the priority of before.

The real app on SQLite, the web chat's socket, the test's clock; the alert checks driven as the worker runs them.
Until 2026-12-05 the hand-back put them back at their arrival's priority: "je veux mourir" written to a listener who
had gone left them behind a young person waiting at "high", told a place behind them.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import STORE, WATCH
from gateway.conversation import Priority, Status
from tests.conftest import Clock, add_listener, login
from tests.test_alerts_handback import GRACE, take_with_console_open, waiting_on_the_web_chat, whole
from tests.test_timers import start
from tests.test_webchat import say

Client = TestClient  # type: ignore[type-arg]
UNSURE = ["3", "1", "15", "1", "1", "On se moque de moi."]  # "Je ne sais pas" if in danger: priority high


async def test_words_of_danger_written_to_a_listener_who_left_put_the_young_person_first_in_line(
    client: Client, clock: Clock
) -> None:
    store, watch = client.app[STORE], client.app[WATCH]
    ws, lea = await waiting_on_the_web_chat(client)  # normal priority, first to arrive
    await take_with_console_open(client, lea)  # Anne takes Léa; her console closes without a logout
    clock.advance(minutes=1)
    await start(client, UNSURE)  # Max arrives at "high" while Anne is away
    await say(ws, "danger", "je veux mourir")  # to Anne, who is not there
    await ws.close()
    held = await store.get_conversation(lea)
    assert held is not None and held.status == Status.WITH_LISTENER and held.flag is not None

    await whole(client)
    await watch.check()  # her absence seen
    clock.advance(seconds=GRACE)
    await watch.check()  # handed back by itself
    back = await store.get_conversation(lea)
    assert back is not None and back.status == Status.QUEUED
    first, second = await store.waiting()
    assert (first.conversation_id, first.priority) == (lea, Priority.URGENT)  # not behind Max at "high"
    assert second.priority == Priority.HIGH
    assert await store.position(lea) == 1


async def test_a_listeners_own_hand_back_keeps_the_priority_the_words_called_for(client: Client) -> None:
    store = client.app[STORE]
    ws, lea = await waiting_on_the_web_chat(client)
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    await say(ws, "danger", "je veux mourir")
    await ws.close()
    assert (await client.post(f"/api/conversations/{lea}/hand-back", json={})).status == 200
    [entry] = await store.waiting()
    assert entry.priority == Priority.URGENT and entry.flag is not None
    queue = await (await client.get("/api/queue")).json()
    assert [(c["id"], c["priority"]) for c in queue["waiting"]] == [(lea, "urgent")]
