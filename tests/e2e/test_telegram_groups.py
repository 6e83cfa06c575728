"""The bot in a group, a supergroup or a channel (added by a young person by mistake, by a class's group, by trolls):
the real app and the fake Bot API.

A group's messages are never a helpline conversation: nobody's words there are "the young person's", no listener
sees them. Until 2026-12-05 the bot stayed in the group in silence: whoever added it (maybe a young person looking
for help) was told nothing, and it kept receiving the group's commands and mentions. Now the group is told once,
briefly, French then English, to write to the bot in private, and the bot leaves it (``leaveChat``); a channel is
left without a word (a post there would go to all its subscribers).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.app import STORE
from gateway.channels.telegram import GROUPS_TOLD_PER_MINUTE
from gateway.settings import Settings
from gateway.testing import FakeTelegramAPI, telegram_headers, telegram_member_update, telegram_update
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, gateway, offline
from tests.e2e.test_telegram import CHAT, PATH, SECRET, telegram_settings

__all__ = ["gateway", "offline", "telegram_settings"]  # fixtures used below

GROUP = -1001234567890
CLASS = {"id": GROUP, "type": "supergroup", "title": "3e B"}


@pytest.fixture
async def client(gateway: GatewayFactory, telegram_settings: Settings) -> Client:
    return await gateway(telegram_settings)


async def deliver(client: Client, update: dict[str, Any]) -> int:
    response = await client.post(PATH, data=json.dumps(update), headers=telegram_headers(SECRET))
    return response.status


def added(update_id: int, chat: dict[str, Any], status: str = "member") -> dict[str, Any]:
    """The bot added to ``chat`` by a member (``my_chat_member``), its status there ``status``."""
    update = telegram_member_update(update_id, CHAT, status)
    changed = update["my_chat_member"]
    changed["chat"] = chat
    changed["old_chat_member"] = {"status": "left", "user": changed["new_chat_member"]["user"]}
    if status == "administrator":
        changed["new_chat_member"].update(
            {key: True for key in ("can_be_edited", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                                   "can_restrict_members", "can_promote_members", "can_change_info",
                                   "can_invite_users", "is_anonymous", "can_post_stories", "can_edit_stories",
                                   "can_delete_stories")}
        )  # fmt: skip
    return update


def in_group(update_id: int, text: str, chat: dict[str, Any] = CLASS, **fields: Any) -> dict[str, Any]:
    """A group member's message the bot receives (a command, a mention, a reply to it, or all with privacy off)."""
    update = telegram_update(update_id, CHAT, text)
    update["message"]["chat"] = chat
    update["message"].update(fields)
    return update


async def no_conversation(client: Client) -> bool:
    found = await client.app[STORE].list_conversations(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    return found == []


async def test_a_group_that_adds_the_bot_is_told_once_to_write_in_private_and_left(
    client: Client, telegram: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    member = telegram_update(0, CHAT, None)["message"]["from"]
    joined = in_group(900002002, "", new_chat_members=[{"id": 123456789, "is_bot": True, "first_name": "TestBot"}])
    del joined["message"]["text"]
    assert await deliver(client, added(900002001, CLASS)) == 200
    assert await deliver(client, joined) == 200  # the service message that comes with it: told once, not twice
    [left] = await telegram.wait_for("leaveChat")
    assert left.body == {"chat_id": str(GROUP)}
    await outbox_drained(client)
    [told] = telegram.requests_to("sendMessage")
    assert told.body["chat_id"] == str(GROUP)
    french, english = told.body["text"].split("\n\n")
    assert "privé" in french and "groupe" in french, french
    assert "private" in english and "group" in english, english
    assert await no_conversation(client)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]
    assert any("group" in line for line in lines), lines
    assert all(str(GROUP) not in line and str(member["id"]) not in line for line in lines)


async def test_a_group_members_words_never_become_a_conversation(client: Client, telegram: FakeTelegramAPI) -> None:
    """A bot already in a group (added before, or made an administrator: it reads every message) gets a member's
    "/start" or words of danger: nobody's conversation, no listener card; the group is told and left."""
    assert await deliver(client, in_group(900002101, "/start@test_bot je vais me tuer")) == 200
    [left] = await telegram.wait_for("leaveChat")
    assert left.body == {"chat_id": str(GROUP)}
    await outbox_drained(client)
    assert [r.body["chat_id"] for r in telegram.requests_to("sendMessage")] == [str(GROUP)]
    assert await no_conversation(client)


@pytest.mark.parametrize("kind", ["group", "supergroup"])
async def test_a_bot_made_an_administrator_of_a_group_leaves_it(
    client: Client, telegram: FakeTelegramAPI, kind: str
) -> None:
    chat = {"id": -4242, "type": kind, "title": "trolls"}
    assert await deliver(client, added(900002201, chat, "administrator")) == 200
    [left] = await telegram.wait_for("leaveChat")
    assert left.body == {"chat_id": "-4242"}
    assert [r.body["chat_id"] for r in telegram.requests_to("sendMessage")] == ["-4242"]


async def test_a_channel_is_left_without_a_word(client: Client, telegram: FakeTelegramAPI) -> None:
    channel = {"id": -1009999, "type": "channel", "title": "annonces"}
    assert await deliver(client, added(900002301, channel, "administrator")) == 200
    [left] = await telegram.wait_for("leaveChat")
    assert left.body == {"chat_id": "-1009999"}
    news = {"id": -1008888, "type": "channel", "title": "infos"}  # a channel's post, should Telegram send one
    post = {"update_id": 900002302, "channel_post": {"message_id": 5, "date": 1773150000, "chat": news,
                                                      "text": "hello"}}  # fmt: skip
    assert await deliver(client, post) == 200
    assert [r.body["chat_id"] for r in await telegram.wait_for("leaveChat", 2)] == ["-1009999", "-1008888"]
    await outbox_drained(client)
    assert telegram.requests_to("sendMessage") == []  # a post there would reach every subscriber
    assert await no_conversation(client)


async def test_the_bot_removed_from_a_group_does_nothing(client: Client, telegram: FakeTelegramAPI) -> None:
    update = added(900002401, CLASS, "left")
    update["my_chat_member"]["old_chat_member"]["status"] = "member"
    assert await deliver(client, update) == 200
    assert await deliver(client, telegram_update(900002402, CHAT, "bonjour")) == 200  # a private chat still served
    await telegram.wait_accepted(2)
    await outbox_drained(client)
    assert telegram.requests_to("leaveChat") == []
    assert {r.body["chat_id"] for r in telegram.requests_to("sendMessage")} == {str(CHAT)}


async def test_a_troll_adding_the_bot_to_many_groups_gets_them_left_but_not_all_told(
    client: Client, telegram: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A troll adding the bot to a hundred groups at once: every one is left, but the bot posts in at most
    ``GROUPS_TOLD_PER_MINUTE`` of them (each post is one of the bot's messages, which Telegram counts against the
    bot's whole rate, the young people's replies included), the others left without a word, and the log says so
    once, not a line a group; a young person writing meanwhile is answered."""
    caplog.set_level(logging.INFO)
    groups = [{"id": -5000 - n, "type": "group", "title": f"troll {n}"} for n in range(100)]
    for n, group in enumerate(groups):
        assert await deliver(client, added(900003000 + n, group)) == 200
    assert await deliver(client, telegram_update(900003200, CHAT, "bonjour")) == 200
    left = await telegram.wait_for("leaveChat", len(groups))
    assert sorted(r.body["chat_id"] for r in left) == sorted(str(g["id"]) for g in groups)
    await outbox_drained(client)
    told = [r for r in telegram.requests_to("sendMessage") if r.body["chat_id"] != str(CHAT)]
    assert len(told) <= GROUPS_TOLD_PER_MINUTE, len(told)
    assert [r for r in telegram.requests_to("sendMessage") if r.body["chat_id"] == str(CHAT)]  # still answered
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("gateway") and "group" in r.getMessage()]
    assert len(lines) <= GROUPS_TOLD_PER_MINUTE + 1, len(lines)
