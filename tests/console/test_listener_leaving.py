"""A listener who leaves never keeps young people waiting with nobody: the conversations they hold go back to the
queue when they log out, when a supervisor logs them out everywhere and when their account is removed with the CLI
(nobody else may answer a conversation a listener holds). Each young person is then told their place (the
queue's timer, re-armed by the hand-back), and another listener may take the conversation.

The real app on SQLite; the CLI as a real process on the same file.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, METRICS, STORE, WATCH
from gateway.console.actions import Actions
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.settings import Settings
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.conftest import AppFactory, Clock, add_listener
from tests.console.conftest import other_session
from tests.console.test_logout_busy_check import GRACE
from tests.console.test_sessions import GATEWAY
from tests.test_alerts_handback import DISCONNECTED, whole
from tests.test_timers import bot_lines, conversation_of, fire_and_wait, start
from tests.test_webchat import WALK_TO_QUEUE, receive_until

Client = TestClient  # type: ignore[type-arg]


async def held_by_anne(client: Client, clock: Clock) -> tuple[aiohttp.ClientSession, str, int]:
    """Anne's session, the conversation she took and how many bot lines it had then."""
    await add_listener(client, "anne")
    await add_listener(client, "bruno")
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    anne = await other_session(client, "anne")
    assert (await anne.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
    return anne, conversation.id, len(await bot_lines(client, conversation.id))


async def back_in_the_queue(client: Client, conversation_id: str, count: int, *, told: bool = True) -> None:
    """Waiting again, the young person told their place (``told``), and Bruno may take it."""
    store = client.app[STORE]
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED and conversation.listener is None
    assert [entry.conversation_id for entry in await store.waiting()] == [conversation_id]

    async def said() -> bool:  # the place, whenever the hand-back's own notice comes (before it or after)
        return any("position 1" in line for line in (await bot_lines(client, conversation_id))[count:])

    if told:
        await fire_and_wait(client, said)
    bruno = await other_session(client, "bruno")
    try:
        assert (await bruno.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200
    finally:
        await bruno.close()


async def given_back_by_the_next_check(client: Client, clock: Clock, conversation_id: str) -> None:
    """The conversation a hand-back left held (its lock busy past the wait), its listener logged in nowhere: back in
    the queue once the presence's grace has passed, the young person told once that their listener left. Until
    2026-12-07 it stayed held by the listener who had left until ``GATEWAY_HELD_HANDBACK_SECONDS`` (600 s)."""
    await whole(client)  # the instance knows who is at a console
    await client.app[WATCH].check()  # the absence first seen (no console was open: nothing recorded)
    clock.advance(seconds=GRACE)
    await client.app[WATCH].check()
    await client.app[WATCH].check()  # again: nothing more
    conversation = await client.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None), (
        "still held by the listener who left"
    )
    assert sum(DISCONNECTED in line for line in await bot_lines(client, conversation_id)) == 1


async def test_logging_out_gives_the_held_conversations_back_to_the_queue(client: Client, clock: Clock) -> None:
    anne, conversation_id, count = await held_by_anne(client, clock)
    try:
        assert (await anne.delete("/api/session", json={})).status == 204
    finally:
        await anne.close()
    await back_in_the_queue(client, conversation_id, count)


async def test_a_listener_logged_out_everywhere_gives_the_held_conversations_back(client: Client, clock: Clock) -> None:
    anne, conversation_id, count = await held_by_anne(client, clock)
    await add_listener(client, "sam", supervisor=True)
    sam = await other_session(client, "sam")
    try:
        assert (await sam.post("/api/listeners/anne/logout", json={})).status == 200
    finally:
        await sam.close()
        await anne.close()
    await back_in_the_queue(client, conversation_id, count)


async def test_a_logout_everywhere_whose_hand_back_failed_is_audited_all_the_same(client: Client, clock: Clock) -> None:
    """Sam logs Anne out everywhere while her conversation is locked by another operation: the hand-back times out
    (10 s), the answer is the 503 of a store error, but her sessions ended. The audit says so (the sessions ended, the
    hand-backs left to the check). Before: no ``logout_everywhere`` line at all (the error raised before the audit).
    Once the lock is let go, the next check gives it back (since 2026-12-07; before, 600 s later)."""
    anne, conversation_id, _ = await held_by_anne(client, clock)
    await add_listener(client, "sam", supervisor=True)
    sam = await other_session(client, "sam")
    try:
        async with client.app[STORE].lock(conversation_id):  # another operation holds the conversation
            answer = await sam.post("/api/listeners/anne/logout", json={})
        assert answer.status == 503  # a hand-back failed
        assert (await anne.get("/api/me")).status == 401  # her session ended all the same
    finally:
        await sam.close()
        await anne.close()
    lines = [e for e in await client.app[STORE].audit_log() if e.action == "logout_everywhere"]
    assert [(e.actor, e.subject) for e in lines] == [("sam", "anne")], "the logout everywhere was not audited"
    assert "1 session(s) ended" in lines[0].detail and "left to the check" in lines[0].detail, lines[0].detail
    await given_back_by_the_next_check(client, clock, conversation_id)


async def test_a_logout_everywhere_whose_audit_failed_too_answers_the_hand_backs_error(
    client: Client, clock: Clock, settings: Settings
) -> None:
    """The hand-back fails (the conversation locked by another operation: ``LockTimeout``), then the audit line
    written in that failure branch fails too (the audit table refusing inserts: a trigger of this test's). The
    error raised is the first, the hand-back's: counted as a lock not taken in time (the store answers), not as
    the audit's failure. Until 2026-12-07 the audit's StoreError replaced it (``error="LockTimeout"`` counted 0)."""
    anne, conversation_id, _ = await held_by_anne(client, clock)
    await add_listener(client, "sam", supervisor=True)
    sam = await other_session(client, "sam")
    path = settings.store.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'no audit'); END")
    registry = client.app[METRICS].registry
    locked = {"part": "http", "error": "LockTimeout"}
    try:
        async with client.app[STORE].lock(conversation_id):  # another operation holds the conversation
            answer = await sam.post("/api/listeners/anne/logout", json={})
        assert answer.status == 503
        assert (await anne.get("/api/me")).status == 401  # her session ended all the same
    finally:
        await sam.close()
        await anne.close()
    assert registry.get_sample_value("gateway_store_failures_total", locked) == 1, (
        "the audit's failure replaced the hand-back's error"
    )


async def test_an_account_removed_with_the_cli_gives_the_held_conversations_back(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    client = await make_client(settings)
    anne, conversation_id, count = await held_by_anne(client, clock)
    await anne.close()
    env = {**os.environ, "GATEWAY_STORE": settings.store, "GATEWAY_FLOWS": settings.flows,
           "GATEWAY_DATA_KEY": DATA_KEY, "GATEWAY_SECRET_KEY": SECRET_KEY}  # fmt: skip
    removed = await asyncio.to_thread(subprocess.run, [str(GATEWAY), "listeners", "remove", "anne"], env=env,
                                      capture_output=True, text=True, timeout=60)  # fmt: skip
    assert removed.returncode == 0 and "1 conversation(s) back in the queue" in removed.stdout, removed.stderr
    # The CLI's clock is the real one, the app's the test's: the timer it re-armed is not due here yet.
    await back_in_the_queue(client, conversation_id, count, told=False)
    # The CLI cannot see who is at a console: it promises no other listener ("un·e autre écoutant·e du 3018 va te
    # répondre", said with nobody online, 2026-12-05); the server's timer tells the young person where they stand
    assert not any("va te répondre" in line for line in (await bot_lines(client, conversation_id))[count:])


async def test_an_account_removed_with_the_cli_loses_access_even_when_a_hand_back_failed(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """Anne holds two young people; one is locked by another operation (the server's) while `gateway listeners
    remove anne` runs: its hand-back times out (10 s). A staff member leaving must lose access whatever a hand-back's
    fate: the account removed, the sessions ended, the other young person back in the queue, the failure said on
    stderr with a non-zero exit; the one left held goes back at the next alert check (since 2026-12-07; before, by
    the automatic hand-back 600 s later). Before: exit 1 with the store's error alone, the account still there and
    its sessions alive."""
    client = await make_client(settings)
    anne, locked, _ = await held_by_anne(client, clock)
    other = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    assert (await anne.post(f"/api/conversations/{other.id}/take", json={})).status == 200
    env = {**os.environ, "GATEWAY_STORE": settings.store, "GATEWAY_FLOWS": settings.flows,
           "GATEWAY_DATA_KEY": DATA_KEY, "GATEWAY_SECRET_KEY": SECRET_KEY}  # fmt: skip
    store = client.app[STORE]
    try:
        async with store.lock(locked):  # another operation holds this conversation
            removed = await asyncio.to_thread(subprocess.run, [str(GATEWAY), "listeners", "remove", "anne"],
                                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert removed.returncode != 0, removed.stdout
        assert await store.get_listener("anne") is None, (
            f"the account of a listener being removed was kept: {removed.stderr}"
        )
        assert (await anne.get("/api/me")).status == 401  # her session ended
    finally:
        await anne.close()
    assert "removed" in removed.stdout and "1 conversation(s) back in the queue" in removed.stdout, removed.stdout
    assert "hand-back" in removed.stderr and "alert check" in removed.stderr, removed.stderr
    back = await store.get_conversation(other.id)
    assert back is not None and (back.status, back.listener) == (Status.QUEUED, None)
    await given_back_by_the_next_check(client, clock, locked)


async def test_a_hand_back_by_another_process_promises_no_other_listener(client: Client, clock: Clock) -> None:
    """``gateway listeners remove`` hands back with a Dispatcher of its own, which cannot see who is at a console
    (its ``listeners_online`` says 1). Until 2026-12-05 the young person was told "un·e autre écoutant·e du 3018 va
    te répondre" with nobody online; now nothing of the listener: the server's timer tells their place. The line is
    open here (the app's clock; the CLI's real one may be at night)."""
    anne, conversation_id, count = await held_by_anne(client, clock)
    await anne.close()
    store, flows = client.app[STORE], client.app[FLOWS]
    actions = Actions(Dispatcher(store, flows, clock=clock), store, flows, clock=clock)  # as the CLI builds them
    assert await actions.hand_back_all("anne") == 1
    assert not any("va te répondre" in line for line in (await bot_lines(client, conversation_id))[count:])
    await back_in_the_queue(client, conversation_id, count)


async def test_a_supervisor_gives_back_a_conversation_whose_listener_left_their_console(
    client: Client, clock: Clock
) -> None:
    """Anne closed her browser without logging out (her session lives on): a supervisor gives her conversation back;
    another listener may not."""
    anne, conversation_id, count = await held_by_anne(client, clock)
    await add_listener(client, "sam", supervisor=True)
    bruno, sam = await other_session(client, "bruno"), await other_session(client, "sam")
    path = f"/api/conversations/{conversation_id}/hand-back"
    try:
        assert (await bruno.post(path, json={})).status == 403  # not his, nor a waiting one
        assert (await sam.post(path, json={})).status == 200
    finally:
        for http in (anne, bruno, sam):
            await http.close()
    await back_in_the_queue(client, conversation_id, count)
    [entry] = [e for e in await client.app[STORE].audit_log() if e.action == "hand_back"]
    assert (entry.actor, entry.subject) == ("sam", conversation_id) and entry.detail.endswith("from anne")


@pytest.mark.parametrize(
    ("action", "body", "status", "said"),
    [
        ("close", {"outcome": "cyberbullying", "notes": "Anne est partie"}, "closed", "La conversation est terminée"),
        ("transfer", {"queue": "listeners"}, "queued", "position 1"),
    ],
)
async def test_a_supervisor_closes_or_transfers_a_conversation_another_listener_holds(
    client: Client, clock: Clock, action: str, body: dict[str, str], status: str, said: str
) -> None:
    """As when its holder does it: the young person told (the goodbye, or their place in the new queue), the status
    live in every console (the holder's, another listener's); audited as from the holder. A plain listener may not."""
    anne, conversation_id, count = await held_by_anne(client, clock)
    await add_listener(client, "sam", supervisor=True)
    bruno, sam = await other_session(client, "bruno"), await other_session(client, "sam")
    path = f"/api/conversations/{conversation_id}/{action}"
    try:
        async with anne.ws_connect("/api/events") as anne_live, bruno.ws_connect("/api/events") as bruno_live:
            for live in (anne_live, bruno_live):
                await receive_until(live, lambda f: f["type"] == "hello")
            assert (await bruno.post(path, json=body)).status == 403  # not his, nor a waiting one
            response = await sam.post(path, json=body)
            assert response.status == 200, await response.text()
            assert (await response.json())["status"] == status
            for live in (anne_live, bruno_live):
                await receive_until(live, lambda f: f == {"type": "status", "conversation_id": conversation_id,
                                                          "status": status, "queue": "listeners"})  # fmt: skip
    finally:
        for http in (anne, bruno, sam):
            await http.close()
    store = client.app[STORE]
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status.value == status
    assert any(said in line for line in (await bot_lines(client, conversation_id))[count:])
    assert await store.held_by("anne") == 0  # her capacity freed
    [entry] = [e for e in await store.audit_log() if e.action == action]
    assert (entry.actor, entry.subject) == ("sam", conversation_id) and entry.detail.endswith("from anne")


@pytest.mark.parametrize("action", ["close", "transfer"])
async def test_what_a_supervisor_took_away_is_no_longer_its_former_holders(
    client: Client, clock: Clock, action: str
) -> None:
    """Sam (a supervisor) closes or transfers what Anne held: Anne can no longer act on it (reply, close, note,
    transfer: refused), it is not in her list nor her history, and the record names who ended it with the young
    person (Sam, whose category it is) or nobody (waiting again); the queue, her capacity and the audit agree.
    Before, a closed one kept Anne as its listener: in her history with Sam's category, open to her in full and
    to her notes."""
    anne, conversation_id, _ = await held_by_anne(client, clock)
    await add_listener(client, "sam", supervisor=True)
    sam = await other_session(client, "sam")
    base = f"/api/conversations/{conversation_id}"
    body = {"outcome": "cyberbullying"} if action == "close" else {"queue": "listeners"}
    try:
        assert (await sam.post(f"{base}/{action}", json=body)).status == 200
        acts = {"/messages": {"text": "Toujours là ?"}, "/refer": {"partner": "112"}}
        if action == "close":  # waiting again (transfer), it is any listener's to close or note, as every waiting one
            acts |= {"/close": {"outcome": "cyberbullying"}, "/notes": {"text": "après coup"}}
        for path, sent in acts.items():
            response = await anne.post(base + path, json=sent)
            assert response.status in (403, 409), (path, response.status, await response.text())
        queue = await (await anne.get("/api/queue")).json()
        assert queue["mine"] == []
        assert [c["id"] for c in queue["waiting"]] == ([conversation_id] if action == "transfer" else [])
        assert (await (await anne.get("/api/history")).json())["ended"] == []
        ended = [c["id"] for c in (await (await sam.get("/api/history")).json())["ended"]]
        assert ended == ([conversation_id] if action == "close" else [])
    finally:
        await anne.close()
        await sam.close()
    store = client.app[STORE]
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    assert conversation.listener == ("sam" if action == "close" else None)
    assert await store.held_by("anne") == 0
    [entry] = [e for e in await store.audit_log() if e.action == action]
    assert (entry.actor, entry.subject) == ("sam", conversation_id) and entry.detail.endswith("from anne")


async def test_a_logout_whose_hand_back_failed_still_ends_the_session(client: Client, clock: Clock) -> None:
    """A listener logs out at a shared desk while one of their conversations is locked by another operation (another
    instance's, a slow store): its hand-back times out (10 s). The console goes to the login page whatever the answer
    (logout.js), so the session must have ended: before, it stayed alive and the next person at the desk opening the
    console was that listener, seeing their young people. The conversation goes back at the next alert check (since
    2026-12-07; before, by the automatic hand-back 600 s later)."""
    anne, conversation_id, _ = await held_by_anne(client, clock)
    try:
        async with client.app[STORE].lock(conversation_id):  # another operation holds the conversation
            answer = await anne.delete("/api/session", json={})
        assert answer.status == 503  # the hand-back failed
        assert (await anne.get("/api/me")).status == 401  # but the session ended
    finally:
        await anne.close()
    await given_back_by_the_next_check(client, clock, conversation_id)
