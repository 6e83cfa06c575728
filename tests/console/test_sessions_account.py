"""A session is good for the account it was opened on, as it was then: once the listener's password changed, or
the account was removed (and perhaps added again under the same name), no session opened before serves a request
nor keeps a console socket open, whatever failed between the writes. A password change (the console's, ``gateway
listeners passwd``) and ``gateway listeners remove`` write the account first and end the sessions second: until
2026-12-07 a store failure (a Redis restart, a CLI killed) between the two left every old session alive for its 12
hours, a stolen cookie included, and after a removal they came back with the name. SQLite and Redis."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import API, STORE
from gateway.console.auth import hash_password
from gateway.conversation import Status
from gateway.crypto import DataKeys
from gateway.errors import StoreError
from gateway.settings import Settings
from gateway.store import Listener, Store, open_store
from tests.conftest import PASSWORD, AppFactory, Clock, add_listener, login, password_hash
from tests.console.conftest import other_session
from tests.console.test_sessions import closed_by_server, opened
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import STORES, on_store, redis_url
from tests.test_timers import conversation_of, start
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_url"]  # the fixture, used by on_store

Client = TestClient  # type: ignore[type-arg]
NEW = "un nouveau mot de passe sûr"


class _EndingFails:
    """The real store, except that, once armed, ending a listener's sessions fails as in a Redis restart: the
    account was written, the sessions' end was not. ``also``: other methods that fail the same once armed (a new
    session's ``put_session``: the store gone for good after the account's write)."""

    def __init__(self, store: Store, *also: str) -> None:
        self._store, self.armed, self._failing = store, False, {"end_sessions", *also}

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        return self._fails if self.armed and name in self._failing else found

    async def _fails(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("the store stopped answering")


@pytest.fixture(params=STORES)
async def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


@pytest.fixture
async def elsewhere(make_client: AppFactory, store_settings: Settings) -> AsyncIterator[tuple[Client, Any]]:
    """The app, with anne logged in on this client and on another browser (yielded with it)."""
    client = await make_client(store_settings)
    await add_listener(client, "anne")
    await login(client, "anne")
    other = await other_session(client, "anne")
    try:
        yield client, other
    finally:
        await other.close()


async def test_a_password_change_whose_sessions_end_failed_leaves_no_old_session_and_says_it_is_done(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """The sessions' end failing after the new password is written: the change is made, and said so (200, this
    browser's new session), with its audit line; the old sessions serve nothing (their fingerprint). Until
    2026-12-07 the answer was 503 (try again: a change that went through) and no ``password_changed`` line."""
    store = _EndingFails(await open_store(store_settings.store, keys=DataKeys.from_settings(store_settings)))
    client = await make_client(store_settings, store=store)
    await add_listener(client, "anne")
    await login(client, "anne")
    thief = await other_session(client, "anne")  # a cookie taken from a desk left logged in
    try:
        store.armed = True
        changed = await client.post("/api/me/password", json={"current": PASSWORD, "new": NEW})
        store.armed = False
        audited = [(e.actor, e.action, e.subject) for e in await store.audit_log() if e.action == "password_changed"]
        # before: (503, []): told to try again, the change unaudited
        assert (changed.status, audited) == (200, [("anne", "password_changed", "anne")])
        # before the fingerprint (2026-12-07): 200, the thief's session lived on past the password change
        assert (await thief.get("/api/me")).status == 401
        assert (await client.get("/api/me")).status == 200  # this browser's new session
        assert (await thief.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 401
        assert (await thief.post("/api/session", json={"name": "anne", "password": NEW})).status == 200
    finally:
        await thief.close()


async def test_a_password_change_whose_new_session_fails_says_the_change_is_made(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """The store gone after the account's write (the sessions' end and the new session fail): a 503 that says the
    password changed and to log in with the new one (``password_changed``), the cookie dropped, the change audited
    before. Until 2026-12-07: 503 ``unavailable`` (try again), nothing audited."""
    store = _EndingFails(await open_store(store_settings.store, keys=DataKeys.from_settings(store_settings)),
                         "put_session")  # fmt: skip
    client = await make_client(store_settings, store=store)
    await add_listener(client, "anne")
    await login(client, "anne")
    store.armed = True
    changed = await client.post("/api/me/password", json={"current": PASSWORD, "new": NEW})
    store.armed = False
    audited = [e.action for e in await store.audit_log() if e.action == "password_changed"]
    assert (changed.status, (await changed.json())["error"], audited) == (503, "password_changed", ["password_changed"])
    assert (await client.get("/api/me")).status == 401  # the old session serves nothing, its cookie dropped
    assert (await client.post("/api/session", json={"name": "anne", "password": NEW})).status == 200


@contextlib.contextmanager
def audit_refused(url: str) -> Iterator[None]:
    """The SQLite file refuses every audit line (a trigger aborts the insert), as a write failing there."""
    with contextlib.closing(sqlite3.connect(urlsplit(url).path)) as db:
        db.execute("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'refused'); END")
        db.commit()
        try:
            yield
        finally:
            db.execute("DROP TRIGGER refuse_audit")
            db.commit()


async def test_a_password_change_is_never_written_without_its_audit_line(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """The store failing as the ``password_changed`` line is written (SQLite: the insert refused; Redis: the
    connection reset before the command that holds it): the account and its line are written together or not at
    all, the change then answered 503 (nothing changed: try again). Until 2026-12-07 the line was written after the
    account, apart: the password changed, 200, and no line."""
    redis = not store_settings.store.startswith("sqlite")
    async with contextlib.AsyncExitStack() as stack:
        if redis:
            proxy = await stack.enter_async_context(cutting_proxy(store_settings.store))
            store = await open_store(proxy.url, keys=DataKeys.from_settings(store_settings))
            client = await make_client(store_settings, store=store)
        else:
            client = await make_client(store_settings)
        store = client.app[STORE]
        await add_listener(client, "anne")
        await login(client, "anne")
        before = await store.get_listener("anne")
        if redis:
            proxy.cut_before(b"password_changed")
        else:
            stack.enter_context(audit_refused(store_settings.store))
        changed = await client.post("/api/me/password", json={"current": PASSWORD, "new": NEW})
        after = await store.get_listener("anne")
        assert before is not None and after is not None
        audited = [e.action for e in await store.audit_log() if e.action == "password_changed"]
        # before: (200, True, []): the password changed, no line
        assert (changed.status, after.password_hash != before.password_hash, audited) == (503, False, [])


async def test_sessions_left_by_a_cli_stopped_between_its_writes_serve_nothing(
    elsewhere: tuple[Client, aiohttp.ClientSession],
) -> None:
    """``gateway listeners passwd`` or ``remove`` stopped (killed, the store gone) after its first write: the old
    sessions were never ended. Removed and added again under the same name, with the same password even."""
    client, other = elsewhere
    store = client.app[STORE]
    anne = await store.get_listener("anne")
    assert anne is not None
    await store.update_listener(replace(anne, password_hash=hash_password(NEW)))  # passwd's first write, no more
    assert (await other.get("/api/me")).status == 401  # before: 200
    fresh = await client.post("/api/session", json={"name": "anne", "password": NEW})
    assert fresh.status == 200 and (await client.get("/api/me")).status == 200
    await store.remove_listener("anne")  # remove's first write, no more; then added again as ``listeners add`` does
    await store.add_listener(Listener("anne", hash_password(PASSWORD), capacity=3, created_at=datetime.now(UTC)))
    assert (await client.get("/api/me")).status == 401  # before: 200, the session of the account removed
    assert (await other.get("/api/me")).status == 401


async def test_a_console_socket_closes_once_its_account_changed_its_sessions_not_ended(
    elsewhere: tuple[Client, aiohttp.ClientSession],
) -> None:
    client, other = elsewhere
    socket_ = await opened(other)
    here = await opened(client)
    store = client.app[STORE]
    anne = await store.get_listener("anne")
    assert anne is not None
    await store.update_listener(replace(anne, password_hash=hash_password(NEW)))  # the sessions' end never came
    assert await closed_by_server(socket_)  # before: 40 frames and no close, the conversations' events going on
    assert await closed_by_server(here)


async def test_an_unchanged_account_keeps_its_sessions(elsewhere: tuple[Client, aiohttp.ClientSession]) -> None:
    """Writing the account without a new password (its capacity, its role) ends nothing."""
    client, other = elsewhere
    store = client.app[STORE]
    anne = await store.get_listener("anne")
    assert anne is not None
    await store.update_listener(replace(anne, capacity=5))
    assert (await other.get("/api/me")).status == 200 and (await client.get("/api/me")).status == 200


async def test_a_logout_counts_only_the_sessions_that_serve_the_account(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    """The phone's session left by a password change whose sessions' end never came (the CLI's first write alone)
    serves nothing: the desk, logged in again with the new password, is not "logged in elsewhere", and its logout
    gives back what it held. Until 2026-12-07 the stale session counted: ``elsewhere`` true, the conversation kept
    by a listener with no console that serves them (until the automatic hand-back)."""
    client = await make_client(store_settings)
    await add_listener(client, "anne")
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    desk, phone = await other_session(client, "anne"), await other_session(client, "anne")
    try:
        assert (await desk.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
        store = client.app[STORE]
        anne = await store.get_listener("anne")
        assert anne is not None
        await store.update_listener(replace(anne, password_hash=hash_password(NEW)))  # passwd's first write only
        assert (await desk.post("/api/session", json={"name": "anne", "password": NEW})).status == 200
        assert (await phone.get("/api/me")).status == 401  # the phone's session serves nothing
        me = await (await desk.get("/api/me")).json()
        assert (await desk.delete("/api/session", json={})).status == 204
        record = await store.get_conversation(conversation.id)
        assert record is not None
        # before: (True, 'with_listener', 'anne'): the stale session counted as the listener logged in elsewhere
        assert (me["elsewhere"], record.status.value, record.listener) == (False, Status.QUEUED.value, None)
    finally:
        await desk.close()
        await phone.close()


async def _stored_before_the_fingerprint(client: Client, cookies: aiohttp.CookieJar) -> None:
    """The session of ``cookies`` as a version before 2026-12-07 stored it: no fingerprint (``account`` empty)."""
    token = cookies.filter_cookies(client.make_url("/"))["hg_session"].value
    store, key = client.app[STORE], client.app[API].sessions.key_of(token)
    session = await store.get_session(key, datetime.now(UTC))
    assert session is not None and session.account != ""
    await store.put_session(replace(session, account=""), datetime.now(UTC))


async def test_a_session_from_before_the_fingerprint_serves_until_its_account_is_removed_or_added_again(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """A rolling deploy: a session stored before 2026-12-07 (no fingerprint) serves its account as it is, for its
    last hours; not once the account is removed, nor once the name is added again (an account created after the
    session opened: ``Sessions.serves`` compares the account's creation with the session's opening). Until
    2026-12-07 the account added again took the old session (200)."""
    client = await make_client(store_settings)
    store = client.app[STORE]
    await store.add_listener(Listener("anne", password_hash(), capacity=3, created_at=datetime.now(UTC)))
    await login(client, "anne")
    await _stored_before_the_fingerprint(client, client.session.cookie_jar)
    assert (await client.get("/api/me")).status == 200  # kept for its last hours: no logout at the upgrade
    anne = await store.get_listener("anne")
    assert anne is not None
    await store.update_listener(replace(anne, capacity=5))
    assert (await client.get("/api/me")).status == 200  # the account written, its password not changed
    await store.remove_listener("anne")  # remove's first write, no more
    assert (await client.get("/api/me")).status == 401
    await store.add_listener(Listener("anne", password_hash(), capacity=3, created_at=datetime.now(UTC)))
    assert (await client.get("/api/me")).status == 401  # before: 200, the removed account's session
