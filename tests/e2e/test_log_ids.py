"""Our ids in log lines name nothing a provider's message id leads to (since 2026-12-07).

A young person's entry id, the ids of the bot's replies to their message (entry and outbox item alike) and the
message's de-duplication key are computed from the provider's message id with no key (``gateway/ids.py``): whoever
holds that id (the provider, a leaked export of the chat) could find every log line about the message. The lines
name them by ``KeyedHash.logged_id`` (keyed with GATEWAY_SECRET_KEY), and ``gateway log-id`` gives ops that form.
The real app (SQLite, and the session's Redis) and the fake Graph API, driven by a signed webhook.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.app import STORE
from gateway.cli import main
from gateway.conversation import Status
from gateway.ids import derived_id, entry_id_of_key, seen_digest
from gateway.keyed import KeyedHash
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import Failure, FakeGraphAPI
from tests.conftest import DATA_KEY, SECRET_KEY, outbox_drained
from tests.e2e.channel_support import GatewayFactory, eventually, gateway, offline
from tests.e2e.test_messenger import SECRET, deliver, message, messenger_settings
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url

__all__ = ["gateway", "messenger_on_redis", "messenger_settings", "offline", "redis_url"]  # fixtures used below

MID = "m_idlogs_0001"
KEY = f"in:messenger:{MID}"  # its de-duplication key (``ids.inbound_key``)


def unkeyed(key: str) -> set[str]:
    """What anyone holding the provider's id computes: the key, the young person's entry id, the processed mark,
    the ids derived from the key (the bot's replies and their outbox items), and the provider's id itself."""
    return {MID, key, entry_id_of_key(key), seen_digest(key), *(derived_id(key, n) for n in range(1, 40))}


@pytest.fixture(params=["sqlite", "redis"])
def on_store(request: pytest.FixtureRequest, messenger_settings: Settings) -> Settings:
    if request.param == "sqlite":
        return messenger_settings
    on_redis: Settings = request.getfixturevalue("messenger_on_redis")
    return on_redis.replace(messenger_app_secret=SECRET)


async def test_no_log_line_names_an_id_computed_from_the_young_persons_message_id(
    gateway: GatewayFactory,
    on_store: Settings,
    graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until 2026-12-07 the outbox named each bot reply by its item id, ``derived_id(in:messenger:<mid>, n)``: the
    test found it in the outbox's lines (its DEBUG lines of a send, its INFO line of a retry). Now each line names
    the keyed form, the same in every line of the item, which ``gateway log-id`` prints."""
    caplog.set_level(logging.DEBUG, logger="gateway")
    client = await gateway(on_store)
    graph.fail_next(Failure(500))  # the first reply retried: the outbox's INFO line of a retry names its item too
    assert await deliver(client, message("Bonjour", mid=MID)) == 200
    store = client.app[STORE]

    async def opened() -> list[str] | None:
        return [c.id for c in await store.conversations_by_status(Status.BOT)] or None

    [conversation_id] = await eventually(opened)
    await outbox_drained(client)
    transcript = await store.transcript(conversation_id)
    bot = [e.id for e in transcript if e.author == Author.BOT]
    assert bot and set(bot) <= unkeyed(KEY)  # the replies' ids are those derived from the message's key
    assert entry_id_of_key(KEY) in {e.id for e in transcript if e.author == Author.USER}

    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    named = [(line, plain) for line in lines for plain in unkeyed(KEY) if plain in line]
    assert named == []
    keyed = KeyedHash(SECRET_KEY)
    outbox = [line for line in lines if line.startswith("outbox: ")]
    assert any(" retry " in line for line in outbox)
    for reply in bot:  # each reply's lines found by its logged form
        assert any(keyed.logged_id(reply) in line for line in outbox)

    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("GATEWAY_DATA_KEY", DATA_KEY)
    monkeypatch.setenv("GATEWAY_STORE", on_store.store)
    monkeypatch.setenv("GATEWAY_FLOWS", on_store.flows)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["log-id", bot[0]]) == 0
    assert capsys.readouterr().out == f"{bot[0]} {keyed.logged_id(bot[0])}\n"
    assert await asyncio.to_thread(main, ["log-id", "--conversation", conversation_id]) == 0
    listed = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert listed == [[e.id, keyed.logged_id(e.id), e.author.value] for e in transcript]


def test_log_id_refuses_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without GATEWAY_SECRET_KEY each start of the gateway draws a key of its own: no form to give, said so."""
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "")
    assert main(["log-id", "r0123"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "GATEWAY_SECRET_KEY" in captured.err
