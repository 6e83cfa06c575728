"""Listener passwords (gateway/console/auth.py) and console sessions (gateway/console/sessions.py, on a real
SQLite store): argon2 hashes; session tokens that cannot be forged, altered, reused after expiry or after they
ended, or carried to a gateway with another secret key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import pytest
from argon2 import Type, extract_parameters

from gateway.console.auth import DUMMY_HASH, NAME_MAX, hash_password, valid_name, verify_password
from gateway.console.sessions import SESSION_HOURS, Sessions
from gateway.store import Listener, Store, open_store

NOW = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
KEY = "test-secret-key-0123456789"
ANNE = Listener("anne", "$argon2id$anne")  # whose sessions these are (Sessions.open keeps its fingerprint)


def test_a_password_is_stored_as_an_argon2_hash_and_checked() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterie")
    assert not verify_password("not a hash", "correct horse battery")
    assert not verify_password(DUMMY_HASH, "")


def test_real_accounts_and_unknown_names_are_hashed_at_argon2s_defaults() -> None:
    """The tests' own listeners hold a cheap hash (``tests/conftest.password_hash``), so no login test would notice
    weaker parameters here: this one pins them. A real account's hash and the hash an unknown name is verified
    against (``DUMMY_HASH``) carry argon2-cffi's defaults, RFC 9106's low-memory profile (64 MiB, 3 passes, 4 lanes),
    the same for both, so a login takes as long whether the name exists or not."""
    expected = argon2.profiles.RFC_9106_LOW_MEMORY
    for stored in (hash_password("correct horse battery"), DUMMY_HASH):
        found = extract_parameters(stored)
        assert (found.type, found.memory_cost, found.time_cost, found.parallelism) == (Type.ID, 65_536, 3, 4), found
        assert (found.memory_cost, found.time_cost, found.parallelism) == (
            expected.memory_cost,
            expected.time_cost,
            expected.parallelism,
        ), found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/sessions.sqlite3")
    yield opened
    await opened.close()


def sessions_at(store: Store, clock: list[datetime], key: str = KEY) -> Sessions:
    return Sessions(store, key, lambda: clock[0])


async def test_a_session_reads_back_its_name_until_it_expires(store: Store) -> None:
    clock = [NOW]
    sessions = sessions_at(store, clock)
    token = await sessions.open(ANNE)
    clock[0] = NOW + timedelta(hours=SESSION_HOURS) - timedelta(seconds=1)
    session = await sessions.read(token)
    assert session is not None and session.name == "anne"
    assert session.expires == NOW + timedelta(hours=SESSION_HOURS)
    assert token not in session.key  # the store keeps a keyed hash, never the token
    clock[0] = NOW + timedelta(hours=SESSION_HOURS)
    assert await sessions.read(token) is None  # expired
    assert await sessions.open(ANNE) != token  # two sessions never share a cookie


async def test_a_session_from_another_key_is_refused(store: Store) -> None:
    token = await sessions_at(store, [NOW], "another-gateway-key-987654").open(ANNE)
    assert await sessions_at(store, [NOW]).read(token) is None  # a changed key logs everybody out


async def test_an_ended_session_is_refused(store: Store) -> None:
    sessions = sessions_at(store, [NOW])
    one, two = await sessions.open(ANNE), await sessions.open(ANNE)
    await sessions.end(one)
    assert await sessions.read(one) is None and await sessions.read(two) is not None
    assert await sessions.end_all("anne") == 1
    assert await sessions.read(two) is None


@pytest.mark.parametrize(
    "alter",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # a changed token
        lambda t: t + "x",
        lambda t: "",
        lambda t: "é.é",
        lambda t: "a" * 5000,
    ],
)
async def test_an_altered_or_malformed_cookie_is_refused(store: Store, alter: object) -> None:
    sessions = sessions_at(store, [NOW])
    token = await sessions.open(ANNE)
    assert await sessions.read(alter(token)) is None  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("anne", True),
        ("anne-marie_2.b", True),
        ("", False),
        ("a" * NAME_MAX, True),
        ("a" * (NAME_MAX + 1), False),
        ("anne marie", False),
        ("anne|x", False),
        ("<script>", False),
    ],
)
def test_listener_names(name: str, valid: bool) -> None:
    assert valid_name(name) is valid
