"""A status callback that comes before the gateway recorded the send it concerns is applied, end to end.

The gateway records a reply's provider id once Twilio's API answered the send; Twilio's status callback may come
before (a fast callback, or a record retried through a store outage). Found by the chaos soak's receipts
(bench/chaos_receipts.py): such a callback was answered 200 and dropped, and the reply stayed ``sent`` forever
(a reply read shown unread; a ``failed`` never shown to the listener). Here the fake Twilio posts the callback
itself, and waits for the gateway's 200, before it answers the send: the receipt always comes first.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from gateway.app import STORE
from gateway.conversation import Status
from gateway.store import Author, Delivery
from gateway.testing import ACCOUNT_SID, FakeTwilioAPI, twilio_form, twilio_status_form
from tests.conftest import TWILIO_TOKEN
from tests.e2e.channel_support import Client, eventually, gateway, offline
from tests.e2e.test_whatsapp import PHONE, STATUS_PATH, client, deliver, whatsapp_settings

__all__ = ["client", "gateway", "offline", "whatsapp_settings"]  # fixtures used by the tests below


class EagerTwilio(FakeTwilioAPI):
    """Twilio whose status callback beats its own answer: each message accepted is first told to
    ``before_answer`` (its sid), awaited, then answered."""

    before_answer: Callable[[str], Awaitable[None]] | None = None

    async def _messages(self, request: web.Request) -> web.Response:
        response = await super()._messages(request)
        if response.status == 201 and self.before_answer is not None and isinstance(response.body, bytes):
            await self.before_answer(json.loads(response.body)["sid"])
        return response


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilioAPI]:
    async with EagerTwilio(ACCOUNT_SID, TWILIO_TOKEN) as fake:
        yield fake


async def replies(client: Client) -> dict[str, Delivery]:
    conversations = await client.app[STORE].conversations_by_status(Status.BOT)
    if not conversations:
        return {}
    transcript = await client.app[STORE].transcript(conversations[0].id)
    return {entry.id: entry.delivery for entry in transcript if entry.author is Author.BOT}


@pytest.mark.parametrize("status", ["read", "failed"])
async def test_a_status_callback_before_the_sends_record_is_applied(
    client: Client, twilio: FakeTwilioAPI, status: str
) -> None:
    answered: list[int] = []

    async def callback(sid: str) -> None:
        answered.append(await deliver(client, twilio_status_form(sid, status, PHONE), STATUS_PATH))

    assert isinstance(twilio, EagerTwilio)
    twilio.before_answer = callback
    assert await deliver(client, twilio_form(PHONE, "Bonjour")) == 200
    await twilio.wait_accepted(1)

    async def all_applied() -> dict[str, Delivery] | None:
        found = await replies(client)
        return found if found and set(found.values()) == {Delivery(status)} else None

    sent = await eventually(all_applied)  # before: "sent" forever
    assert len(answered) == len(sent) and set(answered) == {200}
