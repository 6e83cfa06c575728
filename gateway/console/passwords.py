"""The password policy for listener accounts: on account creation (``gateway listeners add``) and on every
password change (``gateway listeners passwd``, the console's "Changer mon mot de passe").

A password needs at least :data:`MIN_LENGTH` characters and must not be a common one: not in the list shipped
with the package (``common_passwords.txt``: frequent entries of breach lists, French ones included), not one of
them with digits or symbols added at the end (``motdepasse2024!``) or with its spaces taken out, and not a run of
two or three characters (``abababababab``). A long phrase of ordinary words passes ("mon chat dort sur le
radiateur"): length matters more than symbols. Refusals say why in French, then English.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from gateway.errors import WeakPassword

MIN_LENGTH = 12
_TAIL = re.compile(r"[\W\d_]+$")

MESSAGES = {
    "too_short": (f"mot de passe trop court : au moins {MIN_LENGTH} caractères (une phrase de quelques mots convient)",
                  f"password too short: at least {MIN_LENGTH} characters (a phrase of a few words will do)"),
    "common": ("mot de passe trop courant : il figure dans les listes que les attaquants essaient en premier",
               "password too common: it is in the lists attackers try first"),
}  # fmt: skip


@functools.cache
def common_passwords() -> frozenset[str]:
    text = (resources.files("gateway") / "console" / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def check_password(password: str) -> None:
    """Raise :class:`WeakPassword` (French message, then English) when the policy refuses ``password``."""
    if len(password) < MIN_LENGTH:
        _refuse("too_short")
    if is_common(password):
        _refuse("common")


def is_common(password: str) -> bool:
    lowered = password.strip().lower()
    compact = re.sub(r"\s+", "", lowered)
    known = common_passwords()
    candidates = {lowered, compact, _TAIL.sub("", lowered), _TAIL.sub("", compact)}
    return any(c in known for c in candidates) or len(set(compact)) <= 3


def _refuse(reason: str) -> None:
    french, english = MESSAGES[reason]
    raise WeakPassword(reason, f"{french} / {english}")
