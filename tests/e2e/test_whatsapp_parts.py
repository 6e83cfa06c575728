"""A listener's reply longer than WhatsApp's 1,600 characters goes in parts; each part's status callback counts.

The real app, on SQLite, a real Redis and a real Redis Cluster, and the fake Twilio REST API. Until 2026-12-05 only
the last part's provider id was recorded on the reply's entry: a first part ``undelivered`` (Twilio 63049) while
the others were read left the listener with "read", never told that the young person got the reply's end only.
"""

from __future__ import annotations

import pytest

from gateway.settings import Settings
from gateway.testing import FakeTwilioAPI, twilio_status_form
from tests.e2e.channel_support import Client, GatewayFactory, ListenerDesk, gateway, offline
from tests.e2e.test_whatsapp import PHONE, STATUS_PATH, deliver, handed_to_listener, whatsapp_settings
from tests.store.conftest import emptied, flush_cluster, redis_cluster_url, redis_url

__all__ = ["gateway", "offline", "redis_cluster_url", "redis_url", "whatsapp_settings"]  # fixtures

LONG = ("Je t'écoute, tu as bien fait d'écrire. " * 100)[:3900].strip()  # three parts of at most 1,600


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis)])  # fmt: skip
async def client(request: pytest.FixtureRequest, gateway: GatewayFactory, whatsapp_settings: Settings) -> Client:
    if request.param == "redis":
        return await gateway(whatsapp_settings.replace(store=emptied(request.getfixturevalue("redis_url"))))
    if request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        flush_cluster(url)
        return await gateway(whatsapp_settings.replace(store=url, redis_cluster=1))
    return await gateway(whatsapp_settings)


async def _long_reply(client: Client, twilio: FakeTwilioAPI) -> tuple[ListenerDesk, str, str, list[str]]:
    """The listener's long reply, sent in three parts and recorded: the desk, conversation, entry, parts' sids."""
    desk, conversation_id = await handed_to_listener(client, twilio)
    before = len(twilio.accepted())
    entry = await desk.reply(conversation_id, LONG)
    parts = (await twilio.wait_accepted(before + 3))[before:]
    assert "".join(r.body["Body"] for r in parts).replace(" ", "") == LONG.replace(" ", "")
    await desk.delivery_of(conversation_id, entry["id"], "sent")
    return desk, conversation_id, entry["id"], [r.answer["sid"] for r in parts]


async def _shown(desk: ListenerDesk, conversation_id: str, entry_id: str) -> str:
    [entry] = [e for e in (await desk.conversation(conversation_id))["transcript"] if e["id"] == entry_id]
    return str(entry["delivery"])


async def test_a_first_part_undelivered_shows_the_reply_failed_though_the_others_were_read(
    client: Client, twilio: FakeTwilioAPI
) -> None:
    desk, conversation_id, entry_id, sids = await _long_reply(client, twilio)
    first, *rest = sids
    assert await deliver(client, twilio_status_form(first, "undelivered", PHONE, "63049"), STATUS_PATH) == 200
    for status in ("delivered", "read"):
        for sid in rest:
            assert await deliver(client, twilio_status_form(sid, status, PHONE), STATUS_PATH) == 200
    assert await _shown(desk, conversation_id, entry_id) == "failed"  # receipts are handled before the 200


async def test_a_reply_in_parts_is_read_only_once_every_part_is_read(client: Client, twilio: FakeTwilioAPI) -> None:
    desk, conversation_id, entry_id, sids = await _long_reply(client, twilio)
    for sid in sids:
        assert await deliver(client, twilio_status_form(sid, "delivered", PHONE), STATUS_PATH) == 200
    assert await _shown(desk, conversation_id, entry_id) == "delivered"
    for sid in reversed(sids[1:]):  # the last parts read first: the first still only delivered
        assert await deliver(client, twilio_status_form(sid, "read", PHONE), STATUS_PATH) == 200
        assert await _shown(desk, conversation_id, entry_id) == "delivered"
    assert await deliver(client, twilio_status_form(sids[0], "read", PHONE), STATUS_PATH) == 200
    assert await _shown(desk, conversation_id, entry_id) == "read"
    assert await deliver(client, twilio_status_form(sids[1], "delivered", PHONE), STATUS_PATH) == 200  # late
    assert await _shown(desk, conversation_id, entry_id) == "read"  # never backwards
    assert await deliver(client, twilio_status_form(sids[2], "failed", PHONE, "63049"), STATUS_PATH) == 200
    assert await _shown(desk, conversation_id, entry_id) == "failed"
    assert await deliver(client, twilio_status_form(sids[2], "read", PHONE), STATUS_PATH) == 200
    assert await _shown(desk, conversation_id, entry_id) == "failed"  # final
