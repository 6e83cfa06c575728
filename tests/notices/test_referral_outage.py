"""A warm referral sent again after its answer failed (Redis restarting as the e-mail went out: 503, "try again
shortly", the dialog still open) reaches the partner as one referral: the console gives each referral an id and keeps
it for its resends (``POST …/referrals {…, id}``); the referral's id, hence its reference, derives from it, and a resend
of a referral recorded already is answered with it, never e-mailed again.

Its own redis-server (tests/test_redis_restart.py's), since the test stops it; a real SMTP server that accepts the
e-mail only once Redis is down.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.notices.smtp_server import SmtpServer
from tests.test_redis_restart import OwnRedis, own_redis, ready
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis


def told_next_steps(frame: dict[str, Any]) -> bool:
    """The page shows the partner's next steps: as an entry, or in the resync that follows the store's restart (the
    page's events connection may have been re-made after the message was written)."""
    entries = [frame["entry"]] if frame["type"] == "entry" else frame.get("entries", [])
    return any("France Victimes a reçu" in entry.get("text", "") for entry in entries)


async def test_a_referral_sent_again_after_a_redis_restart_reaches_the_partner_once(
    make_client: AppFactory, mail_settings: Settings, own_redis: OwnRedis, smtp: SmtpServer
) -> None:
    client = await make_client(mail_settings.replace(store=own_redis.url))
    await add_listener(client, "anne")
    await login(client, "anne")
    accept = smtp.inbox.handle_DATA

    async def accepted_as_redis_stops(server: Any, session: Any, envelope: Any) -> str:
        if not smtp.inbox.received:
            own_redis.stop()  # the SMTP server's own thread: the gateway waits for its 250 meanwhile
        return await accept(server, session, envelope)

    smtp.inbox.handle_DATA = accepted_as_redis_stops  # type: ignore[method-assign]
    async with client.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        conversation = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
        assert conversation is not None
        path = f"/api/conversations/{conversation.id}"
        assert (await client.post(path + "/take", json={})).status == 200
        body = {"partner": "116006", "consent": True, "shared": [["Âge", "15"]], "summary": "harcèlement", "id": "r1"}

        first = asyncio.create_task(client.post(path + "/referrals", json=body))
        async with asyncio.timeout(60):
            while not smtp.inbox.received:  # the partner has it; Redis down, restarting
                await asyncio.sleep(0.02)
        own_redis.start()
        async with asyncio.timeout(90):
            await ready(client)
            answer = await first
            if answer.status != 201:  # "try again shortly": the dialog stays open, the listener sends it again
                answer = await client.post(path + "/referrals", json=body)
        assert answer.status == 201, await answer.text()
        await receive_until(ws, told_next_steps)

    # every request that could e-mail has answered: the mail is sent within the request (its 250 awaited)
    assert len(smtp.inbox.received) == 1, [m["Subject"] for m in smtp.inbox.messages()]
    referrals = await (await client.get(path + "/notices")).json()
    assert len(referrals["referrals"]) == 1

    again = await client.post(path + "/referrals", json=body)  # its answer lost: sent again, answered as it was
    assert (again.status, (await again.json())["id"]) == (201, (await answer.json())["id"])
    assert len(smtp.inbox.received) == 1
