"""Messenger's reply windows count from when the young person wrote (each event's ``timestamp``), not from when the
gateway took the message: Meta redelivers a webhook hours late after an outage, and the durable inbox may work
through a backlog. The real app (SQLite store, outbox, timers), signed webhooks, the fake Graph API.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.app import DISPATCHER, STORE
from gateway.dispatcher import IDLE_CLOSE_BEFORE_WINDOW, IDLE_CLOSE_LAST_SEND
from gateway.settings import Settings
from gateway.store import Author, TimerKind
from gateway.testing import FakeGraphAPI
from tests.conftest import outbox_drained
from tests.e2e.channel_support import (
    Client,
    GatewayFactory,
    ListenerDesk,
    RunningClock,
    eventually,
    gateway,
    offline,
    running_clock,
)
from tests.e2e.test_messenger import WALK, deliver, message, messenger_settings

__all__ = ["gateway", "messenger_settings", "offline"]  # fixtures used by the tests below


@pytest.fixture
async def client(gateway: GatewayFactory, messenger_settings: Settings) -> Client:
    return await gateway(messenger_settings)


def written(body: dict[str, Any], at: datetime) -> dict[str, Any]:
    """``body`` with each event dated ``at`` (Meta's ``timestamp``, ms since 1970)."""
    for entry in body["entry"]:
        for item in entry["messaging"]:
            item["timestamp"] = int(at.timestamp() * 1000)
    return body


def within_meta_age(clock: RunningClock) -> None:
    """Move the app's clock on by whole weeks (the same weekday and hour: the line's hours as ever) to on or after the
    real date: events dated by it are within MESSENGER_MAX_EVENT_AGE of the real clock, which the webhook checks."""
    behind = time.time() - clock().timestamp()
    clock.advance(weeks=max(math.ceil(behind / timedelta(weeks=1).total_seconds()), 0))


async def queued(client: Client) -> str:
    """Walk the flow to the queue, each message dated when taken; the conversation's id once its replies are sent."""
    clock = running_clock(client)
    for number, (text, payload) in enumerate(WALK):
        assert await deliver(client, written(message(text, payload, mid=f"m_walk_{number}"), clock())) == 200
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id: str = (await desk.first_waiting())["id"]
    await desk.all_sent(conversation_id)
    await outbox_drained(client)  # every reply recorded before the clock moves on (the outbox's lease: this clock)
    return conversation_id


async def idle_close_due(client: Client, conversation_id: str) -> datetime:
    timers = await client.app[STORE].due_timers(datetime(2100, 1, 1, tzinfo=UTC))
    [due] = [t.due_at for t in timers if t.conversation_id == conversation_id and t.kind == TimerKind.IDLE_CLOSE]
    return due


async def taken(client: Client, conversation_id: str, text: str) -> None:
    async def found() -> bool:
        entries = await client.app[STORE].transcript(conversation_id)
        return any(e.author is Author.USER and e.text == text for e in entries)

    await eventually(found)


EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


async def _taken_any(client: Client, text: str) -> bool:
    for conversation in await client.app[STORE].list_conversations(*EVER):
        if any(e.author is Author.USER and e.text == text for e in await client.app[STORE].transcript(conversation.id)):
            return True
    return False


async def _handed_off(client: Client) -> str | None:
    """The conversation's id once handed off (its hand-off's messages recorded), whatever it is in now."""
    found = await client.app[STORE].list_conversations(*EVER)
    return next((c.id for c in found if c.queued_at is not None), None)


async def test_a_message_taken_late_counts_the_window_from_when_it_was_written(
    client: Client, graph: FakeGraphAPI
) -> None:
    """A young person waiting in the queue writes an hour after the hand-off; the gateway away, Meta redelivers it 20
    hours later. Meta's 24-hour window runs from when they wrote: the idle close's goodbye (where to turn: 119, 3114,
    17/112) is due a quarter of an hour before that window closes, and the console's window (the listener's 7 days)
    closes 7 days after they wrote. Before 2026-12-06 both counted from when the gateway took it: the goodbye was
    planned 20 hours after Meta's window had closed, refused, and the young person left the queue without a word."""
    clock = running_clock(client)
    within_meta_age(clock)
    conversation_id = await queued(client)
    wrote = clock() + timedelta(hours=1)
    clock.advance(hours=21)  # the gateway away meanwhile: taken 20 hours after it was written
    assert await deliver(client, written(message("tu es là ?", mid="m_late"), wrote)) == 200
    await taken(client, conversation_id, "tu es là ?")

    due = await idle_close_due(client, conversation_id)
    last_word = wrote + timedelta(hours=24) - IDLE_CLOSE_BEFORE_WINDOW
    assert abs((due - last_word).total_seconds()) < 1, (due, last_word)
    window = (await ListenerDesk(client).conversation(conversation_id))["window"]
    closes = datetime.fromisoformat(window["closes_at"])
    assert abs((closes - (wrote + timedelta(days=7))).total_seconds()) < 1, (closes, wrote)


async def test_a_young_person_waiting_whose_message_is_taken_in_the_windows_last_quarter_hour_is_not_closed_at_once(
    client: Client,
) -> None:
    """A young person waiting in the queue wrote 23 h 50 min before the gateway took it (Meta redelivering after an
    outage): Meta's window closes ten minutes later. Their conversation stays in the queue for the listeners until the
    last minutes the idle close's goodbye (where to turn) still reaches them (:data:`IDLE_CLOSE_LAST_SEND` before the
    window closes, the outbox's retries in time). Until 2026-12-06's evening the goodbye was due at once: closed by
    the next timer pass, seconds after their words arrived, before any listener could see them (at risk, "closed by
    the idle timer, never taken"). A window closed already changes nothing."""
    clock = running_clock(client)
    within_meta_age(clock)
    wrote = clock() - timedelta(hours=23, minutes=50)
    for number, (text, payload) in enumerate(WALK):  # the whole backlog redelivered: each dated when written
        at = wrote - timedelta(seconds=len(WALK) - 1 - number)
        assert await deliver(client, written(message(text, payload, mid=f"m_late_{number}"), at)) == 200
        if number < len(WALK) - 1:
            await eventually(lambda said=text: _taken_any(client, said))  # in order, as Meta's redelivery
    conversation_id = await eventually(lambda: _handed_off(client))

    due = await idle_close_due(client, conversation_id)
    last_send = wrote + timedelta(hours=24) - IDLE_CLOSE_LAST_SEND
    assert abs((due - last_send).total_seconds()) < 1, (due, last_send, clock())
    conversation = await client.app[STORE].get_conversation(conversation_id)
    assert conversation is not None
    dispatcher, now = client.app[DISPATCHER], clock()
    conversation.last_inbound_at = now - timedelta(hours=24, minutes=1)  # closed: nothing reaches them any more
    assert dispatcher.idle_close_at(conversation, dispatcher.flows.engine(), now) == now + timedelta(hours=24)
    conversation.last_inbound_at = now - timedelta(hours=23, minutes=59)  # less than that left: at once
    assert dispatcher.idle_close_at(conversation, dispatcher.flows.engine(), now) == now
