"""WhatsApp's STOP and START taken in another order than the young person sent them: Twilio's rule is that the last
of the two they sent wins, and the gateway's mark (``left_how`` "blocked": every reply "not sent", a listener's
refused ``unsubscribed``) follows it, whatever order the inbox and the catch-up process them in. The real app on
SQLite with every webhook deferred to the durable inbox (``inline_max`` 0: the process busy), the catch-up worker,
the fake Twilio API keeping what the young person sent.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from gateway.app import CATCH_UP, STORE
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.testing import FakeTwilioAPI, twilio_form
from tests.e2e.channel_support import Client, GatewayFactory, ListenerDesk, eventually, gateway, offline, running_clock
from tests.e2e.test_whatsapp import PHONE, deliver, walk_to_queue, whatsapp_settings
from tests.e2e.test_whatsapp_catchup import catching_up, counted, said

__all__ = ["catching_up", "gateway", "offline", "whatsapp_settings"]  # fixtures used below

BOUND = 180.0  # a pass wanted while the claim of a failed one still runs across instances waits for it to lapse
ELSEWHERE = "another-instance"  # holds the STOP's claim: its processing is late


async def busy_gateway(gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI) -> Client:
    """The app with every webhook through the inbox and no pass of the catch-up until the test says, its clock
    (Tuesday 14:00 in Paris: the line open) moved on by whole weeks to an hour or more before the real clock, which
    Twilio's list is read by (within its window of 8 days)."""
    twilio.fail_next(*[500] * 40, endpoint="list")
    client = await gateway(catching_up.replace(inline_max=0, whatsapp_catchup_window_hours=24.0 * 8))
    clock = running_clock(client)
    clock.advance(weeks=math.floor((datetime.now(UTC) - timedelta(hours=1) - clock()) / timedelta(weeks=1)))
    return client


async def held(client: Client) -> tuple[ListenerDesk, str]:
    """A young person with a listener, every message of the walk processed."""
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id: str = (await desk.first_waiting())["id"]
    await desk.take(conversation_id)
    return desk, conversation_id


async def marked_as(desk: ListenerDesk, conversation_id: str, left_how: str | None) -> bool:
    return (await desk.conversation(conversation_id))["left_how"] == left_how


async def caught_up(client: Client, twilio: FakeTwilioAPI) -> None:
    """A pass of the catch-up over Twilio's list, waited for."""
    passes = counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok")
    twilio.answer_normally("list")
    client.app[CATCH_UP].missed()

    async def passed() -> bool:
        return counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok") > passes

    await eventually(passed, BOUND)


async def test_a_start_caught_up_lifts_the_mark_of_a_stop_sent_before_it_and_processed_late_from_the_inbox(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """The young person writes STOP, then START two minutes later. The STOP waits in the inbox (another instance's
    worker holds it); START's webhook is lost and the catch-up takes it from Twilio's list, behind the STOP. Twilio
    delivers again since START: the conversation must end unmarked. Before: the STOP, processed five minutes after it
    was sent, marked the conversation dated then, and START, dated by Twilio before that mark, was taken for a message
    written before the block: every reply "not sent" until their next START."""
    client = await busy_gateway(gateway, catching_up, twilio)
    clock = running_clock(client)
    desk, conversation_id = await held(client)
    stop_sid = "SM" + "5" * 32
    key = inbound_key(Inbound(ChannelName.WHATSAPP, PHONE, stop_sid))
    store = client.app[STORE]
    await store.claim(key, ELSEWHERE, 600.0)  # another instance's worker: the STOP processed late
    twilio.receive(PHONE, "STOP", message_sid=stop_sid, at=clock().replace(microsecond=0))
    assert await deliver(client, {**twilio_form(PHONE, "STOP", message_sid=stop_sid), "OptOutType": "STOP"}) == 200
    await eventually(lambda: marked_as(desk, conversation_id, "blocked"))  # its departure, at once
    clock.advance(minutes=2)
    twilio.receive(PHONE, "START", at=clock().replace(microsecond=0))  # its webhook lost
    clock.advance(minutes=3)
    await caught_up(client, twilio)
    await eventually(lambda: marked_as(desk, conversation_id, None))  # START's departure
    await store.release(key, ELSEWHERE)

    async def both_taken() -> bool:
        return (await said(client, PHONE))[-2:] == ["STOP", "START"]

    await eventually(both_taken, BOUND)
    assert (await desk.conversation(conversation_id))["left_how"] is None
    codes = [e["system"]["code"] for e in await desk.system_entries(conversation_id)]
    assert codes == ["left.blocked", "left.unblocked"]  # the STOP told once, at its webhook


async def test_a_stop_sent_after_a_start_keeps_its_mark_whatever_order_they_are_taken_in(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """Unsubscribed (a first STOP), the young person writes START, then STOP again two minutes later. START's webhook
    is lost; the second STOP waits in the inbox (another instance's worker holds it) while the catch-up takes START
    from Twilio's list. Twilio refuses every message since that STOP: the conversation stays marked throughout, told
    once. Before: START, undated, lifted the mark meanwhile (the card said them reachable, the listener's replies
    went to Twilio to be refused) until the STOP, processed, marked it again."""
    client = await busy_gateway(gateway, catching_up, twilio)
    clock = running_clock(client)
    desk, conversation_id = await held(client)
    first = "SM" + "5" * 32
    assert await deliver(client, {**twilio_form(PHONE, "STOP", message_sid=first), "OptOutType": "STOP"}) == 200
    twilio.receive(PHONE, "STOP", message_sid=first, at=clock().replace(microsecond=0))

    async def stop_taken() -> bool:
        return (await said(client, PHONE))[-1] == "STOP"

    await eventually(stop_taken)
    clock.advance(minutes=2)
    twilio.receive(PHONE, "START", at=clock().replace(microsecond=0))  # its webhook lost
    clock.advance(minutes=2)
    second = "SM" + "6" * 32
    key = inbound_key(Inbound(ChannelName.WHATSAPP, PHONE, second))
    store = client.app[STORE]
    await store.claim(key, ELSEWHERE, 600.0)  # another instance's worker: this STOP processed late
    twilio.receive(PHONE, "STOP", message_sid=second, at=clock().replace(microsecond=0))
    assert await deliver(client, {**twilio_form(PHONE, "STOP", message_sid=second), "OptOutType": "STOP"}) == 200
    clock.advance(minutes=3)
    await caught_up(client, twilio)  # START and its departure taken, the second STOP still waiting
    assert (await desk.conversation(conversation_id))["left_how"] == "blocked"
    await store.release(key, ELSEWHERE)

    async def all_taken() -> bool:  # the inbox's order: the second STOP, then START behind it
        return (await said(client, PHONE))[-3:] == ["STOP", "STOP", "START"]

    await eventually(all_taken, BOUND)
    assert (await desk.conversation(conversation_id))["left_how"] == "blocked"
    codes = [e["system"]["code"] for e in await desk.system_entries(conversation_id)]
    assert codes == ["left.blocked"]


async def test_a_start_sent_seconds_after_a_stop_whose_webhook_came_slowly_lifts_it_once(
    gateway: GatewayFactory, catching_up: Settings, twilio: FakeTwilioAPI
) -> None:
    """Two clocks: a webhook's STOP is dated when the gateway took it, a START caught up by Twilio's ``date_sent``. The
    young person writes STOP, then START two seconds later; the STOP's webhook comes four seconds after it was sent
    (Twilio slow, the store held) and waits in the inbox; START's webhook is lost and the catch-up takes it, its
    departure lifting the mark. The STOP's message, processed next, must not mark the conversation again. Before: it
    did, START dated two seconds before the STOP's taking: the card said "désabonnée" again and a listener's reply was
    refused `unsubscribed` until START's message, behind it, lifted the mark a second time."""
    client = await busy_gateway(gateway, catching_up, twilio)
    clock = running_clock(client)
    desk, conversation_id = await held(client)
    stop_sid = "SM" + "7" * 32
    key = inbound_key(Inbound(ChannelName.WHATSAPP, PHONE, stop_sid))
    store = client.app[STORE]
    await store.claim(key, ELSEWHERE, 600.0)  # another instance's worker: the STOP processed late
    sent = clock().replace(microsecond=0)
    twilio.receive(PHONE, "STOP", message_sid=stop_sid, at=sent)
    twilio.receive(PHONE, "START", at=sent + timedelta(seconds=2))  # its webhook lost
    clock.advance(seconds=4)
    assert await deliver(client, {**twilio_form(PHONE, "STOP", message_sid=stop_sid), "OptOutType": "STOP"}) == 200
    await eventually(lambda: marked_as(desk, conversation_id, "blocked"))  # its departure, at once
    clock.advance(minutes=5)
    await caught_up(client, twilio)
    await eventually(lambda: marked_as(desk, conversation_id, None))  # START's departure
    await store.release(key, ELSEWHERE)

    async def both_taken() -> bool:
        return (await said(client, PHONE))[-2:] == ["STOP", "START"]

    await eventually(both_taken, BOUND)
    assert (await desk.conversation(conversation_id))["left_how"] is None
    codes = [e["system"]["code"] for e in await desk.system_entries(conversation_id)]
    assert codes == ["left.blocked", "left.unblocked"]  # not marked again by the STOP's message
