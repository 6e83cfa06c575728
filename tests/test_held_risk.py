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

from gateway.app import FLOWS, STORE, WATCH
from gateway.conversation import Priority, Status
from tests.conftest import Clock, add_listener, login
from tests.test_alerts_handback import GRACE, take_with_console_open, waiting_on_the_web_chat, whole
from tests.test_timers import start
from tests.test_waiting_partners import bot_texts
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


async def partner_texts(client: Client, *names: str) -> dict[str, str]:
    engine = client.app[FLOWS].engine()
    return {name: engine.text(engine.flow.partners[name].message, "fr") for name in names}


async def test_a_hand_back_after_words_of_danger_while_held_gives_the_partners_they_call_for(
    client: Client, clock: Clock
) -> None:
    store = client.app[STORE]
    partners = await partner_texts(client, "3114", "emergency")
    ws, lea = await waiting_on_the_web_chat(client)  # normal priority: no partner given at the hand-off
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    await say(ws, "danger", "je veux mourir")  # to Anne: the bot says nothing
    assert not set(partners.values()) & set(await bot_texts(store, lea))
    assert (await client.post(f"/api/conversations/{lea}/hand-back", json={})).status == 200
    said = await bot_texts(store, lea)
    assert partners["3114"] in said and partners["emergency"] in said  # where to turn now, as waiting would
    back = await store.get_conversation(lea)
    assert back is not None and back.partners_given.count("3114") == 1

    clock.advance(minutes=1)
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    assert (await client.post(f"/api/conversations/{lea}/hand-back", json={})).status == 200
    again = await bot_texts(store, lea)
    assert again.count(partners["3114"]) == 1 and again.count(partners["emergency"]) == 1  # each once
    await ws.close()


async def test_a_transfer_after_words_of_danger_while_held_gives_the_partners_not_given_by_the_listener(
    client: Client,
) -> None:
    store = client.app[STORE]
    partners = await partner_texts(client, "3114", "119", "emergency")
    ws, lea = await waiting_on_the_web_chat(client)
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    await say(ws, "danger", "je veux mourir")
    await say(ws, "home", "mon beau-père me frappe")  # harm at home too: 119
    assert (await client.post(f"/api/conversations/{lea}/refer", json={"partner": "3114"})).status == 201
    before = await bot_texts(store, lea)
    assert (await client.post(f"/api/conversations/{lea}/transfer", json={"queue": "listeners"})).status == 200
    said = (await bot_texts(store, lea))[len(before) :]
    assert partners["119"] in said and partners["emergency"] in said
    assert partners["3114"] not in said  # Anne gave it herself
    assert said.count(partners["emergency"]) == 1  # an urgent transfer's, not twice
    await ws.close()


async def test_the_gateways_hand_back_after_words_of_danger_gives_the_partners_after_saying_why(
    client: Client, clock: Clock
) -> None:
    store, watch = client.app[STORE], client.app[WATCH]
    partners = await partner_texts(client, "3114", "emergency")
    ws, lea = await waiting_on_the_web_chat(client)
    await take_with_console_open(client, lea)
    await say(ws, "danger", "je veux mourir")
    await whole(client)
    await watch.check()
    clock.advance(seconds=GRACE)
    await watch.check()  # handed back by itself
    said = await bot_texts(store, lea)
    disconnected = next(n for n, text in enumerate(said) if "déconnecté" in text)
    assert said[disconnected + 1 : disconnected + 3] == [partners["3114"], partners["emergency"]]
    await ws.close()
