"""Erasure asked by the young person on a provider channel (Telegram, with the fake Bot API): the question, the
yes, the final message with the emergency numbers, and nothing left in the store that names the chat."""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.app import STORE
from gateway.settings import Settings
from gateway.testing import FakeTelegramAPI, telegram_update
from tests.e2e.channel_support import Client, eventually, gateway, offline
from tests.e2e.test_telegram import CHAT, client, deliver, telegram_settings

__all__ = ["client", "gateway", "offline", "telegram_settings"]  # fixtures used below
SECRET = "mon beau-père lit mes messages"


def store_text(settings: Settings) -> str:
    conn = sqlite3.connect(settings.store.removeprefix("sqlite:///"))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}"))
    finally:
        conn.close()


async def test_a_telegram_user_erases_their_data(
    client: Client, telegram: FakeTelegramAPI, telegram_settings: Settings
) -> None:
    assert await deliver(client, telegram_update(900000501, CHAT, SECRET)) == 200
    await telegram.wait_accepted(1)
    assert await deliver(client, telegram_update(900000502, CHAT, "supprimer mes données")) == 200
    question = await eventually(lambda: _sent(telegram, "Réponds « oui »"))
    assert "reply_markup" in question  # Oui / Non buttons
    assert await deliver(client, telegram_update(900000503, CHAT, "oui")) == 200

    last = await eventually(lambda: _sent(telegram, "effacé"))
    assert "effacé" in last["text"] and all(n in last["text"] for n in ("119", "3114", "17", "112"))
    assert str(last["chat_id"]) == str(CHAT)

    async def settled() -> bool | None:
        text = store_text(telegram_settings)
        return True if SECRET not in text and str(CHAT) not in text else None

    await eventually(settled)  # the outbox dropped the last message's payload once sent
    assert await client.app[STORE].list_conversations(*_all_time()) == []
    assert await deliver(client, telegram_update(900000503, CHAT, "oui")) == 200  # a redelivery stays a duplicate
    assert await client.app[STORE].list_conversations(*_all_time()) == []


async def _sent(telegram: FakeTelegramAPI, containing: str) -> dict[str, Any] | None:
    found = [r.body for r in telegram.accepted() if containing in str(r.body.get("text"))]
    return found[-1] if found else None


def _all_time() -> tuple[object, object]:
    from gateway.erasure import EPOCH, FAR

    return EPOCH, FAR
