"""A WhatsApp young person erased is not brought back by the catch-up (the real app on SQLite or a real Redis, the
fake Twilio API keeping every message they sent, as Twilio does).

Found by the chaos soak with erasures (``bench/chaos.py --seed 43 --erasures 6``, 2026-12-06): the erasure forgot
the de-duplication marks of the young person's messages, and the catch-up's next pass (every 5 minutes, after any
503, at start) read them again in Twilio's list, found them unprocessed and processed them again: a new conversation
holding their words ("bonjour", "efface mes données"), the bot greeting them and asking its erasure question again
after its goodbye. Now the marks of a WhatsApp young person's messages outlive the erasure (their 8 days, unlinked
from any conversation: a digest of Twilio's message id, nothing else), as the confirming message's always did.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import CATCH_UP, STORE
from gateway.channels.whatsapp_catchup import ERASED_DOUBT
from gateway.erasure import EPOCH, FAR
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.testing import FakeTwilioAPI, twilio_form
from tests.conftest import login
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline
from tests.e2e.test_whatsapp import PHONE, deliver, whatsapp_settings
from tests.e2e.test_whatsapp_catchup import BOUND, catching_up, counted, said
from tests.store.conftest import emptied, redis_url

__all__ = ["catching_up", "gateway", "offline", "redis_url", "whatsapp_settings"]  # fixtures used below

CONFIRM, DONE = "Tu veux que nous effacions", "C'est fait : tes messages"


@pytest.fixture(params=["sqlite", "redis"])
def erasing(request: pytest.FixtureRequest, catching_up: Settings) -> Settings:
    if request.param == "sqlite":
        return catching_up
    return catching_up.replace(store=emptied(request.getfixturevalue("redis_url")))


def to_phone(twilio: FakeTwilioAPI) -> list[str]:
    return [r.body["Body"] for r in twilio.accepted() if r.body["To"] == PHONE]


async def writes(client: Client, twilio: FakeTwilioAPI, number: int, text: str) -> None:
    """A message of theirs: Twilio keeps it, and posts its webhook (answered 200)."""
    form = twilio_form(PHONE, text, message_sid=f"SM{number:032d}")
    twilio.receive(PHONE, text, message_sid=form["MessageSid"])
    assert await deliver(client, form) == 200


async def started(client: Client) -> bool:
    return counted(client, "gateway_whatsapp_catchup_passes_total", outcome="ok") >= 1


async def test_a_young_person_erased_by_their_phrase_is_not_brought_back_by_the_next_catch_up(
    gateway: GatewayFactory, erasing: Settings, twilio: FakeTwilioAPI
) -> None:
    client = await gateway(erasing)
    await eventually(lambda: started(client), BOUND)  # the pass at start: its mark before their messages
    await writes(client, twilio, 1, "bonjour")
    await writes(client, twilio, 2, "efface mes données")
    await eventually(lambda: asyncio.sleep(0, any(CONFIRM in t for t in to_phone(twilio))), BOUND)
    await writes(client, twilio, 3, "oui")
    await eventually(lambda: asyncio.sleep(0, any(DONE in t for t in to_phone(twilio))), BOUND)
    told = len(to_phone(twilio))

    assert await client.app[CATCH_UP].catch_up() == 0  # the next pass (a 503, the period): nothing to process
    assert await said(client, PHONE) == []  # before: ["bonjour", "efface mes données"] in a new conversation
    assert to_phone(twilio)[told:] == []  # before: the greeting, the first question, the erasure question again
    assert counted(client, "gateway_whatsapp_caught_up_total") == 0


async def supervisor_erases(client: Client) -> None:
    [conversation] = await client.app[STORE].conversations_of(ChannelName.WHATSAPP, PHONE, EPOCH, FAR, 10)
    await login(client, "anne")  # a supervisor
    erased = await client.post(f"/api/conversations/{conversation.id}/erase", json={"confirm": True})
    assert erased.status == 200, await erased.text()


async def test_a_young_person_erased_by_a_supervisor_is_not_brought_back_by_the_next_catch_up(
    gateway: GatewayFactory, erasing: Settings, twilio: FakeTwilioAPI
) -> None:
    client = await gateway(erasing)
    await eventually(lambda: started(client), BOUND)
    await writes(client, twilio, 1, "bonjour")
    await writes(client, twilio, 2, "Non")
    await supervisor_erases(client)
    told = len(to_phone(twilio))

    assert await client.app[CATCH_UP].catch_up() == 0
    assert await said(client, PHONE) == []
    assert to_phone(twilio)[told:] == []  # before: the greeting and the first question again


async def test_a_message_whose_webhook_failed_before_the_erasure_is_not_brought_back_by_the_catch_up(
    gateway: GatewayFactory, erasing: Settings, twilio: FakeTwilioAPI
) -> None:
    client = await gateway(erasing)
    await eventually(lambda: started(client), BOUND)
    await writes(client, twilio, 1, "bonjour")
    # its webhook answered 503: no mark; sent before the erasure's last ``ERASED_DOUBT`` (a message dated within
    # it may have been sent after the erasure: processed, test below)
    before = datetime.now(UTC) - ERASED_DOUBT - timedelta(seconds=1)
    twilio.receive(PHONE, "je suis encore là", message_sid=f"SM{2:032d}", at=before)
    await supervisor_erases(client)
    told = len(to_phone(twilio))

    assert await client.app[CATCH_UP].catch_up() == 0  # before: 1, a new conversation with the erased words
    assert await said(client, PHONE) == []
    assert to_phone(twilio)[told:] == []
    assert counted(client, "gateway_whatsapp_caught_up_total") == 0
    assert counted(client, "gateway_whatsapp_catchup_left_erased_total") == 1  # an operator sees why


async def test_a_message_sent_after_the_erasure_is_a_new_contact_the_catch_up_processes(
    gateway: GatewayFactory, erasing: Settings, twilio: FakeTwilioAPI
) -> None:
    client = await gateway(erasing)
    await eventually(lambda: started(client), BOUND)
    await writes(client, twilio, 1, "bonjour")
    await supervisor_erases(client)
    erased = datetime.now(UTC)
    # Twilio dates to the second: a message dated after the erasure is one sent in a later second
    await eventually(lambda: asyncio.sleep(0, datetime.now(UTC) >= erased + timedelta(seconds=1.1)), BOUND)
    twilio.receive(PHONE, "c'est encore moi", message_sid=f"SM{2:032d}")  # its webhook answered 503: no mark

    assert await client.app[CATCH_UP].catch_up() == 1
    assert await said(client, PHONE) == ["c'est encore moi"]


async def test_a_message_sent_just_after_the_erasure_in_its_second_is_processed_not_lost(
    gateway: GatewayFactory, erasing: Settings, twilio: FakeTwilioAPI
) -> None:
    """Twilio dates a message to the second: one sent just after the erasure, in the same second, is dated before
    its instant. It may be a young person writing again (a new contact): processed, never dropped. Until 2026-12-06
    the catch-up left every message dated at or before the erasure's instant: this one was lost."""
    client = await gateway(erasing)
    await eventually(lambda: started(client), BOUND)
    await writes(client, twilio, 1, "bonjour")
    await supervisor_erases(client)
    digest = KeyedHash(erasing.secret_key.get_secret_value()).erased("whatsapp", PHONE)
    erased = await client.app[STORE].erased_at(digest)
    assert erased is not None
    after = erased.replace(microsecond=999_999)  # later in the erasure's second: Twilio dates it at its start
    twilio.receive(PHONE, "aidez-moi", message_sid=f"SM{2:032d}", at=after)  # its webhook answered 503: no mark
    await eventually(lambda: asyncio.sleep(0, datetime.now(UTC) > after), BOUND)  # Twilio lists what it received

    assert await client.app[CATCH_UP].catch_up() == 1  # before: 0, the message lost
    assert await said(client, PHONE) == ["aidez-moi"]
