"""Console sessions, kept in the store so that they can be ended at once.

Logging in gives the browser a random token (cookie ``hg_session``: HttpOnly, SameSite=Strict, Secure behind
https). The store keeps only a keyed hash of it (HMAC with ``GATEWAY_SECRET_KEY``) with the listener's name and
the expiry (:data:`SESSION_HOURS`): a copy of the store opens nothing. Every request looks the session up.

A session ends on logout (that one), and every session of a listener ends when their password changes, when
the account is removed (``gateway listeners remove``) and when a supervisor logs them out everywhere. Ending
publishes :class:`~gateway.events.SessionsEnded` through the store's events (every instance with Redis): each
instance closes at once the console sockets of those sessions (``console/events.py``). The CLI on SQLite runs in
another process, whose events do not reach the server: there each instance also checks its sockets' sessions
every few seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from gateway.events import SessionsEnded
from gateway.store import ConsoleSession, EventStore, SessionStore

SESSION_COOKIE = "hg_session"
SESSION_HOURS = 12
TOKEN_MAX = 100  # a longer cookie is not one of ours: not even hashed


class SessionsRoles(SessionStore, EventStore, Protocol):
    """What sessions need of the store."""


def listener_digest(name: str) -> str:
    """How an event names a listener whose sessions ended (events carry no names)."""
    return hashlib.sha256(("listener:" + name).encode()).hexdigest()[:24]


async def end_all_sessions(store: SessionsRoles, name: str) -> int:
    """End every session of ``name`` and close their sockets; how many sessions there were."""
    ended = await store.end_sessions(name)
    await store.publish(SessionsEnded(listener=listener_digest(name)))
    return ended


class Sessions:
    def __init__(self, store: SessionsRoles, secret_key: str, clock: Callable[[], datetime]) -> None:
        self.store, self.clock = store, clock
        self._key = hashlib.sha256(("console-session:" + secret_key).encode()).digest()

    def key_of(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    async def open(self, name: str) -> str:
        """A new session for ``name``: the token for the cookie."""
        token, now = secrets.token_urlsafe(32), self.clock()
        expires = now + timedelta(hours=SESSION_HOURS)
        await self.store.put_session(ConsoleSession(self.key_of(token), name, expires), now)
        return token

    async def read(self, token: str) -> ConsoleSession | None:
        """The live session of this cookie, or None (none, ended, expired, or not a token of ours)."""
        if not token or len(token) > TOKEN_MAX:
            return None
        return await self.store.get_session(self.key_of(token), self.clock())

    async def end(self, token: str) -> None:
        """Logout: this session ends and its sockets close."""
        key = self.key_of(token)
        await self.store.end_session(key)
        await self.store.publish(SessionsEnded(session=key))

    async def end_all(self, name: str) -> int:
        return await end_all_sessions(self.store, name)

    async def alive(self, key: str) -> bool:
        return await self.store.get_session(key, self.clock()) is not None
