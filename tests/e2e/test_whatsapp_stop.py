"""WhatsApp through Twilio: a young person unsubscribes (STOP, Twilio's ``OptOutType``) during a conversation. The
real app, signed webhooks, the fake Twilio API on 127.0.0.1, the clock pinned (a Tuesday in Paris, the line open).
Twilio refuses every message to them from then on (error 21610) until they send START."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import CATCH_UP, DISPATCHER, STORE
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import TimerKind
from gateway.testing import Failure, FakeTwilioAPI, twilio_form, twilio_status_form
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline, running_clock
from tests.e2e.test_whatsapp import PHONE, STATUS_PATH, deliver, handed_to_listener, walk_to_queue, whatsapp_settings

__all__ = ["gateway", "offline", "whatsapp_settings"]  # fixtures used below


@pytest.fixture
async def client(gateway: GatewayFactory, whatsapp_settings: Settings) -> Client:
    return await gateway(whatsapp_settings.replace(understanding_timeout=30))  # read in time on a busy machine


def stop_form(sid_digit: str = "5") -> dict[str, str]:
    return {**twilio_form(PHONE, "STOP", message_sid="SM" + sid_digit * 32), "OptOutType": "STOP"}


async def test_stop_at_the_bots_question_sends_nothing_more(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """With the bot, STOP: nothing more is attempted (Twilio refuses it, 21610), no reminder of the question."""
    caplog.set_level(logging.INFO)
    reader = client.app[DISPATCHER].reader
    if reader is not None:
        await reader.wait_loaded()
    running_clock(client).advance(hours=2)  # 16:00 in Paris: the line open
    for number, text in enumerate(["Bonjour", "2"]):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200
    store = client.app[STORE]
    [asking] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    await outbox_drained(client)
    before = len(twilio.requests_to("Messages.json"))

    assert await deliver(client, stop_form()) == 200
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []
    detail = await store.get_conversation(asking.id)
    assert detail is not None and detail.left_how == "blocked"
    due = await store.due_timers(running_clock(client)() + timedelta(hours=1))
    assert [t.kind for t in due if t.conversation_id == asking.id and t.kind is TimerKind.BOT_REMINDER] == []
    assert await store.find_active_conversation(ChannelName.WHATSAPP, PHONE) in (None, detail)
    assert "+336" not in caplog.text


async def test_a_listeners_reply_after_stop_is_refused_at_once_and_goes_after_start(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Held: STOP shows on the card (``left.blocked``) and the listener's reply is refused at once, saying why (409
    ``unsubscribed``), rather than sent, refused by Twilio (21610) and shown failed later; after START it goes."""
    caplog.set_level(logging.INFO)
    desk, conversation_id = await handed_to_listener(client, twilio)
    before = len(twilio.requests_to("Messages.json"))
    assert await deliver(client, stop_form()) == 200
    detail = await desk.conversation(conversation_id)
    assert (detail["status"], detail["left_how"]) == ("with_listener", "blocked")

    response = await client.post(f"/api/conversations/{conversation_id}/messages", json={"text": "Tu es là ?"})
    assert response.status == 409 and (await response.json())["error"] == "unsubscribed"
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []
    assert [e["system"]["code"] for e in await desk.system_entries(conversation_id)] == ["left.blocked"]

    start = {**twilio_form(PHONE, "START", message_sid="SM" + "7" * 32), "OptOutType": "START"}
    assert await deliver(client, start) == 200
    await desk.reply(conversation_id, "Tu es là ?")
    await twilio.wait_accepted(before + 1)
    assert "+336" not in caplog.text and "Tu es là" not in caplog.text


async def test_stop_while_waiting_keeps_the_card_and_sends_nothing(client: Client, twilio: FakeTwilioAPI) -> None:
    """Waiting: the card says they unsubscribed (``left.blocked``), still in the queue for a listener to close, and
    nothing the bot would say (a reminder, the closed line) is sent: a "not sent" entry says it in its place."""
    await walk_to_queue(client)
    store = client.app[STORE]
    [waiting] = await eventually(lambda: store.conversations_by_status(Status.QUEUED))
    await outbox_drained(client)
    before = len(twilio.requests_to("Messages.json"))
    assert await deliver(client, stop_form()) == 200
    assert await deliver(client, twilio_form(PHONE, "allo ?", message_sid="SM" + "6" * 32)) == 200
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []
    detail = await store.get_conversation(waiting.id)
    assert detail is not None and (detail.status, detail.left_how) == (Status.QUEUED, "blocked")


async def test_a_start_whose_webhook_was_lost_and_caught_up_lifts_the_mark(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Twilio lifts the opt-out on START whether or not its webhook reached the gateway; caught up from Twilio's list
    (no ``OptOutType`` there) it lifts the mark too, or the listener would be refused "until START" for good."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    assert await deliver(client, stop_form()) == 200
    assert (await desk.conversation(conversation_id))["left_how"] == "blocked"
    twilio.receive(PHONE, "Start", at=datetime.now(UTC) - timedelta(minutes=1))  # its webhook lost (a 503)
    assert await client.app[CATCH_UP].catch_up() == 1
    assert (await desk.conversation(conversation_id))["left_how"] is None
    before = len(twilio.accepted())
    await desk.reply(conversation_id, "Tu es là ?")
    await twilio.wait_accepted(before + 1)


async def test_a_consent_question_after_stop_is_refused_at_once_not_told_sent(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Held: after STOP, the warm referral's consent question is refused (409 ``unsubscribed``) like a reply, rather
    than answered 204 ("Question envoyée" in the console) and audited as asked while nothing was sent."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    before = len(twilio.requests_to("Messages.json"))
    assert await deliver(client, stop_form()) == 200
    path = f"/api/conversations/{conversation_id}/referrals/ask"
    asked = await client.post(path, json={"partner": "116006", "id": "q1"})
    assert asked.status == 409 and (await asked.json())["error"] == "unsubscribed"
    await outbox_drained(client)
    assert twilio.requests_to("Messages.json")[before:] == []
    assert [e["system"]["code"] for e in await desk.system_entries(conversation_id)] == ["left.blocked"]


async def test_a_late_21610_about_a_message_sent_before_start_does_not_mark_again(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Status callbacks come late and out of order: a 21610 about a message sent before the young person's START,
    arriving after it, says nothing of now (Twilio delivers again). Until 2026-12-06 it marked the conversation
    unsubscribed again: nothing sent to them, their listener refused, until another START. One about a message sent
    after the START still marks it."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    sid = twilio.accepted()[-1].answer["sid"]  # the last message sent before the STOP
    assert await deliver(client, stop_form()) == 200
    running_clock(client).advance(minutes=1)
    start = {**twilio_form(PHONE, "START", message_sid="SM" + "7" * 32), "OptOutType": "START"}
    assert await deliver(client, start) == 200
    assert (await desk.conversation(conversation_id))["left_how"] is None

    late = twilio_status_form(sid, "undelivered", PHONE, error_code="21610")
    assert await deliver(client, late, STATUS_PATH) == 200
    assert (await desk.conversation(conversation_id))["left_how"] is None
    before = len(twilio.accepted())
    sent = await desk.reply(conversation_id, "Tu es là ?")
    await twilio.wait_accepted(before + 1)
    await desk.delivery_of(conversation_id, sent["id"], "sent")

    running_clock(client).advance(minutes=1)
    after = twilio_status_form(twilio.accepted()[-1].answer["sid"], "undelivered", PHONE, error_code="21610")
    assert await deliver(client, after, STATUS_PATH) == 200
    assert (await desk.conversation(conversation_id))["left_how"] == "blocked"


async def opened_after(client: Client, twilio: FakeTwilioAPI, ended: str) -> str:
    """The young person writes again after ``ended`` was closed: a new conversation, its welcome sent and delivered."""
    store = client.app[STORE]
    running_clock(client).advance(minutes=2)
    before = len(twilio.accepted())
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "8" * 32)) == 200

    async def opened() -> str | None:
        found = await store.find_active_conversation(ChannelName.WHATSAPP, PHONE)
        return found.id if found is not None and found.id != ended else None

    opened_id = await eventually(opened)
    await twilio.wait_accepted(before + 1)
    await outbox_drained(client)
    welcome = twilio.accepted()[-1].answer["sid"]
    assert await deliver(client, twilio_status_form(welcome, "delivered", PHONE), STATUS_PATH) == 200
    return opened_id


async def still_answered(client: Client, twilio: FakeTwilioAPI, conversation_id: str) -> None:
    """Not marked unsubscribed, and the bot's answer to their next words goes to Twilio (no "not sent" entry)."""
    store = client.app[STORE]
    detail = await store.get_conversation(conversation_id)
    assert detail is not None and detail.left_how is None
    before = len(twilio.accepted())
    assert await deliver(client, twilio_form(PHONE, "2", message_sid="SM" + "9" * 32)) == 200
    await twilio.wait_accepted(before + 1)
    await outbox_drained(client)
    codes = [e.system.code for e in await store.transcript(conversation_id) if e.system is not None]
    assert "left.blocked" not in codes and "not_sent.unsubscribed" not in codes


async def late_refusal_after_reopening(client: Client, twilio: FakeTwilioAPI, first: str, sid: str) -> str:
    """``first`` closed by its listener, a new conversation opened (:func:`opened_after`), then a 21610 about ``sid``
    (a message of ``first``) arrives late: the new one is still answered (:func:`still_answered`). Its id."""
    closed = await client.post(f"/api/conversations/{first}/close", json={"outcome": "cyberbullying"})
    assert closed.status == 200
    second = await opened_after(client, twilio, first)
    late = twilio_status_form(sid, "undelivered", PHONE, error_code="21610")
    assert await deliver(client, late, STATUS_PATH) == 200
    await still_answered(client, twilio, second)
    return second


async def test_a_late_21610_of_an_ended_conversation_after_stop_and_start_leaves_the_next_one_unmarked(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """STOP, then START, in a conversation a listener then closes; the young person writes again, a new conversation
    opens, its welcome delivered; then a 21610 comes, late, about a message of the first one. Until 2026-12-06 it
    marked the new conversation unsubscribed (its START was in the first one): nothing more was sent to them there,
    though Twilio delivers."""
    caplog.set_level(logging.INFO)
    _desk, first = await handed_to_listener(client, twilio)
    sid = twilio.accepted()[-1].answer["sid"]  # its refusal's callback delayed
    assert await deliver(client, stop_form()) == 200
    running_clock(client).advance(minutes=1)
    start = {**twilio_form(PHONE, "START", message_sid="SM" + "7" * 32), "OptOutType": "START"}
    assert await deliver(client, start) == 200
    await late_refusal_after_reopening(client, twilio, first, sid)
    assert "+336" not in caplog.text


async def test_a_late_21610_of_an_ended_conversation_leaves_the_next_one_unmarked_its_own_still_marks_it(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """A 21610 about any message of a closed conversation, arriving while the next one is open: not this one's (its
    own sends go through). Until 2026-12-06 it marked it. A 21610 about the open conversation's own message marks it."""
    _desk, first = await handed_to_listener(client, twilio)
    sid = twilio.accepted()[0].answer["sid"]  # the first conversation's welcome
    second = await late_refusal_after_reopening(client, twilio, first, sid)

    own = twilio_status_form(twilio.accepted()[-1].answer["sid"], "undelivered", PHONE, error_code="21610")
    assert await deliver(client, own, STATUS_PATH) == 200
    detail = await client.app[STORE].get_conversation(second)
    assert detail is not None and detail.left_how == "blocked"


async def test_a_late_21610_of_an_erased_conversation_leaves_the_next_one_unmarked(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A conversation closed, then erased on request (its transcript and provider ids gone); the young person writes
    again, and a 21610 about a message of the erased conversation arrives late: found nowhere, yet nothing of the
    open conversation is in flight. Until 2026-12-06 it was taken for a fast callback of the open one and marked it
    unsubscribed: nothing more was sent to them, though Twilio delivers."""
    caplog.set_level(logging.INFO)
    sid, second = await erased_then_reopened(client, twilio)
    late = twilio_status_form(sid, "undelivered", PHONE, error_code="21610")
    assert await deliver(client, late, STATUS_PATH) == 200
    await still_answered(client, twilio, second)
    assert "+336" not in caplog.text


async def erased_then_reopened(client: Client, twilio: FakeTwilioAPI) -> tuple[str, str]:
    """A conversation handed to a listener, closed, then erased on request (its transcript and provider ids gone);
    the young person writes again (:func:`opened_after`). The sid of the erased one's last message, the new one's
    id."""
    _desk, first = await handed_to_listener(client, twilio)
    sid = twilio.accepted()[-1].answer["sid"]  # its refusal's callback delayed
    closed = await client.post(f"/api/conversations/{first}/close", json={"outcome": "cyberbullying"})
    assert closed.status == 200
    erased = await client.post(f"/api/conversations/{first}/erase", json={"confirm": True})
    assert erased.status == 200, await erased.text()
    assert await client.app[STORE].find_by_provider_id(sid) is None
    return sid, await opened_after(client, twilio, first)


async def test_a_late_21610_of_an_erased_conversation_while_a_reply_is_in_flight_leaves_the_next_one_unmarked(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """The erased conversation's late 21610 comes while the bot's answer in the new conversation is still being sent
    (Twilio slow to answer its send). Until 2026-12-06 (review) it was taken for that answer's fast callback and
    marked the new conversation unsubscribed: its answer, and everything after it, "not sent" until a START the young
    person had no reason to send. A refusal found nowhere now marks nothing: if they did unsubscribe, Twilio refuses
    the next send (21610), which marks it."""
    sid, second = await erased_then_reopened(client, twilio)
    store = client.app[STORE]
    held = twilio.held
    twilio.stall()
    before = len(twilio.accepted())
    assert await deliver(client, twilio_form(PHONE, "2", message_sid="SM" + "9" * 32)) == 200
    await twilio.wait_held(held + 1)  # the bot's answer is in flight
    late = twilio_status_form(sid, "undelivered", PHONE, error_code="21610")
    assert await deliver(client, late, STATUS_PATH) == 200
    twilio.resume()
    await twilio.wait_accepted(before + 1)
    await outbox_drained(client)
    detail = await store.get_conversation(second)
    assert detail is not None and detail.left_how is None
    codes = [e.system.code for e in await store.transcript(second) if e.system is not None]
    assert "left.blocked" not in codes and "not_sent.unsubscribed" not in codes


async def test_a_21610_found_nowhere_while_a_reply_is_in_flight_marks_nothing_the_refused_send_marks(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """A 21610 whose message is found nowhere while a reply of the open conversation is in flight: perhaps that
    reply's fast callback, perhaps an erased conversation's (above); it marks nothing. A young person who did
    unsubscribe is marked all the same, by Twilio's refusal of that send (21610, ``RecipientGone``)."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    await outbox_drained(client)
    held = twilio.held
    twilio.stall()
    twilio.fail_next(Failure(400, code=21610))
    await desk.reply(conversation_id, "Tu es là ?")
    await twilio.wait_held(held + 1)
    fast = twilio_status_form("SM" + "f" * 32, "undelivered", PHONE, error_code="21610")
    assert await deliver(client, fast, STATUS_PATH) == 200
    assert (await desk.conversation(conversation_id))["left_how"] is None
    twilio.resume()

    async def marked() -> bool | None:
        return (await desk.conversation(conversation_id))["left_how"] == "blocked" or None

    assert await eventually(marked)
