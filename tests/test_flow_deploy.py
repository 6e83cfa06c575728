"""flows.yaml changed under live conversations: a rolling deploy (two instances on one Redis, one on the new file, one
on the old), a rollback, a restart. Each young person mid-flow gets a sensible next message, whichever instance
reads it, and never an error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from gateway.app import FLOWS, STORE
from gateway.conversation import Status
from gateway.flows.loader import _Loader
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
from tests.conftest import PARIS, ROOT, AppFactory, Clock, add_listener, login
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)
from tests.test_app import flow_copy, with_flow
from tests.test_metrics import scrape, value
from tests.test_timers import bot_lines, conversation_of, fire_and_wait, start
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, say

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


OLD_NUMBER = "appelle le 116 006, tous les jours de 9h à 19h"
NEW_NUMBER = "appelle le 116 016, tous les jours de 9h à 19h"


async def test_a_partners_number_corrected_by_a_reload_is_the_one_a_listener_sends(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    """Ops find a wrong number in a partner's message and fix flows.yaml. The console (the new file) offers the
    partner; a listener refers the young person waiting since before the fix. Before, the conversation's pinned
    version gave the message: the wrong number was sent, to everyone begun before the reload, for hours."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    path = f"/api/conversations/{conversation.id}"
    assert (await client.post(path + "/take", json={})).status == 200

    text = flows.read_text(encoding="utf-8")
    assert OLD_NUMBER in text
    flows.write_text(text.replace(OLD_NUMBER, NEW_NUMBER), encoding="utf-8")
    reloaded = client.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok, reloaded

    referred = await client.post(path + "/refer", json={"partner": "116006"})
    assert referred.status == 201, await referred.text()
    sent = (await referred.json())["text"]
    assert NEW_NUMBER in sent and OLD_NUMBER not in sent


async def test_a_closure_added_by_a_reload_tells_the_waiting_young_person_where_to_turn(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    """No listener tonight: ops close the line at 15:00 today (a dated closure) and save flows.yaml at 14:00. A
    young person waiting since before is told, at 15:05, that the line is closed and who answers now. Before, the
    pinned version's hours (open until 23:00) kept promising a listener who would never come."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    assert conversation.status == Status.QUEUED

    text = flows.read_text(encoding="utf-8")
    closures = "    closures:\n      - date: 2026-12-25\n"
    assert closures in text
    closure = '      - date: 2026-03-10\n        hours: ["15:00-23:00"]\n        reason: "Pas d\'écoutant ce soir"\n'
    flows.write_text(text.replace(closures, "    closures:\n" + closure + "      - date: 2026-12-25\n", 1), "utf-8")
    reloaded = client.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok, reloaded

    count = len(await bot_lines(client, conversation.id))
    clock.now = datetime(2026, 3, 10, 15, 5, tzinfo=PARIS).astimezone(UTC)

    async def told() -> bool:
        return len(await bot_lines(client, conversation.id)) > count

    await fire_and_wait(client, told)
    assert "Le chat du 3018 est fermé" in (await bot_lines(client, conversation.id))[-1]


NEW_PHRASE = "(le|mon) grand plongeon"
SUICIDE_PHRASES = (
    "  suicide:                       # ideation, plan, means, goodbye messages → 3114\n    match:\n      fr: ["
)


async def test_a_phrase_added_to_an_interrupt_protects_the_young_people_already_waiting(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    """After a missed conversation, ops add the words a young person used to the suicide interrupt and save
    flows.yaml. A young person waiting in the queue since before writes them: the priority goes urgent and the 3114
    is given. Before, the pinned version's phrases read the message: nothing raised, a normal place in the queue."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings.replace(understanding="off"), flows))
    token = await start(client, WALK_TO_QUEUE)
    conversation = await conversation_of(client, token, clock)
    assert (conversation.status, conversation.priority.value) == (Status.QUEUED, "normal")

    text = flows.read_text(encoding="utf-8")
    assert SUICIDE_PHRASES in text
    flows.write_text(text.replace(SUICIDE_PHRASES, SUICIDE_PHRASES + NEW_PHRASE + ", ", 1), encoding="utf-8")
    reloaded = client.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok, reloaded

    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        frames = await say(ws, "late", "ce soir je fais le grand plongeon")
    assert any("3114" in t for t in bot_texts(frames)), bot_texts(frames)
    waiting = await client.app[STORE].get_conversation(conversation.id)
    assert waiting is not None and waiting.priority.value == "urgent"


async def test_a_phrase_added_to_an_interrupt_protects_the_young_people_in_the_middle_of_the_questions(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    """The same phrase, written at the age question by a young person who began before the reload: handed to a
    listener at once, urgent, with the 3114. Before: "not understood", and the age question again."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings.replace(understanding="off"), flows))
    token = await start(client, WALK_TO_QUEUE[:2])
    text = flows.read_text(encoding="utf-8")
    flows.write_text(text.replace(SUICIDE_PHRASES, SUICIDE_PHRASES + NEW_PHRASE + ", ", 1), encoding="utf-8")
    reloaded = client.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok, reloaded

    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        frames = await say(ws, "late", "ce soir je fais le grand plongeon")
    assert any("3114" in t for t in bot_texts(frames)), bot_texts(frames)
    conversation = await conversation_of(client, token, clock)
    assert (conversation.status, conversation.priority.value) == (Status.QUEUED, "urgent")


async def test_a_phrase_added_to_an_interrupt_protects_a_young_person_who_writes_it_over_two_messages(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    """The same phrase, cut over two messages at the age question ("ce soir je fais le grand", then "plongeon") by a
    young person who began before the reload: the two messages read together hand off at once, urgent, with the 3114,
    as they do for one begun after it. Before, the new file's phrases flagged the second message for the listeners,
    but only the pinned version's interrupts were tried on the two together: "not understood", and the age question
    again, the young person left with the bot."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings.replace(understanding="off"), flows))
    token = await start(client, WALK_TO_QUEUE[:2])
    text = flows.read_text(encoding="utf-8")
    flows.write_text(text.replace(SUICIDE_PHRASES, SUICIDE_PHRASES + NEW_PHRASE + ", ", 1), encoding="utf-8")
    reloaded = client.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok, reloaded

    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await say(ws, "first", "ce soir je fais le grand")
        frames = await say(ws, "second", "plongeon")
    assert any("3114" in t for t in bot_texts(frames)), bot_texts(frames)
    conversation = await conversation_of(client, token, clock)
    assert (conversation.status, conversation.priority.value) == (Status.QUEUED, "urgent")


async def test_a_reload_is_in_the_audit_log_with_who_and_which_version(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """A supervisor reloads flows.yaml from the console (a changed partner number, a closure): the audit log says who,
    when and which version, and a refused reload too. Before, nothing: the supervisors could not tell from the audit
    what changed the bot's answers, or when."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    text = flows.read_text(encoding="utf-8")
    flows.write_text(text.replace(OLD_NUMBER, NEW_NUMBER), encoding="utf-8")
    reloaded = await client.post("/api/admin/reload", json={})
    assert reloaded.status == 200, await reloaded.text()
    version = (await reloaded.json())["version"]
    flows.write_text(text.replace("choices:", "choises:", 1), encoding="utf-8")
    assert (await client.post("/api/admin/reload", json={})).status == 422

    entries = (await (await client.get("/api/audit")).json())["entries"]
    reloads = [(e["actor"], e["action"], e["subject"]) for e in entries if e["action"].startswith("flows_reload")]
    assert reloads == [("sam", "flows_reload_refused", version), ("sam", "flows_reload", version)]


async def test_two_instances_answering_with_two_flows_is_seen_in_their_metrics(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """Two instances on one store, one of them on an older flows.yaml (its copy not updated by the deploy, its reload
    refused, a config map not yet projected): each one's ``/metrics`` says the version it serves, so an alert sees two
    versions served at once, and the one that moves with a reload. Before, only each instance's ``/readyz`` body said
    it, which a scraper behind a load balancer never compares: the instances answered with two flows for as long as
    it lasted, unseen."""
    older, newer = tmp_path / "old", tmp_path / "new"
    older.mkdir(), newer.mkdir()
    old_flows, new_flows = flow_copy(older), flow_copy(newer)
    text = new_flows.read_text(encoding="utf-8")
    new_flows.write_text(text.replace(OLD_NUMBER, NEW_NUMBER), encoding="utf-8")
    old = await make_client(with_flow(settings, old_flows))
    new = await make_client(with_flow(settings, new_flows))
    versions = old.app[FLOWS].version, new.app[FLOWS].version
    assert versions[0] != versions[1]
    for client, version, other in ((old, *versions), (new, *reversed(versions))):
        metrics = await scrape(client)
        assert value(metrics, "gateway_flow_version", version=version) == 1
        assert value(metrics, "gateway_flow_version", version=other) == 0

    old_flows.write_text(new_flows.read_text(encoding="utf-8"), encoding="utf-8")  # the deploy catches up
    reloaded = old.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok and reloaded.version == versions[1]
    metrics = await scrape(old)
    assert value(metrics, "gateway_flow_version", version=versions[1]) == 1
    assert value(metrics, "gateway_flow_version", version=versions[0]) == 0
