"""A rolling deploy: a newer instance writes events and transcript entries in a form this version does not fully know
(an extra key, a new author or delivery value); this older instance, on the same Redis, shows what it can of them.

The newer instance is a second app on the same Redis; what it would write is written directly, in its newer form.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import redis_keys as K
from gateway.store.codec import dumps_sealed
from gateway.store.redis_keys import CONVERSATION_EVENTS
from tests.conftest import AppFactory
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)
from tests.test_webchat import hello, receive_until, say

pytestmark = pytest.mark.redis

REPLY = "Je suis là, je t'écoute. Tu as bien fait d'écrire."


@pytest.fixture
def redis_settings(settings: Settings, redis_url: str) -> Settings:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return settings.replace(store=redis_url)


def newer_entry(**changes: Any) -> dict[str, Any]:
    """A listener's reply as a newer version's ``entry_json`` writes it: an attachment with a field more, and a
    key of the entry's own this version does not know."""
    entry: dict[str, Any] = {
        "id": "newer-reply", "author": "listener", "text": REPLY, "choices": [],
        "attachments": [{"kind": "image", "url": None, "content_type": "image/png", "name": "aide.png", "size": 2048}],
        "at": datetime.now(UTC).isoformat(), "delivery": "pending", "flag": None, "system": None, "reply_to": None,
    }  # fmt: skip
    return entry | changes


@pytest.mark.parametrize("changes", [{}, {"delivery": "queued"}], ids=["attachment-field", "delivery-value"])
async def test_a_reply_published_by_a_newer_instance_reaches_the_page(
    make_client: AppFactory, redis_settings: Settings, changes: dict[str, Any]
) -> None:
    older, newer = await make_client(redis_settings), await make_client(redis_settings)
    async with older.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "2")  # followed on the older instance once acknowledged
        conversation = (await older.app[STORE].conversations_by_status(Status.BOT))[0]
        event = {"type": "entry", "conversation_id": conversation.id, "entry": newer_entry(**changes)}
        client = aioredis.Redis.from_url(redis_settings.store)
        try:  # what the newer instance publishes (its store's publish, the JSON of a newer events.py)
            await client.publish(CONVERSATION_EVENTS + conversation.id, json.dumps(event))
        finally:
            await client.aclose()
        frames = await receive_until(ws, lambda f: f["type"] == "entry" and f["entry"]["id"] == "newer-reply")
    assert frames[-1]["entry"]["text"] == REPLY
    assert newer.app[STORE] is not older.app[STORE]


async def test_a_status_a_newer_instance_added_resyncs_the_page(
    make_client: AppFactory, redis_settings: Settings
) -> None:
    """A status this version cannot read is not skipped without a word: the page is sent the conversation again."""
    older = await make_client(redis_settings)
    async with older.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "2")
        conversation = (await older.app[STORE].conversations_by_status(Status.BOT))[0]
        event = {"type": "status", "conversation_id": conversation.id, "status": "paused", "queue": None}
        client = aioredis.Redis.from_url(redis_settings.store)
        try:
            await client.publish(CONVERSATION_EVENTS + conversation.id, json.dumps(event))
        finally:
            await client.aclose()
        frames = await receive_until(ws, lambda f: f["type"] == "resync")
    assert frames[-1]["status"] == "bot"


@pytest.mark.parametrize("delivery_code", ["p", "q"], ids=["attachment-field", "delivery-code"])
async def test_a_transcript_a_newer_instance_wrote_to_still_opens(
    make_client: AppFactory, redis_settings: Settings, delivery_code: str
) -> None:
    """The young person's page comes back (a reload) on the older instance after a newer one wrote an entry with an
    attachment field more (or a delivery code this version does not know): the history shows every message."""
    older, newer = await make_client(redis_settings), await make_client(redis_settings)
    async with older.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        await say(ws, "m0", "2")
    store = newer.app[STORE]
    conversation = (await store.conversations_by_status(Status.BOT))[0]
    client = aioredis.Redis.from_url(redis_settings.store)
    try:  # the last entry, a bot message, rewritten as the newer instance writes it: a compact entry, sealed
        key = K.transcript(conversation.id)
        entry_id, _, rest = (await client.lindex(key, -1)).partition(b"\n")
        head, _, sealed = rest.partition(b"\n")
        data = json.loads(store._keys.open("entry", sealed))  # type: ignore[attr-defined]
        data[3:] = [REPLY, [], [{"kind": "image", "url": None, "content_type": None, "name": "a.png", "size": 1}]]
        data[2] = "listener"
        sealed_again = dumps_sealed(store._keys, "entry", data)  # type: ignore[attr-defined]
        await client.lset(key, -1, b"\n".join([entry_id, delivery_code.encode() + head[1:], sealed_again]))
    finally:
        await client.aclose()
    async with older.ws_connect("/chat/ws") as ws:
        session = await hello(ws, token)
    assert session["history"][-1]["text"] == REPLY
