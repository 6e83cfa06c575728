"""A conversation that goes back to the queue from a listener (handed back, transferred) is told where it stands at
once: its place while the line is open; while it is closed, the closed-line notice (when it reopens, who answers
now: 119, 3114, 17/112), once, in the young person's language, never a promised wait.

The real app on SQLite, the test's clock: a young person reaches the queue at 22:50 (the line closes at 23:00), a
listener takes the conversation, then gives it back after the closing time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from gateway.app import TIMERS
from tests.conftest import PARIS, Clock, add_listener, login
from tests.test_timers import bot_lines, conversation_of, fire_and_wait, settled, start
from tests.test_webchat import WALK_TO_QUEUE

Client = TestClient  # type: ignore[type-arg]

CLOSED_LINE = "Le chat du 3018 est fermé"


async def taken_before_closing(client: Client, clock: Clock) -> str:
    """A conversation queued at 22:50 and taken by Anne; its id. The clock is then past the closing time."""
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    response = await client.post(f"/api/conversations/{conversation.id}/take", json={})
    assert response.status == 200, await response.text()
    clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)
    return conversation.id


async def told_after(client: Client, conversation_id: str, count: int) -> list[str]:
    """What the bot says after its ``count`` first lines, once it said something (timers fired)."""

    async def said() -> bool:
        return len(await bot_lines(client, conversation_id)) > count

    await fire_and_wait(client, said)
    return (await bot_lines(client, conversation_id))[count:]


async def test_a_conversation_handed_back_after_closing_time_is_told_the_line_is_closed_once(
    client: Client, clock: Clock
) -> None:
    conversation_id = await taken_before_closing(client, clock)
    count = len(await bot_lines(client, conversation_id))
    response = await client.post(f"/api/conversations/{conversation_id}/hand-back", json={})
    assert response.status == 200, await response.text()

    told = await told_after(client, conversation_id, count)  # at once: no reassurance delay to wait for
    assert len(told) == 1 and CLOSED_LINE in told[0] and "119" in told[0] and "3114" in told[0]

    clock.advance(minutes=30)  # the queue's timer comes round again: told once per wait
    await client.app[TIMERS].fire_due()
    await settled(client, conversation_id)
    assert len(await bot_lines(client, conversation_id)) == count + 1


async def test_a_conversation_handed_back_while_the_line_is_open_is_told_its_place(
    client: Client, clock: Clock
) -> None:
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
    count = len(await bot_lines(client, conversation.id))
    assert (await client.post(f"/api/conversations/{conversation.id}/hand-back", json={})).status == 200

    told = await told_after(client, conversation.id, count)
    assert len(told) == 1 and "position 1" in told[0]


async def test_a_transfer_after_closing_time_promises_no_wait_and_gives_the_closed_line_once(
    client: Client, clock: Clock
) -> None:
    conversation_id = await taken_before_closing(client, clock)
    count = len(await bot_lines(client, conversation_id))
    async with client.ws_connect("/api/events") as events:  # Anne online: the wait would be estimated
        await events.receive_json(timeout=10)
        response = await client.post(f"/api/conversations/{conversation_id}/transfer", json={"queue": "listeners"})
        assert response.status == 200, await response.text()

    told = (await bot_lines(client, conversation_id))[count:]
    assert len(told) == 1 and CLOSED_LINE in told[0] and "119" in told[0]
    assert "minutes" not in told[0]  # no "a listener answers in about 12 minutes" while nobody can

    clock.advance(minutes=30)
    await client.app[TIMERS].fire_due()
    await settled(client, conversation_id)
    assert len(await bot_lines(client, conversation_id)) == count + 1


async def test_a_young_person_queued_just_before_closing_time_is_not_promised_a_wait_past_it(
    client: Client, clock: Clock
) -> None:
    """At 22:55, a listener online: "a listener answers in about 12 minutes" while the line closes at 23:00, then at
    23:00 "nobody can answer you here before tomorrow 9h". Told instead that the line closes at 23h, that a listener
    answers before if they can, else at the reopening, and where to turn now. At 14:00 the estimate as before."""
    clock.now = datetime(2026, 3, 10, 22, 55, tzinfo=PARIS).astimezone(UTC)
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/api/events") as events:  # Anne online: the wait would be estimated
        await events.receive_json(timeout=10)
        conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
        told = (await bot_lines(client, conversation.id))[-1]
        assert "minutes" not in told and "position 1" in told
        assert "ferme à 23h" in told and "demain à 9h" in told and "119" in told and "17" in told

        clock.now = datetime(2026, 3, 11, 14, 0, tzinfo=PARIS).astimezone(UTC)
        later = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
        assert "environ" in (await bot_lines(client, later.id))[-1]


async def test_a_listener_logging_out_after_closing_time_tells_the_young_person_they_left_then_the_closed_line(
    client: Client, clock: Clock
) -> None:
    """Anne logs out at 23:05 holding a conversation (the end of her shift): it goes back to the closed queue. The
    young person, in the middle of the exchange, was told only "Le chat du 3018 est fermé…", never that the listener
    who was answering them had gone (as a listener gone from their console tells it: ``listener_disconnected_closed``,
    then the closed line); now both, once each, in that order."""
    conversation_id = await taken_before_closing(client, clock)
    count = len(await bot_lines(client, conversation_id))
    assert (await client.delete("/api/session", json={})).status == 204

    async def closed_line_told() -> bool:  # the queue's timer, at once: before and after the fix
        return any(CLOSED_LINE in line for line in (await bot_lines(client, conversation_id))[count:])

    await fire_and_wait(client, closed_line_told)
    await settled(client, conversation_id)
    told = (await bot_lines(client, conversation_id))[count:]
    assert len(told) == 2, told
    assert "qui te répondait a été déconnecté·e" in told[0] and "fermé maintenant" in told[0]
    assert CLOSED_LINE in told[1] and "119" in told[1] and "3114" in told[1]


async def test_the_last_listener_logging_out_while_the_line_is_open_promises_no_other_listener(
    client: Client, clock: Clock
) -> None:
    """At 14:00 Anne, the only listener at a console, logs out holding a conversation: the young person is told the
    listener left and that nobody else is online (``listener_disconnected_offline``), her own console, still open
    while the logout is answered, not counted as another listener."""
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/api/events") as events:  # Anne at her console
        await events.receive_json(timeout=10)
        assert (await client.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
        count = len(await bot_lines(client, conversation.id))
        assert (await client.delete("/api/session", json={})).status == 204

    told = await told_after(client, conversation.id, count)
    assert "qui te répondait a été déconnecté·e" in told[0] and "aucun·e autre écoutant·e" in told[0], told
