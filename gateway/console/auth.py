"""Listener accounts: names and password hashes.

Passwords are hashed with argon2 (argon2-cffi's defaults, RFC 9106 low-memory profile); the console checks
them off the event loop, behind a brake on guessing (``console/logins.py``); new ones must pass the policy of
``console/passwords.py``. Sessions are in ``console/sessions.py``, the cross-site checks in
``console/crosssite.py``.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


RESERVED_NAMES = frozenset({"gateway", "cli", "system"})
"""Names the code itself writes where a listener's name goes: the actor of the gateway's own audit lines and the mover
of an automatic hand-back listed as begun (``gateway``, ``console.actions.AUTOMATIC``), the command line's actor
(``cli``, ``cli_privacy.ACTOR``), the transcript's ``system`` author. Refused for a new account, in any case
(:func:`reserved_name`): since 2026-12-07; until then a listener named ``gateway`` wrote audit lines that read as the
system's, and their hand-backs could be taken for automatic ones. An existing account so named still logs in."""


def reserved_name(name: str) -> bool:
    """Whether ``name`` is one the code uses as an actor (:data:`RESERVED_NAMES`), whatever its case."""
    return name.casefold() in RESERVED_NAMES


# A hash to verify against when the name is unknown, so a login takes as long either way (console/logins.py).
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
