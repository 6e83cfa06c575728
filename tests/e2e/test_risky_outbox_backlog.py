"""Escalate, never silence, in the outbox: the replies of a message whose words read a risk (its interrupt, the
3114 / 17 / 112 / 119 numbers) go out before a backlog of ordinary replies, without any conversation's replies out of
order nor twice (the real app on a real Redis, signed webhooks processed inline, the fake Graph API).

Replies pile up while nothing reaches the provider (here the workers stopped while the webhooks are processed, so
that the backlog is there whatever the machine's speed: a provider down, then back; an instance's outbox behind).
Then a young person who said "Bonjour" in that backlog writes "je vais me tuer ce soir", and another, new, writes "il
me frappe encore là". Until 2026-12-05 the outbox sent the oldest due replies first whatever they said: both
interrupts went out behind every ordinary reply written before them. Orders are compared, never durations.
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

BACKLOG = 200
BEHIND = "7400000000009998"  # said "Bonjour" in the backlog, then the words of danger
NEW = "7400000000009999"  # writes the words of danger first
CALL = ((BEHIND, "3114"), (NEW, "17"))  # the number each one's interrupt gives


def psid(number: int) -> str:
    return f"74{number:014d}"


async def test_a_risky_messages_replies_go_before_the_outbox_backlog_of_ordinary_ones(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI, redis_url: str
) -> None:
    flushing = redis.Redis.from_url(redis_url)
    flushing.flushdb()
    flushing.close()
    client = await gateway(messenger_settings.replace(store=redis_url))
    url = str(client.make_url(PATH))
    workers = client.app[SUPERVISOR]
    await workers.stop()  # the replies stored whole before the outbox's worker sends any of them
    said = [(psid(n), "Bonjour", f"m_peak_{n}") for n in range(BACKLOG)]
    said.append((BEHIND, "Bonjour", "m_behind_0"))  # its replies waiting behind every other
    said += [(BEHIND, "je vais me tuer ce soir", "m_behind_1"), (NEW, "il me frappe encore là", "m_new_0")]
    async with aiohttp.ClientSession() as provider:
        for sender, text, mid in said:  # one webhook each: processed inline, their replies put in the outbox
            raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(sender, text, mid)]))
            async with provider.post(url, data=raw, headers=headers) as response:
                assert response.status == 200
    assert graph.accepted() == []
    workers.start()

    def answered() -> bool:  # every greeting and first question of the backlog, and both interrupts' numbers
        texts = [(r.body["recipient"]["id"], r.body["message"].get("text", "")) for r in graph.accepted()]
        greeted = Counter(sender for sender, _ in texts)
        return all(greeted[psid(n)] >= 2 for n in range(BACKLOG)) and all(
            any(who == sender and number in text for sender, text in texts) for who, number in CALL
        )

    await eventually(lambda: asyncio.sleep(0, answered()), timeout=120)
    replies = graph.accepted()
    first: dict[str, int] = {}  # where each conversation's first reply came
    for place, reply in enumerate(replies):
        first.setdefault(reply.body["recipient"]["id"], place)
    answered_after = {who: sum(first[psid(n)] > first[who] for n in range(BACKLOG)) for who, _ in CALL}
    # Every ordinary conversation's replies were waiting when the risky messages came: the risky conversations' lines
    # are handed out in the first claim (100 lines at a time), the backlog's last ones after them. Their first
    # replies are compared, not their numbers': a line's replies go one after the other, and under load the other
    # lines' claims overtake the later ones (a reply's number follows the young person's earlier replies, in order).
    assert min(answered_after.values()) > BACKLOG // 4, (answered_after, first[BEHIND], first[NEW])
    assert len({r.body["message"]["text"] for r in replies if r.body["recipient"]["id"] == BEHIND}) == len(
        [r for r in replies if r.body["recipient"]["id"] == BEHIND]
    )  # nothing twice
    store = client.app[STORE]
    for who, _ in CALL:  # each conversation's replies in the order they were written, once each
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, who)
        assert conversation is not None
        written = [e.text for e in await store.transcript(conversation.id) if e.author is Author.BOT]
        assert [r.body["message"].get("text", "") for r in replies if r.body["recipient"]["id"] == who] == written
