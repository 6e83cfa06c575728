"""A warm referral's messages to the young person (the consent question, "nothing was shared", the next steps) racing a
close: never sent after the goodbye. Before, ``Referrals.ask`` and ``Referrals._tell`` read whether the listener held
the conversation before taking its lock: a close under way held the lock, told its goodbye, and the question went out
after it (a review of the listener's actions done twice or cut, 2027-01)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.store import Author, Store
from tests.notices.smtp_server import SmtpServer
from tests.notices.test_referrals import _taken

Client = TestClient  # type: ignore[type-arg]


async def _waiting_for_the_lock(store: Store, conversation_id: str, users: int) -> None:
    """Until ``users`` hold or wait for the conversation's lock (SQLite's in-process locks: first come, first
    served), 30 s at most (a busy machine)."""
    locks: Any = getattr(store, "_locks")  # noqa: B009 - the test reads who waits, nothing else
    locks = getattr(locks, "_local", locks)  # since 2026-12-07 the in-process ones inside the cross-process FileLocks
    for _ in range(3000):
        entry = locks._entries.get(conversation_id)
        if entry is not None and entry.users >= users:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not {users} at the lock of {conversation_id}")


async def _after_a_close(app: Client, conversation: str, path: str, body: dict[str, Any]) -> tuple[int, list[Any]]:
    """Anne closes the conversation and, while the close holds its lock, sends ``body`` to ``path`` (another tab, or
    her click answered late): the request's status, and what the young person was told from the close's goodbye on."""
    store = app.app[STORE]
    since = len(await store.transcript(conversation))
    async with store.lock(conversation):  # the close under way: it holds the lock while it tells the goodbye
        close = asyncio.create_task(app.post(f"/api/conversations/{conversation}/close",
                                             json={"outcome": "cyberbullying"}))  # fmt: skip
        await _waiting_for_the_lock(store, conversation, 2)
        sent = asyncio.create_task(app.post(f"/api/conversations/{conversation}/{path}", json=body))
        await _waiting_for_the_lock(store, conversation, 3)
    assert (await close).status == 200
    status = (await sent).status
    told = [e for e in (await store.transcript(conversation))[since:] if e.author in (Author.BOT, Author.LISTENER)]
    return status, told


async def test_the_consent_question_asked_as_the_conversation_closes_is_not_sent_after_the_goodbye(
    app: Client, smtp: SmtpServer
) -> None:
    async with app.ws_connect("/chat/ws") as ws:
        conversation = await _taken(app, ws)
        status, told = await _after_a_close(app, conversation, "referrals/ask", {"partner": "116006"})
    assert [e.author for e in told] == [Author.BOT], [e.text for e in told]  # the goodbye, nothing after it
    assert status == 409
    actions = [e.action for e in await app.app[STORE].audit_log()]
    assert "referral_consent_asked" not in actions


async def test_a_declined_referral_recorded_as_the_conversation_closes_tells_nothing_after_the_goodbye(
    app: Client, smtp: SmtpServer
) -> None:
    async with app.ws_connect("/chat/ws") as ws:
        conversation = await _taken(app, ws)
        body = {"partner": "116006", "consent": False, "shared": [], "summary": "", "id": "r1"}
        status, told = await _after_a_close(app, conversation, "referrals", body)
    assert [e.author for e in told] == [Author.BOT], [e.text for e in told]  # the goodbye, nothing after it
    assert status == 201  # the answer is recorded: nothing was shared, as the young person was told before leaving
    assert smtp.inbox.received == []
