"""An erasure takes the young person's inbound messages the inbox set aside (``inbox_set_aside``: a message that
failed ten times on an unexpected error is kept, never dropped), on SQLite and Redis, through the real app and
WhatsApp webhooks. The message set aside here was written by a newer gateway sharing the store (a rolling
upgrade): its photo carries a field this version does not know, as in tests/test_inbox.py. Such a message holds
the young person's number and words; before, it outlived their erasure and the retention (``gateway purge``) for
good."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gateway.app import FLOWS, STORE
from gateway.erasure import EPOCH, FAR
from gateway.keyed import KeyedHash
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.settings import Settings
from gateway.store import InboxItem
from gateway.testing import ACCOUNT_SID, SECRET_KEY, WHATSAPP_FROM, FakeTwilioAPI, sign_twilio, twilio_form
from tests.conftest import TWILIO_TOKEN, AppFactory, Clock
from tests.e2e.channel_support import eventually
from tests.store.conftest import STORES, on_store, redis_url  # noqa: F401  (redis_url: the session's server)

PUBLIC = "http://helpline.example.org:8080"
PHONE = "whatsapp:+33612345678"
OTHER = "whatsapp:+33698765432"  # another young person: their message set aside stays
SECRET = "voici la photo qu'il m'a envoyée"


@pytest.fixture(params=STORES)
def where(request: pytest.FixtureRequest, settings: Settings, twilio: FakeTwilioAPI) -> Settings:
    return on_store(request, settings.replace(
        public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN,
        twilio_whatsapp_from=WHATSAPP_FROM, twilio_api_url=twilio.url,
    ))  # fmt: skip


def from_a_newer_version(sender: str, number: int) -> InboxItem:
    photo = {"url": "https://api.twilio.com/photo", "content_type": "image/jpeg", "caption": SECRET}
    payload = {"channel": "whatsapp", "sender": sender, "message_id": f"SMnewer{number}", "text": SECRET,
               "attachments": [photo]}  # fmt: skip
    return InboxItem(f"newer-{number}", KeyedHash(SECRET_KEY).sender("whatsapp", sender), payload, EPOCH)


async def test_an_erasure_takes_the_persons_messages_set_aside(
    make_client: AppFactory, where: Settings, twilio: FakeTwilioAPI, clock: Clock
) -> None:
    client = await make_client(where)
    store = client.app[STORE]
    await store.inbox_put([from_a_newer_version(PHONE, 1), from_a_newer_version(OTHER, 2)])

    async def set_aside() -> bool:
        clock.advance(seconds=61)  # past any backoff: the worker tries again at its next poll
        return await store.inbox_set_aside_count() == 2

    await eventually(set_aside)

    async def say(text: str) -> None:
        form: dict[str, Any] = twilio_form(PHONE, text)
        headers = {"X-Twilio-Signature": sign_twilio(TWILIO_TOKEN, PUBLIC + "/webhooks/whatsapp", form)}
        assert (await client.post("/webhooks/whatsapp", data=form, headers=headers)).status == 200

    async def sent(containing: str) -> bool:
        return any(containing in str(r.body.get("Body")) for r in twilio.accepted())

    await say("efface mes données")
    await eventually(lambda: sent("oui"))
    await say("oui")
    await eventually(lambda: sent("119"))  # the last message, with the emergency numbers
    assert [c.sender for c in await store.list_conversations(EPOCH, FAR)] == []

    assert await store.inbox_set_aside_count() == 1  # before: 2, the erased person's number and words kept for good


async def test_the_purge_takes_messages_set_aside_once_the_retention_is_over(
    make_client: AppFactory, where: Settings, clock: Clock
) -> None:
    client = await make_client(where)
    store, flows = client.app[STORE], client.app[FLOWS]
    await store.inbox_put([from_a_newer_version(PHONE, 1)])

    async def set_aside() -> bool:
        clock.advance(seconds=61)
        return await store.inbox_set_aside_count() == 1

    await eventually(set_aside)
    retention = Retention(store, flows, clock=clock, metrics=Metrics())
    days = flows.engine().flow.retention.closed_days
    await retention.purge(clock() + timedelta(days=days - 1))
    assert await store.inbox_set_aside_count() == 1  # within the retention: kept for an operator
    await retention.purge(clock() + timedelta(days=days, minutes=1))
    assert await store.inbox_set_aside_count() == 0  # before: kept for ever, the number and words with it
    [entry] = [e for e in await store.audit_log() if e.action == "purge"]
    assert "1 inbound message(s) set aside" in entry.detail and SECRET not in entry.detail
