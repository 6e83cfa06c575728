"""flows.yaml changed under live conversations: a rolling deploy (two instances on one Redis, one on the new file, one
on the old), a rollback, a restart. Each young person mid-flow gets a sensible next message, whichever instance
reads it, and never an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from gateway.app import STORE
from gateway.flows.loader import _Loader
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
from tests.conftest import ROOT, AppFactory
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)

SECRET = "webhook_secret-123"
CHAT = 515151


def with_german(target: Path) -> Path:
    """The default flows.yaml with a third language, ``de`` (its texts the French ones: the words do not matter)."""
    data = yaml.load((ROOT / "flows.yaml").read_text(encoding="utf-8"), Loader=_Loader)

    def add(node: Any) -> None:
        if isinstance(node, dict):
            if "fr" in node and set(node) <= {"fr", "en"}:
                node["de"] = node["fr"]
            for value in list(node.values()):
                add(value)
        elif isinstance(node, list):
            for value in node:
                add(value)

    add(data)
    data["languages"] = ["fr", "en", "de"]
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


@pytest.fixture
def telegram_settings(settings: Settings, telegram: FakeTelegramAPI, redis_url: str) -> Settings:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return settings.replace(store=redis_url, telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET,
                            telegram_api_url=telegram.url)  # fmt: skip


@pytest.mark.redis
async def test_a_conversation_begun_in_a_language_the_other_instance_does_not_have_is_answered_there(
    make_client: AppFactory, telegram_settings: Settings, tmp_path: Path
) -> None:
    """A rolling deploy adds a language (or a rollback removes it): a Telegram app in German starts in it on the new
    instance, and the next webhook reaches the old one, whose flow has no German. Before, the old instance raised
    KeyError at the question (503 to Telegram, redelivered to the same fate): the young person was never answered."""
    new = await make_client(telegram_settings.replace(flows=str(with_german(tmp_path / "flows.yaml"))))
    old = await make_client(telegram_settings)
    headers = telegram_headers(SECRET)
    first = telegram_update(900000101, CHAT, "bonjour", language_code="de")
    assert (await new.post("/webhooks/telegram", data=json.dumps(first), headers=headers)).status == 200
    store = new.app[STORE]
    conversation = (await store.conversations_by_status("bot"))[0]
    assert conversation.engine["language"] == "de"
    before = len(await store.transcript(conversation.id))

    second = telegram_update(900000102, CHAT, "pas compris la question", language_code="de")
    response = await old.post("/webhooks/telegram", data=json.dumps(second), headers=headers)
    assert response.status == 200, await response.text()
    after = [e for e in await store.transcript(conversation.id)][before:]
    answered = [e for e in after if e.author == Author.BOT]
    assert answered, [e.author for e in after]
    assert answered[-1].choices, answered[-1].text  # the question asked again, with its buttons
