"""A conversation whose lock stayed busy past a logout's wait goes back to the queue at the next alert check.

Anne and Bruno each hold a young person; both log out while another holder keeps their conversation's lock past the
logout's wait (``LOCK_SECONDS``: a long step of another instance, a stalled holder): each logout answers 503, the
session ended, the young person still held by a listener who left. Bruno logs in again at once (another device: a
new session) and keeps his; Anne stays logged out. Once the locks are let go, the next alert check gives Anne's back
to the queue, the young person told once that their listener left, and leaves Bruno's with him. Until 2026-12-07
nothing marked Anne's for the check, which completes only hand-backs that reached the queue: the young person waited
``GATEWAY_HELD_HANDBACK_SECONDS`` (600 s) for nobody, shown taken on every console. The real app on the real store
(SQLite, Redis, Cluster); the locks held through the store itself, the check driven as the worker runs it, once the
presence's grace has passed since Anne's console closed (a check within it leaves it held: until 2026-12-08 nothing
tested that grace, ``Watch._hand_back_left``'s ``left_seconds``).
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from gateway.app import WATCH
from gateway.clock import utcnow
from gateway.console.sessions import Sessions, signed_in
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author, Listener, Store
from tests.conftest import AppFactory, Clock, add_listener, password_hash
from tests.console.conftest import other_session
from tests.console.test_handback_crash import held_by_anne, instance, told_once_and_waiting
from tests.store.conftest import redis_cluster_url, redis_url, store, store_url
from tests.test_alerts_handback import DISCONNECTED, away, whole
from tests.test_timers import bot_lines, conversation_of, start
from tests.test_webchat import WALK_TO_QUEUE, receive_until

__all__ = ["redis_cluster_url", "redis_url", "store", "store_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]
GRACE = 2.5 * 0.5  # the presence's own (2.5 beats; the tests' apps beat every 0.5 s: worker_poll_seconds 0.05)


async def told(client: Client, conversation_id: str) -> int:
    return sum(DISCONNECTED in line for line in await bot_lines(client, conversation_id))


async def test_a_conversation_whose_lock_outlasted_the_logout_goes_back_at_the_next_check(
    store: Store, store_url: str, settings: Settings, make_client: AppFactory, clock: Clock
) -> None:
    client = await make_client(settings.replace(store=store_url), store=store)
    held: dict[str, str] = {}
    sessions = {}
    for name in ("anne", "bruno"):
        await add_listener(client, name)
        conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
        sessions[name] = await other_session(client, name)
        assert (await sessions[name].post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
        held[name] = conversation.id
    try:
        async with sessions["anne"].ws_connect("/api/events") as console:  # her console open as she logs out
            await receive_until(console, lambda f: f["type"] == "hello")
            async with store.lock(held["anne"]), store.lock(held["bruno"]):  # another holder, past the logouts' wait
                answers = await asyncio.gather(*(s.delete("/api/session", json={}) for s in sessions.values()))
        assert [a.status for a in answers] == [503, 503]  # each hand-back timed out: the sessions ended all the same
    finally:
        for session in sessions.values():
            await session.close()
    bruno = await other_session(client, "bruno")  # back on another device before the check: he keeps his
    try:
        for conversation_id in held.values():  # what the logouts left
            conversation = await store.get_conversation(conversation_id)
            assert conversation is not None and conversation.status == Status.WITH_LISTENER
        await whole(client)  # the instance knows who is at a console (nobody)
        await away(client)
        await client.app[WATCH].check()  # within the presence's grace since her console closed: not yet
        early = await store.get_conversation(held["anne"])
        assert early is not None and (early.status, early.listener) == (Status.WITH_LISTENER, "anne"), (
            "given back within the presence's grace"
        )
        assert await told(client, held["anne"]) == 0
        clock.advance(seconds=GRACE)  # the presence's grace since her console closed (the logout recorded it)
        await client.app[WATCH].check()
        await client.app[WATCH].check()  # again: nothing more
        anne = await store.get_conversation(held["anne"])
        assert anne is not None and (anne.status, anne.listener) == (Status.QUEUED, None), (
            "still held by the listener who logged out"
        )
        assert held["anne"] in [e.conversation_id for e in await store.waiting()]
        assert await store.held_by("anne") == 0
        assert await told(client, held["anne"]) == 1  # told once that their listener left
        kept = await store.get_conversation(held["bruno"])  # logged in again: never taken from him
        assert kept is not None and (kept.status, kept.listener) == (Status.WITH_LISTENER, "bruno")
        assert await told(client, held["bruno"]) == 0
        [audited] = [e for e in await store.audit_log() if e.action == "hand_back"]
        assert (audited.actor, audited.subject) == ("gateway", held["anne"]) and "logged out" in audited.detail
    finally:
        await bruno.close()


async def test_a_listener_logged_in_again_before_the_checks_lock_keeps_the_conversation(
    store: Store, clock: Clock
) -> None:
    """The check's hand-back of a conversation whose listener is logged in nowhere (``Watch._hand_back_left``) reads
    the sessions again under the conversation's lock (``Actions.hand_back_absent``'s ``signed_in``): Anne, logged in
    again between the check's own read and its lock (a new session on another device), keeps the young person, who
    is told nothing; her session ended, the same hand-back gives them back, told once. Until 2026-12-08 nothing
    tested that second read: with it removed, every test passed (the test above has Bruno log in before the check,
    whose own read keeps him)."""
    conversation_id = await held_by_anne(store, clock)
    anne = Listener("anne", password_hash(), capacity=3, created_at=utcnow())
    await store.add_listener(anne)
    sessions = Sessions(store, "a secret key", utcnow)
    token = await sessions.open(anne)  # logged in again, after the check found her logged in nowhere
    _, actions = instance(store, clock)

    async def logged_in(name: str) -> bool:  # as the app's (``gateway/app.py``): a live session of the account
        return await signed_in(store, name, utcnow())

    assert not await actions.hand_back_absent(conversation_id, "anne", lambda name: True, signed_in=logged_in)
    kept = await store.get_conversation(conversation_id)
    assert kept is not None and (kept.status, kept.listener) == (Status.WITH_LISTENER, "anne"), (
        "given back while its listener was logged in again"
    )
    bot = [e.text for e in await store.transcript(conversation_id) if e.author is Author.BOT]
    assert not any(DISCONNECTED in text for text in bot)  # the young person told nothing
    assert not [e for e in await store.audit_log() if e.action == "hand_back"]

    await sessions.end(token)  # logged in nowhere again: given back, told once
    assert await actions.hand_back_absent(conversation_id, "anne", lambda name: True, signed_in=logged_in)
    await told_once_and_waiting(store, conversation_id)
