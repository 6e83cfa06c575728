"""A login whose password check straddles a password change never keeps a session: the change ends every session
of the listener (``console/sessions.py``), but a login that read the old hash before the change and opened its
session after it kept that session, on the old password, for its 12 hours. Until 2026-12-07 a thief knowing the old
password, logging in over and over while the listener changed it, kept the console. The real app on SQLite; the
store is the real one, paused (once armed) right after the login read the account."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gateway.clock import utcnow
from gateway.console.auth import hash_password
from gateway.console.sessions import SESSION_COOKIE, end_all_sessions
from gateway.crypto import DataKeys
from gateway.settings import Settings
from gateway.store import Listener, open_store
from tests.conftest import PASSWORD, AppFactory, add_listener


class _PausedAfterRead:
    """The real store, except that once armed the next read of an account waits for :attr:`go_on` after reading."""

    def __init__(self, store: object) -> None:
        self._store, self.armed, self.read, self.go_on = store, False, asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def get_listener(self, name: str) -> Listener | None:
        found: Listener | None = await self._store.get_listener(name)  # type: ignore[attr-defined]
        if self.armed:
            self.armed = False
            self.read.set()
            await self.go_on.wait()
        return found


async def test_a_login_checked_against_the_old_password_keeps_no_session_past_the_change(
    make_client: AppFactory, settings: Settings
) -> None:
    store = _PausedAfterRead(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    client = await make_client(settings, store=store)
    await add_listener(client, "anne")
    store.armed = True
    login = asyncio.create_task(client.post("/api/session", json={"name": "anne", "password": PASSWORD}))
    await asyncio.wait_for(store.read.wait(), 20)  # the login has the account as it was: the old password's hash
    # meanwhile the listener changes their password (as ``gateway listeners passwd`` does: the new hash, then every
    # session ended)
    anne = await store.get_listener("anne")
    assert anne is not None
    await store.update_listener(replace(anne, password_hash=hash_password("un nouveau mot de passe sûr")))  # type: ignore[attr-defined]
    await end_all_sessions(store, "anne")  # type: ignore[arg-type]
    store.go_on.set()
    response = await login
    # before: 200 and a cookie whose session outlived the change (GET /api/me answered 200 with it)
    assert response.status == 401, await response.text()
    token = response.cookies.get(SESSION_COOKIE)
    if token is not None and token.value:
        me = await client.get("/api/me", cookies={SESSION_COOKIE: token.value})
        assert me.status == 401
    assert len(await store.live_sessions("anne", utcnow())) == 0  # type: ignore[attr-defined]  # sessions run on real time
