"""Console sessions, kept in the store so that they can be ended at once.

Logging in gives the browser a random token (cookie ``hg_session``: HttpOnly, SameSite=Strict, Secure behind
https). The store keeps only a keyed hash of it (HMAC with ``GATEWAY_SECRET_KEY``) with the listener's name and
the expiry (:data:`SESSION_HOURS`): a copy of the store opens nothing. Every request looks the session up.

A session ends on logout (that one), and every session of a listener ends when their password changes, when
the account is removed (``gateway listeners remove``) and when a supervisor logs them out everywhere. A session also
keeps the fingerprint of the account it was opened on (:func:`account_of`: its password hash and creation): a
request whose session's fingerprint is not the account's of now (another password, an account removed and added
again) is not logged in, and the sweep closes its sockets (:meth:`Sessions.serves`). The password change and the
removal write the account first and end the sessions second: until 2026-12-07 a store failure or a CLI stopped
between the two left every old session alive for its hours (a stolen cookie included), and after a removal they
came back with the name. A session stored before 2026-12-07 has no fingerprint and is taken as it was, for its
last hours, unless its account was created after it opened (removed and added again); a password change whose
sessions' end failed leaves such a session serving until it expires (nothing dates the password).

Ending publishes :class:`~gateway.events.SessionsEnded` through the store's events (every instance with Redis): each
instance closes at once the console sockets of those sessions (``console/events.py``). The CLI on SQLite runs in
another process, whose events do not reach the server: there each instance also checks its sockets' sessions
every few seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.events import SessionsEnded
from gateway.store import ConsoleSession, EventStore, Listener, ListenerStore, SessionStore

SESSION_COOKIE = "hg_session"
SESSION_HOURS = 12
TOKEN_MAX = 100  # a longer cookie is not one of ours: not even hashed


class SessionsRoles(SessionStore, EventStore, Protocol):
    """What sessions need of the store."""


def listener_digest(name: str) -> str:
    """How an event names a listener whose sessions ended (events carry no names)."""
    return hashlib.sha256(("listener:" + name).encode()).hexdigest()[:24]


def account_of(listener: Listener) -> str:
    """The fingerprint of the account as a session serves it: a digest of its password hash (salted: a new password
    has another one, even the same password) and of its creation (an account added again under the same name). Not
    a secret: the store keeps the hash itself."""
    created = listener.created_at.astimezone(UTC).isoformat() if listener.created_at else ""
    return hashlib.sha256(f"account:{created}:{listener.password_hash}".encode()).hexdigest()[:32]


async def end_all_sessions(store: SessionsRoles, name: str) -> int:
    """End every session of ``name`` and close their sockets; how many sessions there were."""
    ended = await store.end_sessions(name)
    await store.publish(SessionsEnded(listener=listener_digest(name)))
    return ended


class SignedInRoles(ListenerStore, SessionStore, Protocol):
    """What :func:`signed_in` reads: the account and its sessions."""


async def signed_in(store: SignedInRoles, name: str, now: datetime) -> bool:
    """Whether listener ``name`` is logged in anywhere at ``now``: a live session that serves the account as it is
    (:meth:`Sessions.serves`; a removed account has none). The alert check hands back at once what a listener holds
    who is not (``gateway/alerts.py``, :meth:`~gateway.alerts.Watch._hand_back_left`; since 2026-12-07)."""
    sessions = await store.live_sessions(name, now)
    if not sessions:
        return False
    listener = await store.get_listener(name)
    return any(Sessions.serves(session, listener) for session in sessions)


class Sessions:
    def __init__(self, store: SessionsRoles, secret_key: str, clock: Callable[[], datetime]) -> None:
        self.store, self.clock = store, clock
        self._key = hashlib.sha256(("console-session:" + secret_key).encode()).digest()

    def key_of(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    async def open(self, listener: Listener) -> str:
        """A new session for ``listener``, as the account is (:func:`account_of`): the token for the cookie."""
        token, now = secrets.token_urlsafe(32), self.clock()
        expires = now + timedelta(hours=SESSION_HOURS)
        await self.store.put_session(
            ConsoleSession(self.key_of(token), listener.name, expires, account_of(listener)), now
        )
        return token

    @staticmethod
    def serves(session: ConsoleSession, listener: Listener | None) -> bool:
        """Whether ``session`` is good for the account of now, ``listener`` (None: removed): the same fingerprint.
        A session stored before 2026-12-07 has none: it serves (its last hours, no logout at the upgrade) unless the
        account was created after the session opened (its expiry less :data:`SESSION_HOURS`): the name removed and
        added again. Until 2026-12-07 such a session served the new account. A password change whose sessions' end
        failed cannot be told from such a session (nothing in it or in the account dates the password):
        docs/security.md says so."""
        if listener is None:
            return False
        if session.account:
            return session.account == account_of(listener)
        created, opened = listener.created_at, session.expires - timedelta(hours=SESSION_HOURS)
        if created is not None and created.tzinfo is None:  # never a TypeError (a 500) for a time stored naive
            created = created.replace(tzinfo=UTC)
        return created is None or created <= opened

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

    async def serving(self, listener: Listener) -> int:
        """How many live sessions of ``listener`` serve the account as it is (:meth:`serves`): a session left by a
        password change or a removal whose sessions' end failed is not the listener logged in. Until 2026-12-07 every
        live session counted (``tests/console/test_sessions_account.py``)."""
        sessions = await self.store.live_sessions(listener.name, self.clock())
        return sum(1 for session in sessions if self.serves(session, listener))

    async def live(self, key: str) -> ConsoleSession | None:
        """The session of this key, live (neither ended nor expired), or None."""
        return await self.store.get_session(key, self.clock())
