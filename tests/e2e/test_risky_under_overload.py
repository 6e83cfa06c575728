"""Escalate, never silence, under overload: a message whose words read a risk, stored in the durable inbox behind a
backlog of ordinary ones, is processed (and so answered with its interrupt) before that backlog, without any young
person's own messages out of order (the real app on a real Redis, signed webhooks, the fake Graph API).

An evening of a peak (a news story): the inbox holds hundreds of "Bonjour"s (here one signed batch of them, written
with the workers stopped, so that the backlog is there whatever the machine's speed) and the gateway is busy
(``GATEWAY_INLINE_MAX=0``: every webhook goes through the inbox, as it does once the inline capacity is taken). Then a
young person who said "Bonjour" last in that backlog writes "je vais me tuer ce soir", and another, new, writes "il me
frappe encore là". Until 2026-12-05 the inbox handed out its items oldest first whatever they said: both waited behind
the whole backlog (measured under a real overload of 800 webhooks at about 600 a second: the risky message's first
reply was the 1,285th of 1,606, behind 408 of the 429 messages acknowledged before it and 256 acknowledged after it).
Orders are compared, never durations.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
import redis

from gateway.app import STORE, SUPERVISOR
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.e2e.channel_support import GatewayFactory, eventually, gateway, offline
from tests.e2e.test_messenger import PATH, SECRET, messenger_settings
from tests.store.conftest import redis_url

__all__ = ["gateway", "messenger_settings", "offline", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

BACKLOG = 400
BEHIND = "7300000000009998"  # said "Bonjour" last in the backlog, then the words of danger
NEW = "7300000000009999"  # writes the words of danger first
CALL = ((BEHIND, "3114"), (NEW, "17"))  # the number each one's interrupt gives


def psid(number: int) -> str:
    return f"73{number:014d}"


async def test_a_risky_message_in_the_inbox_goes_before_the_backlog_of_ordinary_ones(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI, redis_url: str
) -> None:
    flushing = redis.Redis.from_url(redis_url)
    flushing.flushdb()
    flushing.close()
    client = await gateway(messenger_settings.replace(store=redis_url, inline_max=0))
    url = str(client.make_url(PATH))
    workers = client.app[SUPERVISOR]
    await workers.stop()  # the backlog stored whole before the inbox's worker takes any of it
    backlog = [messenger_message(psid(n), "Bonjour", f"m_peak_{n}") for n in range(BACKLOG)]
    backlog.append(messenger_message(BEHIND, "Bonjour", "m_behind_0"))
    async with aiohttp.ClientSession() as provider:
        for document in (
            messenger_body(backlog),
            messenger_body([messenger_message(BEHIND, "je vais me tuer ce soir", "m_behind_1")]),
            messenger_body([messenger_message(NEW, "il me frappe encore là", "m_new_0")]),
        ):
            raw, headers = signed_messenger(SECRET, document)
            async with provider.post(url, data=raw, headers=headers) as response:
                assert response.status == 200
    workers.start()

    def answered() -> bool:  # every greeting and first question of the backlog, and both interrupts' numbers
        texts = [(r.body["recipient"]["id"], r.body["message"].get("text", "")) for r in graph.accepted()]
        greeted = Counter(sender for sender, _ in texts)
        return all(greeted[psid(n)] >= 2 for n in range(BACKLOG)) and all(
            any(who == sender and number in text for sender, text in texts) for who, number in CALL
        )

    await eventually(lambda: asyncio.sleep(0, answered()), timeout=120)
    replies = graph.accepted()
    first: dict[str, int] = {}  # where each ordinary sender's first reply came, and each risky one's interrupt
    for place, reply in enumerate(replies):
        sender, text = reply.body["recipient"]["id"], reply.body["message"].get("text", "")
        if sender not in dict(CALL) or dict(CALL)[sender] in text:
            first.setdefault(sender, place)
    answered_after = {who: sum(first[psid(n)] > first[who] for n in range(BACKLOG)) for who, _ in CALL}
    # every sender of the backlog waited when they wrote; the replies go out 100 at a time, in parallel
    assert min(answered_after.values()) > BACKLOG // 2, (answered_after, first[BEHIND], first[NEW])

    store = client.app[STORE]
    for who, said in ((BEHIND, ["Bonjour", "je vais me tuer ce soir"]), (NEW, ["il me frappe encore là"])):
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, who)
        assert conversation is not None and conversation.priority == "urgent"
        entries = await store.transcript(conversation.id)
        assert [e.text for e in entries if e.author is Author.USER] == said  # in order, once each
