"""A bot reply Twilio accepted, then reported failed by its status callback (``failed`` / ``undelivered``).

Nobody watches a young person in the bot's questions: before 2026-12-05 such a reply was only marked failed, and the
young person never got the question (or the closed-line message, or where to turn). Now a failure a resend may get
through (Twilio's 30003 unreachable handset, 30008 unknown error…) is sent again once, at once, unless the
conversation went on since (a copy would come after later messages: 2026-12-05, it came 30 s later); a final
one (30005, 30006, 63016…) is not; both are logged by class and code and counted, and the listeners of a conversation
in the queue (or with them, or at risk) read a note. Nothing twice: a second callback, a late ``delivered``, or the
resend failing in turn send nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from gateway.app import OUTBOX, STORE, create_app
from gateway.conversation import Status
from gateway.events import DeliveryChanged
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.outbox import REPORTED_PAUSE_SECONDS
from gateway.settings import Settings
from gateway.store import Delivery, Listener, Store
from gateway.testing import ACCOUNT_SID, WHATSAPP_FROM, FakeTwilioAPI, sign_twilio, twilio_form, twilio_status_form
from tests.conftest import SECRET_KEY, TWILIO_TOKEN, model_loaded, outbox_drained, password_hash, shared_understanding
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
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.store_holds import Holds, holds

__all__ = ["gateway", "holds", "offline", "redis_cluster_url", "redis_url", "store_url"]  # fixtures used below

PUBLIC = "http://helpline.example.org:8080"
PHONE = "whatsapp:+33612345678"
PATH = "/webhooks/whatsapp"
STATUS_PATH = "/webhooks/whatsapp/status"
WALK = ["Bonjour", "2", "Français", "j'ai 15 ans", "pour moi", "on me harcèle", "On se moque de moi sur un groupe."]


@pytest.fixture
async def client(gateway: GatewayFactory, settings: Settings, twilio: FakeTwilioAPI) -> Client:
    return await gateway(settings.replace(
        public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM, twilio_api_url=twilio.url,
    ))  # fmt: skip


async def deliver(client: Client, form: dict[str, str], path: str = PATH) -> int:
    headers = {"X-Twilio-Signature": sign_twilio(TWILIO_TOKEN, PUBLIC + path, form)}
    return (await client.post(path, data=form, headers=headers)).status


async def bot_entry(desk: ListenerDesk, conversation_id: str, text: str) -> dict[str, Any]:
    transcript = (await desk.conversation(conversation_id))["transcript"]
    return next(e for e in transcript if e["author"] == "bot" and text.startswith(e["text"]))


async def started(client: Client, twilio: FakeTwilioAPI) -> tuple[ListenerDesk, str]:
    """The young person wrote "Bonjour"; every bot reply reached Twilio. The desk is a supervisor's."""
    assert await deliver(client, twilio_form(PHONE, "Bonjour", message_sid="SM" + "1" * 32)) == 200
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await client.app[STORE].conversations_by_status(Status.BOT))[0].id
    await twilio.wait_accepted(len(await desk.all_sent(conversation_id)))
    return desk, conversation_id


async def test_a_bot_question_reported_undelivered_for_a_transient_reason_is_sent_again_once(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    desk, conversation_id = await started(client, twilio)
    question = twilio.accepted()[-1]
    count = len(twilio.accepted())
    failed = twilio_status_form(question.answer["sid"], "undelivered", PHONE, error_code="30008")
    assert await deliver(client, failed, STATUS_PATH) == 200
    assert await deliver(client, failed, STATUS_PATH) == 200  # Twilio's callback again: nothing more
    entry = await bot_entry(desk, conversation_id, question.body["Body"])
    await desk.delivery_of(conversation_id, entry["id"], "failed")
    resent = (await twilio.wait_accepted(count + 1))[-1]
    assert resent.body["Body"] == question.body["Body"]
    # a late "delivered" of the first copy, and the second copy failing in turn, send nothing more
    late = twilio_status_form(question.answer["sid"], "delivered", PHONE)
    assert await deliver(client, late, STATUS_PATH) == 200
    again = twilio_status_form(resent.answer["sid"], "failed", PHONE, error_code="30003")
    assert await deliver(client, again, STATUS_PATH) == 200
    running_clock(client).advance(seconds=31)

    async def second_failed() -> bool:
        transcript = (await desk.conversation(conversation_id))["transcript"]
        copies = [e for e in transcript if e["author"] == "bot" and e["text"] == entry["text"]]
        return [e["delivery"] for e in copies] == ["failed", "failed"]

    await eventually(second_failed)
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_bot_replies_failed_total{channel="whatsapp",kind="transient",outcome="resent"} 1.0' in metrics
    assert 'gateway_bot_replies_failed_total{channel="whatsapp",kind="transient",outcome="not_resent"} 1.0' in metrics
    lines = [r.getMessage() for r in caplog.records if "reported failed" in r.getMessage()]
    assert len(lines) == 2 and "code 30008 (transient)" in lines[0] and "code 30003 (transient)" in lines[1]
    assert all("+336" not in line and question.body["Body"][:20] not in line for line in lines)
    # the reply named by its keyed form (``gateway log-id``), never its id: an unkeyed SHA-256 of the young person's
    # message's SID (``ids.derived_id``), which Twilio holds (until 2026-12-07 the line named it)
    assert f"({KeyedHash(SECRET_KEY).logged_id(entry['id'])})" in lines[0]
    assert not any(entry["id"] in r.getMessage() for r in caplog.records)
    assert len(twilio.accepted()) == count + 1


async def test_a_final_failure_is_not_sent_again_and_the_queues_listeners_read_it(
    client: Client, twilio: FakeTwilioAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for number, text in enumerate(WALK):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    await twilio.wait_accepted(len(await desk.all_sent(conversation_id)))
    told = twilio.accepted()[-1]  # the queue's message: where they are in line, where to turn meanwhile
    count = len(twilio.accepted())
    failed = twilio_status_form(told.answer["sid"], "undelivered", PHONE, error_code="30005")
    assert await deliver(client, failed, STATUS_PATH) == 200

    notes = await eventually(lambda: desk.system_entries(conversation_id, "did not reach"))
    assert notes[0]["system"]["code"] == "bot_failed.final"
    assert dict(notes[0]["system"]["params"]) == {"channel": "whatsapp", "error": "30005"}
    running_clock(client).advance(seconds=31)
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_bot_replies_failed_total{channel="whatsapp",kind="final",outcome="not_resent"} 1.0' in metrics
    assert [r.getMessage() for r in caplog.records if "code 30005 (final)" in r.getMessage()]
    assert len(twilio.accepted()) == count


async def test_a_failure_reported_after_the_conversation_went_on_sends_no_stale_copy_and_holds_nothing_back(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """The queue's message ("position 1 … aucun·e écoutant·e n'est connecté·e") reported undelivered (30003) once a
    listener had taken the young person: it is not sent again after "un·e écoutant·e vient de te rejoindre", and the
    listener's words go at once. Before, the copy went 30 s later, the listener's joining and first words held behind
    it in the outbox (order kept): the young person waited, then read they were in line with nobody online, then that
    a listener had joined."""
    for number, text in enumerate(WALK):
        assert await deliver(client, twilio_form(PHONE, text, message_sid=f"SM{number:032d}")) == 200
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    await twilio.wait_accepted(len(await desk.all_sent(conversation_id)))
    told = twilio.accepted()[-1]  # the queue's message
    count = len(twilio.accepted())
    await desk.take(conversation_id)
    await twilio.wait_accepted(count + 1)  # "un·e écoutant·e vient de te rejoindre"
    failed = twilio_status_form(told.answer["sid"], "undelivered", PHONE, error_code="30003")
    assert await deliver(client, failed, STATUS_PATH) == 200
    notes = await eventually(lambda: desk.system_entries(conversation_id, "did not reach"))
    assert notes[0]["system"]["code"] == "bot_failed.final"  # the listener knows, and it is not sent again
    await desk.reply(conversation_id, "Bonjour, je suis Anne, je suis là.")
    reply = (await twilio.wait_accepted(count + 2))[-1]  # at once, not behind a copy
    assert reply.body["Body"] == "Bonjour, je suis Anne, je suis là."
    # recorded sent before the clock moves: the outbox's lease is counted on this clock, and a minute's move while
    # the record was on its way (a busy machine, 2026-12-06) ended it: the next claim sent Anne's words again, and
    # that copy, not her next words, was the third request waited for below
    await outbox_drained(client)
    running_clock(client).advance(seconds=60)
    await desk.reply(conversation_id, "Tu veux me raconter ?")
    await twilio.wait_accepted(count + 3)
    await outbox_drained(client)
    bodies = [r.body["Body"] for r in twilio.accepted()]
    assert bodies.count(told.body["Body"]) == 1  # no stale copy
    assert bodies[count + 1 :] == ["Bonjour, je suis Anne, je suis là.", "Tu veux me raconter ?"]  # each once


async def test_a_reply_reported_rate_limited_is_sent_again_after_the_limit_once(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Twilio's status callback says 63018 ("Rate limit exceeded for Channel") while Twilio refuses every send for
    3 s: the WhatsApp channel is paused on this instance and the copy is due after the pause, sent once the limit
    is over, once. Until 2026-12-08 the copy went at once, into the same limit (here refused, 1 send refused; at
    Twilio, accepted then failed 63018 in turn: a final failure, the young person never got the reply)."""
    desk, conversation_id = await started(client, twilio)
    question = twilio.accepted()[-1]
    count = len(twilio.accepted())
    twilio.rate_limit(3.0)
    failed = twilio_status_form(question.answer["sid"], "failed", PHONE, error_code="63018")
    assert await deliver(client, failed, STATUS_PATH) == 200
    entry = await bot_entry(desk, conversation_id, question.body["Body"])
    await desk.delivery_of(conversation_id, entry["id"], "failed")
    await eventually(lambda: asyncio.sleep(0, not twilio.limiting))  # the limit over (3 s of real time)
    assert twilio.limited == 0  # nothing asked of Twilio during the limit
    running_clock(client).advance(seconds=REPORTED_PAUSE_SECONDS)  # the pause over
    resent = (await twilio.wait_accepted(count + 1))[-1]
    assert resent.body["Body"] == question.body["Body"]
    delivered = twilio_status_form(resent.answer["sid"], "delivered", PHONE)
    assert await deliver(client, delivered, STATUS_PATH) == 200
    await desk.delivery_of(conversation_id, entry["id"] + "-again", "delivered")
    await outbox_drained(client)
    assert len(twilio.accepted()) == count + 1 and twilio.limited == 0  # once, never twice
    assert not client.app[OUTBOX].paused(ChannelName.WHATSAPP)


async def test_a_rate_limit_reported_by_a_callback_is_shown_until_the_pauses_end_not_until_a_send(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    """Twilio's status callback says 63018 for a reply the conversation went on from (no copy: nothing of WhatsApp to
    send after): ``/readyz`` names the channel in ``channels_paused`` and ``gateway_channel_paused`` is 1 for the
    pause (``REPORTED_PAUSE_SECONDS``), then neither, with no send in between. Until 2026-12-08 evening both
    stayed until this instance next sent on the channel (an instance that only received the callback: hours, false
    alerts)."""
    await started(client, twilio)
    first = twilio.accepted()[0]
    count = len(twilio.accepted())
    assert await deliver(client, twilio_form(PHONE, "2", message_sid="SM" + "2" * 32)) == 200  # it went on
    await twilio.wait_accepted(count + 1)
    await outbox_drained(client)
    count = len(twilio.accepted())
    failed = twilio_status_form(first.answer["sid"], "failed", PHONE, error_code="63018")
    assert await deliver(client, failed, STATUS_PATH) == 200
    ready = await (await client.get("/readyz")).json()
    assert ready["channels_paused"] == ["whatsapp"], ready
    assert 'gateway_channel_paused{channel="whatsapp"} 1.0' in await (await client.get("/metrics")).text()
    running_clock(client).advance(seconds=REPORTED_PAUSE_SECONDS + 1)  # the pause over, nothing to send
    ready = await (await client.get("/readyz")).json()
    assert "channels_paused" not in ready, ready
    assert 'gateway_channel_paused{channel="whatsapp"} 0.0' in await (await client.get("/metrics")).text()
    assert not client.app[OUTBOX].paused(ChannelName.WHATSAPP)
    await outbox_drained(client)
    assert len(twilio.accepted()) == count  # no copy of a reply the conversation went on from


@pytest.mark.parametrize("cut", ["publish", "outbox_put"])
async def test_a_rate_limit_report_cut_short_by_the_store_is_completed_by_its_redelivery_once(
    holds: tuple[Settings, Holds],
    aiohttp_client: Callable[..., Awaitable[Client]],
    offline: None,
    twilio: FakeTwilioAPI,
    cut: str,
) -> None:
    """Twilio's status callback says 63018 and its processing fails after the entry was marked failed (the store
    reset at the console's event, ``publish``: before the pause and the copy; or at the copy's outbox item,
    ``outbox_put``: its transcript entry written, its item not): the webhook processes it again within its store
    hold (``_webhook``; past it, 503 and Twilio's redelivery, the same path), and that report completes what the
    first cut: the channel paused, the copy sent once after the pause; a report once more sends nothing more. Until
    2026-12-08 evening the report again found the entry failed already and did nothing: no pause (``publish``), and
    no copy at all, the young person never got the reply."""
    settings, store = holds  # on SQLite, Redis and a Cluster (``store_url``)
    settings = settings.replace(
        public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM, twilio_api_url=twilio.url,
    )  # fmt: skip
    app = await create_app(settings, store=cast(Store, store), clock=RunningClock(), worker_poll_seconds=0.05,
                           **shared_understanding(settings))  # fmt: skip
    client = await aiohttp_client(app)
    await model_loaded(client)
    await store.add_listener(Listener("anne", password_hash(), capacity=3, supervisor=True))
    desk, conversation_id = await started(client, twilio)
    await outbox_drained(client)
    question = twilio.accepted()[-1]
    count = len(twilio.accepted())
    if cut == "publish":
        store.fail("publish", lambda event: isinstance(event, DeliveryChanged) and event.delivery == Delivery.FAILED)
    else:
        store.fail("outbox_put", lambda item: item.id.endswith("-again"))
    failed = twilio_status_form(question.answer["sid"], "failed", PHONE, error_code="63018")
    assert await deliver(client, failed, STATUS_PATH) == 200  # cut, processed again within the webhook's hold
    assert store.failed[cut] == 1
    assert client.app[OUTBOX].paused(ChannelName.WHATSAPP)  # before (publish): not paused
    entry = await bot_entry(desk, conversation_id, question.body["Body"])
    await desk.delivery_of(conversation_id, entry["id"], "failed")
    running_clock(client).advance(seconds=REPORTED_PAUSE_SECONDS + 1)  # the pause over: the copy goes
    resent = (await twilio.wait_accepted(count + 1))[-1]  # before: never (TIMEOUT)
    assert resent.body["Body"] == question.body["Body"]
    assert await deliver(client, failed, STATUS_PATH) == 200  # once more: nothing more
    await outbox_drained(client)
    running_clock(client).advance(seconds=REPORTED_PAUSE_SECONDS + 1)
    await outbox_drained(client)
    assert len(twilio.accepted()) == count + 1  # the copy once, never twice
    notes = [e for e in (await desk.conversation(conversation_id))["transcript"] if e["author"] == "system"]
    assert len([e for e in notes if "bot_failed" in str(e.get("system"))]) <= 1  # a note once at most
