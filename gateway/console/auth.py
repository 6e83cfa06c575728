"""Listener accounts and console sessions.

Passwords are hashed with argon2 (argon2-cffi's defaults, RFC 9106 low-memory profile); the console checks
them off the event loop, behind a brake on guessing (``console/logins.py``). A session is a signed
cookie ``name|expires|nonce|HMAC-SHA256`` keyed with ``GATEWAY_SECRET_KEY``: nothing to store, and a changed
key logs everybody out. Sessions last :data:`SESSION_HOURS`. The cookie is HttpOnly and SameSite=Strict; the
API also demands JSON bodies, which a cross-site form cannot send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_COOKIE = "hg_session"
SESSION_HOURS = 12
NAME_MAX = 40

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def valid_name(name: str) -> bool:
    return 0 < len(name) <= NAME_MAX and all(c.isalnum() or c in "-_." for c in name)


# A hash to verify against when the name is unknown, so a login takes as long either way (console/logins.py).
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Session:
    name: str
    expires: datetime


class SessionSigner:
    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(("console-session:" + secret_key).encode()).digest()

    def issue(self, name: str, now: datetime | None = None) -> str:
        expires = int(((now or datetime.now(UTC)) + timedelta(hours=SESSION_HOURS)).timestamp())
        body = f"{name}|{expires}|{secrets.token_urlsafe(8)}"
        return _b64(body.encode()) + "." + _b64(self._mac(body))

    def read(self, cookie: str, now: datetime | None = None) -> Session | None:
        """The session in a cookie, or None when it is forged, malformed or expired."""
        try:
            body_part, mac_part = cookie.split(".", 1)
            body = _unb64(body_part)
            if not hmac.compare_digest(_unb64(mac_part), self._mac(body.decode())):
                return None
            name, expires, _ = body.decode().split("|", 2)
            expiry = datetime.fromtimestamp(int(expires), UTC)
        except (ValueError, UnicodeDecodeError):
            return None
        return Session(name, expiry) if expiry > (now or datetime.now(UTC)) else None

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
