"""WhatsApp's 24-hour window counts from when the young person wrote: a message the catch-up takes from Twilio's list
hours after Twilio received it (its webhook lost while the gateway was away) is dated by the list's ``date_sent``,
not by when the gateway took it. The real app (SQLite store, outbox, timers, the catch-up worker), the fake Twilio
API keeping what the young person sent.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from gateway.app import CATCH_UP, STORE
from gateway.dispatcher import IDLE_CLOSE_BEFORE_WINDOW
from gateway.settings import Settings
from gateway.store import TimerKind
from gateway.testing import FakeTwilioAPI
from tests.conftest import outbox_drained
from tests.e2e.channel_support import GatewayFactory, ListenerDesk, eventually, gateway, offline, running_clock
from tests.e2e.test_whatsapp import PHONE, walk_to_queue, whatsapp_settings
from tests.e2e.test_whatsapp_catchup import catching_up, said

__all__ = ["catching_up", "gateway", "offline", "whatsapp_settings"]  # fixtures used below

# a pass wanted while the claim of a failed one still runs across instances waits for it to lapse (60 s)
BOUND = 180.0


async def test_a_message_caught_up_counts_the_window_from_when_twilio_received_it(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """A young person waiting in the queue writes an hour after the hand-off; the webhook is lost (the gateway away,
    Twilio's list unreachable meanwhile) and the catch-up takes the message 20 hours later. WhatsApp's window runs
    from when they wrote: the idle close's goodbye (where to turn: 119, 3114, 17/112) is due a quarter of an hour
    before it closes, and the console's window closes 24 hours after they wrote. Before 2026-12-06 both counted from
    when the catch-up took it: the goodbye was planned 20 hours after WhatsApp's window had closed, refused (63016),
    and the young person left the queue without a word; the console said the window open when Twilio refused."""
    twilio.fail_next(*[500] * 40, endpoint="list")  # no pass reads Twilio's list until the test says
    client = await gateway(catching_up.replace(whatsapp_catchup_window_hours=24.0 * 8))
    clock = running_clock(client)
    # whole weeks (Tuesday 14:00 in Paris: the line open) to an hour or more before the real clock, which the
    # catch-up reads Twilio's list by (within its window of 8 days)
    clock.advance(weeks=math.floor((datetime.now(UTC) - timedelta(hours=1) - clock()) / timedelta(weeks=1)))
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id: str = (await desk.first_waiting())["id"]
    await desk.all_sent(conversation_id)
    await outbox_drained(client)  # every reply recorded before the clock moves on (the outbox's lease: this clock)
    wrote = (clock() + timedelta(hours=1)).replace(microsecond=0)  # Twilio's dates are to the second
    twilio.receive(PHONE, "tu es là ?", at=wrote)  # its webhook lost
    clock.advance(hours=21)  # taken 20 hours after it was written
    twilio.answer_normally("list")
    client.app[CATCH_UP].missed()

    async def caught() -> bool:
        return "tu es là ?" in await said(client, PHONE)

    await eventually(caught, BOUND)
    timers = await client.app[STORE].due_timers(datetime(2100, 1, 1, tzinfo=UTC))
    [due] = [t.due_at for t in timers if t.conversation_id == conversation_id and t.kind == TimerKind.IDLE_CLOSE]
    last_word = wrote + timedelta(hours=24) - IDLE_CLOSE_BEFORE_WINDOW
    assert abs((due - last_word).total_seconds()) < 1, (due, last_word)
    window = (await desk.conversation(conversation_id))["window"]
    closes = datetime.fromisoformat(window["closes_at"])
    assert abs((closes - (wrote + timedelta(hours=24))).total_seconds()) < 1, (closes, wrote)
