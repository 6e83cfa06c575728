"""Messenger as Meta really behaves over a line's life: a page token revoked, first contacts without words.

The real app (create_app, SQLite store, outbox, timers) and the fake Graph API, driven by signed webhooks.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from gateway.app import STORE
from gateway.conversation import Status
from gateway.store import Delivery
from gateway.testing import PAGE_ID, Failure, FakeGraphAPI, messenger_body, messenger_message
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, eventually, gateway, offline, running_clock
from tests.e2e.test_messenger import PSID, client, deliver, message, messenger_settings, texts

__all__ = ["client", "gateway", "messenger_settings", "offline"]  # fixtures used by the tests below


async def test_a_page_token_revoked_keeps_every_reply_and_says_so_at_once(
    client: Client, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Graph's code 190 (the page token expired or revoked: a password changed, the app removed) refuses every send
    of every conversation until an operator renews MESSENGER_PAGE_ACCESS_TOKEN. Until 2026-12-05 each reply failed
    for good, one WARNING line each, /readyz 200 saying nothing: hours of young people left without an answer,
    their replies never sent once the token was renewed. Now the replies wait, and it is shown at once."""
    caplog.set_level(logging.INFO)
    graph.fail_next(Failure(400, code=190, subcode=460, description="Error validating access token"))
    assert await deliver(client, message("Bonjour", mid="m_token")) == 200
    await graph.wait_for("messages", 1)

    async def shown() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" in ready else None

    ready = await eventually(shown)
    assert ready["ready"] is True  # the web chat and the other channels still serve
    assert "190" in ready["channels_refused"]["messenger"] and "token" in ready["channels_refused"]["messenger"]
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_channel_credentials_refused{channel="messenger"} 1.0' in metrics
    alerts = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(alerts) == 1 and "messenger" in alerts[0] and "credentials" in alerts[0]
    assert all(PSID not in r.getMessage() and "page-token" not in r.getMessage() for r in caplog.records)

    store = client.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    bot = [e for e in await store.transcript(conversation.id) if e.author.value == "bot"]
    assert bot and all(e.delivery == Delivery.PENDING for e in bot)  # kept, not failed

    running_clock(client).advance(seconds=61)  # the channel asked again a minute later: the token was renewed
    accepted = await graph.wait_accepted(len(bot))
    assert texts(accepted) == [e.text for e in bot]  # every reply once, in order

    async def over() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" not in ready else None

    await eventually(over)
    assert any("alert over" in r.getMessage() for r in caplog.records)
    assert json.dumps(ready).count(PSID) == 0


def referral(ref: str = "site-3018", at: int | None = None) -> dict[str, Any]:
    """Meta's ``referral`` item: an m.me link (``?ref=``) followed into a thread the person already has, no words."""
    timestamp = at if at is not None else int(time.time() * 1000)
    event = {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": timestamp, "referral": event}


async def test_a_young_person_arriving_from_the_lines_site_is_greeted_without_writing(
    client: Client, graph: FakeGraphAPI
) -> None:
    """A young person who wrote to the page once (the thread exists, so no "Get Started" button) follows the
    line's "talk to us on Messenger" link (m.me/…?ref=…): Meta sends a ``referral`` and nothing else. Until
    2026-12-05 it was dropped: the thread stayed silent until they dared to write, where the web chat greets its
    opening. Now, with no conversation open, the welcome and the first question; with one open, nothing more."""
    assert await deliver(client, messenger_body([referral()])) == 200
    store = client.app[STORE]

    async def started() -> list[Any] | None:
        return await store.conversations_by_status(Status.BOT) or None

    [conversation] = await eventually(started)
    transcript = await store.transcript(conversation.id)
    assert [e.author.value for e in transcript] == ["bot", "bot"]  # nobody's words: no entry of the young person
    assert texts(await graph.wait_accepted(2)) == [e.text for e in transcript]

    assert await deliver(client, messenger_body([referral("again")])) == 200  # the link followed again meanwhile
    assert await deliver(client, message("Non", "no", mid="m_after")) == 200  # then the answer, as to the question
    await outbox_drained(client)
    after = await store.transcript(conversation.id)
    assert [e.text for e in after if e.author.value == "user"] == ["Non"]
    assert len(await store.conversations_by_status(Status.BOT)) == 1
    assert [e.text for e in after[:2]] == [e.text for e in transcript]  # greeted once


async def test_a_batch_out_of_order_is_read_in_the_order_it_was_written(client: Client, graph: FakeGraphAPI) -> None:
    """Meta batches items (several entries, several items each) and does not promise their order: the young
    person's "Bonjour" then "Non" (to the danger question) came as "Non", "Bonjour". Until 2026-12-05 the body's
    order was taken: "Non" opened the conversation, "Bonjour" answered "are you in danger?" and was not understood.
    Now the items are read by their timestamp."""
    now = int(time.time() * 1000)
    hello = {**messenger_message(PSID, "Bonjour", mid="m_first"), "timestamp": now - 2000}
    no = {**messenger_message(PSID, "Non", mid="m_second", quick_reply="no"), "timestamp": now - 1000}
    assert await deliver(client, messenger_body([no], [hello])) == 200
    await outbox_drained(client)
    store = client.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    transcript = await store.transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["Bonjour", "Non"]
    assert not any("compris" in e.text for e in transcript if e.author.value == "bot")
