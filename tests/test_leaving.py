"""The young person leaves (gateway/leaving.py) through the real app: the quick exit's beacon, "Terminer", and a
web chat page gone for good; each time the listeners get a system entry and the conversation is marked as left."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import STORE, TIMERS
from gateway.conversation import Status
from gateway.leaving import GONE_AFTER
from gateway.store import TimerKind
from tests.conftest import Clock, add_listener, login
from tests.test_timers import conversation_of, fire_and_wait, start
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until

Client = TestClient  # type: ignore[type-arg]


async def system_lines(client: Client, conversation_id: str) -> list[str]:
    return [e.text for e in await client.app[STORE].transcript(conversation_id) if e.author.value == "system"]


async def take(client: Client, conversation_id: str) -> None:
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200


async def test_the_quick_exit_while_waiting_leaves_the_queue_and_tells_the_listeners(
    client: Client, clock: Clock
) -> None:
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)
    assert conversation.status == Status.QUEUED
    response = await client.post("/chat/leave", data=f'{{"token": "{token}"}}')  # text/plain, as a beacon sends
    assert response.status == 204, await response.text()
    left = await conversation_of(client, token, clock)
    assert (left.status, left.left_how) == (Status.ABANDONED, "quick_exit")
    assert await client.app[STORE].waiting() == []
    assert any("sortie rapide" in line for line in await system_lines(client, left.id))


async def test_the_quick_exit_with_a_listener_keeps_it_theirs_and_shows_it(client: Client, clock: Clock) -> None:
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)
    await take(client, conversation.id)
    async with client.ws_connect("/api/events") as events:
        await events.receive_json(timeout=10)  # hello
        assert (await client.post("/chat/leave", json={"token": token})).status == 204

        async def is_system(frame: dict[str, Any]) -> bool:
            return frame.get("type") == "entry" and frame["entry"]["author"] == "system"

        for _ in range(20):  # the console hears it at once
            frame = await events.receive_json(timeout=10)
            if await is_system(frame):
                assert "sortie rapide" in frame["entry"]["text"]
                break
        else:
            raise AssertionError("no system entry reached the console")
    detail = await (await client.get(f"/api/conversations/{conversation.id}")).json()
    assert (detail["status"], detail["left_how"]) == ("with_listener", "quick_exit")
    assert (await client.post("/chat/leave", json={"token": token})).status == 204  # twice: one entry
    assert len([line for line in await system_lines(client, conversation.id) if "sortie rapide" in line]) == 1


async def test_ending_it_yourself_is_marked_as_left(client: Client, clock: Clock) -> None:
    async with client.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status")
    conversation = await conversation_of(client, token, clock)
    assert (conversation.status, conversation.left_how) == (Status.CLOSED, "ended")
    assert any("a terminé la conversation" in line for line in await system_lines(client, conversation.id))


async def test_bad_leave_requests_are_refused_and_unknown_tokens_learn_nothing(client: Client) -> None:
    assert (await client.post("/chat/leave", data="not json")).status == 400
    assert (await client.post("/chat/leave", json={"token": 12})).status == 400
    assert (await client.post("/chat/leave", json=["x"])).status == 400
    assert (await client.post("/chat/leave", data="x" * 5000)).status == 413
    assert (await client.post("/chat/leave", json={"token": "u" * 32})).status == 204


async def test_a_page_gone_for_good_is_told_then_its_return(client: Client, clock: Clock) -> None:
    token = await start(client, WALK_TO_QUEUE)  # the socket closed when it finished
    conversation = await conversation_of(client, token, clock)

    async def armed() -> bool:  # the server saw the socket close
        due = await client.app[STORE].due_timers(clock.now + GONE_AFTER)
        return any(t.conversation_id == conversation.id and t.kind == TimerKind.WEBCHAT_GONE for t in due)

    await fire_and_wait(client, armed)
    clock.advance(seconds=GONE_AFTER.total_seconds() - 5)
    await client.app[TIMERS].fire_due()
    assert not any("fermé le chat" in line for line in await system_lines(client, conversation.id))

    clock.advance(seconds=10)

    async def told() -> bool:
        return any("fermé le chat" in line for line in await system_lines(client, conversation.id))

    await fire_and_wait(client, told)
    assert (await conversation_of(client, token, clock)).left_how == "gone"

    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)  # the same browser comes back

        async def back() -> bool:
            return any("revenu·e" in line for line in await system_lines(client, conversation.id))

        await fire_and_wait(client, back)
        assert (await conversation_of(client, token, clock)).left_how is None
