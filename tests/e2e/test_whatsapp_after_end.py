"""WhatsApp through Twilio after a conversation ended: the real app, signed webhooks, the fake Twilio API on
127.0.0.1, the clock pinned (a Tuesday, 23:30 in Paris: the line closed). A young person's STOP is Twilio's opt-out
(``OptOutType``): Twilio refuses every message to them from then on (error 21610) until they send START."""

from __future__ import annotations

import logging

import pytest

from gateway.app import DISPATCHER, STORE
from gateway.conversation import Conversation, Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeTwilioAPI, twilio_form
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline, running_clock
from tests.e2e.test_whatsapp import PHONE, bodies, deliver, whatsapp_settings

__all__ = ["gateway", "offline", "whatsapp_settings"]  # fixtures used below

CLOSED_LINE = "Le chat du 3018 est fermé pour le moment"
WALK = ["Bonjour", "2", "Français", "j'ai 15 ans", "pour moi", "on me harcèle", "On se moque de moi sur un groupe."]


@pytest.fixture
async def client(gateway: GatewayFactory, whatsapp_settings: Settings) -> Client:
    return await gateway(whatsapp_settings.replace(understanding_timeout=30))  # read in time on a busy machine


async def ended_at_night(client: Client, twilio: FakeTwilioAPI) -> str:
    """A WhatsApp walk at 23:30 that the closed line ends; the ended conversation's id."""
    reader = client.app[DISPATCHER].reader
    if reader is not None:
        await reader.wait_loaded()
    running_clock(client).advance(hours=9, minutes=30)
    for number, text in enumerate(WALK):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200
    store = client.app[STORE]
    [ended] = await eventually(lambda: store.conversations_by_status(Status.CLOSED))
    await outbox_drained(client)
    assert any(CLOSED_LINE in body for body in bodies(twilio.accepted()))
    return ended.id


@pytest.mark.parametrize("text", ["STOP", "Unsubscribe"])  # any keyword Twilio takes for an opt-out
async def test_stop_opting_out_after_an_end_is_kept_and_nothing_is_sent_to_twilio(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """Until 2026-12-06 the stop's short reply (``after_end_stop``) went to Twilio, which refuses it (21610)."""
    caplog.set_level(logging.INFO)
    store = client.app[STORE]
    ended = await ended_at_night(client, twilio)
    before = len(twilio.requests_to("Messages.json"))
    running_clock(client).advance(minutes=2)

    stop = {**twilio_form(PHONE, text, message_sid="SM" + "5" * 32), "OptOutType": "STOP"}
    assert await deliver(client, stop) == 200
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []  # Twilio would refuse it: 21610, opted out
    assert await store.find_active_conversation(ChannelName.WHATSAPP, PHONE) is None
    words = [e.text for e in await store.transcript(ended) if e.author is Author.USER]
    assert words[-1] == text  # kept where a listener reads their history
    assert "+336" not in caplog.text


async def test_stop_without_opting_out_after_an_end_still_gets_its_short_reply(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """A "stop" Twilio did not take for an opt-out (no ``OptOutType``): answered once, as on the other channels."""
    await ended_at_night(client, twilio)
    before = len(twilio.accepted())
    running_clock(client).advance(minutes=2)
    assert await deliver(client, twilio_form(PHONE, "laisse tomber", message_sid="SM" + "6" * 32)) == 200
    await outbox_drained(client)
    [reply] = bodies(twilio.accepted())[before:]
    assert "17 ou 112" in reply and CLOSED_LINE not in reply


async def waiting_told_closed(client: Client, twilio: FakeTwilioAPI) -> Conversation:
    """Walked to the queue at 22:50 in Paris (the line still open), then at 23:40 told by the timer it has closed."""
    reader = client.app[DISPATCHER].reader
    if reader is not None:
        await reader.wait_loaded()
    running_clock(client).advance(hours=8, minutes=50)  # 22:50 in Paris: the line still open
    for number, text in enumerate(WALK):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200
    store = client.app[STORE]
    [waiting] = await eventually(lambda: store.conversations_by_status(Status.QUEUED))
    await outbox_drained(client)
    running_clock(client).advance(minutes=50)  # 23:40: closed, the timer's notice told

    async def told_closed() -> bool:
        return any(CLOSED_LINE in body for body in bodies(twilio.accepted()))

    await eventually(told_closed)
    await outbox_drained(client)
    return waiting


async def test_stop_opting_out_while_waiting_at_night_gets_no_closed_line_reminder(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Until 2026-12-06 an opt-out written while waiting when the line had closed got the closed line's reminder
    (``Dispatcher._closed_reminder``), sent to Twilio, which refuses it (21610)."""
    waiting = await waiting_told_closed(client, twilio)
    store = client.app[STORE]
    running_clock(client).advance(minutes=31)  # 00:11: a message now would get the reminder
    before = len(twilio.requests_to("Messages.json"))

    stop = {**twilio_form(PHONE, "STOP", message_sid="SM" + "5" * 32), "OptOutType": "STOP"}
    assert await deliver(client, stop) == 200
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []
    detail = await store.get_conversation(waiting.id)
    assert detail is not None and detail.left_how == "blocked"  # the listeners see it


@pytest.mark.parametrize("text", ["STOP", "Arret"])  # any keyword Twilio takes for an opt-out
async def test_stop_opting_out_long_after_an_end_opens_nothing(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """Until 2026-12-06 an opt-out written after the after-end window (or with no conversation ever) opened a new
    conversation: its welcome went to Twilio, which refuses it (21610), and the bot's question then waited for an
    answer nobody could send, its reminders refused in turn."""
    caplog.set_level(logging.INFO)
    store = client.app[STORE]
    await ended_at_night(client, twilio)
    before = len(twilio.requests_to("Messages.json"))
    running_clock(client).advance(hours=2)  # past flows.yaml's after_end window

    stop = {**twilio_form(PHONE, text, message_sid="SM" + "7" * 32), "OptOutType": "STOP"}
    assert await deliver(client, stop) == 200
    assert await deliver(client, stop) == 200  # Twilio's redelivery: processed once, still nothing
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []
    assert await store.find_active_conversation(ChannelName.WHATSAPP, PHONE) is None
    assert await store.conversations_by_status(Status.BOT) == []
    assert "+336" not in caplog.text and text not in caplog.text


async def test_a_first_message_that_is_an_opt_out_opens_nothing(client: Client, twilio: FakeTwilioAPI) -> None:
    """A STOP from someone who never wrote to the line: nothing to answer, nothing opened (the welcome is refused)."""
    reader = client.app[DISPATCHER].reader
    if reader is not None:
        await reader.wait_loaded()
    stop = {**twilio_form(PHONE, "STOP", message_sid="SM" + "8" * 32), "OptOutType": "STOP"}
    assert await deliver(client, stop) == 200
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json") == []
    assert await client.app[STORE].find_active_conversation(ChannelName.WHATSAPP, PHONE) is None


async def test_start_while_waiting_at_night_gets_the_closed_lines_reminder(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Waiting at night, STOP, then START: Twilio lifts the opt-out with the START itself, so the closed line's
    reminder (where to turn now) answers it. Until 2026-12-06 the START was handled while the conversation was still
    marked (its departure came after the message): the reminder became a "not sent: the person unsubscribed" entry,
    counted as told, and the young person who had just opted back in got nothing, nor at their next words."""
    waiting = await waiting_told_closed(client, twilio)
    store = client.app[STORE]
    stop = {**twilio_form(PHONE, "STOP", message_sid="SM" + "5" * 32), "OptOutType": "STOP"}
    assert await deliver(client, stop) == 200
    running_clock(client).advance(minutes=31)  # 00:11: a message now gets the reminder
    before = len(twilio.accepted())

    start = {**twilio_form(PHONE, "START", message_sid="SM" + "6" * 32), "OptOutType": "START"}
    assert await deliver(client, start) == 200
    await outbox_drained(client)
    detail = await store.get_conversation(waiting.id)
    assert detail is not None and (detail.status, detail.left_how) == (Status.QUEUED, None)
    codes = [e.system.code for e in await store.transcript(waiting.id) if e.system is not None]
    assert "not_sent.unsubscribed" not in codes
    assert len(twilio.accepted()) == before + 1  # the reminder, once
