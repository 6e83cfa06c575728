"""Timers in the running server: bot reminder and abandon, queue reassurance and closed line, idle close.

The app's clock is the test's; the timers worker polls it. Each test moves the clock past a timer, asks the
timers to fire (the worker may get there first: either way exactly one instance handles a timer) and waits for
what the young person is told.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE, TIMERS
from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import TranscriptEntry
from gateway.timers import BASE_DELAY
from tests.conftest import PARIS, AppFactory, Clock, add_listener, login
from tests.e2e.channel_support import eventually
from tests.test_handoff import listener_online
from tests.test_webchat import WALK_TO_QUEUE, hello, say

Client = TestClient  # type: ignore[type-arg]


async def start(client: Client, answers: list[str]) -> str:
    """A web chat conversation that answered ``answers``; its session token."""
    async with client.ws_connect("/chat/ws") as ws:
        token: str = (await hello(ws))["token"]
        for number, answer in enumerate(answers):
            await say(ws, f"m{number}", answer)
    return token


async def conversation_of(client: Client, token: str, clock: Clock) -> Conversation:
    store = client.app[STORE]
    conversations = [c for status in Status for c in await store.conversations_by_status(status)]
    matching = [c for c in conversations if c.channel == ChannelName.WEBCHAT and c.sender == token]
    assert len(matching) == 1
    return matching[0]


async def bot_lines(client: Client, conversation_id: str) -> list[str]:
    entries: list[TranscriptEntry] = await client.app[STORE].transcript(conversation_id)
    return [e.text for e in entries if e.author.value == "bot"]


async def settled(client: Client, conversation_id: str) -> None:
    """Instead of sleeping: a timer is handled under its conversation's lock (by this pass or by the worker's),
    so once the lock is free, whatever was due has been handled."""
    async with client.app[STORE].lock(conversation_id):
        pass


async def fire_and_wait(client: Client, condition: Callable[[], Any]) -> None:
    """Fire due timers, then wait (generously) until ``condition()`` holds."""
    await client.app[TIMERS].fire_due()
    for _ in range(400):
        if await condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the timer's effect never showed")


async def test_a_quiet_young_person_is_reminded_then_the_conversation_is_abandoned(
    client: Client, clock: Clock
) -> None:
    token = await start(client, ["2"])  # waiting at the language question
    conversation = await conversation_of(client, token, clock)
    before = await bot_lines(client, conversation.id)

    clock.advance(minutes=11)

    async def reminded() -> bool:
        return len(await bot_lines(client, conversation.id)) > len(before)

    await fire_and_wait(client, reminded)
    after = await bot_lines(client, conversation.id)
    assert any("toujours là" in line for line in after[len(before) :])
    assert after[-1] == before[-1]  # the question is asked again
    assert (await conversation_of(client, token, clock)).status == Status.BOT

    clock.advance(minutes=31)

    async def abandoned() -> bool:
        return (await conversation_of(client, token, clock)).status == Status.ABANDONED

    await fire_and_wait(client, abandoned)
    assert "plus de nouvelles" in (await bot_lines(client, conversation.id))[-1]


async def test_an_answer_in_time_means_no_reminder(client: Client, clock: Clock) -> None:
    token = await start(client, ["2"])
    clock.advance(minutes=9)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await say(ws, "late", "1")
    conversation = await conversation_of(client, token, clock)
    count = len(await bot_lines(client, conversation.id))
    clock.advance(minutes=2)  # 11 minutes after the first answer, 2 after the second
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert len(await bot_lines(client, conversation.id)) == count


async def test_waiting_in_the_queue_is_reassured_with_the_position(client: Client, clock: Clock) -> None:
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)
    assert conversation.status == Status.QUEUED
    lines = await bot_lines(client, conversation.id)
    assert "position 1" in lines[-1] and "Aucun·e écoutant·e" in lines[-1] and "17" in lines[-1]

    count = len(lines)
    clock.advance(minutes=6)  # still nobody online: said again, never "a listener is coming"

    async def said_again() -> bool:
        return len(await bot_lines(client, conversation.id)) > count

    await fire_and_wait(client, said_again)
    again = (await bot_lines(client, conversation.id))[-1]
    assert "position 1" in again and "Aucun·e écoutant·e" in again

    async with listener_online(client):
        clock.advance(minutes=6)

        async def reassured() -> bool:
            return "On ne t'oublie pas" in (await bot_lines(client, conversation.id))[-1]

        await fire_and_wait(client, reassured)
        assert "position 1" in (await bot_lines(client, conversation.id))[-1]


async def test_nobody_online_all_evening_is_said_again_less_often_never_left_silent(
    client: Client, clock: Clock
) -> None:
    """A young person waiting from 18:00 to 23:00 with no listener online: `queued_offline` at the hand-off, again 5
    minutes later, then less often as the wait grows, never more than 30 minutes apart. Each is a notification on their
    phone, maybe read by someone beside them: until 2026-12-05 it was said every 5 minutes, 60 times that evening."""
    clock.now = datetime(2026, 3, 10, 18, 0, tzinfo=PARIS).astimezone(UTC)
    async with client.ws_connect("/chat/ws") as ws:  # the page stays open all evening (never "gone")
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        [entry] = await client.app[STORE].waiting()
        conversation_id = entry.conversation_id
        told_at = [clock.now]
        while clock.now < datetime(2026, 3, 10, 22, 55, tzinfo=PARIS).astimezone(UTC):
            count = len(await bot_lines(client, conversation_id))
            clock.advance(minutes=5)
            await client.app[TIMERS].fire_due()
            await settled(client, conversation_id)
            lines = await bot_lines(client, conversation_id)
            assert all("Aucun·e écoutant·e" in line for line in lines[count:])  # never "a listener is coming"
            told_at += [clock.now] * (len(lines) - count)
    gaps = [later - earlier for earlier, later in itertools.pairwise(told_at)]
    assert gaps[0] == timedelta(minutes=5) and max(gaps) <= timedelta(minutes=30)
    assert 10 <= len(told_at) <= 16, len(told_at)


async def test_a_queue_that_closes_while_waiting_sends_the_closed_line_once(client: Client, clock: Clock) -> None:
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)  # open until 23:00
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)
    assert conversation.status == Status.QUEUED

    clock.now = datetime(2026, 3, 10, 23, 1, tzinfo=PARIS).astimezone(UTC)
    count = len(await bot_lines(client, conversation.id))

    async def told() -> bool:
        return len(await bot_lines(client, conversation.id)) > count

    await fire_and_wait(client, told)
    lines = await bot_lines(client, conversation.id)
    closed_line = lines[-1]
    assert "9h" in closed_line or "rouvre" in closed_line.lower() or "ferm" in closed_line.lower()
    assert "119" in closed_line or "3114" in closed_line  # where to turn now

    clock.advance(minutes=6)
    count = len(lines)
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert len(await bot_lines(client, conversation.id)) == count  # told once per wait
    assert (await conversation_of(client, token, clock)).status == Status.QUEUED  # still kept for the listener


async def test_a_wait_that_outlasts_a_day_is_told_the_line_closed_again_the_next_night(
    client: Client, clock: Clock
) -> None:
    """Queued at 22:50, told at 23:01 the line is closed until 9h; still waiting the next day (no listener took them,
    they wrote at noon, which keeps them in line), the line closes again at 23:00: told again, with when it reopens
    and where to turn tonight. It was told once per wait: the second night, silence after a day of "a listener is
    coming as soon as possible"."""
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)

    async def told_closed(count: int) -> list[str]:
        await client.app[TIMERS].fire_due()
        await settled(client, conversation.id)
        return [line for line in (await bot_lines(client, conversation.id))[count:] if "est fermé" in line]

    clock.now = datetime(2026, 3, 10, 23, 1, tzinfo=PARIS).astimezone(UTC)
    [first] = await told_closed(0)
    assert "demain à 9h" in first
    clock.now = datetime(2026, 3, 11, 9, 1, tzinfo=PARIS).astimezone(UTC)  # open again: told their place
    assert await told_closed(0) == [first]
    assert "position 1" in (await bot_lines(client, conversation.id))[-1]
    clock.now = datetime(2026, 3, 11, 12, 0, tzinfo=PARIS).astimezone(UTC)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await say(ws, "noon", "toujours personne ?")
    count = len(await bot_lines(client, conversation.id))

    clock.now = datetime(2026, 3, 11, 23, 1, tzinfo=PARIS).astimezone(UTC)
    [again] = await told_closed(count)
    assert "demain à 9h" in again and "119" in again and "3114" in again
    clock.advance(minutes=6)
    assert await told_closed(count) == [again]  # once that night
    assert (await conversation_of(client, token, clock)).status == Status.QUEUED


async def test_a_machine_suspended_for_an_hour_abandons_nobody_for_the_silence_it_caused(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """The VM sleeps an hour and its wall clock jumps forward on resume: a young person reminded 5 minutes before is
    not told goodbye at once (they could not write: the gateway was away); their 30 minutes count the time it ran."""
    client = await make_client(settings, awake=clock.monotonic)
    token = await start(client, ["2"])
    conversation = await conversation_of(client, token, clock)
    clock.advance(minutes=11)

    async def reminded() -> bool:
        return any("toujours là" in line for line in await bot_lines(client, conversation.id))

    await fire_and_wait(client, reminded)
    clock.advance(minutes=5)
    clock.jump(hours=1)  # the abandon was due 25 minutes into the sleep

    for _ in range(400):  # the worker's next pass: the abandon handled (before) or moved on (now)
        if not await client.app[STORE].due_timers(clock()):
            break
        await asyncio.sleep(0.025)
    await settled(client, conversation.id)
    assert (await conversation_of(client, token, clock)).status == Status.BOT
    assert not any("plus de nouvelles" in line for line in await bot_lines(client, conversation.id))

    clock.advance(minutes=26)  # 31 minutes of the gateway running since the reminder: abandoned, told once

    async def abandoned() -> bool:
        return (await conversation_of(client, token, clock)).status == Status.ABANDONED

    await fire_and_wait(client, abandoned)
    assert sum("plus de nouvelles" in line for line in await bot_lines(client, conversation.id)) == 1


async def test_a_conversation_idle_for_a_day_is_closed(client: Client, clock: Clock) -> None:
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)
    await add_listener(client, "alice")
    await login(client, "alice")
    assert (await client.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200

    clock.advance(hours=25)

    async def closed() -> bool:
        return (await conversation_of(client, token, clock)).status == Status.CLOSED

    await fire_and_wait(client, closed)
    assert "faute de nouvelles" in (await bot_lines(client, conversation.id))[-1]
    assert (await conversation_of(client, token, clock)).outcome == "idle"


async def test_an_idle_close_of_a_young_person_at_risk_never_taken_is_never_silent(
    client: Client, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A young person who wrote words of danger, handed off urgent, waits 25 hours and nobody takes them: the idle
    close still says goodbye with where to turn, and it is an alert: one WARNING line (the id and the risk's class,
    never a word) and ``gateway_idle_closed_at_risk_total``. Before, nothing said so: they left the queue and the
    supervision board unseen. An ordinary waiting conversation closed alike counts nothing."""
    caplog.set_level(logging.WARNING, logger="gateway.leaving")
    risky = await conversation_of(client, await start(client, ["je veux mourir"]), clock)
    ordinary = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    assert risky.status == ordinary.status == Status.QUEUED and risky.flag is not None and ordinary.flag is None
    clock.advance(hours=25)

    async def both_ended() -> bool:
        ended = [await client.app[STORE].get_conversation(c.id) for c in (risky, ordinary)]
        return all(c is not None and not c.active for c in ended)

    await fire_and_wait(client, both_ended)
    assert "faute de nouvelles" in (await bot_lines(client, risky.id))[-1]
    [line] = [r.getMessage() for r in caplog.records if "at risk" in r.getMessage()]
    assert risky.id in line and "suicide" in line and ordinary.id not in line and "mourir" not in line
    metrics = await (await client.get("/metrics")).text()
    assert "gateway_idle_closed_at_risk_total 1.0" in metrics


async def test_a_timer_whose_handling_fails_stays_armed_and_is_retried_with_backoff(
    client: Client, clock: Clock
) -> None:
    token = await start(client, ["2"])  # waiting at the language question: a reminder is armed
    conversation = await conversation_of(client, token, clock)
    store = client.app[STORE]
    before = await bot_lines(client, conversation.id)
    await store.save_conversation(dataclasses.replace(conversation, engine={"bogus": 1}))  # a bug's state

    clock.advance(minutes=11)
    await client.app[TIMERS].fire_due()

    async def failed() -> bool:
        return 'gateway_timer_failures_total{kind="bot_reminder"} 1.0' in await (await client.get("/metrics")).text()

    await eventually(failed)
    assert len(await bot_lines(client, conversation.id)) == len(before)  # nothing of the failed handling made
    armed = [t for t in await store.due_timers(clock() + timedelta(hours=1)) if t.conversation_id == conversation.id]
    assert [(t.kind, t.due_at) for t in armed] == [("bot_reminder", clock() + timedelta(seconds=BASE_DELAY))]

    await store.save_conversation(conversation)  # the bug fixed (a new version deployed, say): the retry works

    async def reminded() -> bool:
        return len(await bot_lines(client, conversation.id)) > len(before)

    clock.advance(seconds=BASE_DELAY)
    await fire_and_wait(client, reminded)
    assert any("toujours là" in line for line in (await bot_lines(client, conversation.id))[len(before) :])


async def test_a_young_person_told_the_line_closed_is_told_it_reopened_in_the_morning(
    client: Client, clock: Clock
) -> None:
    """Queued at 22:50, told at 23:01 that nobody can answer here before the reopening, still waiting at 9:00: the
    first message of the morning says the chat has reopened, with their place (and, nobody online yet, that nobody is
    connected yet, with who answers now); the next ones are the usual. Before, the morning's first message was
    "On ne t'oublie pas : tu es maintenant en position 1" (or `queued_offline`), never that the line had reopened."""
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)

    async def told(count: int) -> list[str]:
        await client.app[TIMERS].fire_due()
        await settled(client, conversation.id)
        return (await bot_lines(client, conversation.id))[count:]

    clock.now = datetime(2026, 3, 10, 23, 1, tzinfo=PARIS).astimezone(UTC)
    [closed] = await told(len(await bot_lines(client, conversation.id)))
    assert "est fermé" in closed
    count = len(await bot_lines(client, conversation.id))
    clock.now = datetime(2026, 3, 11, 9, 1, tzinfo=PARIS).astimezone(UTC)  # open again, nobody connected yet
    [morning] = await told(count)
    assert "a rouvert" in morning and "position 1" in morning
    assert "Aucun·e écoutant·e n'est encore connecté·e" in morning and "119" in morning and "3114" in morning

    async with listener_online(client):
        clock.advance(minutes=31)
        [later] = await told(count + 1)
        assert "On ne t'oublie pas" in later and "rouvert" not in later  # said once: the usual words after


async def test_the_first_reassurance_after_the_reopening_says_so_with_a_listener_online(
    client: Client, clock: Clock
) -> None:
    """The same with a listener at a console at 9:00: the chat has reopened, their place, a listener is coming; in
    English for a young person who chose it."""
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)
    token = await start(client, [WALK_TO_QUEUE[0], "2", *WALK_TO_QUEUE[2:-1], "People make fun of me in a group."])
    conversation = await conversation_of(client, token, clock)
    clock.now = datetime(2026, 3, 10, 23, 1, tzinfo=PARIS).astimezone(UTC)
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    count = len(await bot_lines(client, conversation.id))
    async with listener_online(client):
        clock.now = datetime(2026, 3, 11, 9, 1, tzinfo=PARIS).astimezone(UTC)
        await client.app[TIMERS].fire_due()
        await settled(client, conversation.id)
        [morning] = (await bot_lines(client, conversation.id))[count:]
        assert "reopened" in morning and "number 1" in morning and "17" in morning


async def test_goodbyes_at_a_closed_hour_promise_no_answer_at_any_time(client: Client, clock: Clock) -> None:
    """`abandoned` at 00:12 and `idle_closed` at 23:51, the line closed: "Tu peux nous réécrire à tout moment" read as
    a promise of this chat at an hour nobody answers here; now they say listeners answer during opening hours, and
    keep who answers now."""
    clock.now = datetime(2026, 3, 10, 22, 50, tzinfo=PARIS).astimezone(UTC)
    waiting = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    clock.now = datetime(2026, 3, 10, 23, 30, tzinfo=PARIS).astimezone(UTC)
    quiet = await conversation_of(client, await start(client, ["2"]), clock)  # at the language question
    clock.advance(minutes=11)
    await client.app[TIMERS].fire_due()
    await settled(client, quiet.id)
    clock.advance(minutes=31)

    async def abandoned() -> bool:
        return not (await client.app[STORE].get_conversation(quiet.id)).active  # type: ignore[union-attr]

    await fire_and_wait(client, abandoned)
    clock.now = datetime(2026, 3, 11, 23, 51, tzinfo=PARIS).astimezone(UTC)

    async def idle_closed() -> bool:
        return not (await client.app[STORE].get_conversation(waiting.id)).active  # type: ignore[union-attr]

    await fire_and_wait(client, idle_closed)
    for goodbye in [(await bot_lines(client, c.id))[-1] for c in (quiet, waiting)]:
        assert "plus de nouvelles" in goodbye or "faute de nouvelles" in goodbye
        assert "à tout moment" not in goodbye and "heures d'ouverture" in goodbye
        assert "119" in goodbye and "3114" in goodbye and "17" in goodbye
